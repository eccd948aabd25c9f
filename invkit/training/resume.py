"""Resuming an inverter run: the RNG states a checkpoint saves, and reading a run back.

The training state of every checkpoint holds the trainer's ``state_dict()``, the step, the data position and
every RNG state (torch CPU and CUDA, python, numpy) of every rank (``_gather_rng``), which is what makes
``resume`` bit-exact. ``_restore`` loads the newest checkpoint whose files all load (one cut short is skipped with
a warning, never deleted), and refuses other training data (by fingerprint, ``_check_resumed_data``), other
classifier weights (by digest, ``_check_resumed_classifier``) and fewer ``--steps`` than the run has reached;
resumed on another number of processes, the run goes on, but not bit-identically. ``read_run_config`` reads a
run's ``OUT/train_config.json`` back (``invkit train --resume``).
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.inverter import InverterTrainer
from ..core.provenance import identity_mismatch
from ..errors import CheckpointError, InvkitError, TrainingError
from ..io.checkpoint import load_checkpoint_weights, read_checkpoint_config
from ..io.read import Required, check_shape, read_json
from ..io.train_state import TRAIN_STATE_NAME, load_train_state
from .checkpoints import CHECKPOINTS, find_checkpoints
from .config import CONFIG_FILE, TrainConfig, derive_seed
from .distributed import _Dist


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch_cpu"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


def _gather_rng(d: _Dist, device: torch.device) -> list[dict[str, Any]]:
    mine = _rng_state(device)
    if not d.active:
        return [mine]
    import torch.distributed as dist

    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, mine)
    return out


def _restore(
    trainer: InverterTrainer,
    out: Path,
    config: TrainConfig,
    fingerprint: str,
    device: torch.device,
    d: _Dist,
    flag: str = "--resume",
) -> tuple[int, int, Path]:
    """Load the newest readable checkpoint's weights and training state into ``trainer``.

    Refuses data other than the run's (by fingerprint) and fewer ``--steps`` than the run has reached. ``out`` is
    the run being resumed, or (``flag`` ``--init-from``) the other run a new one starts from.

    Returns:
        (step, data position, the checkpoint folder used).
    """
    _check_resumed_data(out, fingerprint, config.data, flag)
    checkpoint, state, weights = _newest_loadable(out, flag)
    if int(state["step"]) > config.steps:
        raise TrainingError(
            f"{flag}: the run in '{out}' is at step {int(state['step'])}, past --steps {config.steps}; "
            "ask for more steps, not fewer (nothing was changed)."
        )
    try:
        trainer.inference_inverter().load_state_dict(weights)
        if "inverter" in state:
            trainer.inverter.load_state_dict(state["inverter"])
    except RuntimeError as exc:  # another input size (a layer of another width) or another network
        first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc).splitlines()[0])
        raise TrainingError(
            f"{flag}: the weights of {checkpoint} do not fit this run's inverter ({first.rstrip('.')}); start from a "
            "run with the same inverter options and an observation of the same size."
        ) from exc
    trainer.load_state_dict(state["trainer"])
    step, position = int(state["step"]), int(state["position"])
    rngs = state["rng"]
    if len(rngs) == d.world:
        _set_rng_state(rngs[d.rank], device)
    else:  # another number of processes: the run goes on, but not bit-identically
        torch.manual_seed(derive_seed(config.seed, "train", d.rank, "resume", step))
    return step, position, checkpoint


def _check_resumed_classifier(
    out: Path, checkpoint: Path, identity: dict[str, str], spec: str, flag: str = "--resume"
) -> None:
    """Refuse to resume against other classifier weights than the run's (a classifier folder retrained in place, a
    ``--weights`` file replaced, another path in ``train_config.json``), by content (``identity_mismatch``)."""
    try:
        recorded = read_checkpoint_config(checkpoint, kind="inverter").get("classifier_identity")
    except CheckpointError:
        return  # an unreadable newest checkpoint is skipped by _newest_loadable, which says so
    reason = identity_mismatch(recorded, identity) if isinstance(recorded, dict) else None
    if reason is not None:
        raise TrainingError(
            f"{flag}: the classifier '{spec}' is not the one the run in '{out}' was trained against ({reason}); "
            "pass the classifier (and --weights) the run used, or start a new run in another --out."
        )


def _check_resumed_observation(out: Path, checkpoint: Path, config: TrainConfig) -> None:
    """Refuse to resume with another channel or layer than the run's (its newest checkpoint records them; one from
    before they were recorded observed ``logits``)."""
    from ..core.channels import create_channel
    from ..core.observation import describe

    try:
        doc = read_checkpoint_config(checkpoint, kind="inverter")
    except CheckpointError:
        return  # an unreadable newest checkpoint is skipped by _newest_loadable, which says so
    recorded = (doc.get("channel") or "logits", doc.get("layer") or None)
    if (create_channel(recorded[0]).spec, recorded[1]) != (create_channel(config.channel).spec, config.layer):
        raise TrainingError(
            f"--resume: the run in '{out}' was trained on {describe(*recorded)}, not "
            f"{describe(config.channel, config.layer)}; resume with the run's, or train into another --out."
        )


def _check_resumed_data(out: Path, fingerprint: str, data: str, flag: str = "--resume") -> None:
    """Refuse to resume on other images than the run's (a relative --data seen from another folder, say)."""
    path = out / CONFIG_FILE
    old = read_run_doc(out).get("data_fingerprint") if path.exists() else None
    if old is not None and old != fingerprint:
        raise TrainingError(
            f"{flag}: the training data '{data}' is not the data the run in '{out}' was trained on (another "
            "folder or other images; relative paths depend on the working folder); pass the same --data."
        )


