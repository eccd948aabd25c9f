"""The data of a ``train-classifier`` run: data set splits as in-memory uint8 tensors, batches and augmentation.

``load_split`` loads one split (square, optionally resized; folders are decoded once and cached); ``_batch`` turns
indices into a float batch in [0, 1] with its labels; ``_augment`` shifts by up to 4 px (and flips RGB images)
from a generator the loop seeds from ``(seed, step)``, so a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.datasets import FolderImageDataset, ImageDataset, TensorImageDataset
from ..data.sources import load_dataset


def _in_memory(ds: ImageDataset, size: int | None) -> TensorImageDataset:
    """The data set as uint8 tensors (folders are decoded once and cached by ``materialize``)."""
    if isinstance(ds, FolderImageDataset):
        return ds.materialize(size)
    if isinstance(ds, TensorImageDataset) and (size is None or ds.images.shape[-1] == size):
        return ds
    imgs = torch.stack([ds[i][0] for i in range(len(ds))])
    if size is not None and imgs.shape[-1] != size:
        imgs = F.interpolate(imgs, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    u8 = (imgs * 255).round().clamp(0, 255).to(torch.uint8)
    return TensorImageDataset(u8, torch.tensor(ds.labels()), ds.classes, ds.name)


def load_split(
    spec: str, split: str, root: str | None = None, size: int | None = None, download: bool = False
) -> TensorImageDataset:
    """One split of a data set as in-memory uint8 tensors, square, optionally resized to ``size``."""
    ds = _in_memory(load_dataset(spec, split, root=root, download=download), size)
    if ds.images.shape[-1] != ds.images.shape[-2]:
        side = max(ds.images.shape[-2:])
        ds = _in_memory(TensorImageDataset(ds.images, ds.targets, ds.classes, ds.name), side)
    return ds


def _batch(ds: TensorImageDataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return ds.images[idx].float() / 255.0, ds.targets[idx]


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 4 px (zero padding), and horizontal flips for RGB."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if x.shape[1] == 3:
        flip = torch.rand(n, generator=g) < 0.5
        out[flip] = out[flip].flip(-1)
    return out
