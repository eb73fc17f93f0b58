"""Atomic audio writing: ``save_audio`` never leaves a half-written file behind.

The audio goes to a hidden temporary file in the target's folder, is flushed to disk, and then replaces the target
in one ``os.replace`` (the temporary naming and the commit are :mod:`engine.atomic`'s, streamed block by block here). If anything fails (disk full, permission, a format that cannot hold the audio, Ctrl-C), the
temporary file is removed, an existing target is left untouched, and :class:`~engine.errors.AudioSaveError` says why.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import discard, file_mode, make_temp, publish
from engine.errors import AudioSaveError

log = logging.getLogger(__name__)

#: Samplerates outside this range are refused (telephone audio is 8 kHz; DXD is 352.8 kHz).
MIN_SAMPLERATE = 1000
MAX_SAMPLERATE = 768_000

#: format name -> (libsndfile format, {bit depth: subtype} or a single subtype for lossy formats, default depth)
SAVE_FORMATS: dict[str, tuple[str, dict[int | str, str] | str, int | str | None]] = {
    "wav": ("WAV", {16: "PCM_16", 24: "PCM_24", "float": "FLOAT"}, 24),
    "flac": ("FLAC", {16: "PCM_16", 24: "PCM_24"}, 24),
    "aiff": ("AIFF", {16: "PCM_16", 24: "PCM_24", "float": "FLOAT"}, 24),
    "ogg": ("OGG", "VORBIS", None),
    "mp3": ("MP3", "MPEG_LAYER_III", None),
}
_EXTENSIONS = {".wav": "wav", ".wave": "wav", ".flac": "flac", ".aiff": "aiff", ".aif": "aiff", ".ogg": "ogg",
               ".oga": "ogg", ".mp3": "mp3"}  # fmt: skip
_FLOAT_DEPTHS = {"float", "float32", "32f", "f32"}
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_MAX_CHANNELS = {"FLAC": 8, "MP3": 2}
_BLOCK_FRAMES = 1 << 16
_SF_ERR_SYSTEM = 2


def _resolve_format(path: Path, format: str | None, bit_depth: int | str | None) -> tuple[str, str, str]:
    """``(short name, libsndfile format, subtype)`` for the requested format and bit depth."""
    if format is None:
        name = _EXTENSIONS.get(path.suffix.lower())
        if name is None:
            known = ", ".join(sorted(SAVE_FORMATS))
            shown = f"'{path.suffix}'" if path.suffix else "no extension"
            raise AudioSaveError(path, f"unknown file type ({shown}): name it .wav, .flac, .ogg, .mp3 or .aiff "
                                       f"or pass format= one of {known}")  # fmt: skip
    else:
        name = format.lower().lstrip(".")
        name = {"aif": "aiff", "wave": "wav", "vorbis": "ogg", "oga": "ogg"}.get(name, name)
        if name not in SAVE_FORMATS:
            raise AudioSaveError(
                path, f"unknown format {format!r}: choose one of {', '.join(sorted(SAVE_FORMATS))}"
            )
    sf_format, subtypes, default = SAVE_FORMATS[name]
    if isinstance(subtypes, str):  # lossy: the encoder decides the precision
        return name, sf_format, subtypes
    depth: int | str | None = default if bit_depth is None else bit_depth
    if isinstance(depth, str):
        depth = "float" if depth.lower() in _FLOAT_DEPTHS else int(depth) if depth.isdigit() else depth
    if depth not in subtypes:
        allowed = ", ".join(str(d) for d in subtypes)
        raise AudioSaveError(
            path, f"{name.upper()} cannot be written with bit depth {bit_depth!r} (choose {allowed})"
        )
    return name, sf_format, subtypes[depth]


def _check_stream(path: Path, n_channels: int, samplerate: int, sf_format: str) -> None:
    """Refuse a samplerate or channel count the file cannot hold, before anything is written."""
    if n_channels > 64:
        raise AudioSaveError(path, f"{n_channels} channels look like (n_samples, n_channels); "
                                   "pass (n_channels, n_samples)")  # fmt: skip
    if n_channels < 1:
        raise AudioSaveError(path, "nothing to write: the audio has no channels")
    if not isinstance(samplerate, int | np.integer) or not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise AudioSaveError(
            path, f"impossible samplerate {samplerate!r} (expected {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz)"
        )
    if sf_format == "MP3" and samplerate not in _MP3_RATES:
        rates = ", ".join(str(r) for r in _MP3_RATES)
        raise AudioSaveError(
            path, f"MP3 cannot store {samplerate} Hz audio (MP3 rates: {rates}); resample first"
        )
    limit = _MAX_CHANNELS.get(sf_format)
    if limit is not None and n_channels > limit:
        raise AudioSaveError(path, f"{sf_format} cannot store {n_channels} channels (at most {limit})")


def _check_samples(path: Path, samples: np.ndarray) -> np.ndarray:
    """Validate ``samples`` and return it as a 2-D ``(n_channels, n_samples)`` float array (no copy if possible)."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[np.newaxis, :]
    if samples.ndim != 2:
        raise AudioSaveError(
            path, f"samples must be shaped (n_channels, n_samples), got shape {samples.shape}"
        )
    if not np.issubdtype(samples.dtype, np.floating):
        raise AudioSaveError(path, f"samples must be floating point in [-1, 1], got {samples.dtype}")
    if samples.shape[0] <= 64 and (samples.shape[0] == 0 or samples.shape[1] == 0):
        raise AudioSaveError(path, f"nothing to write: the audio is empty (shape {samples.shape})")
    return samples


