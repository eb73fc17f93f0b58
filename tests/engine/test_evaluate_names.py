"""``shotoku evaluate`` on folders whose names are not UTF-8, printing to an ASCII-only terminal: reports are
written (the name shown with U+FFFD), the tables print, nothing raises UnicodeEncodeError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 8000
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform == "win32", reason="byte file names are POSIX")
def test_non_utf8_folders_on_an_ascii_terminal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = os.fsencode(tmp_path)
    for side in (b"ref", b"\xffest"):
        folder = base + b"/" + side + b"/caf\xe9"
        os.makedirs(folder)
        for k, stem in enumerate(("vocals", "drums", "bass", "other")):
            signal = np.random.default_rng(k).standard_normal((2 * RATE, 1)) * 0.1
            if side != b"ref":
                signal = signal + 0.01 * rng.standard_normal(signal.shape)
            sf.write(folder + b"/" + stem.encode() + b".wav", signal, RATE)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C", "LANG": "C"}
    child = subprocess.run(
        [sys.executable, "-m", "engine", "evaluate", b"--reference", base + b"/ref",
         b"--estimates", base + b"/\xffest", b"--out", os.fsencode(out)],
        capture_output=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    stdout, stderr = child.stdout.decode("ascii", "replace"), child.stderr.decode("ascii", "replace")
    assert child.returncode == 0, stderr
    assert "UnicodeEncodeError" not in stderr + stdout
    assert "| ?est | 20." in stdout  # the method's row: U+FFFD printed as "?" on an ASCII terminal
    report = (out / "scores.md").read_text(encoding="utf-8")
    assert "| \ufffdest | 20." in report
