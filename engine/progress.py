"""The one progress mechanism of the engine: a tqdm line on a stream, and/or a callback for a GUI.

Long engine work (training epochs, corpus generation, separation, evaluation) reports through a
:class:`ProgressBar`: ``update(fraction, detail)`` with the fraction done (0..1) and a short detail, ``close()`` at
the end (or use it as a context manager). The bar draws with tqdm on a terminal; when the stream is not a terminal
(a log file, a pipe, a test's captured stderr) it writes the same line at most once per tenth of the work, so logs
stay short. A ``callback`` (for example the app's worker, which re-emits it as a Qt signal) receives every update.
The CLI and the app only choose where the progress goes; no engine module imports ``engine.cli``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

#: ``callback(fraction, detail)``: fraction of the work done (0..1) and a short human-readable detail.
ProgressCallback = Callable[[float, str], None]

#: One format for both the live tqdm line and the logged lines:
#: ``label [#########.....................]  30.0%  00:03  ETA 00:07, detail``.
_ASCII = ".#"


def _format(width: int) -> str:
    return "{desc} [{bar:" + str(width) + "}] {percentage:5.1f}%  {elapsed}  ETA {remaining}{postfix}"


class ProgressBar:
    """A progress line for one piece of long work.

    Args:
        label: what is running (``"epoch 3/20"``, a file name); starts the line.
        stream: where the line goes (default: ``sys.stderr`` at construction).
        width: characters of the bar itself.
        enabled: ``False`` draws nothing (the callback still runs), so callers need no ``if``.
        callback: receives ``(fraction, detail)`` at every :meth:`update`.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        width: int = 30,
        *,
        enabled: bool = True,
        callback: ProgressCallback | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self.callback = callback
        self.fraction = 0.0
        self.started = time.monotonic()
        self._format = _format(width)
        self._last_decile = -1
        self._closed = False
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._tqdm: tqdm | None = None
        if enabled and tty:
            self._tqdm = tqdm(total=1.0, desc=label, file=self.stream, bar_format=self._format, ascii=_ASCII,
                              leave=True, mininterval=0.1, dynamic_ncols=False)

    def update(self, fraction: float, detail: str = "") -> None:
        """Report ``fraction`` (0..1, clipped) of the work done, with a short ``detail`` (e.g. ``"loss 0.0123"``)."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        self.fraction = fraction
        if self.callback is not None:
            self.callback(fraction, detail)
        if not self.enabled or self._closed:
            return
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(detail, refresh=False)
            self._tqdm.update(fraction - self._tqdm.n)
            return
        decile = int(fraction * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line(fraction, detail) + "\n")
            self.stream.flush()

    def line(self, fraction: float, detail: str = "") -> str:
        """The text of the progress line at ``fraction`` (what a terminal shows), without a line end."""
        return tqdm.format_meter(fraction, 1.0, time.monotonic() - self.started, prefix=self.label,
                                 ascii=_ASCII, bar_format=self._format, postfix=detail or None).rstrip()

    def close(self) -> None:
        """End the line (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._tqdm is not None:
            self._tqdm.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
