"""A bench run's images a block at a time: what keeps the memory of ``invkit bench`` from growing with ``n``.

``Bench`` never holds all its images. Each pair runs in blocks of ``BenchSettings.block_size`` images (rounded down
to a multiple of ``batch_size``, at least one batch; ``BlockReading.block_size``), twice over the data:

1. ``BlockReading._observe``: each block's originals are read from the data, brought to the inverter's resolution
   (``Inverter.target_images``) and through the classifier; kept are the logits ``(n, classes)`` and what the
   inverter inverts (``invkit.core.observation.observe``: those logits or a channel of them, a layer's pooled
   activations, or the inverter's own targets), ``(n, d)``. Their digest names the inversion in the
   reconstruction cache (``invkit.evaluation.recon_cache``), so all of them are known before the first inversion.
2. ``Bench._run_pair``: each block's originals are read again with their distractors (uint8), inverted
   (``invkit.evaluation.inversion.BlockInversion``, one generator across the blocks), and scored; kept are the
   per-image values ``(n,)``, the logits of the reconstructions ``(n, classes)``, the evaluators' features
   ``(n, d)`` and the first ``max(grid_images, keep_images)`` reconstructions and originals for the figures and
   ``invkit study``.

The batches within a block are the ``batch_size`` chunks of a run in one block, so every number is the same
whatever the block size (``tests/test_bench_streaming.py``). Reading the same images twice per pair costs a decode
of each; holding them costs ``n`` images at full size per pair, plus ``(id_k - 1)`` uint8 distractors per image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.classifier import Classifier
from ..core.inverter import Inverter
from ..core.observation import needs_images, observe
from ..data.datasets import ImageDataset
from ..training.config import derive_seed
from ..utils.progress import ProgressCallback
from .inversion import BlockInversion, classifier_logits, pair_task
from .recon_cache import ReconCache
from .sampling import _stack
from .settings import BenchSettings, Pair


class BlockReading:
    """The blocks of a bench run and the images of each, read from its data (a base of ``Bench``; uses the
    attributes declared here, set by ``Bench._pick_images``)."""

    settings: BenchSettings
    device: torch.device
    dataset: ImageDataset
    classifiers: dict[str, Classifier]
    progress: ProgressCallback
    _recon_cache: Callable[[Pair, Inverter, torch.Tensor], ReconCache | None]  # PairInverters
    indices: torch.Tensor  # (n,) dataset indices of the evaluated images
    distractor_idx: torch.Tensor  # (n, id_k - 1) dataset indices of their distractors

    def block_size(self) -> int:
        """Images per block: ``block_size`` rounded down to a multiple of ``batch_size``, at least one batch."""
        s = self.settings
        return max(s.batch_size, s.block_size // s.batch_size * s.batch_size)

    def blocks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each block of the ``n`` evaluated images, in order."""
        size, n = self.block_size(), len(self.indices)
        return [(i, min(i + size, n)) for i in range(0, n, size)]

    def originals_block(self, start: int, stop: int) -> torch.Tensor:
        """Evaluated images ``[start, stop)``: ``(m, C, H, W)`` float in [0, 1] at the data's resolution."""
        return _stack(self.dataset, self.indices[start:stop])

    def distractors_block(self, start: int, stop: int) -> torch.Tensor:
        """The distractors of images ``[start, stop)``: ``(m, id_k - 1, C, H, W)`` uint8 (lossless for images read
        from 8-bit files, a quarter of float32's memory)."""
        flat = _stack(self.dataset, self.distractor_idx[start:stop].flatten(), dtype=torch.uint8)
        return flat.view(stop - start, self.distractor_idx.shape[1], *flat.shape[1:])

    @property
    def originals(self) -> torch.Tensor:
        """All ``n`` evaluated images ``(n, C, H, W)``, read from the data on each access (for inspecting small runs;
        the bench itself reads a block at a time: ``originals_block``)."""
        return self.originals_block(0, len(self.indices))

    @property
    def distractors(self) -> torch.Tensor:
        """All distractors ``(n, id_k - 1, C, H, W)`` uint8, read on each access (``distractors_block``)."""
        return self.distractors_block(0, len(self.indices))

    def _correct_everywhere(self, labels: torch.Tensor) -> torch.Tensor:
        """Mask ``(N,)`` of the data's images that every classifier of the run classifies correctly (at the data's
        own size; ``--only-correct``), ``batch_size`` images read at a time."""
        keep = torch.ones(len(labels), dtype=torch.bool)
        batch = self.settings.batch_size
        with torch.no_grad():
            for start in range(0, len(labels), batch):
                idx = torch.arange(start, min(start + batch, len(labels)))
                x = _stack(self.dataset, idx).to(self.device)
                for clf in self.classifiers.values():
                    keep[idx] &= clf.logits(x).argmax(1).cpu() == labels[idx]
        return keep

    def _check_one_size(self, every: torch.Tensor) -> None:
        """Refuse images ``every`` (data set indices: the originals, then their distractors) of another size than the
        first original, reading a block at a time; an image that cannot be read is named as it is met.

        Raises:
            DataError: two images of different sizes (both named; ``invkit.data.stack_images``), or an unreadable one.
        """
        batch = self.block_size()
        for i in range(0, len(every), batch):  # the first original leads each batch: one size for all of them
            _stack(self.dataset, torch.cat([self.indices[:1], every[i : i + batch]]), dtype=torch.uint8)

    def _inversion(self, pair: Pair, inv: Inverter, targets: torch.Tensor) -> BlockInversion:
        """The inversion of a pair's ``(n, d)`` ``targets`` a block at a time, resumable from and kept in its
        reconstruction cache (``PairInverters._recon_cache``)."""
        s = self.settings
        cache = self._recon_cache(pair, inv, targets)
        return BlockInversion(
            inv,
            len(targets),
            seed=s.seed,
            batch_size=s.batch_size,
            progress=self.progress,
            task=pair_task(pair),
            cache=cache,
        )

    def _observe(self, inv: Inverter, clf: Classifier) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's logits ``(n, classes)`` of the images ``inv`` reconstructs, and what ``inv`` inverts
        ``(n, d)`` (``observe``), a block of images at a time.

        A channel of the logits draws its noise over all the logits at once (seeded by ``derive_seed(seed,
        "channel")``), as a run in one block does; a layer or the inverter's own targets are computed per block.
        """
        s = self.settings
        logits, targets = [], []
        for start, stop in self.blocks():
            # the image the inverter reconstructs is the data image at its resolution; the classifier sees that image
            images = inv.target_images(self.originals_block(start, stop)).to(self.device)
            logits.append(classifier_logits(clf, images, s.batch_size))
            if needs_images(inv):
                targets.append(observe(inv, clf, images, logits=logits[-1], batch_size=s.batch_size))
        all_logits = torch.cat(logits)
        if targets:
            return all_logits, torch.cat(targets)
        gen = torch.Generator(device=all_logits.device).manual_seed(derive_seed(s.seed, "channel"))  # noise:SIGMA
        return all_logits, observe(inv, clf, None, logits=all_logits, generator=gen, batch_size=s.batch_size)
