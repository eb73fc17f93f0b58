"""Native Instruments STEM files (``.stem.mp4``): written for DJ software, read back as stems.

A STEM file is an MP4 with five stereo AAC tracks: the master (the whole song), then four stems in the order DJ
software expects (:data:`STEM_ORDER`: drums, bass, other, vocals), and a ``stem`` box under ``moov/udta`` holding
a JSON manifest (``version``, ``stems`` with each ``name`` and ``color``, ``mastering_dsp`` with the compressor and
limiter settings, both off). Only the master track is *enabled* (``tkhd`` flags; ffmpeg's ``-disposition
default`` on it and none on the others), so a plain player plays the master. AAC because every reader accepts it
(Traktor on Windows refuses ALAC). Tags (title, artist, album, cover, ...) are carried from the source with mutagen.

Writing (:class:`StemMp4Writer`): blocks go to float WAVs in a hidden staging folder beside the target (named like
:mod:`engine.separation.stemset`'s, so a killed run's leftovers are removed by the next ``shotoku separate`` into
that folder), ffmpeg encodes them into a hidden temporary file, the ``stem`` box (:mod:`engine.audio._mp4box`)
and the tags are added, and the file is published in one ``os.replace`` (:mod:`engine.atomic`): the target is
the old file or the complete new one, never half of either.

Encoder delay and padding: ffmpeg's AAC encoder starts with 1024 samples of priming and pads the last frame. The
priming is skipped by the edit list ffmpeg writes (``elst`` media time 1024), which ffmpeg, stempeg and DJ software
honour: the tracks decode sample-aligned with what was written (measured: lag 0 samples,
``tests/engine/test_stem_mp4.py``). The movie timescale is set to the samplerate, so the edit list's duration, and
ffprobe's ``duration_ts``, is the exact number of samples written; decoders that ignore the edit list's end (ffmpeg
5.1 and stempeg, which decode whole frames) give up to ~2048 extra near-silent samples at the end, which
:func:`read_stem_mp4` cuts to ``duration_ts``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import discard, file_mode, make_temp, publish
from engine.audio._ffmpeg import INSTALL_HINT, find_ffmpeg, find_ffprobe, subprocess_env
from engine.audio._mp4box import BoxError, append_udta_box, read_udta_box
from engine.audio._tags import Tags, read_tags, write_mp4_tags
from engine.errors import AudioLoadError, AudioSaveError

#: The stems of a STEM file, in the order and colours DJ software expects (Traktor, NI Stem Creator, stempeg).
STEM_ORDER = ("drums", "bass", "other", "vocals")
STEM_COLORS = {"drums": "#009E73", "bass": "#D55E00", "other": "#CC79A7", "vocals": "#56B4E9"}
#: Names other tools give the four slots, read as ours.
STEM_ALIASES = {"drum": "drums", "percussion": "drums", "synth": "other", "melody": "other", "instruments": "other",
                "instrumental": "other", "music": "other", "vocal": "vocals", "voice": "vocals", "vox": "vocals"}
SUFFIXES = (".stem.mp4", ".stem.m4a")
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
DEFAULT_BITRATE = "256k"  #: per stereo track (what NI's Stem Creator writes)
STAGING_PREFIX = ".shotoku-partial-"  #: as engine.separation.stemset's staging folders (removed when stale)
MASTERING_DSP = {
    "compressor": {"enabled": False, "ratio": 3, "output_gain": 0.5, "release": 0.3, "attack": 0.003,
                   "input_gain": 0.5, "threshold": 0, "hp_cutoff": 300, "dry_wet": 50},
    "limiter": {"enabled": False, "release": 0.05, "threshold": 0, "ceiling": -0.35},
}  # fmt: skip


def is_stem_file(path: str | Path) -> bool:
    """True when ``path`` is named like a STEM file (``*.stem.mp4`` / ``*.stem.m4a``)."""
    return str(path).lower().endswith(SUFFIXES)


def stem_manifest(names: tuple[str, ...] | list[str] = STEM_ORDER) -> dict:
    """The JSON manifest of the ``stem`` box for stems ``names`` (in track order)."""
    return {"version": 1, "mastering_dsp": MASTERING_DSP,
            "stems": [{"name": name, "color": STEM_COLORS.get(name, "#808080")} for name in names]}  # fmt: skip


def _ffmpeg(what: Path, error: type[AudioLoadError] | type[AudioSaveError]) -> str:
    found = find_ffmpeg()
    if found is None:
        raise error(what, f"STEM files need ffmpeg: {INSTALL_HINT}")
    return found


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class StemMp4Writer:
    """Writes a STEM file block by block; :meth:`commit` encodes and publishes it, :meth:`abort` leaves nothing.

    Args:
        path: the ``.stem.mp4`` to write (its folder is created).
        samplerate: Hz, one of :data:`AAC_RATES`.
        tags: the song's tags (see :func:`engine.audio._tags.read_tags`; the title defaults to the file's name).
        bitrate: AAC bitrate per stereo track.
    Raises:
        AudioSaveError: naming ``path`` and the reason (a rate AAC cannot hold, no ffmpeg, no space, ...).
    """

    def __init__(self, path: str | Path, samplerate: int, *, tags: Tags | None = None,
                 bitrate: str = DEFAULT_BITRATE) -> None:  # fmt: skip
        self.path = Path(path)
        if not is_stem_file(self.path):
            raise AudioSaveError(self.path, "a STEM file's name ends in .stem.mp4")
        if int(samplerate) not in AAC_RATES:
            raise AudioSaveError(self.path, f"AAC cannot store {samplerate} Hz audio "
                                            f"(rates: {', '.join(map(str, AAC_RATES))}); resample first")  # fmt: skip
        self.ffmpeg = _ffmpeg(self.path, AudioSaveError)
        self.samplerate, self.bitrate = int(samplerate), bitrate
        self.tags = tags or Tags()
        self.n_written = 0
        self._files: list[sf.SoundFile] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.staging = self.path.parent / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self.staging.mkdir()
            self._wavs = [self.staging / f"{k}-{name}.wav" for k, name in enumerate(("master", *STEM_ORDER))]
            self._files = [sf.SoundFile(w, "w", self.samplerate, 2, subtype="FLOAT", format="RF64")
                           for w in self._wavs]  # fmt: skip
        except OSError as err:
            self.abort()
            raise AudioSaveError(self.path, err.strerror or str(err)) from None

    def write(self, master: np.ndarray, stems: np.ndarray) -> None:
        """Append ``master`` ``(2, n)`` and ``stems`` ``(4, 2, n)`` in :data:`STEM_ORDER` order (float, NaN -> 0)."""
        stems = np.asarray(stems)
        if stems.shape[:2] != (len(STEM_ORDER), 2) or np.shape(master) != (2, stems.shape[-1]):
            self.abort()
            raise AudioSaveError(self.path, f"expected a (2, n) master and (4, 2, n) stems, got "
                                            f"{np.shape(master)} and {stems.shape}")  # fmt: skip
        try:
            for file, block in zip(self._files, (master, *stems), strict=True):
                part = np.nan_to_num(np.ascontiguousarray(np.asarray(block, np.float32).T), nan=0.0, posinf=0.0,
                                     neginf=0.0)  # fmt: skip
                file.write(part)
        except (OSError, sf.LibsndfileError) as err:
            self.abort()
            raise AudioSaveError(self.path, f"could not write the staging audio ({err})") from None
        self.n_written += stems.shape[-1]

    def commit(self) -> Path:
        """Encode, add the ``stem`` box and the tags, publish at :attr:`path` in one rename; returns the path."""
        if self.n_written == 0:
            self.abort()
            raise AudioSaveError(self.path, "nothing to write: the audio is empty")
        for file in self._files:
            file.close()
        temp = None
        try:
            temp = make_temp(self.path, suffix=".mp4")
            self._encode(temp)
            append_udta_box(temp, b"stem", json.dumps(stem_manifest()).encode("utf-8"))
            tags = Tags(dict(self.tags.text), self.tags.track, self.tags.cover, self.tags.cover_mime)
            tags.text.setdefault("title", self.path.name[: -len(".stem.mp4")])
            write_mp4_tags(temp, tags)
            publish(temp, self.path, mode=file_mode(self.path))
            temp = None
        except (OSError, BoxError) as err:
            raise AudioSaveError(self.path, getattr(err, "strerror", None) or str(err)) from None
        except Exception as err:  # mutagen's errors: the tags could not be written
            raise AudioSaveError(self.path, f"could not write the tags ({err})") from None
        finally:
            if temp is not None:
                discard(temp)
            self.abort()
        return self.path

    def _encode(self, temp: Path) -> None:
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        for wav in self._wavs:
            command += ["-i", f"file:{wav.resolve()}"]
        for k, name in enumerate(("master", *STEM_ORDER)):
            command += ["-map", f"{k}:a", f"-disposition:a:{k}", "default" if k == 0 else "0",
                        f"-metadata:s:a:{k}", f"handler_name={name.capitalize()}",
                        f"-metadata:s:a:{k}", f"title={name.capitalize()}"]  # fmt: skip
        command += ["-c:a", "aac", "-b:a", self.bitrate, "-movie_timescale", str(self.samplerate),
                    "-map_metadata", "-1", "-f", "mp4", f"file:{temp.resolve()}"]  # fmt: skip
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                                    env=subprocess_env())  # fmt: skip
        except OSError as err:
            raise AudioSaveError(self.path, f"could not run ffmpeg ({err.strerror or err})") from None
        if result.returncode != 0:
            message = _last_line(result.stderr)
            if "No space left" in message:
                message = "no space left on device"
            raise AudioSaveError(self.path, f"ffmpeg could not encode it ({message})")

    def abort(self) -> None:
        """Remove the staging folder (the target keeps what it held)."""
        for file in self._files:
            if not file.closed:
                try:
                    file.close()
                except Exception:  # noqa: BLE001 - closing a failed file may fail again; the removal matters
                    pass
        staging = getattr(self, "staging", None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    def __enter__(self) -> StemMp4Writer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_stem_mp4(path: str | Path, master: np.ndarray, stems: dict[str, np.ndarray], samplerate: int, *,
                   tags: Tags | None = None, tags_from: str | Path | None = None,
                   bitrate: str = DEFAULT_BITRATE) -> Path:  # fmt: skip
    """Write a STEM file at ``path`` atomically; returns the path.

    Args:
        master: the song ``(2, n_samples)`` (the first, enabled track).
        stems: ``{name: (2, n_samples)}`` holding :data:`STEM_ORDER`'s four names.
        tags / tags_from: the tags, or a file to carry them from.
    Raises:
        AudioSaveError: naming ``path`` and the reason.
    """
    missing = [name for name in STEM_ORDER if name not in stems]
    if missing:
        raise AudioSaveError(Path(path), f"a STEM file holds {', '.join(STEM_ORDER)}: {', '.join(missing)} missing")
    if tags is None and tags_from is not None:
        tags = read_tags(Path(tags_from))
    with StemMp4Writer(path, samplerate, tags=tags, bitrate=bitrate) as writer:
        writer.write(np.asarray(master), np.stack([np.asarray(stems[name]) for name in STEM_ORDER]))
    return Path(path)


# ---------------------------------------------------------------------------------------------------- reading
@dataclass
class StemFile:
    """A STEM file read back: ``master`` ``(2, n_samples)`` float32, ``stems`` ``{name: (2, n_samples)}`` in track
    order (our names: :data:`STEM_ORDER`'s when the file's map onto them), the manifest (None without a ``stem``
    box) and notes for the user."""

    path: Path
    samplerate: int
    master: np.ndarray
    stems: dict[str, np.ndarray]
    manifest: dict | None = None
    notes: list[str] = field(default_factory=list)


def read_manifest(path: str | Path) -> dict | None:
    """The JSON manifest of ``path``'s ``stem`` box, or None (no box, or not JSON)."""
    try:
        payload = read_udta_box(Path(path), b"stem")
        manifest = json.loads(payload.decode("utf-8")) if payload is not None else None
    except (OSError, BoxError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _streams(path: Path) -> list[dict]:
    ffprobe = find_ffprobe()
    if ffprobe is None:
        raise AudioLoadError(path, f"reading STEM files needs ffprobe (it comes with ffmpeg): {INSTALL_HINT}")
    command = [ffprobe, "-v", "error", "-select_streams", "a", "-show_entries",
               "stream=codec_name,sample_rate,channels,duration_ts,time_base", "-of", "json", f"file:{path.resolve()}"]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60,
                                env=subprocess_env())  # fmt: skip
        streams = json.loads(result.stdout or b"{}").get("streams") or [] if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        raise AudioLoadError(path, f"ffprobe could not read it ({err})") from None
    if streams is None:
        raise AudioLoadError(path, f"is damaged or not an MP4 file (ffprobe: {_last_line(result.stderr)})")
    return streams


