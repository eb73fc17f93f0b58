"""``Separator``: the one object the CLI, the GUI and the streaming worker use to run a model on a song.

Only the chunk goes to the device; the whole track stays on the CPU. The model runs through a
:class:`~engine.separation.runner.ChunkRunner`: out-of-memory on a GPU falls back to smaller chunks, then to the
CPU, and says so in :attr:`Separator.notes`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import numpy as np
import soxr
import torch
from torch import nn

from engine.errors import ShotokuError
from engine.models.base import needs_references, prepare_input
from engine.models.catalogue import load_model
from engine.separation.apply import ProgressFn, iter_separated_blocks
from engine.separation.device import select_device
from engine.separation.runner import ChunkRunner

log = logging.getLogger(__name__)


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


class Separator:
    """Runs a separation model over songs of any length, channel count and sample rate.

    Args:
        model: a model name from the registry or a loaded module (see ``engine.models.base.SeparationModel``).
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ... (see :func:`select_device`).
        segment_seconds: chunk length; default: the model's ``segment_samples``.
        overlap: fraction of a chunk shared with the next, blended with a triangular weight.
        n_threads: torch CPU threads for inference (None leaves torch's setting).
    """

    def __init__(
        self,
        model: nn.Module | str,
        device: torch.device | str | None = None,
        segment_seconds: float | None = None,
        overlap: float = 0.25,
        n_threads: int | None = None,
    ) -> None:
        self.model = load_model(model) if isinstance(model, str) else model
        self.runner = ChunkRunner(self.model, select_device(device), n_threads=n_threads, overlap=overlap)
        self.sources: list[str] = list(self.model.sources)
        self.samplerate: int = int(self.model.samplerate)
        self.n_channels: int = int(self.model.n_channels)
        self.segment_samples = (
            int(segment_seconds * self.samplerate) if segment_seconds else int(self.model.segment_samples)
        )
        self.overlap = overlap
        self.needs_references = needs_references(self.model)

    @property
    def device(self) -> torch.device:
        """Where the model runs now (the CPU after an out-of-memory fallback)."""
        return self.runner.device

    @property
    def notes(self) -> list[str]:
        """What went differently from the request (out-of-memory fallbacks), in order."""
        return self.runner.notes

    # -- preparing the input --------------------------------------------------------------------------------------
    def _prepare(self, audio: np.ndarray, samplerate: int, what: str) -> np.ndarray:
        """Validate ``(n_channels, n_samples)``, fit the channel count, resample to the model's rate."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2:
            raise ShotokuError(f"{what} must be (n_channels, n_samples), got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise ShotokuError(f"{what} contains NaN or infinite samples")
        if audio.shape[0] == 1 and self.n_channels > 1:
            audio = np.repeat(audio, self.n_channels, axis=0)
        elif audio.shape[0] != self.n_channels:
            raise ShotokuError(f"{what} has {audio.shape[0]} channels; the model takes {self.n_channels}")
        if samplerate != self.samplerate:
            audio = soxr.resample(audio.T, samplerate, self.samplerate, quality="HQ").T
        return np.ascontiguousarray(audio, dtype=np.float32)

    def _model_input(
        self, mix: np.ndarray, samplerate: int, references: dict[str, np.ndarray] | None
    ) -> np.ndarray:
        """The model's input (see :func:`engine.models.base.prepare_input`), references fitted like the mixture."""
        prepared = self._prepare(mix, samplerate, "the mixture")
        refs = None
        if self.needs_references and references is not None:
            refs = {
                name: self._prepare(references[name], samplerate, f"reference {name!r}")
                for name in self.sources
                if name in references
            }
        return prepare_input(self.model, prepared, refs)

    # -- public API -----------------------------------------------------------------------------------------------
    def iter_stems(
        self,
        mix: np.ndarray,
        samplerate: int,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        references: dict[str, np.ndarray] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Separate ``mix`` block by block at the input's rate, with memory bounded by one chunk.

        Args:
            mix: ``(n_channels, n_samples)`` at ``samplerate``; mono is duplicated to the model's channels.
            references: the true stems (oracle models only), each like ``mix``.

        Yields:
            ``(stems, mix_block)``: ``stems`` float32 ``(n_stems, n_channels, block_len)`` in ``self.sources``
            order and the matching mixture block ``(n_channels, block_len)``, consecutive, together exactly
            ``n_samples`` long.
        """
        n_samples = mix.shape[-1]
        model_mix = self._model_input(mix, samplerate, references)
        mix_out = np.asarray(mix, dtype=np.float32)
        if mix_out.ndim == 2 and mix_out.shape[0] == 1:
            mix_out = np.repeat(mix_out, self.n_channels, axis=0)
        blocks = iter_separated_blocks(
            self.runner, model_mix, len(self.sources), self.segment_samples, self.overlap,
            cancel=cancel, progress=progress, n_out_channels=self.n_channels,
        )
        if samplerate == self.samplerate:
            emitted = 0
            for _, block in blocks:
                yield block, mix_out[:, emitted : emitted + block.shape[-1]]
                emitted += block.shape[-1]
            return
        # Resample each block back to the input's rate with one streaming resampler per stem.
        streams = [
            soxr.ResampleStream(self.samplerate, samplerate, self.n_channels, dtype="float32", quality="HQ")
            for _ in self.sources
        ]

        def resampled(block: np.ndarray, last: bool) -> np.ndarray:
            return np.stack([s.resample_chunk(np.ascontiguousarray(b.T), last=last).T for s, b in zip(streams, block)])

        empty = np.zeros((len(self.sources), self.n_channels, 0), np.float32)
        emitted = 0
        for out in [*(resampled(block, False) for _, block in blocks), resampled(empty, True)]:
            length = min(out.shape[-1], n_samples - emitted)
            if length > 0:
                yield np.ascontiguousarray(out[..., :length]), mix_out[:, emitted : emitted + length]
                emitted += length
        if emitted < n_samples:  # the resampler's delay left a few samples: pad them with silence
            missing = n_samples - emitted
            yield np.zeros((len(self.sources), self.n_channels, missing), np.float32), mix_out[:, emitted:]

    def separate(
        self,
        mix: np.ndarray,
        samplerate: int,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        stems: list[str] | None = None,
        two_stems: str | None = None,
        references: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Separate a whole song in memory.

        Args:
            mix: ``(n_channels, n_samples)`` float audio at ``samplerate``.
            stems: keep only these stems (default: all of ``self.sources``).
            two_stems: return ``{stem, "no_<stem>"}`` where the complement is the mixture minus the stem.
            references: reference stems for oracle models.

        Returns:
            ``{stem name: (n_channels, n_samples) float32}`` at ``samplerate``, same length as ``mix``.
        """
        check_outputs(self.sources, stems, two_stems)  # before the long work
        n_samples = mix.shape[-1]
        # One preallocated output filled block by block: the song's stems exist once, never as a list + a copy.
        all_stems = np.empty((len(self.sources), self.n_channels, n_samples), dtype=np.float32)
        full_mix = np.empty((self.n_channels, n_samples), dtype=np.float32)
        emitted = 0
        for block, mix_block in self.iter_stems(mix, samplerate, progress, cancel, references):
            length = block.shape[-1]
            all_stems[..., emitted : emitted + length] = block
            full_mix[:, emitted : emitted + length] = mix_block
            emitted += length
        return select_outputs(all_stems, full_mix, self.sources, stems, two_stems)
