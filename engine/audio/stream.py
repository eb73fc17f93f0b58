"""Decode a song of any length into a temporary memory-mapped file: memory stays flat in the song's length.

:func:`open_audio_stream` decodes block by block (libsndfile blocks, or ffmpeg's pipe for M4A/MP4/...), repairs
NaN/Inf, mixes the channels and resamples (``soxr.ResampleStream``, HQ) on the way, and writes float32 at the asked
rate into a file of :mod:`engine.audio._spool`'s folder (``$SHOTOKU_TMPDIR`` or the system's temporary folder,
``shotoku-audio-<uid>/input-<pid>-...f32``). The result is a :class:`DecodedAudio`: ``samples`` is a read-only
``np.memmap`` ``(n_channels, n_samples)`` (C order) that the chunked engine slices; the pages a reader touched are
the OS's to drop (:meth:`DecodedAudio.drop_pages` lets a reader give them back at once). ``close()`` (or leaving the
``with`` block, or garbage collection, or the interpreter's exit) removes the file; files of killed processes are
removed by the next call. :func:`engine.audio.load_audio` runs the same decoding into memory for small files.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from engine.audio import _spool
from engine.audio._channels import mixing_matrix
from engine.audio._decode import BLOCK_FRAMES, check_announced_length, open_decoder, truncated
from engine.audio._files import changed_since, check_input_file
from engine.audio.pages import release_rows
from engine.audio.save import MAX_SAMPLERATE, MIN_SAMPLERATE
from engine.errors import AudioLoadError

log = logging.getLogger("engine.audio")


class Sink(Protocol):
    """Where decoded ``(n_channels, n)`` float32 blocks go."""

    n_samples: int

    def write(self, block: np.ndarray) -> None: ...
    def finish(self) -> int: ...
    def abort(self) -> None: ...


class ArraySink:
    """Blocks into one in-memory ``(n_channels, n_samples)`` array (grown by doubling when an estimate was short)."""

    def __init__(self, n_channels: int, capacity: int) -> None:
        self.array = np.empty((n_channels, max(capacity, 1)), dtype=np.float32)
        self.n_samples = 0

    def write(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.n_samples + n > self.array.shape[1]:
            grown = np.empty((self.array.shape[0], max(2 * self.array.shape[1], self.n_samples + n)), np.float32)
            grown[:, : self.n_samples] = self.array[:, : self.n_samples]
            self.array = grown
        self.array[:, self.n_samples : self.n_samples + n] = block
        self.n_samples += n

    def finish(self) -> int:
        if self.n_samples != self.array.shape[1]:
            self.array = self.array[:, : self.n_samples].copy()  # a slice of the rows is not C-contiguous
        return self.n_samples

    def abort(self) -> None:
        self.array = np.empty((0, 0), dtype=np.float32)


def check_arguments(samplerate: int | None, n_channels: int | None) -> None:
    if samplerate is not None and not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise ValueError(
            f"samplerate must be {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz or None, got {samplerate!r}"
        )
    if n_channels not in (None, 1, 2):
        raise ValueError(f"n_channels must be 1, 2 or None, got {n_channels!r}")


def as_path(path: str | bytes | os.PathLike) -> Path:
    """A :class:`Path` for any name, bytes included (a name that is not UTF-8 keeps its bytes)."""
    return Path(os.fsdecode(path))


def check_samplerate(path: Path, samplerate: int) -> None:
    """Refuse a header's samplerate outside what the project reads and writes, naming the file."""
    if not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise AudioLoadError(
            path,
            f"the header gives an impossible samplerate of {samplerate} Hz (expected {MIN_SAMPLERATE}-"
            f"{MAX_SAMPLERATE} Hz): the file is damaged",
        )


