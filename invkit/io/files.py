"""Writing output files atomically, and one-line errors for outputs that cannot be written.

Files are written to a temporary name in the same folder (``.NAME.invkit-PID-XXXXXXXX.tmp``, see
``invkit.io.owned``) and renamed into place, so a process killed mid-write leaves the previous file intact, never a
half-written one; they get the mode the umask gives new files, like ``open``. ``atomic_write_bytes`` / ``_text`` /
``_json`` (NaN/inf become ``null``, ``json_safe``) and ``atomic_save_safetensors`` write; before a file is created
or replaced, ``invkit.io.owned.check_write`` refuses it if it is an input of the run or a file of the output folder
that the command did not write. ``remove_stale_temps`` (from ``invkit.io.owned``) deletes only the temporary files
of writers that are gone.
A folder that cannot be created or a file that cannot be written (not writable, disk full) raises
``OutputError`` (``output_error`` words it; ``make_dirs`` is ``mkdir -p`` with it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from .owned import TEMP_SUFFIX, check_write, output_error, remove_stale_temps, temp_prefix

__all__ = [
    "TEMP_SUFFIX",
    "atomic_save_safetensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "fsync_dir",
    "json_safe",
    "make_dirs",
    "output_error",
    "remove_stale_temps",
]


def current_umask() -> int:
    """The process' umask (read from /proc where it can be, so no other thread ever sees it changed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it, a new file) to disk; best effort, never raises (some file
    systems cannot open or sync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p`` with a one-line ``OutputError`` instead of an OSError traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    if not path.is_dir():
        raise output_error(path, FileExistsError(errno.EEXIST, "not a folder"))
    return path


def _temp_next_to(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` with the mode a plain ``open(path, "w")`` would give (0666 & ~umask).

    ``mkstemp`` creates files 0600; without the chmod every output would stay private whatever the umask.
    """
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:
        pass  # a file system without modes (FAT, some mounts): the file is still written
    return fd, tmp


def _write_atomically(
    path: str | os.PathLike, write: Callable[[str], None], errors: tuple[type[BaseException], ...] = (OSError,)
) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path`` (umask mode), then rename it over ``path``.

    The one replace path of the atomic writers: ``check_write`` first, the temporary file removed on any failure,
    ``errors`` (and OSError) turned into one ``OutputError`` line; ``path`` keeps its old content.
    """
    path = Path(path)
    check_write(path)
    fd, tmp = _temp_next_to(path)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except errors as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one.

    The file gets the mode the umask gives new files (like ``open``), not mkstemp's 0600.

    Raises:
        OutputError: the folder is not writable or the disk is full; ``path`` keeps its old content. Or ``path``
            is an input of the run or a file the command did not write (``invkit.io.owned.check_write``).
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    _write_atomically(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by None, so ``json.dumps`` writes valid JSON (RFC 8259 has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, doc: Any, **kwargs: Any) -> None:
    """Write ``doc`` as JSON atomically; NaN/inf become ``null`` (see ``json_safe``), never invalid JSON."""
    kwargs.setdefault("indent", 2)
    default = kwargs.pop("default", str)
    text = json.dumps(json_safe(json.loads(json.dumps(doc, default=default))), allow_nan=False, **kwargs)
    atomic_write_text(path, text + "\n")


def atomic_save_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Save tensors to a safetensors file atomically (see ``atomic_write_bytes``).

    Raises:
        OutputError: the folder is not writable or the disk is full; ``path`` keeps its old content. Or ``path``
            is an input of the run or a file the command did not write (``invkit.io.owned.check_write``).
    """

    def write(tmp: str) -> None:
        # safetensors refuses shared or non-contiguous storage; checkpoints hold plain copies.
        save_file(
            {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, tmp, metadata=dict(metadata or {})
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # safetensors writes a file of its own (0600): give it the umask's mode
            os.chmod(tmp, 0o666 & ~current_umask())

    _write_atomically(path, write, (OSError, SafetensorError))
