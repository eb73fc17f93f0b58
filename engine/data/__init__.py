"""Training data: the synthetic multitrack corpus (``engine.data.synth``) and loaders for real data.

- ``engine.data.musdb``: MUSDB18-HQ folders and MUSDB18 ``.stem.mp4`` (``MusdbDataset``, ``iter_tracks``,
  ``ChunkSampler``, ``scan_split``), with validation of bad tracks.
- ``engine.data.unpaired``: mixtures and isolated sources from disjoint pools (``UnpairedSampler``,
  ``unpaired_dataset``).
- ``engine.data.augment``: per-stem gain and channel swap.

Nothing here imports pyfluidsynth or pyworld at import time; the app starts without them.
"""
