"""Loaders for MUSDB18-HQ folders, MUSDB18 ``.stem.mp4`` files and the synthetic corpus (same layout).

Layout: ``root/<split>/<track>/{mixture,drums,bass,other,vocals}.{wav,flac}`` or ``root/<split>/<track>.stem.mp4``
(MUSDB18: streams mixture, drums, bass, other, vocals; decoded with ffmpeg). Every track is validated when a
split is scanned: a missing stem, a length or sample-rate mismatch, a channel-count mismatch or a silent stem is
logged with the file named and the track is skipped; a split without any usable track raises
:class:`~engine.errors.DatasetError`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine import STEM_NAMES
from engine.data.augment import augment_stems
from engine.errors import DatasetError

log = logging.getLogger("shotoku.data")

ALL_STEMS = ("drums", "bass", "other", "vocals")
STEM_MP4_ORDER = ("mixture", "drums", "bass", "other", "vocals")
AUDIO_SUFFIXES = (".wav", ".flac")
SILENCE_PEAK = 1e-4  # a stem whose peak stays below this (-80 dBFS) is "silent"


@dataclass
class Track:
    """One validated track: where its stems live, its rate and length."""

    name: str
    samplerate: int
    n_samples: int
    n_channels: int
    files: dict[str, Path] = field(default_factory=dict)  # stem (and "mixture" if present) -> file
    stem_mp4: Path | None = None

    def read(self, stem: str, start: int = 0, n: int | None = None) -> np.ndarray:
        """Samples ``[start, start + n)`` of ``stem`` as float32 ``(n_channels, n)`` (zero-padded at the end)."""
        n = self.n_samples - start if n is None else n
        if self.stem_mp4 is not None and self.stem_mp4 in _MP4_CACHE or (self.stem_mp4 and start == 0 and
                                                                          n >= self.n_samples):
            x = _decode_mp4(self.stem_mp4)[STEM_MP4_ORDER.index(stem)][:, start: start + n]
        elif self.stem_mp4 is not None:
            x = _decode_mp4_chunk(self.stem_mp4, STEM_MP4_ORDER.index(stem), start, n)
        else:
            data, _ = sf.read(str(self.files[stem]), start=start, frames=n, dtype="float32", always_2d=True)
            x = data.T
        if x.shape[0] == 1 and self.n_channels == 2:
            x = np.repeat(x, 2, axis=0)
        if x.shape[1] < n:
            x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
        return np.ascontiguousarray(x, dtype=np.float32)


_MP4_CACHE: OrderedDict[Path, np.ndarray] = OrderedDict()
_MP4_CACHE_TRACKS = 4


def _decode_mp4(path: Path) -> np.ndarray:
    """All five streams of a MUSDB18 ``.stem.mp4``: float32 ``(5, 2, n_samples)`` at 44.1 kHz (small LRU cache)."""
    if path in _MP4_CACHE:
        _MP4_CACHE.move_to_end(path)
        return _MP4_CACHE[path]
    streams = []
    for k in range(len(STEM_MP4_ORDER)):
        out = _ffmpeg(path, ["-i", str(path), "-map", f"0:a:{k}", "-f", "f32le", "-ac", "2", "-ar", "44100", "-"])
        streams.append(np.frombuffer(out, dtype=np.float32).reshape(-1, 2).T)
    n = min(s.shape[1] for s in streams)
    arr = np.stack([s[:, :n] for s in streams])
    _MP4_CACHE[path] = arr
    while len(_MP4_CACHE) > _MP4_CACHE_TRACKS:
        _MP4_CACHE.popitem(last=False)
    return arr


def _ffmpeg(path: Path, args: list[str]) -> bytes:
    if shutil.which("ffmpeg") is None:
        raise DatasetError(path, "decoding .stem.mp4 needs ffmpeg (sudo apt-get install -y ffmpeg)")
    proc = subprocess.run(["ffmpeg", "-v", "error", *args], capture_output=True, timeout=600)
    if proc.returncode != 0 or not proc.stdout:
        raise DatasetError(path, f"ffmpeg could not decode it: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return proc.stdout


def _decode_mp4_chunk(path: Path, stream: int, start: int, n: int) -> np.ndarray:
    """Samples ``[start, start + n)`` of one stream (ffmpeg input seeking): float32 ``(2, <= n)``."""
    out = _ffmpeg(path, ["-ss", f"{start / 44100:.6f}", "-i", str(path), "-map", f"0:a:{stream}", "-frames:a",
                         str(n // 1024 + 4), "-f", "f32le", "-ac", "2", "-ar", "44100", "-"])
    return np.frombuffer(out, dtype=np.float32).reshape(-1, 2).T[:, :n]


def _probe_mp4(path: Path) -> int:
    """Number of samples of a MUSDB18 ``.stem.mp4`` (5 audio streams required), via ffprobe."""
    if shutil.which("ffprobe") is None:
        raise DatasetError(path, "reading .stem.mp4 needs ffmpeg/ffprobe (sudo apt-get install -y ffmpeg)")
    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
                           "stream=duration_ts,sample_rate,duration", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, timeout=60)
    rows = [r.split(",") for r in proc.stdout.split()]
    if proc.returncode != 0 or len(rows) < len(STEM_MP4_ORDER):
        raise DatasetError(path, f"expected {len(STEM_MP4_ORDER)} audio streams (mixture, drums, bass, other, "
                           f"vocals), found {len(rows)}")
    durations = [float(r[-1]) for r in rows[: len(STEM_MP4_ORDER)] if r[-1] not in ("", "N/A")]
    if not durations:
        raise DatasetError(path, "ffprobe reports no duration")
    return int(min(durations) * 44100)


def _peak(path: Path) -> float:
    """Peak |sample| of a file: 32 short probes first (enough to show almost any stem is not silent), else all."""
    info = sf.info(str(path))
    probe = 4096
    if info.frames > 64 * probe:
        with sf.SoundFile(str(path)) as f:
            for start in np.linspace(0, info.frames - probe, 32).astype(int):
                f.seek(int(start))
                found = float(np.abs(f.read(probe, dtype="float32")).max(initial=0.0))
                if found >= SILENCE_PEAK:
                    return found
    peak = 0.0
    for block in sf.blocks(str(path), blocksize=1 << 18, dtype="float32", always_2d=True):
        peak = max(peak, float(np.abs(block).max(initial=0.0)))
    return peak


def _validate_folder(folder: Path, stems: Sequence[str], allow_silent: Sequence[str]) -> Track | None:
    files: dict[str, Path] = {}
    for name in (*stems, "mixture"):
        found = [folder / f"{name}{suffix}" for suffix in AUDIO_SUFFIXES if (folder / f"{name}{suffix}").is_file()]
        if found:
            files[name] = found[0]
        elif name != "mixture":
            log.warning("%s: missing stem %r; track skipped", folder / f"{name}.wav", name)
            return None
    infos = {}
    for name, path in files.items():
        try:
            infos[name] = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as err:
            log.warning("%s: unreadable (%s); track skipped", path, err)
            return None
    first = files[stems[0]]
    ref = infos[stems[0]]
    for name, info in infos.items():
        if info.samplerate != ref.samplerate:
            log.warning("%s: sample rate %d Hz differs from %s (%d Hz); track skipped", files[name],
                        info.samplerate, first.name, ref.samplerate)
            return None
        if info.frames != ref.frames:
            log.warning("%s: length %d samples differs from %s (%d samples); track skipped", files[name],
                        info.frames, first.name, ref.frames)
            return None
        if info.channels != ref.channels and min(info.channels, ref.channels) != 1:
            log.warning("%s: %d channels, %s has %d; track skipped", files[name], info.channels, first.name,
                        ref.channels)
            return None
    for name in stems:
        if name not in allow_silent and _peak(files[name]) < SILENCE_PEAK:
            log.warning("%s: stem %r is silent; track skipped", files[name], name)
            return None
    return Track(folder.name, ref.samplerate, ref.frames, max(i.channels for i in infos.values()), files)


def _validate_mp4(path: Path) -> Track | None:
    """A ``.stem.mp4`` track from ffprobe alone (fast); its silence check happens in :func:`iter_tracks`."""
    try:
        n_samples = _probe_mp4(path)
    except DatasetError as err:
        log.warning("%s; track skipped", err)
        return None
    return Track(path.name[: -len(".stem.mp4")], 44100, n_samples, 2, {}, stem_mp4=path)


def scan_split(root: str | Path, split: str, stems: Sequence[str] = ALL_STEMS,
               allow_silent: Sequence[str] = (), samplerate: int | None = 44100) -> list[Track]:
    """The valid tracks of ``root/split`` (sorted by name); bad ones are logged and skipped.

    Raises :class:`DatasetError` when the folder is missing or holds no usable track.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(folder, "no such split folder (expected <root>/<split>/<track>/<stem>.wav)")
    tracks: list[Track] = []
    n_seen = 0
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            n_seen += 1
            track = _validate_folder(entry, stems, allow_silent)
        elif entry.name.endswith(".stem.mp4"):
            n_seen += 1
            track = _validate_mp4(entry)
        else:
            continue
        if track is not None and samplerate is not None and track.samplerate != samplerate:
            log.warning("%s: %d Hz, expected %d Hz; track skipped", entry, track.samplerate, samplerate)
            track = None
        if track is not None:
            tracks.append(track)
    if not tracks:
        raise DatasetError(folder, f"no usable track ({n_seen} found, all skipped: see the warnings)")
    if len(tracks) < n_seen:
        log.warning("%s: %d of %d tracks skipped", folder, n_seen - len(tracks), n_seen)
    return tracks


