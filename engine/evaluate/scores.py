"""Scores of one track: BSS Eval v4 per window, uSDR and SI-SDR per stem, and the notes made on the way."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.evaluate.bss_eval import BSS_METRICS, bss_eval_v4, min_samples
from engine.evaluate.metrics import FRAME_METRICS, METRICS, si_sdr, usdr

log = logging.getLogger("shotoku.evaluate")


class TooShortError(ValueError):
    """The signals are too short for BSS Eval v4 (``n_samples`` < ``needed``; see :func:`too_short_reason`)."""

    def __init__(self, name: str, n_samples: int, needed: int, window: int, samplerate: int) -> None:
        self.n_samples, self.needed, self.window, self.samplerate = n_samples, needed, window, samplerate
        super().__init__(f"{name}: the shortest signal {too_short_reason(n_samples, needed, window, samplerate)}")


def too_short_reason(n_samples: int, needed: int, window: int, samplerate: int) -> str:
    """Why ``n_samples`` cannot be scored (``needed`` from :func:`engine.evaluate.bss_eval.min_samples`)."""
    have = f"{n_samples / samplerate:.2f} s long ({n_samples} samples)"
    if needed <= window:
        return (
            f"is {have}, shorter than one BSS Eval window ({window / samplerate:.2f} s): too short to score "
            f"(evaluate longer excerpts, or give a shorter --window)"
        )
    return (
        f"is {have}: BSS Eval's distortion filters need at least {needed} samples "
        f"({needed / samplerate:.2f} s) for these stems, so it is too short to score"
    )


def nan_median(values: np.ndarray | list[float]) -> float:
    """Median of the non-NaN values (NaN when there are none), without numpy's all-NaN warning."""
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    return float(np.median(array)) if array.size else float("nan")


