"""Training as a library: one trainer, pluggable objectives.

- :mod:`~engine.train.config`: ``configs/<name>.json`` -> :class:`TrainConfig` (architecture, its arguments, the
  objective and its arguments, the settings).
- :mod:`~engine.train.trainer`: :class:`Trainer` (epochs, data order, validation, checkpoint/resume, early
  stopping, logging); :mod:`~engine.train.run`: :func:`fit` / :func:`train` in one call.
- :mod:`~engine.train.objectives`: the :class:`Objective` contract (networks, optimizers, schedulers, the step) and
  the registry; ``supervised`` ships, adversarial and variational methods plug in beside it.
- :mod:`~engine.train.losses`: supervised separation losses, least-squares GAN and ELBO terms.
- :mod:`~engine.train.runtime`: device, torchrun process group, seeding, autocast, the DDP wrap.
- :mod:`~engine.train.checkpoint`: the resumable safetensors checkpoint and the best weights.
- :mod:`~engine.train.validation`: uSDR per stem (:func:`engine.evaluate.metrics.usdr`), silent stems left out.
- :mod:`~engine.train.runlog`: CSV/TensorBoard log and early stopping's bookkeeping.
- :mod:`~engine.train.export`: a run's best weights -> ``resources/models/<name>/`` with its card.

The CLI is ``shotoku train NAME --data DIR [--config FILE] [--out DIR]`` (``engine/cli/cmd_train.py``).
"""