class _Converter:
    """Channel mixing and resampling of decoded blocks on their way to a sink (one per decoding pass)."""

    def __init__(self, path: Path, src, rate: int, n_channels: int | None, sink: Sink) -> None:
        self.path, self.sink, self.n_in = path, sink, src.n_channels
        self.matrix, self.channel_note = mixing_matrix(src.n_channels, n_channels)
        self.downmix_first = self.matrix is not None and self.matrix.shape[0] < self.matrix.shape[1]
        self.resampler = None
        if rate != src.samplerate:
            n_mid = self.matrix.shape[0] if self.downmix_first else src.n_channels
            self.resampler = soxr.ResampleStream(src.samplerate, rate, n_mid, dtype="float32", quality="HQ")

    def push(self, block: np.ndarray, last: bool = False) -> None:
        """Convert ``block`` ``(n_frames, n_in)`` and write it (``last`` flushes the resampler)."""
        matrix = self.matrix
        if matrix is not None and self.downmix_first:
            block = block @ matrix.T
        if self.resampler is not None:
            block = self.resampler.resample_chunk(np.ascontiguousarray(block), last=last)
        if matrix is not None and not self.downmix_first:
            block = block @ matrix.T
        try:
            self.sink.write(block.T)
        except OSError as err:
            raise AudioLoadError(self.path, _write_reason(err)) from None

    def silence(self, n: int) -> None:
        zeros = np.zeros((min(n, BLOCK_FRAMES), self.n_in), dtype=np.float32)
        for start in range(0, n, zeros.shape[0]):
            self.push(zeros[: min(zeros.shape[0], n - start)])

    def run(self, decoder) -> tuple[int, int, int]:
        """One pass over ``decoder.blocks()``: ``(frames decoded, frames in all with gaps, non-finite samples)``;
        non-finite samples are written as 0."""
        n_frames, n_total, n_bad = 0, 0, 0
        for item in decoder.blocks():
            if isinstance(item, int):
                self.silence(item)
                n_total += item
                continue
            finite = np.isfinite(item)
            if not finite.all():
                n_bad += int(finite.size - np.count_nonzero(finite))
                item[~finite] = 0.0
            n_frames += item.shape[0]
            n_total += item.shape[0]
            self.push(item)
        if self.resampler is not None:
            self.push(np.zeros((0, self.n_in), np.float32), last=True)
        return n_frames, n_total, n_bad


def decode(
    path: Path, samplerate: int | None, n_channels: int | None, make_sink: Callable[[int, int], Sink]
) -> tuple[Sink, int, list[str]]:
    """Decode ``path`` into ``make_sink(n_channels, expected_samples)``; returns ``(sink, samplerate, notes)``.

    The sink is finished (or aborted when this raises). Raises :class:`AudioLoadError` for every bad file.
    A decoder that finds, at the end, that frames are missing at a known place (an OGG whose first pages are
    lost) asks for a second pass with that silence put in (``restart_gaps``).
    """
    head, before = check_input_file(path)
    decoder = open_decoder(path, head, before.st_size)
    sink: Sink | None = None
    try:
        src = decoder.source
        check_samplerate(path, src.samplerate)
        if src.exact_length:
            check_announced_length(path, src)
        rate = samplerate or src.samplerate
        n_out = src.n_channels if n_channels is None else n_channels
        sink = make_sink(n_out, int(src.n_frames * rate / src.samplerate) + 16)
        converter = _Converter(path, src, rate, n_channels, sink)
        n_frames, n_total, n_bad = converter.run(decoder)
        restart = getattr(decoder, "restart_gaps", None)
        if n_frames and restart is not None and restart(n_total):
            sink.n_samples = 0  # the second pass overwrites the first
            converter = _Converter(path, src, rate, n_channels, sink)
            n_frames, n_total, n_bad = converter.run(decoder)
        if n_frames == 0:
            raise AudioLoadError(path, "contains no audio (0 samples)")
        notes = list(decoder.finish_notes())
        notes.extend(_length_notes(path, src, n_frames, getattr(decoder, "n_gaps", 0)))
        if n_bad:
            if n_bad == n_frames * src.n_channels:
                raise AudioLoadError(path, "every sample is NaN or infinite: the file holds no usable audio")
            notes.append(f"replaced {n_bad} NaN/Inf samples with 0")
            log.warning("%s: replaced %d NaN/Inf samples with 0", path, n_bad)
        if changed_since(path, before):
            note = "the file changed while it was read (is it still being written?): this is what it held then"
            log.warning("%s: %s", path, note)
            notes.append(note)
        if converter.channel_note:
            notes.append(converter.channel_note)
        if rate != src.samplerate:
            notes.append(f"resampled {src.samplerate} Hz -> {rate} Hz")
        try:
            sink.finish()
        except OSError as err:
            raise AudioLoadError(path, _write_reason(err)) from None
        return sink, rate, notes
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        decoder.close()


