"""Opening the audio output off the GUI thread, and which device to open at start (no widgets here).

Opening an output (and re-initialising PortAudio, which :meth:`PlaybackSession.select_device` does first so that
devices plugged in since are seen) can take seconds, so it runs in an :class:`OutputWorker`. The choice is
remembered by device *name* (PortAudio's indices change when devices come and go) with the latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.workers import Worker
from engine.errors import PlaybackError
from engine.playback.stream import backend, find_device

if TYPE_CHECKING:
    from app.settings import AppSettings
    from engine.playback.session import PlaybackSession

SYSTEM_DEFAULT = "System default"
#: Where the musician chooses the output (the status bar names it when the output was lost).
MENU_PATH = "Audio ▸ Output device"


def startup_output(settings: AppSettings) -> tuple[str | None, str]:
    """The device to open at start (the remembered one, None for the default) and a note for the status bar.

    A remembered device that is not there now falls back to the system default, and the note says so.
    """
    name = settings.audio_output()
    if not name or backend() is None or find_device(name) is not None:
        return name or None, ""
    return None, f"Audio output “{name}” not found: using the system default (choose another in {MENU_PATH})"


class OutputWorker(Worker):
    """(Re)open the session's audio output on ``device`` with ``latency`` (None: keep it); returns the device name."""

    def __init__(self, session: PlaybackSession, device: str | None, latency: str | None) -> None:
        super().__init__()
        self.session, self.device, self.latency = session, device, latency

    def work(self) -> str:
        if not self.session.select_device(self.device, latency=self.latency):
            raise PlaybackError(self.session.message or "could not open the audio output")
        info = self.session.output.device
        return info.name if info is not None else SYSTEM_DEFAULT
