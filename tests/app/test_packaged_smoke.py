"""The PyInstaller bundle: the PortAudio runtime hook, and (when dist/shotoku was built) the frozen executable.

Build it with ``packaging/build.sh`` (about 3 minutes); that script also runs a full separation smoke test.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "packaging" / "pyi_rth_portaudio.py"
FROZEN = ROOT / "dist" / "shotoku" / "shotoku"


def _system_portaudio() -> Path | None:
    name = ctypes.util.find_library("portaudio")
    if name is None:
        return None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


@pytest.mark.skipif(
    sys.platform != "linux", reason="the hook only matters on Linux (other wheels bundle PortAudio)"
)
def test_runtime_hook_points_sounddevice_at_the_bundled_portaudio(tmp_path: Path) -> None:
    system = _system_portaudio()
    if system is None:
        pytest.skip("no system libportaudio.so.2 to copy into a fake bundle (apt-get install libportaudio2)")
    bundle = tmp_path / "_internal"
    bundle.mkdir()
    bundled = bundle / "libportaudio.so.2"
    shutil.copy(system, bundled)
    code = (
        "import sys, runpy\n"
        f"sys._MEIPASS = {str(bundle)!r}\n"
        f"runpy.run_path({str(HOOK)!r})\n"
        "import ctypes.util, sounddevice\n"
        "print(sounddevice._libname)\n"
        "print(ctypes.util.find_library('c'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    libname, libc = result.stdout.split()
    assert libname == str(bundled)  # sounddevice opened the bundled copy, not the system library
    assert "libc" in libc  # other names still reach the original lookup


def test_runtime_hook_is_harmless_outside_a_bundle() -> None:
    code = f"import runpy, ctypes.util\nf = ctypes.util.find_library\nrunpy.run_path({str(HOOK)!r})\nprint(f is ctypes.util.find_library)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"


@pytest.mark.slow
@pytest.mark.skipif(not FROZEN.is_file(), reason="dist/shotoku is not built (run packaging/build.sh)")
def test_frozen_app_runs_the_cli(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        SHOTOKU_CACHE=str(tmp_path / "c"),
        SHOTOKU_CONFIG=str(tmp_path),
    )
    env.pop("SHOTOKU_RESOURCES", None)
    version = subprocess.run([FROZEN, "--version"], capture_output=True, text=True, timeout=120, env=env)
    assert version.returncode == 0 and version.stdout.startswith("shotoku ")
    models = subprocess.run([FROZEN, "models"], capture_output=True, text=True, timeout=120, env=env)
    assert models.returncode == 0, models.stderr
    assert "irm" in models.stdout  # the cards were found in the bundled resources/ folder
    bad = subprocess.run([FROZEN, "separate", str(tmp_path / "missing.wav"), "--model", "irm", "--reference", str(tmp_path)], capture_output=True, text=True,
                         timeout=120, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert "missing.wav" in bad.stderr and "Traceback" not in bad.stderr


def test_the_bundle_carries_the_user_guide_and_the_pictures_it_shows() -> None:
    import re

    guide = (ROOT / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    spec = (ROOT / "packaging" / "shotoku.spec").read_text(encoding="utf-8")
    pictures = re.findall(r"\]\(screenshots/([\w.-]+\.png)\)", guide)
    assert pictures and '"USER_GUIDE.md"), "docs")' in spec
    for name in pictures:
        assert (ROOT / "docs" / "screenshots" / name).is_file(), name
        assert f'"{name}"' in spec, f"{name} is shown by the guide but not bundled by packaging/shotoku.spec"
