"""Reconstructions a bench run keeps for people to judge (``invkit study``): ``OUT/recon/<slug>.safetensors``.

``Bench`` writes one file per pair (``BenchSettings.keep_images`` images, default 100; 0 writes none), holding

* ``images``: uint8 ``(k, C, H, W)``, the pair's reconstructions of the first ``k`` evaluated images at the
  inverter's resolution (``[0, 1]`` scaled to ``0..255`` and rounded);
* ``targets``: uint8 ``(k, C, H', W')``, the originals as the pair's metrics saw them (``Inverter.target_images``);
* ``index``: int64 ``(k,)``, their data set indices, the first ``k`` of results.json's ``settings.image_indices``.

``invkit.evaluation.study`` reads them back with ``load_kept``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError, InvkitError
from ..io.files import atomic_save_safetensors
from ..io.weights import load_safetensors

RECON_DIR = "recon"  # the folder of the kept reconstructions inside a bench's --out


def kept_path(out: str | os.PathLike, slug: str) -> Path:
    """Where a pair's kept reconstructions live: ``out/recon/<slug>.safetensors`` (``slug``: ``Pair.slug``)."""
    return Path(out) / RECON_DIR / f"{slug}.safetensors"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in ``[0, 1]`` (values outside are clipped) as uint8 ``0..255``, rounded; same shape, on the CPU."""
    return (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def save_kept(
    out: str | os.PathLike, slug: str, recon: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, k: int
) -> Path | None:
    """Write the first ``k`` reconstructions of a pair (atomically; nothing when ``k`` is 0).

    Args:
        out: the bench's output folder.
        slug: the pair's file name stem (``Pair.slug``).
        recon: float ``(n, C, H, W)`` reconstructions in ``[0, 1]``.
        targets: float ``(n, C, H', W')`` originals in ``[0, 1]`` as the metrics saw them.
        index: ``(n,)`` data set indices of the evaluated images, in the same order.
        k: how many to keep (at most ``n`` are).

    Returns:
        The file written, or None when ``k`` is 0.

    Raises:
        OutputError: the file cannot be written (``invkit.io.files.atomic_save_safetensors``).
    """
    k = min(k, len(recon))
    if k <= 0:
        return None
    path = kept_path(out, slug)
    tensors = {"images": to_uint8(recon[:k]), "targets": to_uint8(targets[:k]), "index": index[:k].to(torch.int64)}
    atomic_save_safetensors(path, tensors)
    return path


def has_kept(out: str | os.PathLike, slug: str, k: int) -> bool:
    """Whether a pair's file in ``out`` holds at least ``k`` whole kept reconstructions (always, for ``k`` 0)."""
    return k <= 0 or kept_count(kept_path(out, slug)) >= k


def kept_count(path: str | os.PathLike) -> int:
    """How many whole kept reconstructions ``path`` holds; 0 when it is missing or not such a file."""
    try:
        return len(load_kept(path)["index"])
    except InvkitError:
        return 0


def load_kept(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a pair's kept reconstructions back, checked.

    Returns:
        ``images`` uint8 ``(k, C, H, W)``, ``targets`` uint8 ``(k, C, H', W')``, ``index`` int64 ``(k,)``.

    Raises:
        CheckpointError: the file is missing, not safetensors, or holds other tensors, dtypes or shapes (one line
            saying to rerun the bench).
    """
    tensors = load_safetensors(path)
    images, targets, index = (tensors.get(name) for name in ("images", "targets", "index"))
    fits = images is not None and targets is not None and index is not None
    fits = fits and images.dtype == targets.dtype == torch.uint8 and index.dtype == torch.int64
    fits = fits and images.dim() == targets.dim() == 4 and index.dim() == 1
    fits = fits and len(images) == len(targets) == len(index) >= 1 and images.shape[1] == targets.shape[1]
    if not fits:
        held = ", ".join(f"{k} {v.dtype} {tuple(v.shape)}" for k, v in tensors.items()) or "nothing"
        raise CheckpointError(
            f"'{path}' holds {held}, not the kept reconstructions invkit bench writes (uint8 images and targets "
            "(k, C, H, W), int64 index (k,)); run invkit bench again into that folder to rewrite it."
        )
    return {"images": images, "targets": targets, "index": index}
