"""The held-out images of a bench run: which test images are drawn, and how they are stacked into one batch.

``pick_indices`` draws an equal number per class, classes interleaved (so the first images, shown in the report
grid, are one per class); ``_stack`` brings images of mixed sizes to one. ``Bench._pick_images`` applies them to the
run's data (with the distractors of instance identification, ``metrics.draw_distractors``). A change to which
images a run evaluates goes here.
"""

from __future__ import annotations

import torch

from ..data.datasets import ImageDataset
from ..data.images import resize


def pick_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices, an equal share per class, classes interleaved (the first images are one per class)."""
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique().tolist()
    per_class = [(labels == c).nonzero().flatten() for c in classes]
    per_class = [m[torch.randperm(len(m), generator=g)] for m in per_class]
    out: list[int] = []
    depth = 0
    while len(out) < n and depth < max(len(m) for m in per_class):
        for m in per_class:
            if depth < len(m) and len(out) < n:
                out.append(int(m[depth]))
        depth += 1
    return torch.tensor(out, dtype=torch.long)


def _stack(dataset: ImageDataset, indices: torch.Tensor) -> torch.Tensor:
    images = [dataset[int(i)][0] for i in indices]
    shape = images[0].shape
    if any(im.shape != shape for im in images):  # folders of mixed sizes: bring all to the first one's
        images = [resize(im[None], tuple(shape[-2:]), channels=shape[0])[0] for im in images]
    return torch.stack(images)
