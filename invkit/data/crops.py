"""The paper's crops: compare_gan's ``ImagenetDataset`` training and evaluation transforms, on any image.

The paper's config trains on ``dataset.name = 'imagenet_64'``, which is compare_gan's
``ImagenetDataset(resolution=64)`` (``compare_gan/datasets.py``, ``_transform_imagnet_image``): TFDS imagenet2012 at
full resolution, each training image cropped with ``crop_method="distorted"`` and each evaluation image with
``crop_method="middle"``, then resized to 64x64 with ``tf.image.resize_images`` (TF1: bilinear, no antialiasing).

* ``distorted_square_box`` draws the training crop with the semantics of TF's ``sample_distorted_bounding_box`` as
  compare_gan calls it: no bounding boxes with ``use_image_if_no_bounding_boxes=True`` (the object is the whole
  image), ``aspect_ratio_range=[1, 1]``, ``area_range=[0.5, 1]``, and TF's defaults ``min_object_covered=0.1`` and
  ``max_attempts=100``. Read from TF's kernel (``sample_distorted_bounding_box_op.cc``, ``GenerateRandomCrop``):
  the *side* (not the area) is uniform over the whole numbers from ``round(sqrt(0.5 H W))`` to
  ``min(round(sqrt(H W)), H, W)``; the corner is uniform over ``[0, H - side)`` x ``[0, W - side)`` (TF's
  ``Uniform(n)`` excludes ``n``, so a crop never touches the bottom or right edge unless it spans the image);
  when no square fits (the long side more than twice the short one) every attempt fails and the box is the whole,
  non-square image, which the resize then squeezes to a square.
* ``center_square_box`` is ``crop_method="middle"``: the largest centred square, its corner at
  ``floor((H - side) / 2)``, ``floor((W - side) / 2)``.
* ``distorted_crop`` and ``center_crop`` cut and resize with ``torchvision.transforms.v2.functional.resized_crop``
  (bilinear, ``antialias=False``: TF1's ``resize_images`` does not antialias); ``CenterCropDataset`` gives a data
  set's items as their centre crops.

How torchvision's ``RandomResizedCrop(scale=(0.5, 1.0), ratio=(1, 1))`` differs (so it is not used for the
sampling): it draws the *area* uniformly (TF: the side), tries 10 times (TF: 100, and for any image whose sides
differ by less than 2x TF's first attempt always succeeds, as its largest side is capped to the short side), lets
the corner reach the last position, and falls back to the centred square of the short side (TF: the whole image).
Two differences remain against compare_gan: TF1 resizes with ``half_pixel_centers=False`` (pixel ``i`` of the
output samples the input at ``i * in / out``; torch samples at ``(i + 0.5) * in / out - 0.5``), and the random
numbers are torch's, not Philox's, so no crop equals one TF would draw.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..errors import InputError
from .datasets import ImageDataset

AREA_RANGE = (0.5, 1.0)  # compare_gan's area_range for crop_method="distorted"
MIN_OBJECT_COVERED = 0.1  # TF's default (compare_gan does not pass it)
MAX_ATTEMPTS = 100  # TF's default (compare_gan does not pass it)

Box = tuple[int, int, int, int]  # (top, left, height, width) in pixels


def _randint(n: int, generator: torch.Generator) -> int:
    """A whole number in ``[0, n)`` (TF's ``SimplePhilox::Uniform(n)``), from ``generator``."""
    return int(torch.randint(n, (1,), generator=generator).item())


def _square_attempt(height: int, width: int, area_range: tuple[float, float], generator: torch.Generator) -> Box | None:
    """One attempt of TF's ``GenerateRandomCrop`` with aspect ratio 1, or None where it fails."""
    min_area, max_area = area_range[0] * width * height, area_range[1] * width * height
    side, max_side = round(math.sqrt(min_area)), round(math.sqrt(max_area))  # lrintf: round half to even
    max_side = min(max_side, width, height)
    side = min(side, max_side)
    if side < max_side:
        side += _randint(max_side - side + 1, generator)  # closed range [side, max_side]
    if side * side < min_area:  # TF's nudges against rounding: one pixel bigger, then one smaller
        side += 1
    if side * side > max_area:
        side -= 1
    if not (min_area <= side * side <= max_area) or side > min(height, width) or side <= 0:
        return None
    top = _randint(height - side, generator) if side < height else 0
    left = _randint(width - side, generator) if side < width else 0
    return top, left, side, side


def distorted_square_box(
    height: int,
    width: int,
    generator: torch.Generator,
    area_range: tuple[float, float] = AREA_RANGE,
    min_object_covered: float = MIN_OBJECT_COVERED,
    max_attempts: int = MAX_ATTEMPTS,
) -> Box:
    """compare_gan's training crop box: TF's ``sample_distorted_bounding_box`` with aspect 1 (module docstring).

    Args:
        height: image height in pixels (>= 1).
        width: image width in pixels (>= 1).
        generator: the CPU random generator the box is drawn from (seed it: the box depends on nothing else).
        area_range: the crop's area as a fraction of the image's, ``(low, high)`` with ``0 < low <= high <= 1``.
        min_object_covered: the least fraction of the image the crop must cover (the whole image is the object).
        max_attempts: attempts before falling back to the whole image.

    Returns:
        ``(top, left, side, side)`` of a square inside the image, or ``(0, 0, height, width)`` when no attempt
        succeeds (TF's fallback).

    Raises:
        InputError: a size below 1 or an area range outside ``(0, 1]``.
    """
    if height < 1 or width < 1:
        raise InputError(f"a crop needs an image of at least 1x1 pixel, got {height}x{width}.")
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise InputError(f"area_range must satisfy 0 < low <= high <= 1, got {tuple(area_range)}.")
    for _ in range(max_attempts):
        box = _square_attempt(height, width, area_range, generator)
        if box is not None and box[2] * box[3] >= max(1.0, min_object_covered * height * width):
            return box
    return 0, 0, height, width


def center_square_box(height: int, width: int) -> Box:
    """compare_gan's evaluation crop box (``crop_method="middle"``): the largest centred square.

    Returns:
        ``(top, left, side, side)`` with ``side = min(height, width)`` and the corner rounded down.
    """
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def _resized(image: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    top, left, h, w = box
    return TF.resized_crop(
        image, top, left, h, w, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=False
    ).clamp(0, 1)


def distorted_crop(image: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One training image as compare_gan's ``ImagenetDataset`` makes it: a distorted square crop, resized.

    Args:
        image: ``(C, H, W)`` float in [0, 1], at the image's own size.
        size: the side of the output in pixels (the inverter's resolution).
        generator: the CPU generator the crop box is drawn from (``distorted_square_box``).

    Returns:
        ``(C, size, size)`` float in [0, 1] (bilinear, no antialiasing, as TF1's ``resize_images``).
    """
    return _resized(image, distorted_square_box(image.shape[-2], image.shape[-1], generator), size)


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """One evaluation image as compare_gan makes it: the centred square crop, resized.

    Args:
        image: ``(C, H, W)`` or ``(N, C, H, W)`` float in [0, 1].
        size: the side of the output in pixels.

    Returns:
        ``(..., C, size, size)`` float in [0, 1].
    """
    return _resized(image, center_square_box(image.shape[-2], image.shape[-1]), size)


class CenterCropDataset(ImageDataset):
    """The items of ``dataset`` as their centred square crops at ``size`` (``center_crop``), labels unchanged.

    Args:
        dataset: an ``ImageDataset`` (images ``(C, H, W)`` in [0, 1], any sizes).
        size: the side of every item, in pixels.

    Raises:
        InputError: ``size`` below 1.
    """

    def __init__(self, dataset: ImageDataset, size: int):
        if size < 1:
            raise InputError(f"a centre crop needs a size of at least 1 pixel, got {size}.")
        self.dataset, self.size = dataset, int(size)
        self.classes, self.name = list(dataset.classes), dataset.name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[i]
        return center_crop(image.float(), self.size), label

    def labels(self) -> list[int]:
        return self.dataset.labels()

    def describe(self, i: int) -> str:
        return self.dataset.describe(i)
