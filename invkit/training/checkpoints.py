"""The checkpoint folders of an inverter run: where they are, which is the newest, and writing one safely.

Checkpoints are ``OUT/checkpoints/step_NNNNNN/`` (config.json + model.safetensors + train_state.safetensors), each
written into a hidden temporary folder ``.tmp-step_NNNNNN-PID`` and renamed into place, so a crash never leaves a
half-written checkpoint; ``OUT/checkpoints/latest`` names the newest, and only the newest ``keep`` are kept. Only
complete folders count as checkpoints (``find_checkpoints``, ``latest_checkpoint``: re-exported from
``invkit.io.checkpoint``, beside ``checkpoint_folder``, the one rule by which every command reads a run folder as its
newest checkpoint); ``_clean_partial`` removes what a killed run left behind (hidden folders of that naming whose
process is gone, ``invkit.io.owned.is_stale_temp``). What the training state holds is written by
``invkit.training.loop`` and read back by ``invkit.training.resume``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..core.inverter import Inverter
from ..io.checkpoint import CHECKPOINTS, find_checkpoints, latest_checkpoint  # noqa: F401 - re-exported
from ..io.files import atomic_write_text, fsync_dir
from ..io.owned import check_write, is_stale_temp, may_write

LATEST = "latest"


def checkpoint_dir(out: str | os.PathLike, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f"step_{step:06d}"


def write_checkpoint(
    out: str | os.PathLike,
    step: int,
    inverter: Inverter,
    train_state: dict[str, Any],
    extra: dict[str, Any],
    keep: int = 0,
) -> Path:
    """Write ``OUT/checkpoints/step_NNNNNN`` atomically: into a hidden temporary folder, then one rename.

    Args:
        keep: how many of the newest checkpoints to keep (0: all). Older ones are renamed away, then deleted.
    """
    root = Path(out) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(out, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        inverter.save(tmp, train_state=train_state, extra=extra)
        fsync_dir(tmp)
        check_write(final)  # OUT/checkpoints/step_N is the command's own (or new), never a user's folder
        if final.exists():  # the same step written again: move the old one out of the way first
            final.rename(root / f".old-{final.name}-{os.getpid()}")
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    if keep > 0:
        for _, old in find_checkpoints(out)[:-keep]:
            if not may_write(old):  # not written by this command: not its to delete
                continue
            trash = root / f".old-{old.name}-{os.getpid()}"
            old.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
    for leftover in root.glob(f".old-*-{os.getpid()}"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def _clean_partial(out: Path) -> None:
    """Remove the temporary folders killed runs left behind (they never count as checkpoints): only invkit's
    (``.tmp-step_NNNNNN-PID``, ``.old-...``) of processes that are gone, never a live run's or a user's."""
    root = out / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if is_stale_temp(p.name) and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
