"""The computing stages of one pair: the classifier's logits of a batch, and the inverter's reconstructions of them.

``classifier_logits`` runs a classifier over images without autograd; ``invert_logits`` seeds, times and
measures the inversion (``metrics.measure``) and reports progress under the pair's task name (``pair_task``).
``Bench._run_pair`` chains them (images -> logits -> reconstructions -> logits of the reconstructions) and
scores the result with ``invkit.evaluation.metrics``. A change to how a model is run over a batch goes here.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from ..core.classifier import Classifier
from ..core.inverter import Inverter
from ..errors import InputError
from ..utils.progress import Progress, ProgressCallback, no_progress
from . import metrics
from .recon_cache import SAVE_EVERY_S, ReconCache
from .settings import Pair


def pair_task(pair: Pair) -> str:
    """The progress task name of a pair (``classifier x inverter``)."""
    return f"{pair.classifier_label} x {pair.inverter}"


def classifier_logits(classifier: Classifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits ``(N, num_classes)`` of ``images`` (``(N, C, H, W)`` in [0, 1]), ``batch_size`` at a time, no autograd."""
    with torch.no_grad():
        return torch.cat([classifier.logits(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def invert_logits(
    inverter: Inverter,
    logits: torch.Tensor,  # or the representation the inverter says it inverts (``inverter.targets``)
    *,
    seed: int,
    batch_size: int,
    progress: ProgressCallback = no_progress,
    task: str = "invert",
    cache: ReconCache | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reconstruct images from ``logits``, seeded and timed.

    Learned inverters run without autograd, after one untimed call (lazy initialisation is not inversion
    time); optimisation inverters need autograd and report their steps to ``progress``. The global RNG is
    seeded too, for inverters that also draw from it (jitter).

    Args:
        inverter: the inverter, on the device of ``logits``.
        logits: ``(N, num_classes)`` logits of the inverter's classifier (N >= 1), or the ``(N, ...)``
            representation the inverter says it inverts (``inverter.targets``).
        seed: seeds the generator handed to ``inverter.invert`` (noise, random starts) and the global torch RNG.
        batch_size: rows of ``logits`` per ``inverter.invert`` call.
        progress: receives ``Progress`` events of ``task`` over the N images.
        task: the progress task name.
        cache: where the reconstructions are kept batch by batch (``invkit.evaluation.recon_cache``): a cache
            holding the first batches of this same inversion is resumed after them, with the generators' states,
            to the same reconstructions as an uninterrupted run. None: nothing is kept.

    Returns:
        Reconstructions ``(N, C, H, W)`` float in [0, 1] on the inverter's device, and the timing fields of a
        result record (``time_per_image_s`` in seconds, over the batches of every run that made them; peak memory
        in MiB, of this run, and how it was measured; ``resumed_images``: how many came from the cache).

    Raises:
        InputError: ``logits`` is not a non-empty ``(N, ...)`` tensor; or passed up from ``inverter.invert``,
            e.g. logits of the wrong shape or dtype or with NaN/inf values (``Inverter.check_logits``).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or len(logits) == 0:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"invert_logits: expected a non-empty (N, num_classes) batch of logits, got {got}.")
    device = logits.device
    torch.manual_seed(seed)  # inverters that also draw from the global RNG (jitter) repeat run to run
    gen = torch.Generator(device=device).manual_seed(seed)
    learned = getattr(inverter, "trainable", False)
    grad = torch.no_grad() if learned else contextlib.nullcontext()
    progress(Progress(task, 0, len(logits), {}))
    if hasattr(inverter, "progress"):  # optimisation inverters report their steps
        inverter.progress = progress
    if learned:
        with torch.no_grad():
            inverter.invert(logits[:1], generator=torch.Generator(device=device).manual_seed(seed))
    recons, start, earlier_s = [], 0, 0.0
    done = cache.load() if cache is not None else None
    if done is not None:  # saved after whole batches of this batch size (its identity says so)
        ReconCache.restore(done, gen)
        recons, start, earlier_s = [done.recon.to(device)], len(done.recon), done.seconds
        progress(Progress(task, start, len(logits), {}))
    last_save = t0 = time.perf_counter()
    with metrics.measure(device) as m, grad:
        for i in range(start, len(logits), batch_size):
            recons.append(inverter.invert(logits[i : i + batch_size].detach(), generator=gen).detach().float())
            last = i + batch_size >= len(logits)
            if cache is not None and (last or time.perf_counter() - last_save >= SAVE_EVERY_S):
                cache.save(torch.cat(recons), gen, earlier_s + time.perf_counter() - t0)
                last_save = time.perf_counter()
            progress(Progress(task, min(i + batch_size, len(logits)), len(logits), {}))
    recon = torch.cat(recons).float().clamp(0, 1)
    return recon, {
        "time_per_image_s": (earlier_s + m.seconds) / len(logits),
        "resumed_images": start,
        "peak_memory_mb": None if m.peak_bytes is None else m.peak_bytes / 2**20,
        "peak_total_mb": None if m.peak_total_bytes is None else m.peak_total_bytes / 2**20,
        "memory_method": m.method,
        "device": str(device),
    }
