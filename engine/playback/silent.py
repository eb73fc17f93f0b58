"""A silent clock: renders the mixer at the real-time rate and drops the samples, when there is no audio output.

Without a sound card (or without PortAudio) the transport, play position and level meters then behave as they
would with one, so a GUI can still play, seek, loop and remix, and tests run without any audio device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

#: Frames per silent block (about 23 ms at 44.1 kHz).
SILENT_BLOCK_FRAMES = 1024


class SilentClock:
    """A thread calling ``render(out)`` with ``out`` ``(block_frames, n_channels)`` float32 at real-time rate.

    Args:
        render: the block callback (the session's mixer render).
        samplerate: frames per second the clock keeps (read again each block, so it may change).
        n_channels: output channels of ``out`` (read again each block).
        block_frames: frames per block.
    """

    def __init__(
        self,
        render: Callable[[np.ndarray], None],
        samplerate: Callable[[], int],
        n_channels: Callable[[], int],
        block_frames: int = SILENT_BLOCK_FRAMES,
    ) -> None:
        self._render, self._samplerate, self._n_channels = render, samplerate, n_channels
        self.block_frames = int(block_frames)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.blocks = 0  #: blocks rendered since the clock was created

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the clock thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="shotoku-silent-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the clock and join its thread (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _main(self) -> None:
        out = np.zeros((self.block_frames, max(1, self._n_channels())), dtype=np.float32)
        deadline = time.monotonic()
        while not self._stop.is_set():
            channels = max(1, self._n_channels())
            if out.shape[1] != channels:
                out = np.zeros((self.block_frames, channels), dtype=np.float32)
            self._render(out)
            self.blocks += 1
            deadline += self.block_frames / max(1, self._samplerate())
            delay = deadline - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:  # fell behind (a busy machine): carry on from now rather than rushing to catch up
                deadline = time.monotonic()
