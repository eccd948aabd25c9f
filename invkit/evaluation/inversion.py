"""The computing stages of one pair: the classifier's logits of a batch, and the inverter's reconstructions of them.

``classifier_logits`` runs a classifier over images without autograd; ``BlockInversion`` seeds, times and
measures the inversion (``metrics.measure``) a block of images at a time, continuing one generator across the
blocks, and reports progress under the pair's task name (``pair_task``); ``invert_logits`` is one block of all the
images. ``Bench._run_pair`` chains them block by block (images -> logits -> reconstructions -> logits of the
reconstructions) and scores the result with ``invkit.evaluation.metrics``. A change to how a model is run over a
batch goes here.
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
from .recon_cache import SAVE_EVERY_S, Partial, ReconCache
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
    """Reconstruct images from ``logits``, seeded and timed: ``BlockInversion`` with all of them as one block.

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
        result record (``BlockInversion.timing``).

    Raises:
        InputError: ``logits`` is not a non-empty ``(N, ...)`` tensor; or passed up from ``inverter.invert``,
            e.g. logits of the wrong shape or dtype or with NaN/inf values (``Inverter.check_logits``).
    """
    _check_targets(logits)
    inversion = BlockInversion(
        inverter, len(logits), seed=seed, batch_size=batch_size, progress=progress, task=task, cache=cache
    )
    recon = inversion(logits)
    return recon, inversion.timing()


def _check_targets(logits: Any) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or len(logits) == 0:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"invert_logits: expected a non-empty (N, num_classes) batch of logits, got {got}.")


class BlockInversion:
    """One pair's inversion of ``n`` targets, handed in a block at a time, to the same reconstructions as one call
    of ``invert_logits`` with all of them (bit for bit).

    The first block seeds the global torch RNG and the generator handed to ``inverter.invert`` (``seed``), makes a
    learned inverter's one untimed call (lazy initialisation is not inversion time) and resumes from ``cache``;
    every block continues the same generator, and the global RNG where the previous block left it (whatever ran in
    between), in the same ``batch_size`` chunks. Learned inverters run without autograd; optimisation inverters
    need autograd and report their steps to ``progress``. The reconstructions are saved to ``cache`` as a part at
    each block's end and every ``SAVE_EVERY_S`` seconds; the images a cache already holds are read from it.

    Args:
        inverter: the inverter, on the device of the targets.
        n: how many targets the blocks hold together.
        seed: seeds the generator handed to ``inverter.invert`` (noise, random starts) and the global torch RNG.
        batch_size: targets per ``inverter.invert`` call; every block but the last holds a multiple of it.
        progress: receives ``Progress`` events of ``task`` over the ``n`` images.
        task: the progress task name.
        cache: where the reconstructions are kept (``invkit.evaluation.recon_cache``); None: nothing is kept.
    """

    def __init__(
        self,
        inverter: Inverter,
        n: int,
        *,
        seed: int,
        batch_size: int,
        progress: ProgressCallback = no_progress,
        task: str = "invert",
        cache: ReconCache | None = None,
    ):
        self.inverter, self.n, self.seed, self.batch_size = inverter, n, seed, batch_size
        self.progress, self.task, self.cache = progress, task, cache
        self.learned = bool(getattr(inverter, "trainable", False))
        self.position = 0  # targets handed in so far
        self.resumed: Partial | None = None
        self.seconds, self.peaks, self.totals, self.method = 0.0, [], [], ""
        self.device: torch.device | None = None

    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        """Reconstruct the next block: targets ``[position, position + m)`` of the ``n``.

        Args:
            targets: ``(m, num_classes)`` logits (or the ``(m, ...)`` representation the inverter inverts).

        Returns:
            ``(m, C, H, W)`` float reconstructions in [0, 1] on the targets' device.

        Raises:
            InputError: an empty or non-tensor block, a block past the ``n`` targets, or a block other than the
                last whose length is not a multiple of ``batch_size``; or passed up from ``inverter.invert``.
        """
        _check_targets(targets)
        start, stop = self.position, self.position + len(targets)
        if stop > self.n or (stop < self.n and len(targets) % self.batch_size):
            raise InputError(
                f"BlockInversion: a block of {len(targets)} targets at {start} does not fit {self.n} targets in "
                f"blocks of a multiple of batch size {self.batch_size}; hand in whole batches."
            )
        if start == 0:
            self._begin(targets)
        else:  # the global RNG as the previous block left it (jitter), whatever drew from it in between
            torch.set_rng_state(self._global_state)
            if self._cuda_state is not None:
                torch.cuda.set_rng_state(self._cuda_state, self.device)
        done = self.resumed.count if self.resumed is not None else 0
        out = [self.resumed.read(start, min(stop, done)).to(targets.device)] if start < done else []
        grad = torch.no_grad() if self.learned else contextlib.nullcontext()
        pending, first = [], max(start, done)
        last_save = t0 = time.perf_counter()
        with metrics.measure(targets.device) as m, grad:
            for i in range(first, stop, self.batch_size):
                batch = targets[i - start : i - start + self.batch_size].detach()
                pending.append(self.inverter.invert(batch, generator=self.generator).detach().float())
                end = min(i + self.batch_size, stop)
                if self.cache is not None and (end == stop or time.perf_counter() - last_save >= SAVE_EVERY_S):
                    part = torch.cat(pending)
                    seconds = self._earlier + self.seconds + time.perf_counter() - t0  # of images 0 .. end - 1
                    self.cache.save(part, self.generator, seconds, start=end - len(part))
                    out.append(part)
                    pending, last_save = [], time.perf_counter()
                self.progress(Progress(self.task, end, self.n, {}))
        out += pending
        self.seconds += m.seconds
        self.method = m.method
        self.peaks.append(m.peak_bytes)
        self.totals.append(m.peak_total_bytes)
        self._global_state = torch.get_rng_state()
        cuda = self.device is not None and self.device.type == "cuda"
        self._cuda_state = torch.cuda.get_rng_state(self.device) if cuda else None
        self.position = stop
        return torch.cat(out).float().clamp(0, 1)

    def _begin(self, targets: torch.Tensor) -> None:
        """What the first block does before it inverts: seeds, the learned inverter's warm-up call, the cache."""
        self.device = targets.device
        torch.manual_seed(self.seed)  # inverters that also draw from the global RNG (jitter) repeat run to run
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.progress(Progress(self.task, 0, self.n, {}))
        if hasattr(self.inverter, "progress"):  # optimisation inverters report their steps
            self.inverter.progress = self.progress
        if self.learned:
            with torch.no_grad():
                self.inverter.invert(targets[:1], generator=torch.Generator(device=self.device).manual_seed(self.seed))
        self.resumed = self.cache.open() if self.cache is not None else None
        self._earlier = 0.0
        if self.resumed is not None:  # saved after whole batches of this batch size (its identity says so)
            ReconCache.restore(self.resumed, self.generator)
            self._earlier = self.resumed.seconds
            self.progress(Progress(self.task, self.resumed.count, self.n, {}))

    def timing(self) -> dict[str, Any]:
        """The timing fields of a result record: ``time_per_image_s`` in seconds, over the batches of every run
        that made the reconstructions; peak memory in MiB (the largest of this run's blocks, above what was in use
        when the block began, and the peak itself) and how it was measured; ``resumed_images``: how many came from
        the cache; ``device``."""
        peaks = [p for p in self.peaks if p is not None]
        totals = [p for p in self.totals if p is not None]
        return {
            "time_per_image_s": (self._earlier + self.seconds) / self.n,
            "resumed_images": self.resumed.count if self.resumed is not None else 0,
            "peak_memory_mb": max(peaks) / 2**20 if peaks else None,
            "peak_total_mb": max(totals) / 2**20 if totals else None,
            "memory_method": self.method,
            "device": str(self.device),
        }
