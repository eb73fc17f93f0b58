"""Handing a memory-mapped file's pages back to the OS (``madvise(MADV_DONTNEED)``), in one place.

Hand-written because no library wraps it: numpy's ``memmap`` exposes the ``mmap`` object but nothing that releases a
span of it. Three readers use it (the decoded-input spool, the separator's scans, the stem cache).

A span is widened backwards by :data:`FOLIO_SLACK` before it is released. A read or write fault on a file with large
page-cache folios maps the whole folio, including pages *behind* the faulting one that an earlier call had already
released; a row that does not start on a folio boundary (the second channel of a ``(2, n)`` float32 file almost never
does) would otherwise keep about one folio per call resident, and a 2 GiB input stayed at ~2 GB (measured,
``tests/engine/test_hostile_cli.py::test_separate_survives[sparse_2gb_wav]``). Releasing pages that are still wanted
is harmless for a shared mapping: they are read again from the file.
"""

from __future__ import annotations

import mmap

#: How far back (bytes) every release reaches: the largest page-cache folio a read fault maps whole (PMD size).
FOLIO_SLACK = 2 << 20


def release_rows(mm: mmap.mmap, row_offsets: list[int], itemsize: int, start: int, stop: int,
                 row_items: int) -> None:  # fmt: skip
    """Release items ``[start, stop)`` of each row of a row-major array mapped by ``mm``.

    Args:
        mm: the mapping (shared; never a copy-on-write one, whose dropped pages would lose their changes).
        row_offsets: byte offset in ``mm`` of each row's first item.
        itemsize: bytes per item.
        start, stop: the item span (clamped to ``[0, row_items]``).
        row_items: items per row; the widened span never reaches into the row before.
    """
    if not hasattr(mmap, "MADV_DONTNEED") or not hasattr(mm, "madvise"):
        return
    start, stop = max(0, start), min(row_items, stop)
    if stop <= start:
        return
    page = mmap.PAGESIZE
    for offset in row_offsets:
        lo = max(offset, offset + start * itemsize - FOLIO_SLACK)
        hi = offset + stop * itemsize
        lo, hi = -(-lo // page) * page, hi // page * page
        if hi > lo:
            try:
                mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (OSError, ValueError):
                return
