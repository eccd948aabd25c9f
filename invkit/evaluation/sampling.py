"""The held-out images of a bench run: which test images are drawn, and how they are stacked into one batch.

``pick_indices`` draws an equal number per class, classes interleaved (so the first images, shown in the report
grid, are one per class); ``_stack`` stacks them one at a time and refuses images of mixed sizes (naming two).
``Bench._pick_images`` applies them to the run's data (with the distractors of instance identification,
``metrics.draw_distractors``). A change to which images a run evaluates goes here.
"""

from __future__ import annotations

import torch

from ..data.datasets import ImageDataset, stack_images


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


def _stack(dataset: ImageDataset, indices: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Images ``indices`` of ``dataset`` as one batch, read one at a time (``invkit.data.stack_images``).

    Raises:
        DataError: images of different sizes (two named): bench compares pixels at the data's own size and does not
            pick one of them for the others.
    """
    hint = "invkit bench compares pixels at the data's own size, so bring the test images to one size"
    return stack_images(dataset, indices, dtype=dtype, hint=hint)[0]