def iter_tracks(root: str | Path, split: str, sources: Sequence[str] = STEM_NAMES
                ) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray], int]]:
    """Full tracks in name order: ``(name, mixture (n_channels, n_samples), {source: stem}, samplerate)``.

    The mixture is the track's mixture file when it has one, else the sum of all four stems. Deterministic.
    """
    for track in scan_split(root, split):
        stems = {name: track.read(name) for name in ALL_STEMS}
        silent = [k for k in sources if float(np.abs(stems[k]).max(initial=0.0)) < SILENCE_PEAK]
        if silent:  # only .stem.mp4 tracks get here: folder tracks were checked by scan_split
            log.warning("%s: stem %r is silent; track skipped", track.stem_mp4 or track.name, silent[0])
            continue
        has_mix = "mixture" in track.files or track.stem_mp4 is not None
        mixture = track.read("mixture") if has_mix else np.sum([stems[k] for k in ALL_STEMS], axis=0)
        yield track.name, mixture, {k: stems[k] for k in sources}, track.samplerate


class ChunkSampler:
    """Random training chunks from a split, as numpy: ``sample(rng) -> (mixture, stems, names)``.

    ``stems`` is ``(n_stems, n_channels, n_samples)`` in the order of ``sources``. With ``augment``, each of the
    four stems comes from an independently drawn track and offset (remixing across tracks), gets a random gain
    and channel swap, and the mixture is the sum of the four. Without, all stems come from one track at one
    offset and the mixture is that track's mixture (its file, or the stem sum).
    """

    def __init__(self, root: str | Path, split: str, sources: Sequence[str] = STEM_NAMES,
                 segment_seconds: float = 6.0, augment: bool = True) -> None:
        self.sources = list(sources)
        unknown = set(self.sources) - set(ALL_STEMS)
        if unknown:
            raise DatasetError(None, f"unknown source(s) {sorted(unknown)}; known: {list(ALL_STEMS)}")
        self.tracks = scan_split(root, split)
        self.samplerate = self.tracks[0].samplerate
        self.n_samples = int(round(segment_seconds * self.samplerate))
        self.augment = augment

    def _offset(self, track: Track, rng: np.random.Generator) -> int:
        return int(rng.integers(0, max(track.n_samples - self.n_samples, 0) + 1))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """One chunk: mixture ``(n_channels, n_samples)``, stems ``(n_stems, n_channels, n_samples)``, names."""
        if self.augment:
            parts = []
            for name in ALL_STEMS:
                track = self.tracks[int(rng.integers(0, len(self.tracks)))]
                parts.append(track.read(name, self._offset(track, rng), self.n_samples))
            stack = augment_stems(np.stack(parts), rng)
            mixture = stack.sum(axis=0, dtype=np.float32)
        else:
            track = self.tracks[int(rng.integers(0, len(self.tracks)))]
            start = self._offset(track, rng)
            stack = np.stack([track.read(name, start, self.n_samples) for name in ALL_STEMS])
            has_mix = "mixture" in track.files or track.stem_mp4 is not None
            mixture = track.read("mixture", start, self.n_samples) if has_mix else stack.sum(axis=0)
        idx = [ALL_STEMS.index(s) for s in self.sources]
        return mixture.astype(np.float32), np.ascontiguousarray(stack[idx]), list(self.sources)


