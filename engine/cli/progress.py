"""A dependency-free progress line for long CLI work (separation, training, corpus generation)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Draws ``label [#####.....]  42%  3.1s  ETA 4.2s`` on one terminal line (stderr by default).

    Call :meth:`update` with the fraction done (0..1); :meth:`close` ends the line. When the stream is not a TTY
    the bar prints at most one line every ten percent, so logs stay short.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._closed = False

    def update(self, fraction: float, detail: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        filled = int(round(self.width * fraction))
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:5.1f}%"
            f"  {elapsed:6.1f}s  ETA {eta:6.1f}s {detail}"
        )
        if self._tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        else:
            decile = int(fraction * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(line.rstrip() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
