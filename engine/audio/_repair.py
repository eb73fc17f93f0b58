"""Splice damaged bytes out of MP3 and OGG files, so libsndfile decodes what is left and the loss is known.

libsndfile (mpg123, libvorbis) meets broken MP3 frames or OGG pages by stopping early without an error, by
refusing the rest, or by resynchronising at a wrong position; on MP3 it also prints mpg123's notes on stderr.
So before decoding, the frames (MP3) or pages (OGG) are walked from their headers (a few bytes read per frame,
no decoding; under a second for an hour of MP3). Where the next header is not where the previous one says it
ends, the bytes up to the next point where two consecutive headers agree again are left out of what libsndfile
reads (:class:`SplicedFile`, a file object over the original).

- MP3: the frames the damaged bytes held (their count from the Xing/Info header when there is one damaged span,
  else from the average frame size) become silence at their place in time (:attr:`Plan.gaps`).
- OGG: libvorbis then sees a jump in the page positions, which the decoder turns into silence itself (its
  position jumps: :mod:`engine.audio._decode`); the splice keeps libsndfile's length and seeking right.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

_MP3_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MP3_DECODER_DELAY = 529  # samples every layer III decoder adds (the LAME tag's delay excludes it)
_SCAN_BYTES = 1 << 16
_MAX_RESYNC_BYTES = 1 << 24  # give up looking for the next good frame after this much junk


@dataclass(frozen=True)
class Mp3Frame:
    """One MPEG audio frame header: its size in bytes and samples, and what must stay the same in a stream."""

    size: int
    n_samples: int
    samplerate: int
    kind: tuple[int, int, int]  # (version bits, layer bits, samplerate index)


def mp3_frame(header: bytes) -> Mp3Frame | None:
    """Parse a 4-byte MPEG audio frame header; ``None`` when it is not one (or uses a free/invalid bitrate)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version_bits, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version_bits == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version_bits == 3
    bitrate = _MP3_BITRATES[(1 if mpeg1 else 2, layer)][bitrate_index] * 1000
    samplerate = _MP3_RATES[version_bits][rate_index]
    if layer == 1:
        size, n_samples = (12 * bitrate // samplerate + padding) * 4, 384
    elif layer == 2 or mpeg1:
        size, n_samples = 144 * bitrate // samplerate + padding, 1152
    else:
        size, n_samples = 72 * bitrate // samplerate + padding, 576
    return Mp3Frame(size, n_samples, samplerate, (version_bits, layer_bits, rate_index))


class SplicedFile(io.RawIOBase):
    """A read-only file object over ``path`` without the byte spans ``cuts`` (``[(start, stop), ...]``), with
    ``patches`` (``{offset: bytes}``, offsets before the first cut) written over what it reads."""

    def __init__(self, path: Path, cuts: list[tuple[int, int]], patches: dict[int, bytes] | None = None) -> None:
        super().__init__()
        self._patches = dict(patches or {})
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        size = self._file.seek(0, io.SEEK_END)
        self._pieces: list[tuple[int, int, int]] = []  # (virtual start, real start, length)
        virtual, real = 0, 0
        for start, stop in sorted(cuts) + [(size, size)]:
            if start > real:
                self._pieces.append((virtual, real, start - real))
                virtual += start - real
            real = max(real, stop)
        self._size, self._position = virtual, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer) -> int:
        view, start = memoryview(buffer).cast("B"), self._position
        done = self._read_pieces(view)
        for offset, data in self._patches.items():
            lo, hi = max(offset, start), min(offset + len(data), start + done)
            if hi > lo:
                view[lo - start : hi - start] = data[lo - offset : hi - offset]
        return done

    def _read_pieces(self, view: memoryview) -> int:
        done = 0
        for virtual, real, length in self._pieces:
            if done >= len(view):
                break
            if self._position >= virtual + length or self._position < virtual:
                continue
            skip = self._position - virtual
            n = min(length - skip, len(view) - done)
            self._file.seek(real + skip)
            got = self._file.readinto(view[done : done + n])
            done += got
            self._position += got
            if got < n:
                break
        return done

    def read(self, size: int = -1) -> bytes:
        size = self._size - self._position if size is None or size < 0 else size
        buffer = bytearray(max(size, 0))
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass
class Plan:
    """How to read a damaged file: ``opener()`` gives libsndfile a file object without the damaged bytes
    (``cuts``, byte spans); ``gaps`` are ``(frame, length)`` of silence to put in, at positions of the output."""

    path: Path
    cuts: list[tuple[int, int]]
    gaps: list[tuple[int, int]] = field(default_factory=list)
    patches: dict[int, bytes] = field(default_factory=dict)

    def opener(self) -> SplicedFile:
        return SplicedFile(self.path, self.cuts, self.patches)