def _write_reason(err: OSError) -> str:
    if isinstance(err, _spool.SpoolFull):
        return err.strerror
    where = _spool.spool_folder()
    if err.errno == 28:  # ENOSPC
        return (
            f"the disk holding {where} filled up while the audio was decoded; free some space or set "
            f"{_spool.TMPDIR_ENV} to a folder on a bigger disk"
        )
    return f"the decoded audio could not be written to {where} ({err.strerror or err})"


def _length_notes(path: Path, src, n_frames: int, n_gaps: int) -> list[str]:
    """Refuse a file cut short whose header length is exact; note an MP3 that decoded much shorter."""
    rate = src.samplerate
    if src.exact_length and src.n_frames > n_frames + 1 and n_gaps == 0:
        raise truncated(path, src.n_frames, n_frames, rate)
    if src.format == "MP3" and n_frames < 0.9 * src.n_frames:
        message = (
            f"decoded {n_frames / rate:.2f} s but the header announces {src.n_frames / rate:.2f} s: "
            "the file may be truncated"
        )
        log.warning("%s: %s", path, message)
        return [message]
    return []


class SampleShape:
    """``n_channels``, ``n_samples`` and ``duration_seconds`` of an object with ``samples`` ``(n_channels,
    n_samples)`` and ``samplerate`` (shared by :class:`DecodedAudio` and :class:`engine.audio.io.Audio`)."""

    samples: np.ndarray
    samplerate: int

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.samplerate


class DecodedAudio(SampleShape):
    """A decoded song in a temporary file: ``samples`` is a read-only ``np.memmap`` ``(n_channels, n_samples)``
    float32 at ``samplerate``; ``notes`` says what decoding did or found (gaps, checksum, downmix, resampling).

    Use it as a context manager, or call :meth:`close`, which removes the file (views taken from ``samples``
    stay readable on POSIX until they are dropped). ``filename`` is the file, for a child process to map it.
    """

    def __init__(self, path: Path, filename: Path, n_channels: int, n_samples: int, samplerate: int,
                 notes: list[str]) -> None:  # fmt: skip
        self.path = path
        self.filename = filename
        self.samplerate = int(samplerate)
        self.notes = notes
        self.samples: np.memmap = np.memmap(filename, dtype=np.float32, mode="r", shape=(n_channels, n_samples))
        self._finalizer = weakref.finalize(self, _spool.unlink_if_owner, filename, os.getpid())

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def drop_pages(self, start: int, stop: int) -> None:
        """Give back the memory pages holding samples ``[start, stop)`` (they are read again from the file when
        used again): for a reader that went past them and will not come back soon."""
        mm = getattr(self.samples, "_mmap", None)
        if mm is None or self.closed:
            return
        n = self.n_samples
        release_rows(mm, [row * n * 4 for row in range(self.n_channels)], 4, start, stop, n)

    def close(self) -> None:
        """Remove the temporary file (idempotent)."""
        self._finalizer()

    def __enter__(self) -> DecodedAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DecodedAudio({str(self.path)!r}, {self.n_channels} channels, {self.n_samples} samples at "
            f"{self.samplerate} Hz{', closed' if self.closed else ''})"
        )


def open_audio_stream(
    path: str | bytes | os.PathLike, samplerate: int | None = None, n_channels: int | None = 2
) -> DecodedAudio:
    """Decode ``path`` into a temporary memory-mapped float32 file at ``samplerate`` (``None``: the file's) with
    ``n_channels`` (2: mono copied, more downmixed; 1: mono; ``None``: the file's). Memory stays flat in length.

    Raises :class:`AudioLoadError` (naming the file and the reason) for every file that cannot be used, including
    a full temporary disk; ``ValueError`` for impossible arguments. Damage in the middle is decoded around, with
    notes; see :mod:`engine.audio._decode`.
    """
    check_arguments(samplerate, n_channels)
    path = as_path(path)
    folder = _spool.spool_folder()
    _spool.remove_stale(folder)
    filename = _spool.new_spool_path(folder)
    writer: list[_spool.SpoolWriter] = []

    def make_sink(n_out: int, expected: int) -> _spool.SpoolWriter:
        writer.append(_spool.SpoolWriter(filename, n_out, expected, folder))  # checks the disk as it fills
        return writer[0]

    try:
        sink, rate, notes = decode(path, samplerate, n_channels, make_sink)
        return DecodedAudio(path, filename, writer[0].n_channels, sink.n_samples, rate, notes)
    except BaseException:
        _spool.unlink_quietly(filename)
        raise