# What _restore reads from a checkpoint's training state (written by training.loop), checked as it is read.
TRAIN_STATE_SCHEMA = {
    "step": Required(int),
    "position": Required(int),
    "trainer": Required(dict),
    "rng": Required([dict]),
    "inverter": dict,
}


def _newest_loadable(out: Path, flag: str = "--resume") -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """The newest checkpoint whose files all load, with its training state and weights.

    A checkpoint cut short (disk full, a copy interrupted) is skipped with a warning naming it, and the one
    before it is used; it is never deleted here (the run rewrites that step when it gets there again).
    """
    found = find_checkpoints(out)
    problems = []
    for _, path in reversed(found):
        try:
            state = load_train_state(path / TRAIN_STATE_NAME)
            check_shape(state, TRAIN_STATE_SCHEMA, path / TRAIN_STATE_NAME, CheckpointError, "it is not this run's")
            weights = load_checkpoint_weights(path)
        except CheckpointError as exc:
            problems.append(f"{path} ({exc})")
            continue
        for p in problems:
            warnings.warn(f"skipped the unreadable checkpoint {p}; resuming from {path.name}", stacklevel=2)
        return path, state, weights
    if not problems:
        raise TrainingError(f"{flag}: '{out}' holds no checkpoint ({CHECKPOINTS}/step_*) to start from.")
    raise TrainingError(
        f"{flag}: no checkpoint in '{out / CHECKPOINTS}' can be read ({'; '.join(problems)}); delete the broken "
        "folder(s) named here, or start a new run in another --out."
    )


# What a resume reads back from OUT/train_config.json (checked as it is read, invkit.io.read).
RUN_CONFIG_SCHEMA = {"train": Required(dict), "data_fingerprint": (str, None)}


def read_run_doc(out: str | os.PathLike) -> dict[str, Any]:
    """The whole ``OUT/train_config.json`` of a run, checked (``RUN_CONFIG_SCHEMA``).

    Raises:
        InvkitError: the file is missing, not a regular file, unreadable, not JSON, or of another shape (its
            ``train`` section not an object, ...); one line naming the file and the field.
    """
    remedy = "remove it or use another --out"
    return read_json(Path(out) / CONFIG_FILE, RUN_CONFIG_SCHEMA, "training config", InvkitError, remedy)


def read_run_config(out: str | os.PathLike) -> dict[str, Any] | None:
    """The ``train`` section of ``OUT/train_config.json``, or None when there is no run there.

    Raises:
        InvkitError: as ``read_run_doc``.
    """
    path = Path(out) / CONFIG_FILE
    if not path.exists():
        return None
    return read_run_doc(out)["train"]
