"""Process-wide settings for real-time playback, applied in one explicit place.

The app's start-up (``app/gui.py``) and ``shotoku play`` call :func:`tune_process_for_playback` once; a
:class:`~engine.playback.session.PlaybackSession` never changes process-wide state itself, so a library user (a
test, a script, a benchmark) decides.
"""

from __future__ import annotations

import sys

#: GIL switch interval (seconds) while playing. The audio callback is Python and needs the GIL for each block;
#: numpy releases and re-takes it inside the mixer, and a busy thread (the GUI drawing spectrograms, a thread-mode
#: separation) holds it up to this long before handing it back (Python's default is 5 ms, a quarter of a 1024-frame
#: block at 44.1 kHz). Measured with ``bench/realtime.py`` on 2 cores, the worker separating flat out and a fader
#: moving every 50 ms: 0 underruns in 5 minutes, longest gap between callbacks 20.6 ms
#: (``bench/results/realtime.json``, which records the interval it ran with).
PLAYBACK_SWITCH_INTERVAL = 0.001


def tune_process_for_playback(switch_interval: float = PLAYBACK_SWITCH_INTERVAL) -> float:
    """Set the process-wide settings real-time playback needs (``sys.setswitchinterval``); returns the old interval.

    Idempotent; call it once at start-up, before the first audio stream opens. A caller that wants the old
    setting back (a test) passes the returned value to ``sys.setswitchinterval``.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    return previous
