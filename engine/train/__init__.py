"""Training of the separation models (issue 4).

- :mod:`~engine.train.config`: ``configs/<architecture>.json`` -> :class:`TrainConfig` (model kwargs + settings).
- :mod:`~engine.train.losses`: magnitude-MSE and waveform-L1 losses, the cheap validation uSDR.
- :mod:`~engine.train.loop`: :func:`fit` / :func:`train` (checkpoints and resume, early stopping, CSV log,
  AMP, ``torch.compile``, DistributedDataParallel under ``torchrun``).
- :mod:`~engine.train.export`: a run's best weights -> ``resources/models/<name>/`` with its card.

The CLI is ``shotoku train MODEL --data DIR [--config FILE]`` (``engine/cli/cmd_train.py``).
"""
