"""The cache directory, and the memory-mapped arrays of decoded images kept there.

The cache directory is ``$INVKIT_CACHE`` or ``~/.cache/invkit`` (``cache_dir``; the one place invkit reads the home
folder); nothing is ever unpacked into a repository. It holds:

* ``decoded/<key>.npy`` — folders and npz batches decoded once into memory-mapped uint8 arrays ``(N, C, H, W)``
  (``_build_cached`` writes one, ``_open_cached`` opens it; ``FolderImageDataset.materialize`` and
  ``load_npz_folder`` key them). ``CACHE_VERSION`` is part of every key: bump it when the decoding changes.
* ``unpacked/`` — archives of image folders (``invkit.data.archives``).
* ``datasets/`` — torchvision data sets (``invkit.data.sources``).

A cache that cannot be written gives a ``CacheWarning`` (``cache_warning`` words it) and the run goes on without it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_VERSION = 2  # bump when the decoding changes, so old caches are not reused


def cache_dir() -> Path:
    """``$INVKIT_CACHE`` or ``~/.cache/invkit``."""
    return Path(os.environ.get("INVKIT_CACHE", Path.home() / ".cache" / "invkit")).expanduser()


def cache_warning(where: Path, exc: BaseException) -> str:
    """The one-line warning for a cache that cannot be written (the run goes on without it)."""
    why = getattr(exc, "strerror", None) or str(exc)
    return (
        f"the invkit cache '{where}' cannot be written ({why}); going on without it (set INVKIT_CACHE to a "
        "writable folder to keep decoded data between runs)."
    )


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written; the images are decoded into memory instead."""


def _open_cached(path: Path) -> np.ndarray | None:
    """A complete cache array, memory-mapped copy-on-write, or None."""
    if not path.exists():
        return None
    try:
        return np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):  # a damaged cache file is rebuilt
        return None


def _build_cached(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
    """Create the uint8 array ``shape`` at ``path`` (written to a temporary file, then renamed) and fill it.

    When the cache folder cannot be written, warn (``CacheWarning``) and fill an in-memory array instead.
    """
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:
        warnings.warn(cache_warning(path.parent, exc), CacheWarning, stacklevel=3)
        out = np.empty(shape, dtype=np.uint8)
        fill(out)
        return out
    try:
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # e.g. the disk filled up: keep going without a cache
            warnings.warn(
                f"cannot finish the decoded-image cache '{path}' ({exc.strerror or exc}); decoding into memory.",
                CacheWarning,
                stacklevel=3,
            )
            mem = np.empty(shape, dtype=np.uint8)
            fill(mem)
            return mem
        raise
    return np.load(path, mmap_mode="c", allow_pickle=False)
