"""PyInstaller runtime hook: make sounddevice load the PortAudio library bundled next to the app.

sounddevice looks PortAudio up with ``ctypes.util.find_library("portaudio")``, which on Linux asks ``ldconfig`` for
*system* libraries only, so the bundled ``libportaudio.so.2`` would be ignored (and a machine without the system
package would get "PortAudio library not found"). This hook answers that one question with the bundled file; every
other name goes to the original function. macOS and Windows wheels of sounddevice carry their own PortAudio.
"""

import ctypes.util
import glob
import os
import sys


def _install() -> None:
    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle:
        return
    found = sorted(glob.glob(os.path.join(bundle, "libportaudio.so*")))
    if not found:
        return
    bundled = found[0]
    original = ctypes.util.find_library

    def find_library(name: str):
        if name == "portaudio":
            return bundled
        return original(name)

    ctypes.util.find_library = find_library


_install()
