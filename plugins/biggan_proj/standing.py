"""Standing batch-norm statistics for the (EMA) BigGAN generator used for inversion.

The paper's compare_gan config sets ``standardize_batch.use_moving_averages = False``: at evaluation the generator
does not normalise with moving averages collected during training under the *raw* weights, but with statistics
computed for the weights being evaluated. BigGAN (Brock et al. 2019, Sec. 3.1 and BigGAN-PyTorch's
``accumulate_standing_stats``) calls these *standing statistics*: reset every batch-norm's statistics, run the
generator in training mode over many (noise, condition) batches, and keep the cumulative average.

Here the condition is a logit vector, so the batches are logits of real images (their distribution is what the
inverter sees), each with fresh noise. ``accumulate_standing_stats`` returns a copy of the inverter whose
batch-norm buffers hold those statistics and whose config says so (``bn_stats = "standing"``,
``standing_batches``); ``model.safetensors`` of such a copy stores them in the usual ``running_mean`` /
``running_var`` buffers, so any invkit version loads it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from invkit.errors import InputError


@torch.no_grad()
def accumulate_standing_stats(
    inverter: nn.Module, logits_batches: Iterable[torch.Tensor], generator: torch.Generator | None = None
) -> nn.Module:
    """A copy of a ``BigGANInverter`` with standing batch-norm statistics.

    Args:
        inverter: a ``BigGANInverter`` (typically the EMA copy); it is not modified.
        logits_batches: ``(N, num_classes)`` logit tensors, one per accumulation batch (BigGAN-PyTorch uses 16
            batches). Each is paired with fresh standard-normal noise of ``noise_dim``.
        generator: CPU random generator for that noise (seed it for reproducible statistics).

    Returns:
        The copy, in eval mode, with ``config.bn_stats == "standing"`` and ``config.standing_batches`` set.

    Raises:
        InputError: no batches, or a batch of the wrong shape.
    """
    batches = list(logits_batches)
    if not batches:
        raise InputError("standing statistics need at least one batch of logits; give --batches 1 or more.")
    inv = copy.deepcopy(inverter)
    inv.eval()  # spectral norm stays in eval mode: no power iteration changes u/v while accumulating
    norms = [m for m in inv.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over the accumulation batches
        m.train()
    device = inv.device
    for logits in batches:
        logits = inv.check_logits(logits).to(device, torch.float32)
        noise = torch.randn(logits.shape[0], inv.noise_dim, generator=generator).to(device)
        inv.generator(noise, logits)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    inv.config = dataclasses.replace(inv.config, bn_stats="standing", standing_batches=len(batches))
    return inv
