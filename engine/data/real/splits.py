"""The deterministic split of real instrumental pieces into disjoint sets, by whole piece.

A piece's split is a pure function of its package and its group name (the piece's file stem, or the shared name of
several versions of one composition, see :data:`~engine.data.real.sources.PIECE_GROUPS`):
``u = int(sha256("shotoku-real-v1/<package>/<group>")[:16], 16) / 2**64`` and the split is the first whose
cumulative fraction exceeds ``u`` in the order of :data:`SPLITS`. Adding or removing other pieces never moves a
piece to another split.
"""

from __future__ import annotations

import hashlib

from engine.data.real.sources import PIECE_GROUPS

#: (split, fraction) in the order the hash interval is cut.
#: ``train``: accompaniment of training mixtures (issue 11); ``valid``: accompaniment of the corpus's real-
#: accompaniment validation tracks (model selection, so that nobody selects on ``check``); ``unpaired_c``: the real
#: instrumental-only pool S_C (issue 12); ``unpaired_a``: accompaniment of issue 12's mixtures S_A; ``check``:
#: real-accompaniment evaluation pieces, never used for training or selection.
SPLITS: tuple[tuple[str, float], ...] = (("train", 0.45), ("valid", 0.05), ("unpaired_c", 0.2), ("unpaired_a", 0.15),
                                         ("check", 0.15))
SPLIT_NAMES = tuple(name for name, _ in SPLITS)
SPLIT_SALT = "shotoku-real-v1"


def group_of(package: str, piece: str) -> str:
    """The name the split hashes: ``piece`` or the group it shares with other versions of one composition."""
    return PIECE_GROUPS.get((package, piece), piece)


def split_value(package: str, piece: str) -> float:
    """The piece's point in [0, 1) (a pure function of its package and group name)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}/{package}/{group_of(package, piece)}".encode()).hexdigest()
    return int(digest[:16], 16) / 2.0**64


def split_of(package: str, piece: str) -> str:
    """The split of one piece: one of :data:`SPLIT_NAMES`."""
    u = split_value(package, piece)
    edge = 0.0
    for name, fraction in SPLITS:
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1][0]
