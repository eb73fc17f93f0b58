"""The hostile-input corpus through the app's open path: :class:`app.controller.AppController` offscreen.

One controller opens every kind in turn, as a musician dragging files in would: each bad file gives
``song_failed`` with a message naming the file and the reason (no traceback), the song that was open stays open,
the display timer keeps running, and the next file opens. Valid-but-odd files open (``song_opened``).
"""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.hostile.corpus import KINDS, Kind, tone, write

#: Generous: only detects a hang (a refusal takes well under a second, a decode a few).
HANG_MS = 120_000


def _skip_reason(k: Kind) -> str | None:
    if k.expect == "usage":
        return "a batch of files: only the CLI takes several at once"
    if k.slow:
        return "the app's open path decodes the song into memory (the CLI's streamed path is tested with it)"
    if k.unprivileged and os.geteuid() == 0:
        return "root reads a mode-000 file; covered through the CLI run without the permission override"
    return None


def _params() -> list:
    return [pytest.param(k, id=k.name, marks=[pytest.mark.skip(reason=why)] if (why := _skip_reason(k)) else [])
            for k in KINDS]  # fmt: skip


@pytest.fixture(scope="module")
def controller(qapp, tmp_path_factory):
    """One controller for the whole corpus (the app must stay usable from one file to the next)."""
    from app.controller import AppController
    from app.settings import AppSettings

    folder = tmp_path_factory.mktemp("hostile-app")
    settings = AppSettings(folder / "config" / "shotoku.ini")
    settings.set_model_name("identity")
    controller = AppController(settings, use_audio_device=False, show_test_models=True)
    controller.start()
    yield controller
    assert controller.shutdown()


def open_and_wait(controller, qtbot, path: Path, live=None) -> tuple[list[str], list, list[tuple[str, str]]]:
    """Open ``path``; wait until it opened or failed and loading is over. Returns (failures, opened, errors)."""
    failed: list[str] = []
    opened: list = []
    errors: list[tuple[str, str]] = []
    slots = [(controller.song_failed, failed.append), (controller.song_opened, opened.append),
             (controller.error, lambda title, message: errors.append((title, message)))]  # fmt: skip
    for signal, slot in slots:
        signal.connect(slot)
    try:
        with live or nullcontext():
            controller.open_file(path)
            qtbot.waitUntil(lambda: bool(failed or opened) and not controller.loading, timeout=HANG_MS)
    finally:
        for signal, slot in slots:
            signal.disconnect(slot)
    return failed, opened, errors


@pytest.mark.parametrize("k", _params())
def test_open_survives(k: Kind, controller, qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = k.make(folder)
    before = controller.song
    failed, opened, errors = open_and_wait(controller, qtbot, paths[0], k.live(paths) if k.live else None)
    outcome = "refused" if failed else "accepted"
    if k.expect == "refused" or (k.expect == "any" and outcome == "refused"):
        assert failed and not opened, f"{k.name} opened"
        message = failed[0]
        assert "\n" not in message.replace(str(paths[0]), "") and "Traceback" not in message
        assert str(paths[0]) in message or paths[0].name in message, message
        assert re.search(k.reason, message.split(paths[0].name, 1)[-1], re.IGNORECASE), message
        assert controller.song is before  # the song that was open stays open
    else:
        assert opened and not failed, failed
        assert opened[0].song.path == paths[0]
        assert errors == [], errors
        if k.expect == "note" and len(paths) == 1:  # what loading repaired or skipped travels with the song
            assert any(re.search(k.reason, note, re.IGNORECASE) for note in opened[0].song.notes), opened[0].song.notes
    with qtbot.waitSignal(controller.ticked, timeout=HANG_MS):  # the display timer still runs
        pass


def test_a_good_song_opens_after_the_whole_corpus(controller, qtbot, tmp_path: Path) -> None:
    good = write(tmp_path / "after.wav", tone(1.0))
    failed, opened, _ = open_and_wait(controller, qtbot, good)
    assert opened and not failed and controller.song.path == good
