"""The Dosovitskiy & Brox (2016) baseline inverter, registered as ``dosovitskiy_brox.<preset>``.

The method lives in ``deepsim.py`` (one module, read top to bottom); this file only registers its presets.
"""

from __future__ import annotations

from functools import partial

import invkit

from .deepsim import (
    Comparator,
    Discriminator,
    DosovitskiyBroxConfig,
    DosovitskiyBroxInverter,
    DosovitskiyBroxTrainer,
    adversarial_loss,
    build,
    discriminator_loss,
    feature_loss,
    pixel_loss,
)

__all__ = [
    "Comparator",
    "Discriminator",
    "DosovitskiyBroxConfig",
    "DosovitskiyBroxInverter",
    "DosovitskiyBroxTrainer",
    "adversarial_loss",
    "build",
    "discriminator_loss",
    "feature_loss",
    "pixel_loss",
]


def _learned(tag: str) -> partial:
    factory = partial(build, tag)
    factory.trainable = True  # type: ignore[attr-defined]  # learned: read before building (no weights yet)
    return factory


@invkit.hookimpl
def register_inverters(register):
    register(
        "dosovitskiy_brox.paper",
        _learned("paper"),
        description="Dosovitskiy & Brox 2016 up-conv decoder + DeePSiM losses, paper widths (fc 4096x3)",
    )
    register(
        "dosovitskiy_brox.mnist",
        _learned("mnist"),
        description="Dosovitskiy & Brox 2016 decoder, small widths for 32x32 MNIST (~1 MB)",
    )
