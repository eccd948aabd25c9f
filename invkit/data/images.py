"""Image files and pixels: decoding one file, the colour mode of a split, resizing.

``decode_image`` reads one file of ``IMAGE_EXTENSIONS`` into a uint8 ``(C, H, W)`` array (``load_image``: a float
tensor in [0, 1]); 16-bit greyscale is rescaled, not clipped. A file that is not an image, truncated, corrupt or
a decompression bomb raises one ``DataError`` naming it. ``split_mode`` reads only the headers to tell whether a
split is colour or greyscale. ``resize`` resizes a float batch (antialiased bilinear) and converts channels;
``_fit`` does the same for one decoded uint8 array.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb warning raised as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _unreadable(path: str | os.PathLike, exc: BaseException) -> DataError:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        why = f"it is too large to decode safely ({exc})"
    elif isinstance(exc, UnidentifiedImageError):
        why = "it is not an image file Pillow can read"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return DataError(f"cannot read image '{path}' ({why}); delete or replace the file.")


def split_mode(paths: Iterable[str | os.PathLike]) -> str:
    """``"RGB"`` if any of ``paths`` is a colour image, ``"L"`` if all are greyscale (headers only).

    Raises:
        DataError: a file that cannot be opened (named).
    """
    for p in paths:
        try:
            with _open(p) as im:
                if im.mode not in GREY_MODES:
                    return "RGB"
        except Exception as exc:  # Pillow raises many types for bad files; each becomes one line naming it
            raise _unreadable(p, exc) from None
    return "L"


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with _open(path) as im:
            return im.height, im.width
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _to_uint8(im: Image.Image, mode: str) -> np.ndarray:
    """Pixels of ``im`` as uint8 ``(H, W, C)``; high-bit-depth greyscale is rescaled, not clipped."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and (im.format == "PNG" or a.max(initial=0) > 255)):
            a = a / 65535.0 * 255.0  # 16-bit samples (Pillow reads 16-bit PNGs as I;16 or I)
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0  # float images in [0, 1]
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        arr = grey[..., None] if mode == "L" else np.repeat(grey[..., None], 3, axis=-1)
    else:
        arr = np.asarray(im.convert(mode), dtype=np.uint8)
        arr = arr[..., None] if arr.ndim == 2 else arr
    return arr


def decode_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Decode one image file into a uint8 ``(C, H, W)`` array (``C`` = 1 for ``"L"``, 3 for ``"RGB"``).

    16-bit greyscale (Pillow modes ``I;16``, ``I``) is scaled by 255/65535, so a 16-bit copy of an 8-bit image
    reads within 1/255 of it; greyscale files are replicated to RGB when ``mode`` is ``"RGB"``.

    Raises:
        DataError: naming the file, when it is not an image, truncated, corrupt, or larger than Pillow's
            decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    try:
        with _open(path) as im:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                arr = _to_uint8(im, mode)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... for bad files
        raise _unreadable(path, exc) from None
    return np.array(arr.transpose(2, 0, 1), order="C")  # a writable copy (Pillow arrays are read-only)


def load_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Read one image file as a float ``(C, H, W)`` tensor in [0, 1] (see ``decode_image``; same errors)."""
    return torch.from_numpy(decode_image(path, mode)).float() / 255.0


def _fit(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A uint8 ``(C, H, W)`` array resized (antialiased bilinear) to ``hw`` if it is not that size already."""
    if tuple(arr.shape[-2:]) == tuple(hw):
        return arr
    x = torch.from_numpy(arr).float()[None] / 255.0
    x = F.interpolate(x, size=tuple(hw), mode="bilinear", antialias=True, align_corners=False)[0]
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def resize(images: torch.Tensor, size: int | tuple[int, int], channels: int | None = None) -> torch.Tensor:
    """Resize a ``(N, C, H, W)`` batch in [0, 1] (antialiased bilinear) and convert channels if asked."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    if channels is not None and images.shape[1] != channels:
        images = images.expand(-1, 3, -1, -1) if channels == 3 else images.mean(1, keepdim=True)
    return images