def _explain(err: BaseException, path: Path, needed_bytes: int) -> str:
    """One readable reason for a failed write."""
    folder = path.parent
    if isinstance(err, OSError) and not isinstance(err, sf.LibsndfileError):
        code = err.errno
        if code == errno.ENOSPC:
            return "no space left on device"
        if code == getattr(errno, "EDQUOT", -1):
            return "disk quota exceeded"
        if code in (errno.EACCES, errno.EPERM):
            return f"permission denied: cannot write in {folder}"
        if code == errno.EROFS:
            return f"the drive holding {folder} is read-only"
        if code in (errno.ENOTDIR, errno.EEXIST):  # EEXIST: mkdir met a file where a folder should be
            return "a part of the path is a file, not a folder"
        if code == errno.ENAMETOOLONG:
            return "the file name is too long"
        return f"could not write the file ({err.strerror or err})"
    if isinstance(err, sf.LibsndfileError):
        if err.code == _SF_ERR_SYSTEM:
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                free = None
            if free is not None and free < max(needed_bytes, 1 << 20):
                return "no space left on device"
            return "the operating system refused the write (disk error or removed drive?)"
        return f"the audio library refused to write it ({err.error_string})"
    return f"could not write the file ({type(err).__name__}: {err})"


class AudioFileWriter:
    """Writes audio block by block to a hidden temporary file beside ``path``; :meth:`commit` publishes it.

    Until :meth:`commit` an existing file at ``path`` is untouched; :meth:`abort` (safe after commit, and called
    on any failure) removes the temporary file. Blocks are ``(n_channels, n)`` floats; NaN/Inf are written as 0
    and, except for float files, samples are clipped to [-1, 1] (both counted and logged once at commit).
    Raises :class:`AudioSaveError` naming the file and the reason.
    """

    def __init__(
        self,
        path: str | Path,
        samplerate: int,
        n_channels: int,
        *,
        format: str | None = None,
        bit_depth: int | str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name, sf_format, self.subtype = _resolve_format(self.path, format, bit_depth)
        _check_stream(self.path, n_channels, samplerate, sf_format)
        if self.path.is_dir():
            raise AudioSaveError(self.path, "is a folder: give a file name")
        self.n_channels = n_channels
        self.n_bad = self.n_clipped = self.n_written = 0
        self.peak = 0.0
        self._temp: Path | None = None
        self._file: sf.SoundFile | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._mode = file_mode(self.path)
            self._temp = make_temp(self.path)
            self._file = sf.SoundFile(self._temp, "w", int(samplerate), n_channels, subtype=self.subtype,
                                      format=sf_format)  # fmt: skip
        except Exception as err:
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        self.abort()
        if isinstance(err, AudioSaveError):
            raise err
        raise AudioSaveError(self.path, _explain(err, self.path, self.n_written * self.n_channels * 4)) from err

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(n_channels, n)``."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.n_channels:
            self.abort()
            raise AudioSaveError(self.path, f"block shaped {block.shape}, expected ({self.n_channels}, n)")
        try:
            for start in range(0, block.shape[1], _BLOCK_FRAMES):
                part = np.ascontiguousarray(block[:, start : start + _BLOCK_FRAMES].T, dtype=np.float32)
                finite = np.isfinite(part)
                if not finite.all():
                    self.n_bad += int(part.size - np.count_nonzero(finite))
                    part[~finite] = 0.0
                part_peak = float(np.max(np.abs(part))) if part.size else 0.0
                self.peak = max(self.peak, part_peak)
                if self.subtype != "FLOAT" and part_peak > 1.0:
                    self.n_clipped += int(np.count_nonzero(np.abs(part) > 1.0))
                    np.clip(part, -1.0, 1.0, out=part)
                assert self._file is not None
                self._file.write(part)
                self.n_written += part.shape[0]
        except Exception as err:
            self._fail(err)

    def commit(self) -> Path:
        """Close, flush to disk and move the file to ``path`` in one ``os.replace``; returns ``path``."""
        if self._temp is None:
            return self.path
        try:
            assert self._file is not None
            self._file.close()
            publish(self._temp, self.path, mode=self._mode)  # fsync, os.replace, fsync the folder
            self._temp = None
        except Exception as err:
            self._fail(err)
        if self.n_bad:
            log.warning("%s: wrote %d NaN/Inf samples as silence (0)", self.path, self.n_bad)
        if self.n_clipped:
            log.warning("%s: clipped %d samples to [-1, 1] for %s %s (peak was %.3f, %+.1f dBFS)",
                        self.path, self.n_clipped, self.name.upper(), self.subtype, self.peak,
                        20 * np.log10(self.peak))  # fmt: skip
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target keeps whatever it held before."""
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except Exception:  # closing a file that failed mid-write may fail again; the unlink below matters
                pass
        if self._temp is not None:
            try:
                discard(self._temp)
            except OSError:
                log.warning("could not remove the temporary file %s", self._temp)
            self._temp = None

    def __enter__(self) -> AudioFileWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def save_audio(
    path: str | Path,
    samples: np.ndarray,
    samplerate: int,
    *,
    format: str | None = None,
    bit_depth: int | str | None = None,
) -> Path:
    """Write ``samples`` ``(n_channels, n_samples)`` (a 1-D array is mono) to ``path`` atomically; returns the path.

    ``format``: ``"wav"``, ``"flac"``, ``"ogg"`` (Vorbis), ``"mp3"`` or ``"aiff"``; ``None`` takes it from the
    extension. ``bit_depth``: WAV/AIFF 16, 24 or ``"float"``, FLAC 16 or 24 (default 24); ignored for OGG and MP3.
    Except for float files, samples are clipped to [-1, 1] (logged as a warning). NaN/Inf become 0 (warning).
    Missing parent folders are created. Raises :class:`AudioSaveError` naming the file and the reason; on failure
    an existing file at ``path`` is left as it was and no temporary file remains.
    """
    path = Path(path)
    _resolve_format(path, format, bit_depth)
    samples = _check_samples(path, samples)
    with AudioFileWriter(path, samplerate, samples.shape[0], format=format, bit_depth=bit_depth) as writer:
        writer.write(samples)
    return path
