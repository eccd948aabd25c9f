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
    DosovitskiyBroxTrainerOptions,
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
    "DosovitskiyBroxTrainerOptions",
    "adversarial_loss",
    "build",
    "discriminator_loss",
    "feature_loss",
    "pixel_loss",
]


@invkit.hookimpl
def register_inverters(register):
    # learned: DosovitskiyBroxInverter.trainable, read from build's return annotation before building anything
    register(
        "dosovitskiy_brox.paper",
        partial(build, "paper"),
        description="Dosovitskiy & Brox 2016 up-conv decoder + DeePSiM losses, paper widths (fc 4096x3)",
        options=DosovitskiyBroxConfig,  # invkit checks --option names and types against it
    )
    register(
        "dosovitskiy_brox.mnist",
        partial(build, "mnist"),
        description="Dosovitskiy & Brox 2016 decoder, small widths for 32x32 MNIST (~1 MB)",
        options=DosovitskiyBroxConfig,
    )
