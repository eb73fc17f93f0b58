"""What a separation writes, checked without torch: the stems asked for, the chunk length's bounds.

The CLI checks its options with these before it imports a model (a refusal is quick); the
:class:`~engine.separation.separator.Separator` uses the same functions.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import ShotokuError

#: ``--segment`` bounds: shorter chunks are all overlap; longer ones need memory in proportion (one chunk of
#: 120 s, four stereo stems, is ~340 MB of float64 accumulators before the model's own activations).
MIN_SEGMENT_SECONDS = 0.05
MAX_SEGMENT_SECONDS = 120.0


def segment_problem(seconds: float) -> str | None:
    """Why ``seconds`` is not a usable chunk length, or None."""
    if not math.isfinite(seconds):
        return "must be a number of seconds"
    if seconds <= 0:
        return "must be positive"
    if not MIN_SEGMENT_SECONDS <= seconds <= MAX_SEGMENT_SECONDS:
        return f"must be between {MIN_SEGMENT_SECONDS:g} and {MAX_SEGMENT_SECONDS:g} seconds"
    return None


def check_outputs(sources: list[str], wanted: list[str] | None = None, two_stems: str | None = None) -> None:
    """Raise :class:`ShotokuError` naming the model's stems when ``wanted`` or ``two_stems`` asks for another."""
    if two_stems is not None:
        if two_stems not in sources:
            raise ShotokuError(f"--two-stems {two_stems!r}: the model's stems are {', '.join(sources)}")
        return
    unknown = [n for n in wanted or [] if n not in sources]
    if unknown:
        raise ShotokuError(f"unknown stem(s) {', '.join(unknown)}; the model's stems are {', '.join(sources)}")


def select_outputs(
    stems: np.ndarray,
    mix: np.ndarray,
    sources: list[str],
    wanted: list[str] | None = None,
    two_stems: str | None = None,
) -> dict[str, np.ndarray]:
    """Name the stems and keep the ones asked for (see :func:`check_outputs` for the errors).

    Args:
        stems: ``(n_stems, n_channels, n_samples)`` in ``sources`` order.
        mix: the mixture ``(n_channels, n_samples)`` the stems came from (for two-stem output).
        wanted: a subset of ``sources`` (default: all).
        two_stems: ``"vocals"`` gives ``{"vocals": v, "no_vocals": mix - v}``.
    """
    check_outputs(sources, wanted, two_stems)
    if two_stems is not None:
        target = stems[sources.index(two_stems)]
        return {two_stems: target, f"no_{two_stems}": (mix - target).astype(np.float32)}
    return {name: stems[sources.index(name)] for name in wanted or sources}