def _id3v2_end(f) -> int:
    f.seek(0)
    head = f.read(10)
    if len(head) == 10 and head[:3] == b"ID3":
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        return 10 + size + (10 if head[5] & 0x10 else 0)
    return 0


def _mp3_resync(f, start: int, kind: tuple[int, int, int] | None, limit: int) -> int | None:
    """The first offset from ``start`` where two consecutive frame headers (of the stream's ``kind``) agree."""
    offset = start
    while offset < limit and offset - start < _MAX_RESYNC_BYTES:
        f.seek(offset)
        chunk = f.read(_SCAN_BYTES + 4)
        if len(chunk) < 4:
            return None
        at = chunk.find(b"\xff")
        while 0 <= at < len(chunk) - 3:
            frame = mp3_frame(chunk[at : at + 4])
            if frame is not None and (kind is None or frame.kind == kind):
                f.seek(offset + at + frame.size)
                nxt = mp3_frame(f.read(4))
                if nxt is not None and nxt.kind == frame.kind:
                    return offset + at
            at = chunk.find(b"\xff", at + 1)
        offset += _SCAN_BYTES
    return None


def _xing(f, offset: int, frame: Mp3Frame) -> tuple[bool, int | None, int, tuple[int, int] | None]:
    """``(is a tag frame, frame count, start skip, (offset, value) of its byte count)`` of the frame at
    ``offset``: a Xing/Info frame (no audio; maybe the number of frames and bytes that follow) with a LAME tag (the
    encoder delay decoders skip); else ``(False, None, 0, None)``."""
    f.seek(offset)
    data = f.read(min(frame.size, 512))
    at = max(data.find(b"Xing", 4, 48), data.find(b"Info", 4, 48))
    if at < 0:
        return False, None, 0, None
    flags = struct.unpack(">I", data[at + 4 : at + 8])[0] if len(data) >= at + 8 else 0
    count = struct.unpack(">I", data[at + 8 : at + 12])[0] if flags & 1 and len(data) >= at + 12 else None
    n_bytes = None
    where = at + 8 + (4 if flags & 1 else 0)
    if flags & 2 and len(data) >= where + 4:
        n_bytes = (offset + where, struct.unpack(">I", data[where : where + 4])[0])
    lame = data.find(b"LAME", at)
    skip = 0
    if lame >= 0 and len(data) >= lame + 24:
        delay = (data[lame + 21] << 4) | (data[lame + 22] >> 4)
        skip = delay + _MP3_DECODER_DELAY
    return True, count, skip, n_bytes


def plan_mp3(path: Path) -> Plan | None:
    """Walk an MP3's frames; a :class:`Plan` when some bytes must be spliced out, else ``None``."""
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        first = _mp3_resync(f, _id3v2_end(f), None, size)
        if first is None:
            return None
        f.seek(first)
        head = mp3_frame(f.read(4))
        assert head is not None
        is_tag, announced, skip, n_bytes_field = _xing(f, first, head)
        offset = first + head.size if is_tag else first
        n_frames, n_bytes = 0, 0
        spans: list[tuple[int, int, int]] = []  # (frames before, start byte, stop byte)
        while offset + 4 <= size:
            f.seek(offset)
            frame = mp3_frame(f.read(4))
            if frame is not None and frame.kind == head.kind and offset + frame.size <= size:
                n_frames, n_bytes, offset = n_frames + 1, n_bytes + frame.size, offset + frame.size
                continue
            if size - offset <= 128 + 4 or (frame is not None and frame.kind == head.kind):
                break  # a trailing ID3v1/APE tag, or the last frame cut short
            resync = _mp3_resync(f, offset + 1, head.kind, size)
            if resync is None:
                break  # junk or tags up to the end
            spans.append((n_frames, offset, resync))
            offset = resync
    if not spans:
        return None
    average = n_bytes / max(n_frames, 1)
    lost = [max(1, round((stop - start) / average)) for _, start, stop in spans]
    if announced is not None and len(spans) == 1 and announced > n_frames:
        lost = [announced - n_frames]
    gaps, before = [], 0
    for (frames_before, _, _), n_lost in zip(spans, lost, strict=True):
        gaps.append((max(0, (frames_before + before) * head.n_samples - skip), n_lost * head.n_samples))
        before += n_lost
    patches = {}
    if n_bytes_field is not None:  # the stream's byte count, as the spliced stream has it (else mpg123 warns)
        where, value = n_bytes_field
        patches[where] = struct.pack(">I", max(0, value - sum(b - a for _, a, b in spans)))
    return Plan(path=path, cuts=[(a, b) for _, a, b in spans], gaps=gaps, patches=patches)


