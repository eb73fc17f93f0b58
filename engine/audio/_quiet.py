"""Keep mpg123's notes ("Note: Illegal Audio-MPEG-Header ...", "[src/libmpg123/...] error: dequantization
failed!") off the terminal: libsndfile's MP3 decoder prints them straight to file descriptor 2 while it reads
damaged or non-MP3 data, and the reason a musician gets is ours, in one line.

While :func:`quiet_decoder` is active (around libsndfile opens and MP3 reads: milliseconds each), descriptor 2
points at a temporary file; when the last active user leaves, it is restored and every captured line that is not
the decoder's chatter is written to the real stderr (so another thread's message is delayed, never lost). Not on
Windows (libsndfile's own runtime has its own stderr there).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_NOISE = ("Note: ", "Warning: ", "[src/libmpg123", "[src/", "Big trouble")
_lock = threading.Lock()
_depth = 0
_saved: int | None = None
_capture = None


def _is_noise(line: bytes) -> bool:
    text = line.decode("utf-8", "replace").lstrip()
    return text.startswith(_NOISE) or "mpg123" in text


def _flush_python_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


@contextmanager
def quiet_decoder() -> Iterator[None]:
    """Capture descriptor 2 while the block runs; forward what is not mpg123's chatter afterwards."""
    global _depth, _saved, _capture
    if sys.platform == "win32":
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                _flush_python_stderr()
                _capture = tempfile.TemporaryFile()
                _saved = os.dup(2)
                os.dup2(_capture.fileno(), 2)
            except OSError:
                _saved, _capture = None, None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None and _capture is not None:
                _flush_python_stderr()
                os.dup2(_saved, 2)
                os.close(_saved)
                _capture.seek(0)
                kept = [line for line in _capture.read().splitlines(keepends=True) if not _is_noise(line)]
                _capture.close()
                _saved, _capture = None, None
                if kept:
                    try:
                        os.write(2, b"".join(kept))
                    except OSError:
                        pass