@dataclass
class TrackScores:
    """Every score of one track for one method.

    ``frames[stem][metric]`` holds the BSS Eval v4 values of each window in dB, ``(n_frames,)``, NaN where the
    window was skipped (a silent reference or estimate); ``usdr[stem]`` and ``si_sdr[stem]`` are whole-track
    values in dB. ``n_samples`` is the length actually evaluated (after truncation to the shortest signal);
    ``window`` and ``hop`` are in samples. ``notes`` records truncations and skipped stems, in words.
    """

    name: str
    samplerate: int
    n_samples: int
    window: int
    hop: int
    stems: list[str]
    frames: dict[str, dict[str, np.ndarray]]
    usdr: dict[str, float]
    si_sdr: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def window_seconds(self) -> float:
        return self.window / self.samplerate

    def value(self, stem: str, metric: str) -> float:
        """The track-level value of ``metric`` for ``stem``: the median over windows for BSS Eval v4 metrics
        (``SDR``, ``ISR``, ``SIR``, ``SAR``), the whole-track value for ``uSDR`` and ``SI-SDR``; NaN if the stem
        was not evaluated."""
        if stem not in self.stems:
            return float("nan")
        if metric in FRAME_METRICS:
            return nan_median(self.frames[stem][metric])
        if metric == "uSDR":
            return self.usdr[stem]
        if metric == "SI-SDR":
            return self.si_sdr[stem]
        raise KeyError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN and infinities become ``None``/strings via :func:`json_number`)."""
        stems = {}
        for stem in self.stems:
            entry = {metric: json_number(self.value(stem, metric)) for metric in METRICS}
            entry["frames"] = {m: [json_number(v) for v in self.frames[stem][m]] for m in FRAME_METRICS}
            stems[stem] = entry
        return {
            "name": self.name,
            "samplerate": self.samplerate,
            "n_samples": self.n_samples,
            "window": self.window,
            "hop": self.hop,
            "frame_starts_seconds": [i * self.hop / self.samplerate for i in range(self._n_frames())],
            "notes": list(self.notes),
            "stems": stems,
        }

    def _n_frames(self) -> int:
        return len(next(iter(self.frames.values()))["SDR"]) if self.frames else 0


def json_number(value: float) -> float | str | None:
    """A float for JSON: NaN becomes ``None``, infinities ``"inf"``/``"-inf"`` (strict JSON has neither)."""
    value = float(value)
    if np.isnan(value):
        return None
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def evaluate_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    samplerate: int,
    name: str = "track",
    window_seconds: float = 1.0,
    hop_seconds: float | None = None,
    filters_len: int = 512,
) -> TrackScores:
    """Score one track's estimates against its references.

    ``references`` and ``estimates`` map stem names to ``(n_channels, n_samples)`` arrays at ``samplerate``.
    Stems are matched by name: a reference stem without an estimate is skipped with a warning, an estimate
    without a reference is ignored. Signals of different lengths are truncated to the shortest (noted in
    :attr:`TrackScores.notes` and logged). BSS Eval v4 runs on all evaluated stems together (interference is
    measured against the other evaluated stems, as museval does), windows of ``window_seconds`` every
    ``hop_seconds`` (default: the window length). Signals shorter than one window (or than the distortion
    filters have unknowns: :func:`~engine.evaluate.bss_eval.min_samples`) raise :class:`TooShortError` before
    any least-squares work.
    """
    notes: list[str] = []
    stems = [stem for stem in references if stem in estimates]
    for stem in references:
        if stem not in estimates:
            notes.append(f"no estimate for stem '{stem}': skipped")
    for stem in estimates:
        if stem not in references:
            notes.append(f"estimate '{stem}' has no reference: ignored")
    if not stems:
        raise ValueError(f"{name}: no stem has both a reference and an estimate")
    refs = [np.asarray(references[s]) for s in stems]  # float32 stays float32: the metrics compute in float64
    ests = [np.asarray(estimates[s]) for s in stems]
    for stem, ref, est in zip(stems, refs, ests, strict=True):
        if ref.ndim != 2 or est.ndim != 2:
            raise ValueError(f"{name}/{stem}: signals must be (n_channels, n_samples)")
        if ref.shape[0] != refs[0].shape[0] or est.shape[0] != ref.shape[0]:
            raise ValueError(
                f"{name}/{stem}: channel counts differ (reference {ref.shape[0]}, estimate {est.shape[0]}, "
                f"first reference {refs[0].shape[0]})"
            )
    lengths = [x.shape[1] for x in refs + ests]
    n_samples = min(lengths)
    if n_samples == 0:
        raise ValueError(f"{name}: a signal is empty")
    if max(lengths) != n_samples:
        longest = max(lengths)
        notes.append(
            f"lengths differ ({n_samples} to {longest} samples): all stems truncated to {n_samples} samples "
            f"({n_samples / samplerate:.2f} s)"
        )
    for note in notes:
        log.warning("%s: %s", name, note)
    reference = np.stack([x[:, :n_samples] for x in refs])
    estimate = np.stack([x[:, :n_samples] for x in ests])

    window = max(1, int(round(window_seconds * samplerate)))
    hop = window if hop_seconds is None else max(1, int(round(hop_seconds * samplerate)))
    needed = min_samples(len(stems), refs[0].shape[0], window, filters_len)
    if n_samples < needed:  # refused before the least-squares solve, which would fit noise
        raise TooShortError(name, n_samples, needed, window, samplerate)
    frames = bss_eval_v4(reference, estimate, window=window, hop=hop, filters_len=filters_len).as_dict()
    whole = usdr(reference, estimate)
    invariant = si_sdr(reference, estimate)
    return TrackScores(
        name=name,
        samplerate=int(samplerate),
        n_samples=int(n_samples),
        window=window,
        hop=hop,
        stems=stems,
        frames={stem: {m: frames[m][j] for m in BSS_METRICS} for j, stem in enumerate(stems)},
        usdr={stem: float(whole[j]) for j, stem in enumerate(stems)},
        si_sdr={stem: float(invariant[j]) for j, stem in enumerate(stems)},
        notes=notes,
    )
