"""The stem store: separated stems kept on disk, memory-mapped for playback, with LRU eviction.

One entry per (audio content, model name, weights sha256) lives in ``cache_dir()/stems/<key>/``:

- ``stems.f32``: raw float32, C order, shape ``(n_stems, n_channels, n_samples)``, memory-mapped;
- ``meta.json``: shape, sources, samplerate, region length, the regions known to be final with one CRC-32 each,
  and the last-used time (for least-recently-used eviction).

A region (``region_samples`` samples, the last one shorter) is recorded in ``meta.json`` only after its samples
were written, with the CRC-32 of those samples. A reader re-checks each region's CRC before trusting it
(:meth:`StemEntry.verify`), so a partial entry resumes where it stopped and a corrupt region is recomputed.
A ``meta.json`` that cannot be read, holds a value of the wrong type or range (:func:`meta_problem`), or disagrees
with the data file's size throws the entry away: it is recomputed, with one warning line saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_text
from engine.audio.pages import release_rows
from engine.errors import SeparationCancelled
from engine.paths import cache_dir

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATA_FILE = "stems.f32"
META_FILE = "meta.json"
#: Default region length: 2**17 samples (~3 s at 44.1 kHz).
DEFAULT_REGION_SAMPLES = 1 << 17
#: Default cache size limit: 8 GiB (about 40 minutes of 4 stereo stems at 44.1 kHz).
DEFAULT_MAX_BYTES = 8 << 30

_open_keys: dict[str, int] = {}
_open_lock = threading.Lock()


def cache_key(samples: np.ndarray, samplerate: int, model_name: str, weights_sha256: str | None,
              cancel: Callable[[], bool] | None = None) -> str:
    """Hex key of an entry: sha256 over the audio samples ``(n_channels, n_samples)``, its rate and the model.

    ``cancel`` is asked between slices (a long song takes seconds to hash on a busy machine); when it returns True
    this raises :class:`~engine.errors.SeparationCancelled` (the playback side closes within its bound).
    """
    digest = hashlib.sha256()
    digest.update(f"shotoku-stems-v{FORMAT_VERSION}|{model_name}|{weights_sha256 or '-'}|{samplerate}|".encode())
    digest.update(f"{samples.shape}|{samples.dtype.str}|".encode())
    data = np.ascontiguousarray(samples)
    step = 1 << 22  # hash in slices: hashlib releases the GIL on large buffers
    flat = data.reshape(-1).view(np.uint8)
    for offset in range(0, flat.size, step):
        if cancel is not None and cancel():
            raise SeparationCancelled()
        digest.update(flat[offset:offset + step].data)
    return digest.hexdigest()[:40]


def region_crc(stems: np.ndarray, start: int, stop: int) -> int:
    """CRC-32 of samples ``[start, stop)`` of every row of ``stems`` ``(n_stems, n_channels, n_samples)``."""
    crc = 0
    for s in range(stems.shape[0]):
        for c in range(stems.shape[1]):
            crc = zlib.crc32(stems[s, c, start:stop].data, crc)
    return crc


def drop_pages(array: np.memmap, start: int, stop: int) -> None:
    """Unmap the pages holding samples ``[start, stop)`` of every row of a C-order memmap ``(..., n_samples)``.

    The data stays in the file (and the OS page cache); the process just stops holding those pages until it
    reads them again. Used where a process wrote or checked a span it will not read again soon.
    """
    mm = getattr(array, "_mmap", None)
    if mm is None:
        return
    n_samples, itemsize = array.shape[-1], array.itemsize
    base_offset = getattr(array, "offset", 0)
    rows = [base_offset + row * n_samples * itemsize for row in range(int(np.prod(array.shape[:-1])))]
    release_rows(mm, rows, itemsize, start, stop, n_samples)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def meta_problem(meta: object) -> str | None:
    """What makes a parsed ``meta.json`` unusable (a wrong type or range), in words, or None when it is usable."""
    if not isinstance(meta, dict):
        return "is not a JSON object"
    if meta.get("version") != FORMAT_VERSION:
        return f"has version {meta.get('version')!r}, not {FORMAT_VERSION}"
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(n) and n >= 0 for n in shape)
            and shape[0] >= 1 and shape[1] >= 1):  # fmt: skip
        return f"has a bad shape {shape!r}"
    sources = meta.get("sources")
    if not (isinstance(sources, list) and len(sources) == shape[0] and all(isinstance(s, str) for s in sources)):
        return f"has bad sources {sources!r}"
    for key in ("samplerate", "region_samples"):
        if not (_is_int(meta.get(key)) and meta[key] > 0):
            return f"has a bad {key} {meta.get(key)!r}"
    regions = meta.get("regions")
    if not isinstance(regions, dict):
        return "has no region table"
    for k, crc in regions.items():
        if not (isinstance(k, str) and k.isdigit() and _is_int(crc) and 0 <= crc < 2**32):
            return f"has a bad region entry {k!r}: {crc!r}"
    for key in ("last_used", "created"):
        value = meta.get(key, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            return f"has a bad {key} {value!r}"
    if "info" in meta and not isinstance(meta["info"], dict):
        return "has a bad info field"
    return None


@dataclass(frozen=True)
class EntryInfo:
    """One cache entry as listed by :meth:`StemCache.entries`."""

    key: str
    path: Path
    size_bytes: int
    last_used: float
    complete: bool


class StemEntry:
    """An open cache entry: the memory-mapped stems and the record of which regions are final.

    Attributes:
        stems: ``numpy.memmap`` ``(n_stems, n_channels, n_samples)`` float32, writable.
        recorded: ``(n_regions,)`` uint8, 1 where ``meta.json`` lists the region as final (not yet re-verified).
    """

    def __init__(self, path: Path, meta: dict, stems: np.memmap) -> None:
        self.path = path
        self.key = path.name
        self._meta = meta
        self.stems = stems
        self.sources: list[str] = list(meta["sources"])
        self.samplerate: int = int(meta["samplerate"])
        self.region_samples: int = int(meta["region_samples"])
        self.n_samples: int = int(meta["shape"][2])
        self.n_regions: int = max(1, -(-self.n_samples // self.region_samples))
        self.recorded = np.zeros(self.n_regions, dtype=np.uint8)
        for k in meta["regions"]:
            if 0 <= int(k) < self.n_regions:
                self.recorded[int(k)] = 1
        self._lock = threading.Lock()
        self._closed = False

    def region_bounds(self, k: int) -> tuple[int, int]:
        """Samples ``[start, stop)`` of region ``k``."""
        start = k * self.region_samples
        return start, min(self.n_samples, start + self.region_samples)

    def region_of(self, sample: int) -> int:
        """The region holding ``sample`` (clamped to the last region)."""
        return min(self.n_regions - 1, max(0, sample) // self.region_samples)

    @property
    def complete(self) -> bool:
        return bool(self.recorded.all())

    def write(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` ``(n_stems, n_channels, n)`` at sample ``start`` (not recorded as final yet)."""
        stop = min(self.n_samples, start + block.shape[-1])
        self.stems[:, :, start:stop] = block[:, :, : stop - start]

    def _crc(self, k: int) -> int:
        return region_crc(self.stems, *self.region_bounds(k))

    def mark_done(self, k: int, crc: int | None = None) -> None:
        """Record region ``k`` as final: its CRC (computed here unless given) goes into ``meta.json``."""
        crc = self._crc(k) if crc is None else int(crc)
        with self._lock:
            self._meta["regions"][str(k)] = crc
            self.recorded[k] = 1
            self._save_meta()

    def verify(self, k: int) -> bool:
        """True if region ``k`` is recorded and its samples still match the recorded CRC; else forgets it."""
        with self._lock:
            expected = self._meta["regions"].get(str(k))
        if expected is None:
            return False
        if self._crc(k) == int(expected):
            return True
        log.warning("stem cache %s: region %d is corrupt, recomputing it", self.key, k)
        with self._lock:
            self._meta["regions"].pop(str(k), None)
            self.recorded[k] = 0
            self._save_meta()
        return False

    def touch(self) -> None:
        """Record now as the entry's last use."""
        with self._lock:
            self._meta["last_used"] = time.time()
            self._save_meta()

    def _save_meta(self) -> None:
        if self._closed:
            return
        # No fsync: a lost or stale meta only means recomputing regions (each one is CRC-checked before use), and
        # this runs once per region while the stream is being separated.
        atomic_write_text(self.path / META_FILE, json.dumps(self._meta), fsync=False)

    def close(self) -> None:
        """Release the mapping (the file stays in the cache)."""
        if self._closed:
            return
        self._closed = True
        with _open_lock:
            count = _open_keys.get(self.key, 0) - 1
            if count <= 0:
                _open_keys.pop(self.key, None)
            else:
                _open_keys[self.key] = count
        # Never close the mmap explicitly: the audio callback may still read it through the mixer. The mapping
        # is released when the last array referring to it is garbage-collected.
        self.stems = None  # type: ignore[assignment]


