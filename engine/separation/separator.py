"""``Separator``: the one object the CLI, the GUI and the streaming worker use to run a model on a song.

Only the chunk goes to the device; the whole track stays on the CPU. The model runs through a
:class:`~engine.separation.runner.ChunkRunner`: out-of-memory on a GPU falls back to smaller chunks, then to the
CPU, and says so in :attr:`Separator.notes`.

Memory stays flat in the song's length when the song is a memory-mapped file (``engine.audio``'s streamed input):
the finite check runs block by block, a song at another rate is resampled block by block into an unlinked
temporary file (in the cache folder; the OS removes it whatever happens to the process), and the pages of the
input already separated are handed back to the OS as the run moves on (a mapped page counts in the process's
resident memory until then).
"""

from __future__ import annotations

import logging
import math
import mmap
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
import soxr
import torch
from torch import nn

from engine.audio.pages import release_rows
from engine.errors import ShotokuError
from engine.models.base import needs_references, prepare_input
from engine.models.catalogue import load_model
from engine.separation.apply import ProgressFn, iter_separated_blocks
from engine.separation.device import select_device
from engine.separation.outputs import MAX_SEGMENT_SECONDS, check_outputs, segment_problem, select_outputs
from engine.separation.runner import ChunkRunner

log = logging.getLogger(__name__)

__all__ = ["Separator", "check_outputs", "release_pages", "segment_problem", "select_outputs"]

#: Inputs longer than this (samples) are resampled into a temporary file rather than in memory.
_LONG_SAMPLES = 1 << 22
_BLOCK = 1 << 18


def _all_finite(audio: np.ndarray) -> bool:
    """``np.isfinite(audio).all()`` block by block (no song-sized temporary; a mapped file's pages handed back)."""
    for start in range(0, audio.shape[-1], _BLOCK):
        if not np.isfinite(audio[:, start : start + _BLOCK]).all():
            return False
        release_pages(audio, start, start + _BLOCK)
    return True


