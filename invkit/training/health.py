"""Checks that refuse or stop an inverter run, and the sample grids they look at.

Before anything is written, ``_check_memory`` refuses a batch larger than the data set or one that cannot fit in
memory. While the run goes on, the loop stops with ``TrainingError`` (one line) on a non-finite loss or weight
(``_bad_losses``, ``_all_finite``), on a loss stuck at one value for ``stuck_steps`` steps, or on samples that no
longer depend on their logits (collapse, ``_health``); the last good checkpoint is kept, and a checkpoint is only
written if it passes the same health check. The sample grids ``OUT/samples/step_NNNNNN.png`` (held-out images above
their reconstructions from fixed logits and fixed noise, ``_samples``) are drawn from the samples that check
measures; sampling never moves the training RNG.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.classifier import Classifier
from ..core.inverter import Inverter, InverterTrainer
from ..errors import TrainingError
from .config import TrainConfig

SAMPLES = "samples"


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in [*module.parameters(), *module.buffers()]), torch.device("cpu"))


def _check_memory(
    config: TrainConfig, classifier: Classifier, inverter: Inverter, n_images: int, device: torch.device, world: int
) -> None:
    """Refuse, before anything is written, a batch larger than the data set or one that cannot fit in memory
    (a lower-bound estimate from one forward pass of two images; see ``invkit.utils.memory``)."""
    from ..utils.memory import activation_bytes, check_fits, parameter_bytes

    if config.batch_size > n_images:
        raise TrainingError(
            f"--batch-size {config.batch_size} is larger than the {n_images} training images; use at most {n_images}."
        )
    was_training = inverter.training
    inverter.eval()  # no running statistics or power iterations change, and no global RNG is drawn from
    try:
        x = torch.zeros(2, *classifier.config.input_size, device=_device_of(classifier))
        per_cls = activation_bytes([classifier], lambda: classifier.logits(x)) / 2
        with torch.no_grad():  # conditioned on a layer: that layer's pooled activations (TrainConfig.layer)
            logits = classifier.features(x, config.layer) if config.layer else classifier.logits(x)
        inv_device = _device_of(inverter)
        g = torch.Generator(device=inv_device).manual_seed(0)
        per_inv = activation_bytes([inverter], lambda: inverter.invert(logits.to(inv_device), generator=g)) / 2
    finally:
        inverter.train(was_training)
    scale = 0.5 if config.precision == "bf16" else 1.0
    per_image = int(scale * (2 * per_inv + per_cls))  # the inverter's activations and their gradients
    fixed = 5 * parameter_bytes([inverter]) + parameter_bytes([classifier])  # + grads, Adam moments, EMA
    # each process holds its share of the global batch; the message speaks of the global batch
    share = config.batch_size // max(world, 1)
    check_fits("--batch-size", share, per_image, fixed, device, TrainingError, scale=max(world, 1))


def _bad_losses(
    losses: dict[str, float], history: dict[str, deque], stuck_steps: int, step: int
) -> tuple[str | None, int | None]:
    """Why the run must stop after these losses (non-finite, or a loss stuck for ``stuck_steps``), or None; and
    the step the trouble began when it began earlier (a stuck loss: checkpoints after it are suspect)."""
    bad = [k for k, v in losses.items() if not np.isfinite(v)]
    if bad:
        return f"loss {bad[0]} is {losses[bad[0]]}", None
    if stuck_steps:
        for k, v in losses.items():
            if "loss" in k:
                h = history.setdefault(k, deque(maxlen=stuck_steps))
                h.append(v)
                if len(h) == stuck_steps and max(h) - min(h) <= 1e-7 * max(1.0, abs(v)):
                    return f"loss {k} has stayed at {v:.6g} for {stuck_steps} steps (collapse)", step - stuck_steps
    return None, None


def _all_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return k
    return None


def _samples(
    trainer: InverterTrainer,
    images: torch.Tensor,
    logits: torch.Tensor,
    noise: torch.Tensor | None,
    out: Path,
    step: int,
    device: torch.device,
    collapse_std: float,
) -> str | None:
    """Write the sample grid (originals above reconstructions); return why the run must stop, or None."""
    from ..io.figures import save_rows

    recon = _sample(trainer, logits, noise, device)
    save_rows(
        [images, torch.nan_to_num(recon, nan=0.0, posinf=1.0, neginf=0.0)],
        out / SAMPLES / f"step_{step:06d}.png",
        scale=max(1, 64 // images.shape[-1]),
    )
    return _health(trainer, logits, noise, device, collapse_std, recon)[0]


def _sample(
    trainer: InverterTrainer, logits: torch.Tensor, noise: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # sampling must not move the training RNG
        return trainer.sample_images(logits, noise).float()


def _health(
    trainer: InverterTrainer,
    logits: torch.Tensor,
    noise: torch.Tensor | None,
    device: torch.device,
    collapse_std: float,
    recon: torch.Tensor | None = None,
) -> tuple[str | None, float]:
    """The run's health check on the held-out samples: (why the run must stop or None, spread across inputs)."""
    if recon is None:
        recon = _sample(trainer, logits, noise, device)
    if not bool(torch.isfinite(recon).all()):
        return "the sample images are not finite (NaN/inf in the inverter's output)", float("nan")
    spread = float(recon.std(0).mean())
    if collapse_std > 0 and spread < collapse_std:
        return (
            f"samples vary by {spread:.2g} < {collapse_std:g} across {len(recon)} different logit vectors "
            "(collapse: the output no longer depends on the logits)",
            spread,
        )
    return None, spread
