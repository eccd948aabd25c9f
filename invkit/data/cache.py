"""The cache directory, and the memory-mapped arrays of decoded images kept there.

The cache directory is ``$INVKIT_CACHE`` or ``~/.cache/invkit`` (``cache_dir``; the one place invkit reads the home
folder; an empty ``INVKIT_CACHE`` counts as unset); nothing is ever unpacked into a repository. It holds:

* ``decoded/<key>.npy`` — folders and npz batches decoded once into memory-mapped uint8 arrays ``(N, C, H, W)``
  (``_build_cached`` writes one, ``_open_cached`` opens it; ``FolderImageDataset.materialize`` and
  ``load_npz_folder`` key them). ``CACHE_VERSION`` is part of every key: bump it when the decoding changes.
* ``unpacked/`` — archives of image folders (``invkit.data.archives``).
* ``datasets/`` — torchvision data sets (``invkit.data.sources``).

Concurrent first use is safe: whoever builds an entry holds an exclusive lock on ``<entry>.lock`` (``cache_lock``),
writes into a temporary name of its own and renames it into place; whoever waited for the lock looks again and
uses what the other built. A cache that cannot be written gives a ``CacheWarning`` (``cache_warning`` words it)
and the run goes on without it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError

CACHE_VERSION = 3  # bump when the decoding changes, so old caches are not reused (3: EXIF orientation, float ranges)


def cache_dir() -> Path:
    """``$INVKIT_CACHE`` or ``~/.cache/invkit``; an empty or blank ``INVKIT_CACHE`` counts as unset (it used to
    put the cache into the working folder).

    Raises:
        InputError: ``INVKIT_CACHE`` is unset and the home folder cannot be determined.
    """
    given = os.environ.get("INVKIT_CACHE", "").strip()
    if given:
        return Path(given).expanduser()
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry (some containers)
        raise InputError(
            "the invkit cache defaults to ~/.cache/invkit but the home folder cannot be determined (HOME is not "
            "set); set INVKIT_CACHE to a writable folder."
        ) from None
    return home / ".cache" / "invkit"


def cache_warning(where: Path, exc: BaseException) -> str:
    """The one-line warning for a cache that cannot be written (the run goes on without it)."""
    why = getattr(exc, "strerror", None) or str(exc)
    return (
        f"the invkit cache '{where}' cannot be written ({why}); going on without it (set INVKIT_CACHE to a "
        "writable folder to keep decoded data between runs)."
    )


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written; the images are decoded into memory instead."""


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block; wait while another
    process or thread holds it. Yields whether the lock is held.

    The lock spares a second builder the work, and lets the holder remove what killed builders left: every entry is
    also written under a temporary name and renamed into place, so where locks are not available (no ``fcntl``, a
    file system without locks; yields False) the block runs unlocked and the result is still never half-written.

    Raises:
        OSError: the lock file cannot be created (the cache folder is not writable).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: the temporary-name-then-rename is all the protection there is
        yield False
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # chosen over a lock package: fcntl is in the standard library
            locked = True
        except OSError:  # e.g. ENOLCK on a network file system
            locked = False
        yield locked
    finally:
        os.close(fd)  # closing releases the lock


def _open_cached(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """A complete cache array, memory-mapped copy-on-write, or None (also when it is not of ``shape``)."""
    if not path.exists():
        return None
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):  # a damaged cache file is rebuilt
        return None
    if array.dtype != np.uint8 or (shape is not None and tuple(array.shape) != tuple(shape)):
        return None
    return array


def save_cached_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` under a temporary name of this call's own, then renamed to ``path``: never half-written.

    Raises:
        OSError: the folder cannot be written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _in_memory(shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
    out = np.empty(shape, dtype=np.uint8)
    fill(out)
    return out


def _build_cached(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
    """The uint8 array ``shape`` at ``path``, built by ``fill`` unless another process or thread built it meanwhile.

    The builder holds ``cache_lock(<path>.lock)``, removes what killed builders left, fills a temporary file of its
    own and renames it to ``path``; a second caller waits for the lock, then opens what the first built. When the
    cache folder cannot be written, warn (``CacheWarning``) and fill an in-memory array instead.
    """
    with contextlib.ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            locked = held.enter_context(cache_lock(path.with_name(path.stem + ".lock")))
            done = _open_cached(path, shape)  # built by whoever held the lock before us
            if done is not None:
                return done
            for stale in path.parent.glob(f".{path.stem}.*.tmp.npy") if locked else ():  # of killed builders
                stale.unlink(missing_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npy")
            os.close(fd)
            tmp = Path(name)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        except OSError as exc:
            warnings.warn(cache_warning(path.parent, exc), CacheWarning, stacklevel=3)
            return _in_memory(shape, fill)
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
                return _in_memory(shape, fill)
            raise
        return np.load(path, mmap_mode="c", allow_pickle=False)
