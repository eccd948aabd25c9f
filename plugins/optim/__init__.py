"""The optimisation-based inversion baseline, registered as ``optim.mv15``, ``optim.mv15_paper`` and ``optim.robust``.

The method lives in ``optimization.py`` (one module, read top to bottom); this file only registers its presets.
"""

from __future__ import annotations

from functools import partial

import invkit

from .optimization import (
    OptimConfig,
    OptimInverter,
    alpha_norm,
    build,
    logit_cosine,
    logit_loss,
    total_variation,
)

__all__ = ["OptimConfig", "OptimInverter", "alpha_norm", "build", "logit_cosine", "logit_loss", "total_variation"]


@invkit.hookimpl
def register_inverters(register):
    register(
        "optim.mv15",
        partial(build, "mv15"),
        description="Mahendran & Vedaldi 2015 image optimisation: logit match + TV + alpha-norm, jitter",
        options=OptimConfig,  # invkit checks --option names and types against it
    )
    register(
        "optim.mv15_paper",
        partial(build, "mv15_paper"),
        description="Mahendran & Vedaldi 2015 as optim.mv15, with their optimiser: momentum 0.9 gradient descent, "
        "decaying step",
        options=OptimConfig,
    )
    register(
        "optim.robust",
        partial(build, "robust"),
        description="Engstrom et al. 2019 setting: match the penultimate representation (normalised L2), L2 PGD "
        "steps, no image prior (robust classifiers)",
        options=OptimConfig,
    )
