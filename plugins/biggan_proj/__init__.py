"""The ``biggan_proj`` inverter plugin: BigGAN with a projection discriminator, conditioned on logits.

The method lives in ``model.py`` (Teterwak et al., ICML 2021); this module registers its presets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import invkit

from .model import BigGANConfig, BigGANInverter, BigGANTrainer, BigGANTrainerOptions, Discriminator, Generator

__all__ = [
    "BigGANConfig",
    "BigGANInverter",
    "BigGANTrainer",
    "BigGANTrainerOptions",
    "Discriminator",
    "Generator",
    "PRESETS",
]

PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "paper": (
        {  # the paper's own code, compare_gan, where it differs from BigGAN-PyTorch (issue 22)
            "upsample": "unpool",
            "cbn": "compare_gan",
            "d_shortcut": "none",
            "d_input_range": "0..1",
            "init": "compare_gan",
        },
        "BigGAN-projection inverter of Teterwak et al. 2021, 64x64, ch=96, compare_gan's G and D (the paper's setting)",
    ),
    "res128": ({"resolution": 128}, "the paper's inverter at 128x128 (BigGAN 128 layout, ch=96)"),
    "mnist32": (
        {
            "resolution": 32,
            "ch": 8,
            "cbn_hidden": 64,
            "g_attention": 16,
            "d_attention": 16,
            "g_lr": 4e-4,
            "ema_decay": 0.995,
            "ema_start": 250,
            "adam_eps": 1e-6,  # what the shipped demo checkpoints were trained with (paper: 1e-8)
        },
        "small 32x32 variant (ch=8, attention at 16) for MNIST on a CPU; same method, G lr 4e-4, short EMA",
    ),
}


def _factory(tag: str):
    """The factory registered as ``biggan_proj.<tag>`` (its preset from ``PRESETS``)."""
    preset, _ = PRESETS[tag]

    def factory(classifier: Any = None, **config: Any) -> BigGANInverter:
        """A new, untrained BigGAN-projection inverter (Teterwak et al., ICML 2021; the method is in ``model.py``).

        Values are applied in order: the preset, then the classifier's shape, then ``config``.

        Args:
            classifier: the frozen ``invkit.Classifier`` to invert; sets ``num_classes`` (its logit dimension) and
                ``channels`` (from its ``input_size``). None keeps the preset's (1000 logits, 3 channels).
            **config: ``BigGANConfig`` fields, e.g. ``resolution`` (32, 64 or 128 px) or ``ch``; their names and types
                are checked by ``invkit.create_inverter``/``load_inverter`` before this call (``check_options``).

        Returns:
            The inverter, with ``registry_name`` ``biggan_proj.<tag>``.

        Raises:
            InputError: a resolution other than 32, 64 or 128; a ``noise_dim`` that is not a positive multiple of the
                number of noise chunks; an unknown ``bn_stats``.
        """
        merged = dict(preset)
        if classifier is not None:
            merged["num_classes"] = classifier.config.num_classes
            merged["channels"] = classifier.config.input_size[0]
        merged.update(config)  # names and types checked by invkit before this call (options=BigGANConfig)
        inv = BigGANInverter(replace(BigGANConfig(), **merged))
        inv.registry_name = f"biggan_proj.{tag}"
        return inv

    return factory  # learned: BigGANInverter.trainable, read from the return annotation before building


@invkit.hookimpl
def register_inverters(register) -> None:
    for tag, (_, description) in PRESETS.items():
        register(f"biggan_proj.{tag}", _factory(tag), description=description, options=BigGANConfig)
