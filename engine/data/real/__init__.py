"""Real recordings without stems, fetched from Debian packages by command (never committed).

- ``engine.data.real.sources``: the catalogue of packages (what each contributes, its licence), the pieces left out
  and why, and the reserved packages that are refused everywhere.
- ``engine.data.real.splits``: the deterministic split of real instrumental pieces into ``train``, ``unpaired_c``,
  ``unpaired_a`` and ``check``.
- ``engine.data.real.fetch``: ``shotoku dataset fetch``: download, unpack, decode into pools, write the manifest.
- ``engine.data.real.pool``: read the manifest and draw excerpts of pieces of one split.
"""
