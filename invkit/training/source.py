"""Where the training batches come from: the seeded, resumable order of samples, and the images with their logits.

* **Data order** (``BatchStream``). Sample ``k`` of the endless stream is ``perm_e[k % N]`` with ``e = k // N`` and
  ``perm_e`` a permutation drawn from ``(seed, e)``. The stream position (samples consumed) is saved with every
  checkpoint, so a resumed run draws exactly the batches the uninterrupted run would have drawn. Under
  ``torchrun`` each global batch of ``batch_size`` indices is cut into ``world_size`` contiguous shards, one
  per rank (what ``DistributedSampler`` does, but resumable mid-epoch).
* **Logits of the frozen classifier** (``_Source``), computed from the training images resized to the inverter's
  resolution: on the fly, or once for the whole data set when it is fixed (no augmentation). Data sets of up to
  ``IN_MEMORY_LIMIT`` images are held in memory as uint8; horizontal flips (``augment="hflip"``) are drawn from
  ``(seed, position)``, so they too resume without saved state.
* **The paper's distorted crops** (``augment="distorted"``): every sample is a random square crop of its image at
  the image's own size, resized to the inverter's resolution (compare_gan's ``ImagenetDataset`` training transform,
  ``invkit.data.crops``), its logits computed on the fly. Sample ``k`` of the global stream draws its crop from
  ``(seed, "distorted", k)``: resumable without saved state, and the same crops on any number of ranks.
* **Held-out samples** (``_Held``, ``_heldout``): the fixed images, logits and noise every sample grid is drawn from
  (with distorted crops: the centred square crop of each image, compare_gan's evaluation transform).
* **What the inverter observes** (``TrainConfig.channel``/``layer``, ``invkit.core.observation``): the "logits" of
  a batch are the observation channel of the classifier's logits, or a layer's globally pooled activations. With
  cached logits a deterministic channel is applied to the cache once, never per step; a random one (``noise``) is
  applied per batch with a generator seeded from ``(seed, "channel", position, rank)``, so a resumed run draws the
  same noise without saved state (on the same number of processes). The held-out samples go through the same
  channel (a random one seeded from ``(seed, "heldout-channel")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.channels import DEFAULT_CHANNEL, Channel, create_channel
from ..core.classifier import Classifier
from ..core.inverter import Batch, Inverter
from ..data.crops import CenterCropDataset, distorted_crop
from ..data.datasets import ImageDataset, TensorImageDataset, take
from ..data.images import image_size, resize
from .config import TrainConfig, derive_seed
from .distributed import _Dist

IN_MEMORY_LIMIT = 200_000  # folders with more images are decoded batch by batch instead of held in memory


def _one_size(dataset: ImageDataset) -> bool:
    """Whether every file of a folder data set has one size (read from the headers)."""
    samples = getattr(dataset, "samples", None)
    if not samples:
        return False
    first = image_size(samples[0][0])
    return all(image_size(p) == first for p, _ in samples[1:])


class BatchStream:
    """The seeded, resumable order of training samples, sharded over ranks.

    Args:
        n: data set size.
        batch_size: global batch size (divisible by ``world``).
        seed: run seed; epoch ``e`` uses ``randperm(n)`` seeded by ``(seed, "epoch", e)``.
        rank: this process' index, 0 to ``world - 1``: which shard of each batch it reads.
        world: the number of processes the batch is sharded over.
        position: samples of the global stream already consumed (0 for a fresh run).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, position: int = 0):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.position = position
        self._perm: tuple[int, torch.Tensor] | None = None

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def next_indices(self) -> tuple[torch.Tensor, int]:
        """This rank's sample indices of the next global batch, and the batch's start position."""
        start = self.position
        local = self.batch_size // self.world
        ks = range(start + self.rank * local, start + (self.rank + 1) * local)
        idx = torch.tensor([int(self._epoch_perm(k // self.n)[k % self.n]) for k in ks], dtype=torch.long)
        self.position += self.batch_size
        return idx, start


class _Source:
    """Images (resized to the inverter's shape) and what the inverter observes of them (``channel`` of their logits,
    or ``layer``'s pooled activations; plain logits when both are None), by index."""

    def __init__(
        self,
        dataset: ImageDataset,
        shape: tuple[int, int, int],
        classifier: Classifier,
        device: torch.device,
        autocast: bool,
        cache_logits: bool,
        augment: str,
        seed: int,
        channels_last: bool,
        channel: Channel | None = None,
        layer: str | None = None,
    ):
        self.channel, self.layer = channel, layer
        self.shape, self.classifier, self.device = shape, classifier, device
        self.autocast, self.augment, self.seed, self.channels_last = autocast, augment, seed, channels_last
        self.dataset = dataset
        self.rank = 0  # this process' shard of each global batch (set by _training_source): the crops' sample index
        self.world = 1  # processes the global batch is sharded over (set by _training_source): the flips' shard
        self.images_u8: torch.Tensor | None = None
        if isinstance(dataset, TensorImageDataset):
            self.images_u8 = dataset.images
        elif hasattr(dataset, "materialize") and len(dataset) <= IN_MEMORY_LIMIT:
            if augment != "distorted":
                self.images_u8 = dataset.materialize(size=shape[-1]).images
            elif _one_size(dataset):  # crops need the images at their own size: in memory if that is one size
                self.images_u8 = dataset.materialize(size=None).images
        self.logits: torch.Tensor | None = None
        if cache_logits:
            chunks = []
            for i in range(0, len(dataset), 256):
                chunks.append(self._logits(self._images(torch.arange(i, min(i + 256, len(dataset))))))
            self.logits = torch.cat(chunks)
            if self.channel is not None and not self.channel.random:  # once for the whole cache, never per step
                self.logits = self.channel(self.logits)

    def __len__(self) -> int:
        return len(self.dataset)

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        c, r, _ = self.shape
        if self.images_u8 is not None:  # uint8 to the device first: a quarter of the bytes of float32
            x = self.images_u8[idx].to(self.device, non_blocking=True).float() / 255.0
        else:  # lazily decoded folder: images may differ in size, resize one by one
            x = torch.cat([resize(self.dataset[int(i)][0][None], r, c) for i in idx])
        return resize(x, r, c).to(self.device)

    @torch.no_grad()
    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's logits of ``images``, or the layer's pooled activations (before any channel)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self.layer is not None:
                return self.classifier.features(images, self.layer, pooled=True).float()
            return self.classifier.logits(images).float()

    def _observe(self, vectors: torch.Tensor, cached: bool, seed: tuple) -> torch.Tensor:
        """``vectors`` through the channel: a random channel always, with a generator seeded from ``seed``; a
        deterministic one unless ``cached`` (the cache went through it once)."""
        if self.channel is None or (cached and not self.channel.random):
            return vectors
        g = None
        if self.channel.random:
            g = torch.Generator(device=vectors.device).manual_seed(derive_seed(self.seed, *seed))
        return self.channel(vectors, g)

    def _distorted(self, idx: torch.Tensor, position: int) -> torch.Tensor:
        """Each image's distorted square crop at the inverter's shape; sample ``k`` of the global stream (this
        rank's shard starts at ``position + rank * len(idx)``) draws its crop from ``(seed, "distorted", k)``."""
        c, r, _ = self.shape
        first = position + self.rank * len(idx)
        crops = []
        for j, i in enumerate(idx.tolist()):
            g = torch.Generator().manual_seed(derive_seed(self.seed, "distorted", first + j))
            if self.images_u8 is not None:
                x = self.images_u8[i].to(self.device, non_blocking=True).float() / 255.0
            else:  # lazily decoded folder, each image at its own size
                x = self.dataset[i][0].to(self.device)
            crops.append(distorted_crop(x, r, g))
        return resize(torch.stack(crops), r, c)  # channels converted to the classifier's

    def batch(self, idx: torch.Tensor, position: int) -> Batch:
        images = self._distorted(idx, position) if self.augment == "distorted" else self._images(idx)
        if self.augment == "hflip":  # flips drawn from (seed, position): resumable without saved state
            # drawn for the whole global batch, this rank taking its shard's: every rank flips its own samples as one
            # process would flip them (one process: the same draw as before ranks were taken into account)
            g = torch.Generator().manual_seed(derive_seed(self.seed, "hflip", position))
            shard = slice(self.rank * len(idx), (self.rank + 1) * len(idx))
            flip = (torch.rand(len(idx) * self.world, generator=g)[shard] < 0.5).to(self.device)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        cached = self.logits is not None
        logits = self.logits[idx.to(self.logits.device)] if cached else self._logits(images)
        logits = self._observe(logits, cached, ("channel", position, self.rank))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, logits


def _training_source(
    config: TrainConfig,
    train_set: ImageDataset,
    shape: tuple[int, int, int],
    classifier: Classifier,
    device: torch.device,
    cache: bool,
    d: _Dist,
) -> _Source:
    """The training images at the inverter's shape and the frozen classifier's logits of them."""
    if d.active and not d.main:  # rank 0 decodes a folder into the shared cache first
        import torch.distributed as dist

        dist.barrier()
    bf16, channels_last = config.precision == "bf16", bool(config.channels_last)
    channel = None  # plain logits (the default) or a layer: nothing to apply
    if config.layer is None and config.channel != DEFAULT_CHANNEL:
        channel = create_channel(config.channel, classifier.num_classes)
    args = (train_set, shape, classifier, device, bf16, cache, config.augment, config.seed, channels_last)
    source = _Source(*args, channel=channel, layer=config.layer)
    source.rank, source.world = d.rank, d.world
    if d.active and d.main:
        import torch.distributed as dist

        dist.barrier()
    return source


@dataclass
class _Held:
    """The fixed held-out images of the sample grids, with their logits and noise (same every grid)."""

    images: torch.Tensor  # (sample_count, C, H, W) in [0, 1], at the inverter's shape
    logits: torch.Tensor  # (sample_count, num_classes)
    noise: torch.Tensor | None  # (sample_count, noise_dim), or None for a deterministic inverter


def _heldout(
    config: TrainConfig, heldout_set: ImageDataset, inverter: Inverter, source: _Source, device: torch.device
) -> _Held:
    shape = inverter.image_shape
    if config.augment == "distorted":  # evaluated as compare_gan does: the centred square crop
        heldout_set = CenterCropDataset(heldout_set, shape[-1])
    images, _ = take(
        heldout_set,
        config.sample_count,
        seed=derive_seed(config.seed, "heldout") % 2**31,
        per_class=hasattr(heldout_set, "labels"),
        size=shape[-1],  # each image on its own (as resize below): a folder of mixed sizes works
    )
    images = resize(images, shape[-1], shape[0]).to(device)
    logits = source._observe(source._logits(images), False, ("heldout-channel",))  # the run's channel too
    noise = None
    if inverter.noise_dim:
        g = torch.Generator().manual_seed(derive_seed(config.seed, "sample-noise"))
        noise = torch.randn(len(images), inverter.noise_dim, generator=g).to(device)
    return _Held(images, logits, noise)