class StemCache:
    """The folder of stem entries with a size limit (least-recently-used entries are evicted first).

    Args:
        root: folder of entries (default ``cache_dir()/stems``; ``SHOTOKU_CACHE`` moves ``cache_dir()``).
        max_bytes: the limit on the summed size of all entries' data files.
    """

    def __init__(self, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "stems"
        self.max_bytes = int(max_bytes)

    def open(
        self,
        key: str,
        sources: list[str],
        n_channels: int,
        n_samples: int,
        samplerate: int,
        region_samples: int = DEFAULT_REGION_SAMPLES,
        info: dict | None = None,
    ) -> StemEntry:
        """Open entry ``key``, creating it (empty) when it is missing, unreadable or of another shape.

        Opening an entry marks it used now and evicts least-recently-used other entries while the cache is over
        its limit. ``info`` (model name, source file, ...) is stored in ``meta.json`` for people reading it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / key
        shape = [len(sources), n_channels, n_samples]
        meta = self._read_meta(path)
        size = int(np.prod(shape)) * 4
        if meta is not None and (
            meta.get("shape") != shape
            or meta.get("sources") != list(sources)
            or meta.get("samplerate") != samplerate
            or meta.get("region_samples") != region_samples
            or (path / DATA_FILE).stat().st_size != size
        ):
            log.warning("stem cache %s: entry does not match (shape or size), recomputing it", key)
            meta = None
        if meta is None:
            self.evict(reserve_bytes=size, keep=key)
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            with open(path / DATA_FILE, "wb") as handle:
                handle.truncate(size)
            meta = {
                "version": FORMAT_VERSION,
                "shape": shape,
                "sources": list(sources),
                "samplerate": samplerate,
                "region_samples": region_samples,
                "regions": {},
                "created": time.time(),
                "last_used": time.time(),
                "info": info or {},
            }
        stems = np.memmap(path / DATA_FILE, dtype=np.float32, mode="r+", shape=tuple(shape))
        entry = StemEntry(path, meta, stems)
        with _open_lock:
            _open_keys[key] = _open_keys.get(key, 0) + 1
        entry.touch()
        self.evict(keep=key)
        return entry

    @staticmethod
    def _read_meta(path: Path, warn: bool = True) -> dict | None:
        """The entry's meta when it is usable, else None (with a warning naming the problem when ``warn``)."""
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            problem: str | None = f"cannot be read ({type(err).__name__})"
        else:
            problem = meta_problem(meta)
            if problem is None and not (path / DATA_FILE).is_file():
                problem = f"its {DATA_FILE} is missing"
        if problem is not None:
            if warn:
                log.warning("stem cache %s: %s %s, recomputing the entry", path.name, META_FILE, problem)
            return None
        return meta

    def entries(self) -> list[EntryInfo]:
        """Every entry, least recently used first (unreadable ones count as oldest)."""
        result = []
        if not self.root.is_dir():
            return result
        for path in self.root.iterdir():
            if not path.is_dir():
                continue
            meta = self._read_meta(path, warn=False)
            data = path / DATA_FILE
            size = data.stat().st_size if data.is_file() else 0
            if meta is None:
                result.append(EntryInfo(path.name, path, size, 0.0, False))
                continue
            n_regions = max(1, -(-int(meta["shape"][2]) // int(meta["region_samples"])))
            result.append(
                EntryInfo(path.name, path, size, float(meta.get("last_used", 0.0)), len(meta["regions"]) >= n_regions)
            )
        return sorted(result, key=lambda e: e.last_used)

    def size_bytes(self) -> int:
        """Summed size of all entries' data files."""
        return sum(e.size_bytes for e in self.entries())

    def evict(self, reserve_bytes: int = 0, keep: str | None = None) -> list[str]:
        """Delete least-recently-used entries until the cache plus ``reserve_bytes`` fits ``max_bytes``.

        Entries open in this process and ``keep`` are never deleted. Returns the deleted keys.
        """
        entries = self.entries()
        total = sum(e.size_bytes for e in entries) + reserve_bytes
        deleted = []
        with _open_lock:
            busy = set(_open_keys)
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.key == keep or entry.key in busy:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size_bytes
            deleted.append(entry.key)
            log.info("stem cache: evicted %s (%d MB)", entry.key, entry.size_bytes >> 20)
        return deleted

    def clear(self) -> None:
        """Delete every entry that is not open."""
        with _open_lock:
            busy = set(_open_keys)
        for entry in self.entries():
            if entry.key not in busy:
                shutil.rmtree(entry.path, ignore_errors=True)
