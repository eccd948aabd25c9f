"""Writing a checkpoint folder as one unit: after a kill at any moment it holds the old checkpoint or the new one.

A checkpoint is several files (``config.json``, ``model.safetensors``, ``train_state.safetensors``). Each of them
written atomically is not enough: a run killed after the new weights and before the new training state leaves a
folder whose files belong to different steps, and a resume from it goes on silently wrong. ``write_staged``
therefore writes every file into a hidden folder inside the checkpoint folder,
``.checkpoint.invkit-PID-XXXXXXXX.tmp``, and renames that folder to ``.checkpoint.invkit-PID-XXXXXXXX.ready``: that
rename is the moment the new checkpoint exists. Only then are its files moved into place, one rename each, and the
hidden folder removed.

* Killed before the rename: the folder still holds the previous checkpoint, untouched; the hidden ``.tmp`` folder
  is deleted later as a stale temporary one (``invkit.io.owned.remove_stale_temps``, ``complete_staged``).
* Killed after it: the ``.ready`` folder holds the whole new checkpoint. ``complete_staged`` finishes moving it in;
  the next ``write_staged`` into the folder and the trainers' ``--resume`` call it first.

A checkpoint folder that does not exist yet is created first and stays without ``config.json`` (no checkpoint)
until the new one is in place. The files are written by the callers' own writers (``atomic_save_safetensors``,
``save_train_state``, ...), which see a temporary folder and so record nothing in the output folder's list of
invkit's files (``invkit.io.owned``); ``write_staged`` checks the final names instead, before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..errors import OutputError
from .files import fsync_dir, make_dirs, output_error
from .owned import TEMP_SUFFIX, check_write, is_stale_temp, temp_prefix

__all__ = ["READY_SUFFIX", "complete_staged", "write_staged"]

READY_SUFFIX = ".ready"
_STAGE_NAME = "checkpoint"  # .checkpoint.invkit-PID-XXXXXXXX.tmp, then .ready
_READY_RE = re.compile(r"^\.checkpoint\.invkit-\d+-[A-Za-z0-9_]+\.ready$")
_REMOVE = ".invkit-remove.json"  # inside a staged folder: the files of the old checkpoint the new one lacks


def _install_file(src: Path, dst: Path) -> None:
    """Move one file of a committed checkpoint into place (one rename; a test wraps it to kill the process here)."""
    os.replace(src, dst)


def _remove_list(ready: Path) -> list[str]:
    """The old checkpoint's files that ``ready`` lists for deletion: plain names in the checkpoint folder only, so a
    damaged list can neither reach outside the folder nor stop the install with a traceback."""
    path = ready / _REMOVE
    if not path.exists():
        return []
    try:
        names = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        names = None
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n and "\0" not in n
        for n in names
    ):
        raise OutputError(
            f"'{path}' is damaged (not a list of file names in the checkpoint folder); delete the folder '{ready}' "
            "and save the checkpoint again."
        )
    return names


def _install(directory: Path, ready: Path) -> None:
    """Move the files of the committed checkpoint ``ready`` into ``directory``, then remove ``ready``."""
    remove = _remove_list(ready)
    try:
        for name in remove:
            (directory / name).unlink(missing_ok=True)
        for src in sorted(ready.iterdir()):
            if src.name != _REMOVE:
                _install_file(src, directory / src.name)
        fsync_dir(directory)
        (ready / _REMOVE).unlink(missing_ok=True)
        ready.rmdir()
    except OSError as exc:
        raise output_error(directory, exc) from None


def complete_staged(directory: str | os.PathLike) -> bool:
    """Finish what a killed ``write_staged`` left in ``directory``: move a committed checkpoint in, delete the
    staging folders of writers that are gone.

    Returns:
        Whether a committed checkpoint was moved in.

    Raises:
        OutputError: the folder cannot be written; what was there is kept.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return False
    ready, stale = [], []
    for p in directory.iterdir():
        if _READY_RE.match(p.name) and p.is_dir() and not p.is_symlink():
            ready.append(p)
        elif p.name.startswith(f".{_STAGE_NAME}.") and is_stale_temp(p.name) and p.is_dir() and not p.is_symlink():
            stale.append(p)
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    for p in sorted(ready, key=lambda q: q.stat().st_mtime_ns):  # oldest first: the newest ends in place
        for f in p.iterdir():
            if f.name != _REMOVE:
                check_write(directory / f.name)
        _install(directory, p)
    return bool(ready)


def write_staged(
    directory: str | os.PathLike, writers: Mapping[str, Callable[[Path], None]], remove: Iterable[str] = ()
) -> Path:
    """Write the files of one checkpoint into ``directory`` as one unit (see the module's docstring).

    Args:
        directory: the checkpoint folder; created if missing. Other files in it are left alone.
        writers: file name -> a function that writes that file to the path it is given.
        remove: names of files of the old checkpoint that the new one does not have (deleted with the install).

    Returns:
        The folder.

    Raises:
        OutputError: the folder cannot be created or written, or a file of the checkpoint there was not written
            by the running command or is one of its inputs (``invkit.io.owned.check_write``); the folder keeps
            what it held.
        Exception: whatever a writer raises (``TypeError`` for a value that cannot be stored, ...); nothing is
            changed.
    """
    directory = make_dirs(directory)
    complete_staged(directory)  # a checkpoint a killed writer committed goes in before this one
    remove = [n for n in remove if n not in writers and os.path.lexists(directory / n)]
    for name in [*writers, *remove]:
        check_write(directory / name)
    try:
        stage = Path(tempfile.mkdtemp(prefix=temp_prefix(_STAGE_NAME), suffix=TEMP_SUFFIX, dir=directory))
    except OSError as exc:
        raise output_error(directory, exc) from None
    try:
        for name, write in writers.items():
            write(stage / name)
        if remove:
            (stage / _REMOVE).write_text(json.dumps(remove))
        fsync_dir(stage)
        ready = stage.with_name(stage.name[: -len(TEMP_SUFFIX)] + READY_SUFFIX)
        os.rename(stage, ready)  # the new checkpoint exists from here on
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(directory, exc) from None
        raise
    with contextlib.suppress(OSError):
        fsync_dir(directory)
    _install(directory, ready)
    return directory
