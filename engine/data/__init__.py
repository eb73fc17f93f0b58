"""Training data: the synthetic multitrack corpus (``engine.data.synth``) and loaders for real data.

- ``engine.data.musdb``: MUSDB18-HQ folders and MUSDB18 ``.stem.mp4`` (``MusdbDataset``, ``iter_tracks``,
  ``ChunkSampler``, ``scan_split``), with validation of bad tracks.
- ``engine.data.unpaired``: mixtures and isolated sources from disjoint pools (``UnpairedSampler``,
  ``unpaired_dataset``).
- ``engine.data.known``: chunks with a known-stem mask, for songs over real accompaniment beside ordinary tracks
  (``KnownStemsDataset``, ``KnownSampler``, ``iter_known_tracks``).
- ``engine.data.real``: real recordings without stems from Debian packages (``shotoku dataset fetch``): sources,
  licences, reserved packages, the split by piece, the pools.
- ``engine.data.augment``: per-stem gain and channel swap.

Nothing here imports pyfluidsynth, pyworld or pedalboard at import time; the app starts without them.
"""
