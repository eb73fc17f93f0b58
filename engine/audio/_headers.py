"""Small byte-level helpers: what a non-audio file is, and how long a WAV/AIFF header says the audio is.

libsndfile quietly shortens a truncated WAV or AIFF to the bytes that are present; comparing with the length the
header announces is how a truncated download is told apart from a short file.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: Leading bytes of common files that are not audio, and how to name them to a person.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"MThd", "a MIDI file (notes, not recorded audio)"),
)

#: Placeholder data sizes written by recorders that never finalised the header (libsndfile then uses the file size).
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def describe_non_audio(head: bytes) -> str | None:
    """Name the kind of file ``head`` (its first bytes) starts, if it is clearly not audio; else ``None``."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head and b"\x00" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            # A multi-byte character cut at the end of the head is still text.
            try:
                text = head[:-3].decode("utf-8")
            except UnicodeDecodeError:
                return None
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        if text and printable / len(text) > 0.95:
            return "a text file"
    return None


def declared_frames(path: Path) -> int | None:
    """The number of frames a WAV (RIFF) or AIFF header announces, or ``None`` when unknown or not applicable.

    Reads only the chunk headers (a few hundred bytes). RF64/W64, compressed AIFC and placeholder sizes give ``None``.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12:
                return None
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _riff_frames(f)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                return _aiff_frames(f)
    except OSError:
        return None
    return None


def _chunks(f, endian: str):
    """Yield ``(chunk_id, size, data_offset)`` for each chunk after the 12-byte file header."""
    offset = 12
    for _ in range(64):  # a sane file has a handful of chunks before the audio
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8:
            return
        chunk_id = header[:4]
        (size,) = struct.unpack(endian + "I", header[4:])
        yield chunk_id, size, offset + 8
        offset += 8 + size + (size & 1)


def _riff_frames(f) -> int | None:
    block_align = None
    for chunk_id, size, data_offset in _chunks(f, "<"):
        if chunk_id == b"fmt " and size >= 14:
            f.seek(data_offset + 12)
            (block_align,) = struct.unpack("<H", f.read(2))
        elif chunk_id == b"data":
            if not block_align or size in _UNKNOWN_SIZES:
                return None
            return size // block_align
    return None


def _aiff_frames(f) -> int | None:
    for chunk_id, size, data_offset in _chunks(f, ">"):
        if chunk_id == b"COMM" and size >= 18:
            f.seek(data_offset)
            _n_channels, n_frames = struct.unpack(">hI", f.read(6))
            if size >= 22:  # AIFC: only uncompressed encodings map bytes to frames simply
                f.seek(data_offset + 18)
                if f.read(4) not in (
                    b"NONE",
                    b"sowt",
                    b"twos",
                    b"fl32",
                    b"fl64",
                    b"FL32",
                    b"FL64",
                    b"in24",
                    b"in32",
                ):
                    return None
            return None if n_frames in _UNKNOWN_SIZES else n_frames
    return None
