"""Shotoku's headless engine: audio I/O, DSP, models, separation, playback, data, training and evaluation.

Nothing in this package imports Qt or ``app``; it runs from a plain script or ``python -m engine``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: The four stems every shipped model separates, in the order the GUI shows them.
STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