def _torch_dataset_base() -> type:
    import torch.utils.data

    return torch.utils.data.Dataset


class MusdbDataset(_torch_dataset_base()):  # type: ignore[misc]
    """A torch ``Dataset`` of random chunks: ``ds[i] -> (mixture (n_channels, n_samples), stems
    (n_stems, n_channels, n_samples))`` float32 tensors, stems in the order of ``sources``.

    Item ``i`` is a pure function of ``(seed, epoch, i)`` (call :meth:`set_epoch` between epochs for new draws),
    so results do not depend on DataLoader workers. ``samples_per_epoch`` defaults to one chunk per track.
    """

    def __init__(self, root: str | Path, split: str, sources: Sequence[str] = STEM_NAMES,
                 segment_seconds: float = 6.0, samples_per_epoch: int | None = None, augment: bool = True,
                 seed: int = 0) -> None:
        self.sampler = ChunkSampler(root, split, sources, segment_seconds, augment)
        self.sources = list(sources)
        self.samplerate = self.sampler.samplerate
        self.samples_per_epoch = samples_per_epoch or len(self.sampler.tracks)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different chunks for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int):  # noqa: ANN204 (tuple of torch tensors)
        import torch

        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        mixture, stems, _ = self.sampler.sample(rng)
        return torch.from_numpy(mixture), torch.from_numpy(stems)