_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(page: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, init 0) through zlib's reflected one:
    reflecting the input bytes and the result turns one into the other, and the XOR with the checksum of as many
    zero bytes cancels zlib's initial value and final XOR."""
    reflected = zlib.crc32(page.translate(_REVERSED)) ^ zlib.crc32(bytes(len(page)))
    return int(f"{reflected:032b}"[::-1], 2)


def _ogg_page_ok(f, offset: int, length: int) -> bool:
    """Whether the page at ``offset`` (``length`` bytes) has a correct checksum."""
    f.seek(offset)
    page = bytearray(f.read(length))
    if len(page) < length:
        return False
    stored = struct.unpack("<I", page[22:26])[0]
    page[22:26] = bytes(4)
    return ogg_crc(bytes(page)) == stored


@dataclass
class OggPlan(Plan):
    """An OGG plan also knows the granule (frame) each cut follows and the granule the stream ends at."""

    cut_frames: list[int] = field(default_factory=list)
    end_frame: int | None = None


def plan_ogg(path: Path) -> OggPlan | None:
    """Walk an OGG file's pages; a plan when pages are broken (bad structure or checksum) and must be cut out."""
    cuts: list[tuple[int, int]] = []
    cut_frames: list[int] = []
    granule, end_frame = 0, None
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        offset = 0
        while offset + 27 <= size:
            f.seek(offset)
            header = f.read(27)
            length = _ogg_page_length(f, offset, header, size)
            if length is not None and _ogg_page_ok(f, offset, length):
                page_granule = struct.unpack("<q", header[6:14])[0]
                if page_granule >= 0:
                    granule = end_frame = page_granule
                offset += length
                continue
            if length is not None:  # a whole page whose data is damaged
                resync = offset + length
            else:
                resync = _ogg_resync(f, offset + 1, size)
            stop = size if resync is None else resync
            if cuts and cuts[-1][1] == offset:
                cuts[-1] = (cuts[-1][0], stop)
            else:
                cuts.append((offset, stop))
                cut_frames.append(granule)
            if resync is None:
                break
            offset = resync
    if not cuts:
        return None
    return OggPlan(path=path, cuts=cuts, cut_frames=cut_frames, end_frame=end_frame)


def _ogg_page_length(f, offset: int, header: bytes, size: int) -> int | None:
    """The length of the page at ``offset`` (whose first 27 bytes are ``header``), ``None`` if it is not one."""
    if len(header) < 27 or header[:4] != b"OggS" or header[4] != 0 or header[5] & 0xF8:
        return None
    n_segments = header[26]
    f.seek(offset + 27)
    table = f.read(n_segments)
    if len(table) < n_segments:
        return None
    length = 27 + n_segments + sum(table)
    return length if offset + length <= size else None


def _ogg_resync(f, start: int, size: int) -> int | None:
    """The first offset from ``start`` holding a good page followed by another page (or the end of the file)."""
    offset = start
    while offset < size:
        f.seek(offset)
        chunk = f.read(_SCAN_BYTES + 4)
        at = chunk.find(b"OggS")
        while at >= 0:
            candidate = offset + at
            f.seek(candidate)
            length = _ogg_page_length(f, candidate, f.read(27), size)
            if length is not None and _ogg_page_ok(f, candidate, length):
                return candidate
            at = chunk.find(b"OggS", at + 1)
        offset += _SCAN_BYTES
    return None


def plan(path: Path, head: bytes) -> Plan | None:
    """A repair plan for a damaged MP3 or OGG file (known from its first bytes), ``None`` when none is needed."""
    try:
        if head[:4] == b"OggS":
            return plan_ogg(path)
        if head[:3] == b"ID3" or mp3_frame(head[:4]) is not None:
            return plan_mp3(path)
    except OSError:
        return None
    return None
