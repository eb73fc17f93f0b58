"""``python -m app`` that writes its own peak resident memory (``VmHWM``, in kB) to ``$SHOTOKU_PEAK_RSS_FILE`` at exit.

The tests measure a child's memory this way because ``wait4``'s ``ru_maxrss`` cannot be trusted for it: Linux keeps
the high-water mark across ``fork`` + ``exec``, so a child started by a 2 GB pytest process reports at least 2 GB
whatever it used itself. ``VmHWM`` belongs to the address space ``exec`` created, so it is the child's own.
"""

from __future__ import annotations

import atexit
import os
import runpy


def _report() -> None:
    path = os.environ.get("SHOTOKU_PEAK_RSS_FILE")
    if not path:
        return
    with open("/proc/self/status", encoding="ascii", errors="replace") as status:
        peak = next((line.split()[1] for line in status if line.startswith("VmHWM:")), "")
    with open(path, "w", encoding="ascii") as out:
        out.write(peak)


atexit.register(_report)
runpy.run_module("app", run_name="__main__", alter_sys=True)