def _scratch_file() -> object:
    """An unlinked temporary file in the cache folder (on disk, unlike a tmpfs /tmp), else the system's."""
    from engine.paths import cache_dir

    folder = cache_dir() / "scratch"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(prefix="shotoku-resampled-", dir=folder)
    except OSError:
        return tempfile.TemporaryFile(prefix="shotoku-resampled-")


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``audio`` ``(n_channels, n_samples)`` float32 at ``rate_out``; a memory-mapped temporary when long."""
    n_channels, n_samples = audio.shape
    if n_samples < _LONG_SAMPLES:
        return soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ").T
    n_out = int(math.ceil(n_samples * rate_out / rate_in)) + 16
    out = np.memmap(_scratch_file(), dtype=np.float32, mode="w+", shape=(n_channels, n_out))
    stream = soxr.ResampleStream(rate_in, rate_out, n_channels, dtype="float32", quality="HQ")
    written = 0
    for start in range(0, n_samples, _BLOCK):
        last = start + _BLOCK >= n_samples
        chunk = stream.resample_chunk(np.ascontiguousarray(audio[:, start : start + _BLOCK].T), last=last)
        length = min(chunk.shape[0], n_out - written)
        out[:, written : written + length] = chunk[:length].T
        written += length
        release_pages(audio, start, start + _BLOCK)
        release_pages(out, 0, written)
    return out[:, : round(n_samples * rate_out / rate_in)]


def release_pages(array: np.ndarray, start: int, stop: int) -> None:
    """Hand back to the OS the pages holding samples ``[start, stop)`` of every row of ``array`` ``(n_rows, n)``
    when it is a shared memory-mapped file (or a view of one); otherwise do nothing.

    The data stays in the file: reading those samples again maps them again. Without this a song read through a
    mapping counts whole in the process's resident memory once it has been read.
    """
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is None or not hasattr(mmap, "MADV_DONTNEED") or array.ndim != 2 or array.strides[1] != array.itemsize:
        return
    if getattr(array, "mode", "r") == "c":  # copy-on-write: dropping a page would lose its changes
        return
    try:
        origin = np.frombuffer(base, dtype=np.uint8, count=1).ctypes.data
    except (ValueError, TypeError):
        return
    rows = [array.ctypes.data + row * array.strides[0] - origin for row in range(array.shape[0])]
    release_rows(base, rows, array.itemsize, start, stop, array.shape[1])


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
        if segment_seconds is not None and (problem := segment_problem(segment_seconds)) is not None:
            raise ShotokuError(f"chunk length {segment_seconds} s: {problem}")
        if n_threads is not None and n_threads < 1:
            raise ShotokuError(f"{n_threads} threads: at least 1 is needed")
        self.model = load_model(model) if isinstance(model, str) else model
        self.runner = ChunkRunner(self.model, select_device(device), n_threads=n_threads, overlap=overlap)
        self.sources: list[str] = list(self.model.sources)
        self.samplerate: int = int(self.model.samplerate)
        self.n_channels: int = int(self.model.n_channels)
        self.segment_samples = (
            max(1, round(segment_seconds * self.samplerate)) if segment_seconds else int(self.model.segment_samples)
        )
        if not 1 <= self.segment_samples <= MAX_SEGMENT_SECONDS * self.samplerate:
            raise ShotokuError(f"the model's chunk length ({self.segment_samples} samples) is not usable")
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
        audio = np.asarray(audio, dtype=np.float32)  # a float32 memory map stays one (no copy)
        if audio.ndim != 2:
            raise ShotokuError(f"{what} must be (n_channels, n_samples), got shape {audio.shape}")
        if not _all_finite(audio):
            raise ShotokuError(f"{what} contains NaN or infinite samples")
        if audio.shape[0] == 1 and self.n_channels > 1:
            audio = np.repeat(audio, self.n_channels, axis=0)
        elif audio.shape[0] != self.n_channels:
            raise ShotokuError(f"{what} has {audio.shape[0]} channels; the model takes {self.n_channels}")
        if samplerate != self.samplerate:
            audio = _resample(audio, samplerate, self.samplerate)
        return audio if audio.flags.c_contiguous else np.ascontiguousarray(audio)

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

    def _blocks(
        self, model_mix: np.ndarray, cancel: threading.Event | None, progress: ProgressFn | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """The separated blocks ``(start, (n_stems, n_channels, n))`` of the model's input ``(n_in_channels,
        n_samples)``, tiling it in order (the hook :class:`engine.separation.quality.ShiftedEnsembleSeparator`
        overrides)."""
        return iter_separated_blocks(
            self.runner, model_mix, len(self.sources), self.segment_samples, self.overlap,
            cancel=cancel, progress=progress, n_out_channels=self.n_channels,
        )

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
        blocks = self._blocks(model_mix, cancel, progress)
        margin = self.segment_samples
        if samplerate == self.samplerate:
            emitted = 0
            for _, block in blocks:
                yield block, mix_out[:, emitted : emitted + block.shape[-1]]
                emitted += block.shape[-1]
                release_pages(model_mix, 0, emitted - margin)  # chunks never reach back further
                release_pages(mix_out, 0, emitted - margin)
            return
        # Resample each block back to the input's rate with one streaming resampler per stem.
        streams = [
            soxr.ResampleStream(self.samplerate, samplerate, self.n_channels, dtype="float32", quality="HQ")
            for _ in self.sources
        ]

        def resampled(block: np.ndarray, last: bool) -> np.ndarray:
            return np.stack([s.resample_chunk(np.ascontiguousarray(b.T), last=last).T for s, b in zip(streams, block)])

        def model_blocks() -> Iterator[np.ndarray]:
            done = 0
            for _, block in blocks:
                yield resampled(block, False)
                done += block.shape[-1]
                release_pages(model_mix, 0, done - margin)
            yield resampled(np.zeros((len(self.sources), self.n_channels, 0), np.float32), True)

        emitted = 0
        for out in model_blocks():
            length = min(out.shape[-1], n_samples - emitted)
            if length > 0:
                yield np.ascontiguousarray(out[..., :length]), mix_out[:, emitted : emitted + length]
                emitted += length
                release_pages(mix_out, 0, emitted - margin)
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
