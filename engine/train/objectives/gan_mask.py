"""The GAN-only masking baseline of the semi-supervised papers (Table 1, "GAN"): a masking function trained only so
that masked mixtures are indistinguishable from S_C's instrumental recordings by one discriminator.

It is the semi-supervised objective (``engine/train/objectives/semisup.py``) with every term off but the
discriminator of domain C: ``L_g = GAN_C`` (weight 1), ``L_dC`` as eq. 9. Same network (``semisup``), front end,
data, optimiser and schedule, so the comparison isolates the losses. ``objective_args`` as the semisup objective's
(``weights`` can turn other terms back on).
"""

from __future__ import annotations

from engine.train.objectives import register_objective
from engine.train.objectives.semisup import SemisupObjective

#: Only the GAN term of domain C.
GAN_ONLY_WEIGHTS = {"R1": 0.0, "R2": 0.0, "R3": 0.0, "R4": 0.0, "GAN_C": 1.0, "GAN_A": 0.0}


@register_objective("gan_mask")
class GanMaskObjective(SemisupObjective):
    """``g(a) = a * m(a)`` trained with ``l(d_C(g(a)), 1)`` alone; ``d_C`` with eq. 9."""

    default_weights = GAN_ONLY_WEIGHTS