def _names(manifest: dict | None, n_stems: int, notes: list[str]) -> list[str]:
    """Our names for the file's stem tracks: the manifest's when they map onto :data:`STEM_ORDER`, else the slot's."""
    given = []
    for entry in (manifest or {}).get("stems") or []:
        name = str(entry.get("name", "") if isinstance(entry, dict) else "").strip().lower()
        given.append(STEM_ALIASES.get(name, name))
    if n_stems == len(STEM_ORDER) and sorted(given) == sorted(STEM_ORDER):
        return given
    if manifest is None:
        notes.append("no STEM manifest: the tracks are read as drums, bass, other, vocals")
    elif given:
        notes.append(f"stems named {', '.join(given)}: read as drums, bass, other, vocals by their position")
    return list(STEM_ORDER[:n_stems])


def read_stem_mp4(path: str | Path, samplerate: int | None = None) -> StemFile:
    """Read a STEM file's master and four stems (ffprobe and ffmpeg).

    Args:
        samplerate: resample to this rate (ffmpeg); None keeps the file's.
    Raises:
        AudioLoadError: naming the file and the reason (not five stereo-capable audio tracks, damaged, no ffmpeg).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(path, "no such file")
    streams = _streams(path)
    if len(streams) != 1 + len(STEM_ORDER):
        raise AudioLoadError(path, f"a STEM file has 5 audio tracks (the master and four stems); this one has "
                                   f"{len(streams)}")  # fmt: skip
    rate = int(samplerate or int(streams[0].get("sample_rate") or 0))
    if rate <= 0:
        raise AudioLoadError(path, "is damaged: its master track has no samplerate")
    manifest = read_manifest(path)
    notes: list[str] = []
    names = _names(manifest, len(streams) - 1, notes)
    ffmpeg = _ffmpeg(path, AudioLoadError)
    tracks = []
    for k, stream in enumerate(streams):
        command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", f"file:{path.resolve()}",
                   "-map", f"0:a:{k}", "-ac", "2", "-ar", str(rate), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"]
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                                    env=subprocess_env())  # fmt: skip
        except OSError as err:
            raise AudioLoadError(path, f"could not run ffmpeg ({err.strerror or err})") from None
        if result.returncode != 0 or not result.stdout:
            raise AudioLoadError(path, f"track {k + 1} cannot be decoded (ffmpeg: {_last_line(result.stderr)})")
        samples = np.frombuffer(result.stdout, dtype=np.float32).reshape(-1, 2).T
        exact = _exact_length(stream, rate)
        tracks.append(samples[:, :exact] if exact else samples)
    n = min(t.shape[1] for t in tracks)
    tracks = [np.ascontiguousarray(t[:, :n]) for t in tracks]
    return StemFile(path, rate, tracks[0], dict(zip(names, tracks[1:], strict=True)), manifest, notes)


def _exact_length(stream: dict, rate: int) -> int | None:
    """The stream's length in samples at ``rate`` from ffprobe's ``duration_ts`` (the edit list's), or None."""
    try:
        n_ts = int(stream["duration_ts"])
        num, den = (int(x) for x in str(stream["time_base"]).split("/"))
    except (KeyError, ValueError, TypeError):
        return None
    return int(round(n_ts * num * rate / den)) if n_ts > 0 and den > 0 else None
