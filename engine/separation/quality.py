"""The two qualities of a separation: ``"fast"`` (live playback, the default model) and ``"best"`` (an export).

``plan_separation(quality, model, n_seconds, device)`` decides from the model cards alone (no weights loaded) what
a separation will run, and :meth:`SeparationPlan.describe` says it in one line for the export dialog, with the
time it will take from the cards' measured speed. :meth:`SeparationPlan.build` loads the models and returns a
:class:`~engine.separation.separator.Separator` (``"fast"``: exactly the one used today) or a
:class:`ShiftedEnsembleSeparator` (``"best"``), which has the same public API.

"best" is:

- the model (or an average *ensemble* of models with the same stems) with the highest mean recorded SDR among the
  shipped cards scored on the same test set as the default model's card (``scores.sdr_median``, the variants
  ``scores.sdr_median_wiener<N>`` with ``N`` Wiener EM iterations, and ``scores.ensembles``: a list of
  ``{"members": [names], "sdr_median": {...}, "test_set": {...}, "wiener_iterations": N (optional)}``); nothing
  is chosen by name;
- with the Wiener EM step of a spectrogram-mask model (:class:`~engine.models.masking.MaskSeparator`) set to the
  number of iterations that scored best on its card, or one more than its own when no variant is recorded;
- with Demucs-style random *shifts* (Défossez et al., "Music Source Separation in the Waveform Domain", 2019,
  section 5: "shift trick"): the input is delayed by a random offset of up to :data:`MAX_SHIFT_SECONDS`,
  separated, advanced back, and the :data:`BEST_SHIFTS` results averaged. The offsets come from a seeded
  generator, so a song always gives the same stems.

Why hand-written: Demucs's ``apply_model`` shifts the whole track and holds a song-sized output per shift; here
each shift (and each ensemble member) is one more lazily shifted pass of the ordinary chunked engine
(:func:`~engine.separation.apply.iter_separated_blocks` on a :class:`ShiftedView`), all advanced in lockstep and
averaged block by block, so memory stays bounded by one chunk per pass and cancelling works between chunks.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import SeparationCancelled, ShotokuError
from engine.models.catalogue import (
    ModelCard,
    architectures,
    default_model_name,
    get_card,
    list_cards,
    load_model,
)
from engine.models.masking import Estimator, MaskSeparator
from engine.separation.apply import Progress, ProgressFn, chunk_range, chunk_stride, iter_separated_blocks
from engine.separation.device import select_device
from engine.separation.runner import ChunkRunner, default_threads
from engine.separation.separator import Separator

__all__ = [
    "BEST_SHIFTS",
    "MAX_SHIFT_SECONDS",
    "QUALITY_CHOICES",
    "SHIFT_SEED",
    "SeparationPlan",
    "ShiftedEnsembleSeparator",
    "ShiftedView",
    "plan_separation",
    "shift_offsets",
]

QUALITY_CHOICES = ("fast", "best")
#: Random shifts averaged by "best" (Demucs's ``--shifts``; its paper uses 10, each costs one more pass).
BEST_SHIFTS = 4
#: Largest random delay of a shift (Demucs's ``max_shift``: 0.5 s).
MAX_SHIFT_SECONDS = 0.5
#: Seed of the shift offsets: the same song always gives the same stems.
SHIFT_SEED = 0
_WIENER_KEY = re.compile(r"sdr_median_wiener(\d+)")


def shift_offsets(n_shifts: int, max_shift: int, seed: int = SHIFT_SEED) -> list[int]:
    """``n_shifts`` delays in samples, uniform in ``[0, max_shift)``, from a generator seeded with ``seed``."""
    if n_shifts < 1:
        return []
    if max_shift < 1:
        return [0] * n_shifts
    return [int(v) for v in np.random.default_rng(seed).integers(0, max_shift, size=n_shifts)]


class ShiftedView:
    """``audio`` ``(n_channels, n_samples)`` delayed by ``shift`` samples, as a lazy array: shape
    ``(n_channels, shift + n_samples)``, zeros first. Only ``view[:, a:b]`` is supported (what the chunked engine
    reads); nothing song-sized is allocated (Demucs's ``TensorChunk`` idea)."""

    def __init__(self, audio: np.ndarray, shift: int) -> None:
        self.audio, self.shift = audio, int(shift)
        self.shape = (audio.shape[0], self.shift + audio.shape[1])
        self.dtype = audio.dtype

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        start, stop, _ = cols.indices(self.shape[1])
        out = np.zeros((self.shape[0], max(0, stop - start)), dtype=self.audio.dtype)
        lo = max(start, self.shift)
        if stop > lo:
            out[:, lo - start :] = self.audio[:, lo - self.shift : stop - self.shift]
        return out[rows]


@dataclass
class _Pass:
    """One shifted pass of one model: its block iterator and what it has yielded but not yet been averaged."""

    blocks: Iterator[tuple[int, np.ndarray]]
    order: list[int]  # the model's stem indices in the separator's order
    n_chunks: int
    done_chunks: int = 0
    until: int = 0  # samples yielded so far (input coordinates)
    pending: deque = field(default_factory=deque)  # float32 (n_stems, n_channels, n) blocks, oldest first

    def take(self, n_samples: int) -> np.ndarray:
        """The oldest ``n_samples`` pending samples, ``(n_stems, n_channels, n_samples)``, in the separator's order."""
        parts, needed = [], n_samples
        while needed:
            head = self.pending[0]
            if head.shape[-1] <= needed:
                parts.append(self.pending.popleft())
                needed -= head.shape[-1]
            else:
                parts.append(head[..., :needed])
                self.pending[0] = head[..., needed:]
                needed = 0
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return block[self.order]


class ShiftedEnsembleSeparator(Separator):
    """A :class:`Separator` that averages several models and random shifts of the input, chunk by chunk.

    Args:
        models: loaded models with the same stems (any order), sample rate and channel count; the first one's
            stem order is the output's.
        device, overlap, n_threads: as :class:`Separator` (one :class:`ChunkRunner` per model, on one device).
        segment_seconds: chunk length for every model (default: each model's own).
        shifts: random shifts per model (0: one pass without shift).
        max_shift_seconds: largest delay of a shift.
        seed: seed of the offsets (:func:`shift_offsets`).
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        device: torch.device | str | None = None,
        segment_seconds: float | None = None,
        overlap: float = 0.25,
        n_threads: int | None = None,
        shifts: int = BEST_SHIFTS,
        max_shift_seconds: float = MAX_SHIFT_SECONDS,
        seed: int = SHIFT_SEED,
    ) -> None:
        if not models:
            raise ShotokuError("an ensemble needs at least one model")
        if shifts < 0:
            raise ShotokuError(f"{shifts} shifts: the count cannot be negative")
        super().__init__(models[0], device, segment_seconds, overlap, n_threads)
        self.models = list(models)
        self.shifts, self.seed = int(shifts), int(seed)
        self.max_shift = max(0, round(max_shift_seconds * self.samplerate))
        self.members: list[tuple[ChunkRunner, int, list[int]]] = []
        for model in self.models:
            if (
                sorted(model.sources) != sorted(self.sources)
                or int(model.samplerate) != self.samplerate
                or int(model.n_channels) != self.n_channels
                or (len(self.models) > 1 and getattr(model, "needs_references", False))
            ):  # one oracle may be shifted (its input is built before the passes), an ensemble of them not
                raise ShotokuError("ensemble members must share stems, sample rate and channels, and need no "
                                   "reference stems")  # fmt: skip
            runner = self.runner if model is self.model else ChunkRunner(
                model, self.runner.device, n_threads=n_threads, overlap=overlap)  # fmt: skip
            segment = (
                round(segment_seconds * self.samplerate) if segment_seconds else int(model.segment_samples)
            )
            self.members.append((runner, segment, [list(model.sources).index(s) for s in self.sources]))

    @property
    def notes(self) -> list[str]:
        """Every member's out-of-memory fallbacks, in member order."""
        return [note for runner, _, _ in self.members for note in runner.notes]

    def offsets(self) -> list[int]:
        """The delays (samples at the model rate) of each pass, member after member; the same on every call."""
        if self.shifts == 0:
            return [0] * len(self.members)
        return shift_offsets(self.shifts * len(self.members), self.max_shift, self.seed)

    def _blocks(
        self, model_mix: np.ndarray, cancel: threading.Event | None, progress: ProgressFn | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Average every (member, shift) pass over ``model_mix`` ``(n_in_channels, n_samples)``.

        Yields ``(start, block)`` with ``block`` float32 ``(n_stems, n_channels, n)``, tiling ``[0, n_samples)``.
        Each pass holds one chunk and the samples it is ahead of the slowest pass (at most one chunk).
        """
        n_samples = model_mix.shape[-1]
        if n_samples == 0:
            return
        per = max(1, self.shifts)
        offsets = self.offsets()
        passes: list[_Pass] = []
        for index, shift in enumerate(offsets):
            runner, segment, order = self.members[index // per]
            n_chunks = len(
                chunk_range(shift, shift + n_samples, segment, chunk_stride(segment, self.overlap))
            )
            one = _Pass(iter(()), order, n_chunks)
            one.blocks = iter_separated_blocks(
                runner, ShiftedView(model_mix, shift), len(self.sources), segment, self.overlap,  # type: ignore[arg-type]
                start=shift, stop=shift + n_samples, cancel=cancel, n_out_channels=self.n_channels,
                progress=lambda p, one=one: setattr(one, "done_chunks", p.done_chunks),
            )  # fmt: skip
            passes.append(one)
        n_total = sum(p.n_chunks for p in passes)
        done = 0
        while done < n_samples:
            if cancel is not None and cancel.is_set():
                raise SeparationCancelled()
            slowest = min(passes, key=lambda p: p.until)
            _, block = next(slowest.blocks)
            slowest.pending.append(block)
            slowest.until += block.shape[-1]
            ready = min(p.until for p in passes)
            if ready > done:
                total = np.zeros((len(self.sources), self.n_channels, ready - done), dtype=np.float64)
                for p in passes:
                    total += p.take(ready - done)
                yield done, (total / len(passes)).astype(np.float32)
                done = ready
            for one in passes:  # a pass past its last block only has its last progress report left
                if one.until >= n_samples and one.done_chunks < one.n_chunks:
                    next(one.blocks, None)
            if progress is not None:
                progress(Progress(sum(p.done_chunks for p in passes), n_total, 0, n_samples, done))


# -- the plan ---------------------------------------------------------------------------------------------------


def _mean_sdr(scores: object, sources: Sequence[str]) -> float | None:
    """Mean over ``sources`` of a ``{stem: dB}`` dict, None unless every stem has a finite number."""
    if not isinstance(scores, dict):
        return None
    values = [scores.get(s) for s in sources]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return float(np.mean(values))


def _is_mask_model(card: ModelCard) -> bool:
    cls = architectures().get(card.architecture)
    return cls is not None and (issubclass(cls, Estimator) or issubclass(cls, MaskSeparator))


def _own_wiener(card: ModelCard) -> int:
    return int(card.config.get("wiener_iterations", 0) or 0)


def _best_wiener(card: ModelCard) -> tuple[int | None, float | None]:
    """``(iterations, mean SDR)`` for a card in "best": the best-scoring recorded Wiener variant, else one more
    than its own (None for a model without the Wiener step). The score is that variant's; for "one more" (not
    measured) the model's own recorded score stands in. None when the card records none."""
    if not _is_mask_model(card):
        return None, _mean_sdr(card.scores.get("sdr_median"), card.sources)
    own = _own_wiener(card)
    recorded = {own: _mean_sdr(card.scores.get("sdr_median"), card.sources)}
    for key, value in card.scores.items():
        if (match := _WIENER_KEY.fullmatch(key)) is not None:
            recorded[int(match.group(1))] = _mean_sdr(value, card.sources)
    scored = {n: s for n, s in recorded.items() if s is not None}
    if len(scored) > 1 or (scored and own not in scored):
        n = max(scored, key=lambda k: (scored[k], -k))
        return n, scored[n]
    return own + 1, scored.get(own)


def _choose_best(default: ModelCard, cards: Sequence[ModelCard]) -> tuple[list[str], list[int | None], str]:
    """``(members, Wiener iterations per member, why)``: the highest mean recorded SDR among the models (and
    recorded ensembles) with the default's stems and format, scored on the default card's test set."""
    test_set = default.scores.get("test_set")
    usable = {
        c.name: c for c in cards
        if c.kind in ("neural", "reference") and sorted(c.sources) == sorted(default.sources)
        and c.samplerate == default.samplerate and c.n_channels == default.n_channels
    }  # fmt: skip
    usable.setdefault(default.name, default)
    options: list[tuple[float, int, bool, str, list[str], list[int | None]]] = []
    for card in usable.values():
        if card.scores.get("test_set") != test_set:
            continue
        wiener, score = _best_wiener(card)
        if score is not None:
            options.append((score, -1, card.name == default.name, card.name, [card.name], [wiener]))
        for entry in card.scores.get("ensembles", []) or []:
            members = entry.get("members") if isinstance(entry, dict) else None
            score = _mean_sdr(entry.get("sdr_median"), default.sources) if members else None
            if (
                score is None
                or entry.get("test_set", test_set) != test_set
                or not all(m in usable for m in members)
            ):
                continue
            fixed = entry.get("wiener_iterations")
            wieners = [(fixed if _is_mask_model(usable[m]) else None) if fixed is not None
                       else _best_wiener(usable[m])[0] for m in members]  # fmt: skip
            options.append((score, -len(members), False, "+".join(members), list(members), wieners))
    if not options:
        wiener, _ = _best_wiener(default)
        return [default.name], [wiener], "no comparable scores on the cards: the default model"
    score, _, _, label, members, wieners = max(options, key=lambda o: o[:3])
    return members, wieners, f"highest recorded mean SDR ({score:.2f} dB): {label}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


@dataclass(frozen=True)
class SeparationPlan:
    """What a separation will run. Built by :func:`plan_separation`; ``wiener_iterations[i]`` is member ``i``'s
    Wiener EM setting (None: the model's own, or a model without that step); ``shifts`` 0 means no shift."""

    quality: str
    models: tuple[str, ...]
    wiener_iterations: tuple[int | None, ...]
    shifts: int
    n_seconds: float
    device: str | None
    estimate_seconds: float | None
    estimate_note: str
    reason: str
    root: Path | None = None

    def describe(self) -> str:
        """One line: quality, model(s), shifts, Wiener iterations and the estimated time for this song."""
        label = "Best quality" if self.quality == "best" else "Fast"
        models = self.models[0] if len(self.models) == 1 else "average of " + " + ".join(self.models)
        parts = [f"{label}: {models}"]
        parts.append(f"{self.shifts} random shifts" if self.shifts else "no shifts")
        wieners = {w for w in self.wiener_iterations if w is not None}
        if len(wieners) == 1:
            n = wieners.pop()
            parts.append(f"{n} Wiener EM iteration{'s' if n != 1 else ''}" if n else "no Wiener step")
        elif wieners:
            parts.append("Wiener EM " + "/".join(str(w) for w in self.wiener_iterations if w is not None))
        when = (
            f"about {_duration(self.estimate_seconds)}"
            if self.estimate_seconds is not None
            else "time unknown"
        )
        return ", ".join(parts) + f"; {when} for this {_duration(self.n_seconds)} song ({self.estimate_note})"

    def build(self, threads: int | None = None, segment_seconds: float | None = None) -> Separator:
        """Load the models and return the separator (``sources``, ``samplerate``, ``n_channels``, ``iter_stems``,
        ``separate``, ``device``, ``notes``, ``needs_references``, as :class:`Separator`)."""
        loaded = []
        for name, wiener in zip(self.models, self.wiener_iterations, strict=True):
            model = load_model(name, root=self.root)
            if wiener is not None and hasattr(model, "wiener_iterations"):
                model.wiener_iterations = wiener
            loaded.append(model)
        if self.shifts == 0 and len(loaded) == 1:
            return Separator(loaded[0], self.device, segment_seconds, n_threads=threads)
        return ShiftedEnsembleSeparator(
            loaded, self.device, segment_seconds, n_threads=threads, shifts=self.shifts
        )


def _rtf(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None  # type: ignore[arg-type]


def _speed(card: ModelCard, threads: int) -> tuple[float | None, int | None]:
    """``(x real time, threads)`` the card measured, preferring the measurement at ``threads`` threads
    (``speed.cpu_realtime_factor`` at ``speed.threads``, or ``speed.one_thread``)."""
    top = (_rtf(card.speed.get("cpu_realtime_factor")), card.speed.get("threads"))
    one = card.speed.get("one_thread")
    if threads == 1 and isinstance(one, dict) and _rtf(one.get("cpu_realtime_factor")) is not None:
        return _rtf(one.get("cpu_realtime_factor")), 1
    return top


def _estimate(
    cards: Sequence[ModelCard],
    wieners: Sequence[int | None],
    shifts: int,
    n_seconds: float,
    device: torch.device,
    threads: int,
) -> tuple[float | None, str]:
    """Seconds to separate ``n_seconds`` of audio with ``cards`` (one pass per shift each), from the cards' measured
    CPU speed, with the basis in words. A card's ``speed.best`` (``{"cpu_realtime_factor", "threads", "shifts",
    "wiener_iterations"}``, written from ``bench/speed.py --quality best``) is the measurement of this very path and
    is used when it matches; otherwise the model's own speed times the passes."""
    if device.type != "cpu":
        return None, f"the cards record CPU speed only, not {device.type}"
    total, basis, untimed = 0.0, [], False
    passes = max(1, shifts)
    for card, wiener in zip(cards, wieners, strict=True):
        best = card.speed.get("best")
        if (
            isinstance(best, dict)
            and shifts
            and len(cards) == 1
            and best.get("shifts") == shifts
            and best.get("wiener_iterations") == wiener
            and _rtf(best.get("cpu_realtime_factor"))
        ):
            rtf, used = _rtf(best["cpu_realtime_factor"]), best.get("threads")
            total += n_seconds / rtf  # type: ignore[operator]
            basis.append(f"this path measured {rtf:g}x real time" + (f" on {used} threads" if used else ""))
            continue
        rtf, used = _speed(card, threads)
        if rtf is None:
            return None, f"no measured speed on the card of {card.name}"
        total += n_seconds * passes / rtf
        basis.append(f"{card.name} {rtf:g}x real time" + (f" on {used} thread{'s' if used != 1 else ''}" if used else "")
                     + (f", x{passes} passes" if passes > 1 else ""))  # fmt: skip
        untimed |= wiener is not None and wiener > _own_wiener(card)
    note = "measured: " + ", ".join(basis)
    return total, note + ("; the added Wiener step is not in the measurement" if untimed else "")


def plan_separation(
    quality: str,
    model: str | None,
    n_seconds: float,
    device: str | None,
    root: Path | None = None,
    threads: int | None = None,
) -> SeparationPlan:
    """Plan a separation of a song of ``n_seconds`` seconds (reads cards only; no weights are loaded).

    Args:
        quality: ``"fast"`` (the model as shipped, no shifts) or ``"best"`` (see the module docstring).
        model: a model name; None: the default model for "fast", the best recorded choice for "best".
        device: as :func:`~engine.separation.device.select_device` (the estimate needs the CPU's speed).
        root: the models folder (default: the bundled one).
        threads: the threads the separation will use, for the estimate (default: ``default_threads()``).

    Raises:
        ShotokuError: an unknown quality; ModelLoadError: an unknown model or unreadable card.
    """
    if quality not in QUALITY_CHOICES:
        raise ShotokuError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITY_CHOICES)}")
    name = model or default_model_name(root=root)
    card = get_card(name, root=root)
    if quality == "fast":
        own = _own_wiener(card) if _is_mask_model(card) else None
        members, wieners, shifts, reason = [name], [own], 0, "the model as shipped"
    elif model is not None:
        wiener, _ = _best_wiener(card)
        members, wieners, shifts, reason = [name], [wiener], BEST_SHIFTS, "the chosen model"
    else:
        members, wieners, reason = _choose_best(card, list_cards(root=root))
        shifts = BEST_SHIFTS
    cards = [card if m == name else get_card(m, root=root) for m in members]
    n_threads = threads or default_threads()
    estimate, note = _estimate(cards, wieners, shifts, float(n_seconds), select_device(device), n_threads)
    return SeparationPlan(quality, tuple(members), tuple(wieners), shifts, float(n_seconds), device, estimate, note,
                          reason, root)  # fmt: skip
