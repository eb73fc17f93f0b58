"""FLAC's own checksum: the MD5 of the unencoded samples that STREAMINFO records, checked while decoding.

The check costs one MD5 pass over the PCM bytes (about 1 s per hour of CD audio) and no second decode: FLAC is
read from libsndfile as left-justified int32, hashed in the file's own sample width (signed, little-endian,
interleaved: what the encoder hashed), and turned into float32 by the exact scaling ``x / 2**31`` (the same values
libsndfile's float read gives). An encoder that did not compute the sum writes 16 zero bytes: nothing is checked.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

_INT32_SCALE = np.float32(2.0**-31)


def streaminfo_md5(head: bytes) -> tuple[bytes, int] | None:
    """``(md5, bits_per_sample)`` from a FLAC file's first bytes, or ``None`` (not FLAC, no sum, odd layout)."""
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # block 0 must be STREAMINFO
        return None
    (length,) = struct.unpack(">I", b"\x00" + head[5:8])
    if length < 34:
        return None
    info = head[8 : 8 + 34]
    bits = ((info[12] & 0x01) << 4 | info[13] >> 4) + 1
    md5 = bytes(info[18:34])
    if md5 == bytes(16) or bits not in (8, 16, 24, 32):
        return None
    return md5, bits


def read_head(path: Path | str | bytes, n_bytes: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n_bytes)
    except OSError:
        return b""


class FlacChecksum:
    """Hash int32 ``(n_frames, n_channels)`` blocks as the encoder did; :meth:`matches` at the end."""

    def __init__(self, expected: bytes, bits: int) -> None:
        self.expected = expected
        self.bits = bits
        self._md5 = hashlib.md5(usedforsecurity=False)

    def update(self, block: np.ndarray) -> None:
        """``block`` is int32 ``(n_frames, n_channels)``, left-justified (libsndfile's int read)."""
        if self.bits == 16:
            self._md5.update((block >> 16).astype("<i2").tobytes())
        elif self.bits == 8:
            self._md5.update((block >> 24).astype("i1").tobytes())
        elif self.bits == 24:
            wide = (block >> 8).astype("<i4")
            self._md5.update(wide.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
        else:
            self._md5.update(block.astype("<i4").tobytes())

    def matches(self) -> bool:
        return self._md5.digest() == self.expected


def int32_to_float(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Exact float32 values of left-justified int32 samples, written into ``out`` (same shape)."""
    np.multiply(block, _INT32_SCALE, out=out, casting="unsafe")
    return out
