"""The few MP4 boxes a NI STEM file needs that no library writes: the ``stem`` box under ``moov/udta``.

Hand-written because nothing maintained does it from Python: mutagen writes the iTunes tags (``moov/udta/meta/ilst``)
and nothing else, ffmpeg has no option for an arbitrary ``udta`` child, and the tool NI and stempeg use (GPAC's
``MP4Box -udta``) is an extra binary few machines have. The format is ISO/IEC 14496-12: a box is a 32-bit
big-endian size (1: a 64-bit size follows the type; 0: to the end of the file), a four-character type, then its
payload; ``moov`` and ``udta`` are plain containers of boxes.

:func:`append_udta_box` only touches a ``moov`` that is the file's last box (what ffmpeg writes without
``+faststart``): growing it then moves no sample data, so no chunk offset (``stco``/``co64``) changes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Container boxes :func:`find_box` descends into.
_CONTAINERS = {b"moov", b"udta", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


class BoxError(Exception):
    """The file is not an MP4 whose boxes can be read (``str(err)`` is the reason)."""


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts, its header length and its total size (header included)."""

    type: bytes
    offset: int
    header: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload(self) -> int:
        """Where the payload starts."""
        return self.offset + self.header


def _boxes(f: BinaryIO, start: int, stop: int) -> list[Box]:
    """The boxes laid one after another in ``[start, stop)`` of ``f``."""
    found: list[Box] = []
    offset = start
    while offset + 8 <= stop:
        f.seek(offset)
        head = f.read(8)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                raise BoxError("a box header is cut short")
            size, header = struct.unpack(">Q", large)[0], 16
        elif size == 0:
            size = stop - offset
        if size < header or offset + size > stop:
            raise BoxError(f"the {kind.decode('latin-1')!r} box at byte {offset} runs past its parent")
        found.append(Box(kind, offset, header, size))
        offset += size
    return found


def top_level(f: BinaryIO) -> list[Box]:
    """The file's top-level boxes (``ftyp``, ``mdat``, ``moov``, ...)."""
    end = f.seek(0, os.SEEK_END)
    return _boxes(f, 0, end)


def find_box(f: BinaryIO, path: list[bytes]) -> Box | None:
    """The first box at ``path`` (e.g. ``[b"moov", b"udta", b"stem"]``), or None."""
    boxes = top_level(f)
    box: Box | None = None
    for depth, kind in enumerate(path):
        box = next((b for b in boxes if b.type == kind), None)
        if box is None:
            return None
        if depth + 1 < len(path):
            if kind not in _CONTAINERS:
                return None
            boxes = _boxes(f, box.payload, box.end)
    return box


def read_udta_box(path: Path, kind: bytes) -> bytes | None:
    """The payload of ``moov/udta/<kind>`` in the file at ``path``, or None when it has none.

    Raises:
        BoxError: the file's box structure is damaged; OSError: it cannot be read.
    """
    with open(path, "rb") as f:
        box = find_box(f, [b"moov", b"udta", kind])
        if box is None:
            return None
        f.seek(box.payload)
        return f.read(box.size - box.header)


def _header(size: int, kind: bytes, large: bool) -> bytes:
    if large or size > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, kind, size)
    return struct.pack(">I4s", size, kind)


def append_udta_box(path: Path, kind: bytes, payload: bytes) -> None:
    """Add ``moov/udta/<kind>`` holding ``payload`` to the MP4 at ``path``, in place.

    Raises:
        BoxError: no ``moov``, or ``moov`` is not the last box (then sample data would move).
    """
    if len(kind) != 4:
        raise ValueError("a box type is four bytes")
    with open(path, "r+b") as f:
        boxes = top_level(f)
        moov = next((b for b in boxes if b.type == b"moov"), None)
        if moov is None:
            raise BoxError("no 'moov' box: not an MP4 file")
        if moov is not boxes[-1]:
            raise BoxError("the 'moov' box is not at the end of the file")
        children = _boxes(f, moov.payload, moov.end)
        udta = next((b for b in children if b.type == b"udta"), None)
        new_box = _header(8 + len(payload), kind, False) + payload
        f.seek(moov.payload)
        body = f.read(moov.size - moov.header)
        if udta is None:
            body += _header(8 + len(new_box), b"udta", False) + new_box
        else:
            start, end = udta.offset - moov.payload, udta.end - moov.payload
            udta_body = body[start + udta.header : end] + new_box
            udta_bytes = _header(udta.header + len(udta_body), b"udta", udta.header == 16)
            if len(udta_bytes) != udta.header:  # grew past 4 GB: impossible for tags, kept correct anyway
                udta_bytes = _header(16 + len(udta_body), b"udta", True)
            body = body[:start] + udta_bytes + udta_body + body[end:]
        moov_bytes = _header(moov.header + len(body), b"moov", moov.header == 16)
        if len(moov_bytes) != moov.header:
            moov_bytes = _header(16 + len(body), b"moov", True)
        f.seek(moov.offset)
        f.write(moov_bytes + body)
        f.truncate()
