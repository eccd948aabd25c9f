"""Archives of image folders: a ``.tar.gz`` / ``.tgz`` / ``.tar`` is unpacked once into ``<cache>/unpacked/``.

Members are extracted with tar's ``data`` filter (no absolute paths, no links out of the folder); an archive of
the same path, size and modification time is unpacked only once. Commands started together on the same new
archive unpack it once: the first holds ``cache_lock`` on ``<folder>.lock`` and extracts into a temporary folder of
its own, marks it complete and renames it into place; the others wait for the lock and find it complete. A folder
in place is therefore always complete; one that is not marked (left by invkit 0.1) is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path

from ..errors import DataError, OutputError
from .cache import cache_dir, cache_lock, cache_warning

COMPLETE = ".complete"  # the marker inside a finished folder


def _corrupt(path: Path, exc: BaseException) -> DataError:
    why = " ".join(str(exc).split())  # tarfile lists what it tried on several lines; one line
    return DataError(f"cannot unpack '{path}' ({why}); the archive is corrupt or not a tar file.")


def _unpack_error(path: Path, where: Path, exc: OSError) -> DataError | OutputError:
    """What an OSError while unpacking means: a corrupt archive only when the archive's data is bad (no errno);
    a full disk, a quota or an unwritable cache are said as such (the archive may be fine)."""
    if exc.errno is None:  # gzip.BadGzipFile, lzma errors: the stream is bad
        return _corrupt(path, exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
        return OutputError(
            f"cannot unpack '{path}' into '{where}': {why}; free some space or set INVKIT_CACHE to a folder on a "
            "disk with room (what was unpacked so far is removed)."
        )
    if exc.filename is not None and Path(exc.filename) == path:
        return DataError(f"cannot read '{path}' ({exc.strerror}); check the file and its permissions.")
    return OutputError(
        f"cannot unpack '{path}' into '{where}' ({exc.strerror}: {exc.filename or '?'}); set INVKIT_CACHE to a "
        "writable folder."
    )


def unpack_archive(path: Path) -> Path:
    """Unpack a ``.tar``/``.tar.gz``/``.tgz`` archive once into ``<cache>/unpacked/``; return the unpacked folder.

    An archive of the same path, size and modification time is unpacked only once, also by processes or threads
    that start on it at the same time (they wait for the first). When the cache cannot be written, the archive is
    unpacked into a temporary folder for this run only, with a warning.

    Raises:
        DataError: the archive is corrupt, not a tar file, cannot be read, or holds members the ``data``
            extraction filter refuses (absolute paths, links out of the folder).
        OutputError: the cache's disk is full or over quota while unpacking, or the cache folder stops being
            writable midway; the partial folder is removed.
    """
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = cache_dir() / "unpacked" / f"{path.name.split('.')[0]}-{key}"
    if (dest / COMPLETE).exists():
        return dest
    with contextlib.ExitStack() as held:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            locked = held.enter_context(cache_lock(dest.with_name(dest.name + ".lock")))
        except OSError as exc:  # a read-only cache: unpack into a temporary folder for this run only
            warnings.warn(cache_warning(dest.parent, exc), stacklevel=2)
            tmp = Path(tempfile.mkdtemp(prefix="invkit-unpacked-"))
            _unpack_into(path, tmp)
            return tmp
        if (dest / COMPLETE).exists():  # another process unpacked it while we waited for the lock
            return dest
        for stale in dest.parent.glob(f"{dest.name}.*partial") if locked else ():  # left by killed runs
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", suffix=".partial", dir=dest.parent))
        except OSError as exc:
            raise _unpack_error(path, dest.parent, exc) from None
        _unpack_into(path, tmp)
        try:
            (tmp / COMPLETE).touch()
            if dest.exists():  # not marked complete: an unfinished folder of invkit 0.1
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _unpack_error(path, dest.parent, exc) from None
    return dest


def _unpack_into(path: Path, into: Path) -> None:
    """Extract ``path`` into the new folder ``into``; on any failure ``into`` is removed and one line raised."""
    try:
        _extract(path, into)
    except BaseException as exc:
        shutil.rmtree(into, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _unpack_error(path, into.parent, exc) from None
        raise


def _extract(path: Path, into: Path) -> None:
    """Extract ``path`` into ``into`` with the ``data`` filter; a bad archive is a ``DataError``, an OSError of the
    file system is passed on."""
    try:
        with tarfile.open(path) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise _corrupt(path, exc) from None
    except OSError as exc:
        if exc.errno is None:
            raise _corrupt(path, exc) from None
        raise
