"""invkit's built-in probes: every experiment of Teterwak et al. 2021 and its supplement.

Registered through the ``invkit`` entry-point group like any third-party plugin. Each probe is a class that
declares a frozen options dataclass as ``options`` (its fields are the ``--option key=value`` names, checked by
invkit) and a ``run(ctx)`` that writes PNG figures into ``ctx.out`` and returns the numbers, figures, captions and
tables; invkit renders ``index.html`` from them. See docs/probes.md.
"""

from __future__ import annotations

import invkit

from .class_spread import ClassSpread
from .failures import FGSM, Misclassified
from .fit import BrightnessFit, SharpnessFit
from .interpolate import LogitInterpolate, NoiseInterpolate
from .manipulate import LogitPerturb, LogitScale, LogitShift
from .mirror import Mirror
from .noise import NoiseResample
from .ood import OOD
from .rotation import Rotation
from .stability import IterativeStability

PROBES = {
    "noise-resample": NoiseResample,
    "mirror": Mirror,
    "logit-interpolate": LogitInterpolate,
    "noise-interpolate": NoiseInterpolate,
    "logit-shift": LogitShift,
    "logit-scale": LogitScale,
    "logit-perturb": LogitPerturb,
    "misclassified": Misclassified,
    "fgsm": FGSM,
    "ood": OOD,
    "iterative-stability": IterativeStability,
    "brightness-fit": BrightnessFit,
    "sharpness-fit": SharpnessFit,
    "rotation": Rotation,
    "class-spread": ClassSpread,
}


@invkit.hookimpl
def register_probes(register):
    for name, cls in PROBES.items():
        register(name, cls, description=cls.description)
