"""Archives of image folders: a ``.tar.gz`` / ``.tgz`` / ``.tar`` is unpacked once into ``<cache>/unpacked/``.

Members are extracted with tar's ``data`` filter (no absolute paths, no links out of the folder); an archive of
the same path, size and modification time is unpacked only once.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import warnings
from pathlib import Path

from ..errors import DataError
from .cache import cache_dir, cache_warning


def unpack_archive(path: Path) -> Path:
    """Unpack a ``.tar``/``.tar.gz``/``.tgz`` archive once into ``<cache>/unpacked/``; return the unpacked folder.

    An archive of the same path, size and modification time is unpacked only once. When the cache cannot be
    written, the archive is unpacked into a temporary folder for this run only, with a warning.

    Raises:
        DataError: the archive is corrupt, not a tar file, or holds members the ``data`` extraction filter
            refuses (absolute paths, links out of the folder).
    """
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = cache_dir() / "unpacked" / f"{path.name.split('.')[0]}-{key}"
    if (dest / ".complete").exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only cache: unpack into a temporary folder for this run only
        import tempfile

        warnings.warn(cache_warning(dest.parent, exc), stacklevel=2)
        tmp = dest = Path(tempfile.mkdtemp(prefix="invkit-unpacked-"))
    try:
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot unpack '{path}' ({exc}); the archive is corrupt or not a tar file.") from None
    if tmp == dest:
        return dest
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.replace(tmp, dest)
    (dest / ".complete").touch()
    return dest
