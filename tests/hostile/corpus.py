"""A generated corpus of hostile inputs: what a new user's disk holds besides clean songs.

Each :class:`Kind` writes its input(s) into a folder and records what every entry point must do with it:

- ``refused``: exit 1 (the app: ``song_failed``) with one line naming the file and matching ``reason``;
- ``accepted``: exit 0, every stem complete;
- ``note``: accepted, and a line on stderr naming the file matches ``reason`` (what was repaired or skipped);
- ``usage``: the whole command is refused before any work (exit 2), naming each file in ``reason``'s sense;
- ``any``: either accepted or refused (the input changes while it is read), never a traceback or a hang.

Nothing here imports Qt or the engine: ``python -m tests.hostile.corpus DIR`` writes the corpus for a look.
The generators are deterministic (seeded), small (a second or two of audio) and need ``ffmpeg`` only for the
M4A/Opus/MP4 kinds.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
#: A 2 GiB PCM WAV header with nothing but zeros after it: 3.4 hours of silence that takes no disk space.
SPARSE_BYTES = 2**31

Maker = Callable[[Path], list[Path]]


@dataclass(frozen=True)
class Kind:
    """One kind of hostile input.

    Attributes:
        name: a short identifier (test ids, the README table).
        make: writes the input(s) into an existing folder and returns their paths (two for batch kinds).
        expect: ``refused``, ``accepted``, ``note``, ``usage`` or ``any`` (see the module docstring).
        reason: a regular expression (case-insensitive) the error or note line must match.
        about: what the input is, in words.
        slow: a heavy kind (marked ``slow``; it still runs in CI).
        unprivileged: only unreadable to a user without root's rights (the test drops them for the command).
        live: a context manager factory run around the command (e.g. a writer appending to the file).
    """

    name: str
    make: Maker
    expect: str
    reason: str = ""
    about: str = ""
    slow: bool = False
    unprivileged: bool = False
    live: Callable[[list[Path]], AbstractContextManager[None]] | None = None


# -- audio helpers ---------------------------------------------------------------------------------------------
def tone(seconds: float = 1.0, samplerate: int = SR, n_channels: int = 2, amplitude: float = 0.3) -> np.ndarray:
    """A few sines, ``(n_frames, n_channels)`` float64 (soundfile's layout)."""
    t = np.arange(int(round(seconds * samplerate))) / samplerate
    return np.stack([amplitude * np.sin(2 * np.pi * (220 + 55 * c) * t) for c in range(n_channels)], axis=1)


def write(path: Path, data: np.ndarray, samplerate: int = SR, **kw: object) -> Path:
    sf.write(path, data, samplerate, **kw)
    return path


def _one(name: str, build: Callable[[Path], object]) -> Maker:
    """A maker writing one file ``name`` with ``build(path)``."""

    def make(folder: Path) -> list[Path]:
        path = folder / name
        build(path)
        return [path]

    return make


def _raw(name: str, data: bytes) -> Maker:
    return _one(name, lambda p: p.write_bytes(data))


def _random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _valid_bytes(suffix: str, seconds: float = 1.0, **kw: object) -> bytes:
    """The bytes of a valid file of ``suffix`` (wav, flac, ogg, mp3) holding ``seconds`` of tone."""
    import io

    buffer = io.BytesIO()
    fmt = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[suffix]
    sf.write(buffer, tone(seconds), SR, format=fmt, **kw)
    return buffer.getvalue()


def _png() -> bytes:
    """A real 2x2 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "not a song\n" * 50)
    return buffer.getvalue()


def wav_header(n_data_bytes: int, n_channels: int = 2, samplerate: int = SR, bits: int = 16) -> bytes:
    """A canonical 44-byte PCM WAV header announcing ``n_data_bytes`` of samples."""
    block = n_channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + n_data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, n_channels, samplerate, samplerate * block, block, bits)
            + b"data" + struct.pack("<I", n_data_bytes))  # fmt: skip


def _damage_middle(data: bytes, n: int = 1500, seed: int = 7) -> bytes:
    """``data`` with ``n`` random bytes written over its middle."""
    mid = len(data) // 2
    return data[:mid] + _random_bytes(n, seed) + data[mid + n :]


def _flac_bad_md5(path: Path) -> None:
    data = bytearray(_valid_bytes("flac", 1.5))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first: its MD5 is bytes 26..42
    data[26:42] = bytes(16)[:8] + b"\x5a" * 8
    path.write_bytes(bytes(data))


def _ffmpeg(path: Path, *args: str) -> None:
    """Run ffmpeg to write ``path`` (``args`` between the inputs and the output)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to write this kind")
    subprocess.run([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip


_SINE = ["-f", "lavfi", "-i", "sine=frequency=330:duration=1.5:sample_rate=44100"]
_VIDEO = ["-f", "lavfi", "-i", "testsrc=duration=1.5:size=64x48:rate=10"]


def _sparse_wav(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(wav_header(SPARSE_BYTES - 44))
        f.truncate(SPARSE_BYTES)


def _named(name: str | bytes, seconds: float = 1.0) -> Maker:
    """A valid WAV under an odd name (``bytes`` for names that are not UTF-8)."""

    def make(folder: Path) -> list[Path]:
        path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name))) if isinstance(name, bytes) \
            else folder / name
        path.write_bytes(_valid_bytes(Path(os.fsdecode(name)).suffix.lstrip(".") or "wav", seconds))
        return [path]

    return make


def _symlink_loop(folder: Path) -> list[Path]:
    path = folder / "loop.wav"
    os.symlink("loop.wav", path)
    return [path]


def _dangling(folder: Path) -> list[Path]:
    path = folder / "gone.wav"
    os.symlink("missing-target.wav", path)
    return [path]


def _device(folder: Path) -> list[Path]:
    path = folder / "zero.wav"
    os.symlink("/dev/zero", path)  # endless zeros: reading it would never end
    return [path]


def _fifo(folder: Path) -> list[Path]:
    path = folder / "pipe.wav"
    os.mkfifo(path)  # nobody writes to it: opening it for reading would block forever
    return [path]


def _unreadable(folder: Path) -> list[Path]:
    path = write(folder / "locked.wav", tone(1.0))
    path.chmod(0)
    return [path]


def _same_name(folder: Path) -> list[Path]:
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    return [write(folder / "a" / "song.flac", tone(1.0)), write(folder / "b" / "song.wav", tone(0.5))]


def _same_name_case(folder: Path) -> list[Path]:
    (folder / "x").mkdir()
    return [write(folder / "Song.wav", tone(1.0)), write(folder / "x" / "song.wav", tone(0.5))]


def _same_file_twice(folder: Path) -> list[Path]:
    path = write(folder / "twice.wav", tone(1.0))
    return [path, path]


def _growing(folder: Path) -> list[Path]:
    path = folder / "growing.wav"
    path.write_bytes(wav_header(0) + np.zeros(SR // 10 * 2, np.int16).tobytes())
    return [path]


@contextmanager
def appending(paths: list[Path], seconds: float = 4.0) -> Iterator[None]:
    """Append silence to ``paths[0]`` (a WAV) block by block while the command reads it, for ``seconds`` at most."""
    stop = threading.Event()

    def run() -> None:
        block = (tone(0.05) * 32767).astype(np.int16).tobytes()
        deadline = time.monotonic() + seconds
        with open(paths[0], "ab") as f:
            while not stop.is_set() and time.monotonic() < deadline:
                f.write(block)
                f.flush()
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


REFUSE_DAMAGED = r"damaged|not a valid|not an audio|not a supported|cannot|no audio|decod|unknown|recogni"

KINDS: list[Kind] = [
    # -- not audio at all
    Kind("empty", _raw("empty.wav", b""), "refused", r"empty", "0 bytes"),
    Kind("one_byte", _raw("one_byte.flac", b"\x00"), "refused", REFUSE_DAMAGED + "|short|small", "a single byte"),
    Kind("random_wav", _raw("noise.wav", _random_bytes(65536, 1)), "refused", REFUSE_DAMAGED, "random bytes, .wav"),
    Kind("random_mp3", _raw("noise.mp3", _random_bytes(65536, 2)), "refused", REFUSE_DAMAGED, "random bytes, .mp3"),
    Kind("random_ogg", _raw("noise.ogg", _random_bytes(65536, 3)), "refused", REFUSE_DAMAGED, "random bytes, .ogg"),
    Kind("random_flac", _raw("noise.flac", _random_bytes(65536, 4)), "refused", REFUSE_DAMAGED,
         "random bytes, .flac"),
    Kind("random_m4a", _raw("noise.m4a", _random_bytes(65536, 5)), "refused", REFUSE_DAMAGED,
         "random bytes, .m4a (the ffmpeg path)"),
    Kind("text_as_mp3", _raw("lyrics.mp3", b"Verse one, the words go here\n" * 200), "refused",
         REFUSE_DAMAGED + "|text", "a text file renamed .mp3"),
    Kind("png_as_wav", _raw("cover.wav", _png()), "refused", r"not an audio|png|image", "a PNG image renamed .wav"),
    Kind("pdf_as_ogg", _raw("score.ogg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"0" * 4000), "refused",
         r"not an audio|pdf|" + REFUSE_DAMAGED, "a PDF renamed .ogg"),
    Kind("zip_as_m4a", _raw("album.m4a", _zip()), "refused", r"not an audio|zip|archive|" + REFUSE_DAMAGED,
         "a ZIP archive renamed .m4a"),
    # -- cut short, or nothing after the header
    Kind("wav_header_cut", _raw("cut_header.wav", _valid_bytes("wav")[:30]), "refused",
         REFUSE_DAMAGED + "|truncat", "the first 30 bytes of a WAV"),
    Kind("flac_header_cut", _raw("cut_header.flac", _valid_bytes("flac")[:40]), "refused",
         REFUSE_DAMAGED + "|truncat", "the first 40 bytes of a FLAC"),
    Kind("header_only", _raw("header_only.wav", wav_header(SR * 4)), "refused", r"truncat|no audio|0 samples",
         "a WAV header announcing 1 s, no samples"),
    Kind("zero_frames", _one("zero_frames.wav", lambda p: write(p, np.zeros((0, 2)))), "refused",
         r"no audio|0 samples|empty", "a valid WAV with 0 frames"),
    Kind("wav_truncated", _raw("cut.wav", _valid_bytes("wav", 2.0)[:70000]), "refused", r"truncat",
         "a WAV cut at 20 % of its data"),
    Kind("flac_truncated", _raw("cut.flac", _valid_bytes("flac", 3.0)[:60000]), "refused",
         r"truncat|damaged|decod|cut|incomplete", "a FLAC cut at a third"),
    # -- not a regular file
    Kind("directory", lambda d: [_mkdir(d / "song.wav")], "refused", r"folder|directory", "a folder named song.wav"),
    Kind("symlink_loop", _symlink_loop, "refused", r"link|loop", "a symbolic link to itself"),
    Kind("dangling_symlink", _dangling, "refused", r"not found|no such|missing|does not exist|broken",
         "a link to nothing"),
    Kind("device_file", _device, "refused", r"regular|device|not a file|special", "a link to /dev/zero"),
    Kind("fifo", _fifo, "refused", r"regular|fifo|pipe|not a file|special", "a FIFO nobody writes to"),
    Kind("unreadable", _unreadable, "refused", r"permission|not allowed|cannot be read|denied",
         "a WAV with mode 000 (read by an unprivileged user)", unprivileged=True),
    # -- containers without audio
    Kind("mp4_video_only", _one("clip.mp4", lambda p: _ffmpeg(p, *_VIDEO, "-c:v", "mpeg4")), "refused",
         r"no audio", "an MP4 with a video stream only"),
    Kind("m4a_video_only", _one("clip.m4a", lambda p: _ffmpeg(p, *_VIDEO, "-c:v", "mpeg4", "-f", "mp4")),
         "refused", r"no audio", "an M4A holding only video"),
    Kind("opus_video_only", _one("clip.opus", lambda p: _ffmpeg(p, *_VIDEO, "-c:v", "libtheora", "-f", "ogg")),
         "refused", r"no audio|" + REFUSE_DAMAGED, "an .opus (Ogg) holding only Theora video"),
    Kind("all_nan", _one("all_nan.wav", lambda p: write(p, np.full((SR, 2), np.nan), subtype="FLOAT")),
         "refused", r"nan", "a float WAV whose every sample is NaN"),
    # -- valid, strange
    Kind("one_frame", _one("one_frame.wav", lambda p: write(p, tone(1 / SR))), "accepted", about="1 frame"),
    Kind("ten_frames", _one("ten_frames.wav", lambda p: write(p, tone(10 / SR))), "accepted", about="10 frames"),
    Kind("mono_8k", _one("phone.wav", lambda p: write(p, tone(1.0, 8000, 1), 8000)), "accepted",
         about="8 kHz mono"),
    Kind("rate_192k", _one("hires.wav", lambda p: write(p, tone(0.5, 192000), 192000, subtype="PCM_24")),
         "accepted", about="192 kHz, 24-bit"),
    Kind("surround_5_1", _one("surround.wav", lambda p: write(p, tone(1.0, n_channels=6))), "note", r"downmix",
         "5.1 (6 channels)"),
    Kind("channels_32", _one("many.wav", lambda p: write(p, tone(0.5, n_channels=32) / 4)), "note", r"downmix",
         "32 channels"),
    Kind("pcm_u8", _one("eight_bit.wav", lambda p: write(p, tone(1.0), subtype="PCM_U8")), "accepted",
         about="8-bit unsigned PCM"),
    Kind("pcm_24", _one("twenty_four.flac", lambda p: write(p, tone(1.0), subtype="PCM_24")), "accepted",
         about="24-bit FLAC"),
    Kind("float64", _one("double.wav", lambda p: write(p, tone(1.0), subtype="DOUBLE")), "accepted",
         about="64-bit float WAV"),
    Kind("nan_samples", _one("some_nan.wav", lambda p: write(p, _with(tone(1.0), np.nan), subtype="FLOAT")),
         "note", r"nan", "a float WAV with some NaN samples"),
    Kind("inf_samples", _one("some_inf.wav", lambda p: write(p, _with(tone(1.0), np.inf), subtype="FLOAT")),
         "note", r"inf|nan", "a float WAV with some infinite samples"),
    Kind("dc_offset", _one("dc.wav", lambda p: write(p, tone(1.0, amplitude=0.2) + 0.6)), "accepted",
         about="a DC offset of 0.6"),
    Kind("clipping", _one("hot.wav", lambda p: write(p, tone(1.0, amplitude=4.0), subtype="FLOAT")), "accepted",
         about="a float WAV peaking at +12 dBFS"),
    Kind("minus_120_dbfs", _one("quiet.wav", lambda p: write(p, tone(1.0, amplitude=1e-6), subtype="FLOAT")),
         "accepted", about="a tone at -120 dBFS"),
    Kind("silence", _one("silence.flac", lambda p: write(p, np.zeros((SR, 2)))), "accepted", about="digital silence"),
    Kind("wav_named_mp3", _raw("mislabelled.mp3", _valid_bytes("wav")), "accepted",
         about="a WAV named .mp3 (the content decides)"),
    Kind("upper_case_ext", _raw("LOUD.FLAC", _valid_bytes("flac")), "accepted", about="a .FLAC extension"),
    Kind("aiff", _one("tune.aiff", lambda p: write(p, tone(1.0))), "accepted", about="AIFF"),
    Kind("m4a_aac", _one("tune.m4a", lambda p: _ffmpeg(p, *_SINE, "-c:a", "aac", "-ac", "2")), "accepted",
         about="AAC in M4A (ffmpeg)"),
    Kind("opus", _one("tune.opus", lambda p: _ffmpeg(p, *_SINE, "-c:a", "libopus", "-ac", "2")), "accepted",
         about="Opus"),
    Kind("mp4_with_audio", _one("video.mp4", lambda p: _ffmpeg(p, *_VIDEO, *_SINE, "-c:v", "mpeg4", "-c:a", "aac",
                                                                "-shortest")), "accepted",
         about="an MP4 with video and AAC audio"),
    # -- odd names
    Kind("name_spaces", _named("my song (live) [2024].wav"), "accepted", about="spaces and brackets"),
    Kind("name_quotes", _named("it's \"the\" song.wav"), "accepted", about="quotes"),
    Kind("name_newline", _named("two\nlines.wav"), "accepted", about="a newline in the name"),
    Kind("name_control", _named("bell\x07tab\t.wav"), "accepted", about="control characters"),
    Kind("name_unicode", _named("東京 café ♫.flac"), "accepted", about="unicode"),
    Kind("name_non_utf8", _named(b"caf\xe9 \xff.wav"), "accepted", about="bytes that are not UTF-8"),
    Kind("name_backslash", _named("back\\slash.wav"), "accepted", about="a backslash (a separator on Windows)"),
    Kind("name_dots", _raw("...flac", _valid_bytes("flac")), "accepted",
         about="'...flac' (the song folder would be '..')"),
    Kind("name_hidden", _named(".hidden.wav"), "accepted", about="a leading dot (the folder would be hidden)"),
    Kind("name_long", _named("l" * 240 + ".wav"), "accepted", about="a 244-byte name"),
    # -- damaged in the middle: decode around the damage and say where the gap is
    Kind("mp3_damaged_middle", _raw("damaged.mp3", _damage_middle(_valid_bytes("mp3", 4.0))), "note",
         r"gap|damag|skip", "an MP3 with 1.5 kB of garbage in the middle"),
    Kind("ogg_damaged_middle", _raw("damaged.ogg", _damage_middle(_valid_bytes("ogg", 4.0))), "note",
         r"gap|damag|skip", "an OGG Vorbis with a damaged middle page"),
    Kind("flac_damaged_middle", _raw("damaged.flac", _damage_middle(_valid_bytes("flac", 4.0))), "note",
         r"gap|damag|skip", "a FLAC with 1.5 kB of garbage in the middle"),
    Kind("flac_bad_md5", _one("bad_md5.flac", _flac_bad_md5), "note", r"md5", "a FLAC whose MD5 does not match"),
    # -- batches, and a file that changes while it is read
    Kind("same_name_batch", _same_name, "usage", r"same|both|collide", "a/song.flac and b/song.wav in one batch"),
    Kind("same_name_case", _same_name_case, "usage", r"same|both|collide", "Song.wav and x/song.wav in one batch"),
    Kind("same_file_twice", _same_file_twice, "note", r"twice|once|more than once", "one file given twice"),
    Kind("being_written", _growing, "any", about="a WAV that grows while it is read", live=appending),
    # -- long
    Kind("sparse_2gb_wav", _one("long.wav", _sparse_wav), "accepted", about="a sparse 2 GiB WAV (3.4 h of silence)",
         slow=True),
]


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _with(data: np.ndarray, value: float) -> np.ndarray:
    data = data.copy()
    data[1000:1010, 0] = value
    return data


def kind(name: str) -> Kind:
    """The kind called ``name``."""
    for k in KINDS:
        if k.name == name:
            return k
    raise KeyError(name)


def generate(folder: Path, kinds: list[Kind] | None = None) -> dict[str, list[Path]]:
    """Write every kind (default: all but the slow ones) into its own subfolder of ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for k in kinds if kinds is not None else [k for k in KINDS if not k.slow]:
        sub = folder / k.name
        sub.mkdir()
        written[k.name] = k.make(sub)
    return written


if __name__ == "__main__":  # pragma: no cover - a look at the corpus by hand
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for name, paths in generate(out).items():
        print(f"{name:22s} {kind(name).expect:9s} {', '.join(os.fsdecode(p.name) for p in paths)!a}")
