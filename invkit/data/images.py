"""Image files and pixels: decoding one file, the colour mode of a split, resizing.

``decode_image`` is the one place where a user's image file becomes pixels; every reader of image files (folders,
archives, ``invkit invert``) goes through it. It reads one file of ``IMAGE_EXTENSIONS`` into a uint8 ``(C, H, W)``
array (``load_image``: a float tensor in [0, 1]) and normalises what files disagree on:

* **orientation** — the EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``), so a phone photo is
  upright; ``image_size`` reports the size after it;
* **bit depth and float ranges** — 16-bit greyscale is rescaled, not clipped; float images are read as [0, 1]
  (within one 8-bit level) or as whole numbers 0-255, and a float image with NaN/inf pixels or another range is
  refused rather than guessed;
* **size** — ``size`` resizes this one image (antialiased bilinear, ``_fit``) right after decoding, so images of
  mixed sizes are brought to one size each on their own, and only one full-size image is in memory at a time.

A file that is not an image, truncated, corrupt or a decompression bomb raises one ``DataError`` naming it
(``shown_path``: names that are not UTF-8 are shown with backslash escapes). ``split_mode`` reads only the headers
to tell whether a split is colour or greyscale. ``resize`` resizes a float batch (antialiased bilinear) and
converts channels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from ..io.read import check_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as text that can always be printed: bytes that are not UTF-8 are shown as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb warning raised as an error; a FIFO, device or socket is
    refused before it is opened (reading one would wait or read forever)."""
    check_file(path, "image", DataError, "give image files")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _unreadable(path: str | os.PathLike, exc: BaseException) -> DataError:
    if isinstance(exc, DataError):  # already one line naming the file (check_file)
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        why = f"it is too large to decode safely ({exc})"
    elif isinstance(exc, UnidentifiedImageError):
        why = "it is not an image file Pillow can read"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return DataError(f"cannot read image '{shown_path(path)}' ({why}); delete or replace the file.")


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


_ORIENTATION = 0x0112  # the EXIF tag; values 5-8 turn the image by a quarter (width and height swap)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file as ``decode_image`` returns it (EXIF orientation applied), from the
    headers only.

    Raises:
        DataError: a file that cannot be opened (named).
    """
    try:
        with _open(path) as im:
            turned = im.getexif().get(_ORIENTATION) in (5, 6, 7, 8)
            return (im.width, im.height) if turned else (im.height, im.width)
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _float_scale(a: np.ndarray, path: str | os.PathLike) -> float:
    """The factor that brings float pixels ``a`` to 0-255: 255 for [0, 1], 1 for whole numbers 0-255.

    A pixel up to one 8-bit level outside [0, 1] (1.0001, -1e-7: rounding) is clipped, not taken as a sign of
    another range; NaN/inf pixels, and any other range, are refused: no reading of them is sure.
    """
    finite = np.isfinite(a)
    if not finite.all():
        raise DataError(
            f"image '{shown_path(path)}' has {int((~finite).sum())} NaN or infinite pixel value(s); invkit does not "
            "guess what they should be: repair the file or replace it."
        )
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= -1 / 255 and hi <= 1 + 1 / 255:
        return 255.0
    if lo >= 0 and hi <= 255 and np.array_equal(a, np.rint(a)):
        return 1.0
    raise DataError(
        f"image '{shown_path(path)}' is a float image with values from {lo:.6g} to {hi:.6g}; invkit reads float "
        "images as [0, 1] (or whole numbers 0-255) and does not guess another range: scale it to [0, 1] or save "
        "it as an 8- or 16-bit image."
    )


def _to_uint8(im: Image.Image, mode: str, path: str | os.PathLike = "", fmt: str | None = None) -> np.ndarray:
    """Pixels of ``im`` as uint8 ``(H, W, C)``; high-bit-depth greyscale is rescaled, not clipped; float images are
    checked (``_float_scale``); 32-bit integer images beyond 16 bits are refused (``DataError`` naming ``path``).
    ``fmt``: the file's format when ``im`` is a copy (``exif_transpose`` drops it); default ``im.format``."""
    fmt = fmt or im.format
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            a = a * _float_scale(a, path)
        elif im.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise DataError(
                f"image '{shown_path(path)}' is a 32-bit integer image with values from {int(a.min())} to "
                f"{int(a.max())}, beyond 16 bits; invkit does not guess their range: save it as an 8- or 16-bit "
                "image."
            )
        elif im.mode.startswith("I;16") or (im.mode == "I" and (fmt == "PNG" or a.max(initial=0) > 255)):
            a = a / 65535.0 * 255.0  # 16-bit samples (Pillow reads 16-bit PNGs as I;16 or I)
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        arr = grey[..., None] if mode == "L" else np.repeat(grey[..., None], 3, axis=-1)
    else:
        arr = np.asarray(im.convert(mode), dtype=np.uint8)
        arr = arr[..., None] if arr.ndim == 2 else arr
    return arr


def decode_image(path: str | os.PathLike, mode: str = "RGB", size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image file into a uint8 ``(C, H, W)`` array (``C`` = 1 for ``"L"``, 3 for ``"RGB"``).

    The EXIF orientation is applied (``PIL.ImageOps.exif_transpose``). 16-bit greyscale (Pillow modes ``I;16``,
    ``I``) is scaled by 255/65535, so a 16-bit copy of an 8-bit image reads within 1/255 of it; float images
    (mode ``F``) are read as [0, 1], a pixel up to 1/255 outside clipped, or as whole numbers 0-255; greyscale
    files are replicated to RGB when ``mode`` is ``"RGB"``.

    Args:
        path: the image file.
        mode: ``"RGB"`` or ``"L"``.
        size: ``(H, W)`` (or one side for a square) to resize this image to (antialiased bilinear), or None for
            its own size.

    Raises:
        DataError: naming the file, when it is not an image, truncated, corrupt, larger than Pillow's
            decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), a float image with NaN/inf pixels or values
            neither in [0, 1] nor whole numbers 0-255, or a 32-bit integer image beyond 16 bits.
    """
    try:
        with _open(path) as im:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                arr = _to_uint8(ImageOps.exif_transpose(im), mode, path, im.format)
    except DataError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... for bad files
        raise _unreadable(path, exc) from None
    arr = np.array(arr.transpose(2, 0, 1), order="C")  # a writable copy (Pillow arrays are read-only)
    if size is not None:
        arr = _fit(arr, (size, size) if isinstance(size, int) else tuple(size))
    return arr


def load_image(path: str | os.PathLike, mode: str = "RGB", size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read one image file as a float ``(C, H, W)`` tensor in [0, 1] (see ``decode_image``; same arguments and
    errors)."""
    return torch.from_numpy(decode_image(path, mode, size)).float() / 255.0


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
