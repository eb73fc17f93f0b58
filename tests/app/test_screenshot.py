"""``shotoku`` end to end, offscreen: the first start opens the demo song and plays it, the screenshot mechanism
grabs the window (or a dialog), reports what the app was doing (packaging/build.sh checks the frozen app with this
report) and the app quits by itself with status 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.paths import demo_song

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not demo_song().is_file(), reason="the demo song is not installed")
@pytest.mark.parametrize("show", ["", "keyboard"])
def test_first_start_plays_the_demo_and_reports_what_it_did(tmp_path: Path, show: str) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SHOTOKU_CACHE=str(tmp_path / "cache"),
               SHOTOKU_CONFIG=str(tmp_path / "config"), SHOTOKU_SCREENSHOT=str(tmp_path / "shot.png"),
               SHOTOKU_SCREENSHOT_REPORT=str(tmp_path / "report.json"), SHOTOKU_SCREENSHOT_DELAY="4",
               SHOTOKU_SCREENSHOT_SHOW=show,
               # Not the JACK server other tests may start and stop meanwhile: PortAudio's JACK host API asserts
               # (aborting the process at exit) when its server vanished under it.
               JACK_DEFAULT_SERVER="shotoku-test-no-such-server", JACK_NO_START_SERVER="1")
    result = subprocess.run([sys.executable, "-m", "app", "-v"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "verbose logging on" in result.stderr  # -v opened the app, verbosely
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["saved"] and (tmp_path / "shot.png").stat().st_size > 5_000
    assert report["song"] == "demo (mixture)" and report["playing"]
    assert report["portaudio"] or report["portaudio_error"]  # either the library it loaded or why not
