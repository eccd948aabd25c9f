"""Checkpoint folders: writing and reading them, checking their weights, and the digests that identify them.

A checkpoint is a folder (after diffusers' ``save_pretrained``)::

    config.json              {"invkit_kind": "inverter", "name": "biggan_proj.paper", "config": {...}, ...}
    model.safetensors        the weights used for inference (for a GAN: the EMA generator)
    train_state.safetensors  optional: optimizers, EMA, discriminator, step, RNG, for ``--resume``

An ``invkit train`` run folder keeps its checkpoints as ``OUT/checkpoints/step_NNNNNN/``; wherever a checkpoint
folder is taken, a run folder stands for its newest complete checkpoint (``checkpoint_folder``, the one place that
rule lives: the load and resolve functions and every command go through it, and a ``NewestCheckpointNote`` says
which checkpoint was taken).

The file names are ``CONFIG_NAME`` (here), ``WEIGHTS_NAME`` (``invkit.io.weights``) and ``TRAIN_STATE_NAME``
(``invkit.io.train_state``). Nothing is ever pickled. A checkpoint is written as one unit (``invkit.io.staged``),
so a process killed mid-write leaves the previous checkpoint intact, never a half-written one nor files of two
checkpoints. ``weights_digest`` and ``spec_identity`` say which weights made a result.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import CheckpointError, short_message
from .files import atomic_save_safetensors, atomic_write_text
from .read import check_file, read_json, try_read_json
from .staged import write_staged
from .train_state import TRAIN_STATE_NAME, save_train_state
from .weights import WEIGHTS_NAME, load_safetensors

CONFIG_NAME = "config.json"
CHECKPOINTS = "checkpoints"  # an invkit train run folder's checkpoints: OUT/checkpoints/step_NNNNNN/

# The fields of config.json that invkit reads before a factory checks the values (read_checkpoint_config):
# bench matches checkpoints to classifiers by config.num_classes, resolve and load by name and config.
CONFIG_SCHEMA = {
    "invkit_kind": str,
    "name": str,
    "config": {"num_classes": int, "init_kwargs": dict, "classifier_config": dict},
    "channel": str,  # an inverter's observation channel spec (invkit.core.observation); absent before: logits
    "layer": (str, None),  # or the classifier layer it conditions on instead
}


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    kind: str,
    name: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    train_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder as one unit: after a kill at any moment it holds the old checkpoint or this one,
    never files of both (``invkit.io.staged.write_staged``: all files into a hidden folder, one rename, then in).

    Args:
        directory: the folder; created if missing. Its other files are left alone; a ``train_state.safetensors``
            of the checkpoint it held is removed when ``train_state`` is None (it would not fit these weights).
        kind: ``classifier`` or ``inverter``.
        name: the registry name that rebuilds the object (``biggan_proj.paper``).
        config: JSON-serialisable constructor arguments.
        state_dict: the model weights.
        train_state: optional nested state for resuming (see ``save_train_state``).
        extra: more JSON fields for ``config.json`` (step, metrics, provenance).

    Returns:
        The folder.

    Raises:
        OutputError: the folder cannot be created or a file cannot be written (not writable, disk full, a file
            where the folder should be), or a file of the checkpoint there was not written by the running command
            (``invkit.io.owned``); the folder keeps the checkpoint it held.
        TypeError: ``config`` or ``extra`` is not JSON-serialisable, or ``train_state`` holds a value
            ``save_train_state`` cannot store; nothing is changed.
    """
    doc = {"invkit_kind": kind, "name": name, "config": dict(config), "invkit_version": __version__}
    doc.update(extra or {})
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"  # a TypeError before anything is written
    writers: dict[str, Callable[[Path], None]] = {
        WEIGHTS_NAME: lambda p: atomic_save_safetensors(p, state_dict, {"invkit_version": __version__})
    }
    if train_state is not None:
        writers[TRAIN_STATE_NAME] = lambda p: save_train_state(p, train_state)
    writers[CONFIG_NAME] = lambda p: atomic_write_text(p, text)
    return write_staged(directory, writers, remove=[TRAIN_STATE_NAME])


class NewestCheckpointNote(UserWarning):
    """An ``invkit train`` run folder was given where a checkpoint is taken; its newest checkpoint is used.

    The message names that checkpoint and its step; the command line prints it as one ``note:`` line.
    """

    label = "note"  # how invkit.cli prints it (instead of "warning")


def find_checkpoints(run: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint of a run folder (``RUN/checkpoints/step_NNNNNN`` holding
    config.json, model.safetensors and train_state.safetensors), oldest first. Hidden temporary folders of a
    checkpoint being written are never listed."""
    root = Path(run) / CHECKPOINTS
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit():
                if all((p / f).is_file() for f in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME)):
                    found.append((int(p.name[5:]), p))
    return sorted(found)


def latest_checkpoint(run: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run folder, or None (``find_checkpoints``)."""
    found = find_checkpoints(run)
    return found[-1][1] if found else None


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``invkit train`` run folder: a folder with ``checkpoints/`` and no ``config.json``."""
    p = Path(path).expanduser()
    return p.is_dir() and not (p / CONFIG_NAME).exists() and (p / CHECKPOINTS).is_dir()


def checkpoint_folder(path: Any, *, note: bool = True) -> Any:
    """The checkpoint folder ``path`` stands for: an ``invkit train`` run folder means its newest checkpoint.

    The one rule for every place that takes a checkpoint folder (``load_inverter``, ``load_classifier``, the resolve
    functions, ``invkit bench``/``invert``/``probe``/``standing-stats``): a run folder (``is_run_folder``) becomes
    ``RUN/checkpoints/step_NNNNNN`` of its highest step, said in a ``NewestCheckpointNote``; anything else (a
    checkpoint folder, a missing path, a registry name, a ``demo:``/``hf-hub:`` spec) is returned unchanged for the
    reader to check.

    Args:
        path: what was given (a string or a path).
        note: warn which checkpoint a run folder stands for (False: only compute it, e.g. to record it).

    Returns:
        The newest checkpoint folder (a ``str`` if ``path`` was one, else a ``Path``), or ``path`` itself.

    Raises:
        CheckpointError: ``path`` is a run folder that holds no complete checkpoint yet.
    """
    if not isinstance(path, str | os.PathLike) or not is_run_folder(path):
        return path
    found = find_checkpoints(Path(path).expanduser())
    if not found:
        raise CheckpointError(
            f"'{path}' is an invkit train run folder without a complete checkpoint yet (checkpoints/step_NNNNNN with "
            f"{CONFIG_NAME}, {WEIGHTS_NAME} and {TRAIN_STATE_NAME}); wait for its first checkpoint (--save-every) or "
            "pass a checkpoint folder."
        )
    step, newest = found[-1]
    if note:
        warnings.warn(
            f"'{path}' is a training run folder: using its newest checkpoint '{newest}' (step {step}).",
            NewestCheckpointNote,
            stacklevel=2,
        )
    return str(newest) if isinstance(path, str) else newest


def read_checkpoint_config(directory: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Read and check ``config.json`` of a checkpoint folder.

    Args:
        directory: the checkpoint folder.
        kind: ``classifier`` or ``inverter`` to require that kind; None accepts either.

    Returns:
        The parsed ``config.json``: ``invkit_kind``, ``name`` (the registry name; when empty, inferred from the
        training run's config or the stored classifier config), ``config`` and any extra fields.

    Raises:
        CheckpointError: the folder does not exist or is a file; ``config.json`` is missing, not a regular file,
            unreadable, not UTF-8, not valid JSON or nested too deep (``invkit.io.read.read_json``); it lacks
            ``invkit_kind`` or has a field of the wrong type (``CONFIG_SCHEMA``: ``name`` a string, ``config`` an
            object whose ``num_classes`` is a whole number, ...); it holds another ``kind``; its ``name`` is empty
            and cannot be inferred (the message says what to write). One line naming the file and the field.
    """
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(
            f"checkpoint folder '{directory}' does not exist; pass the folder that holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}."
        )
    if directory.is_file():
        raise CheckpointError(
            f"'{directory}' is a file; a checkpoint is a folder with {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (see docs/checkpoints.md)."
        )
    path = directory / CONFIG_NAME
    if not path.exists():
        raise CheckpointError(f"'{directory}' has no {CONFIG_NAME}; it is not an invkit checkpoint folder.")
    if not path.is_file():
        raise CheckpointError(f"'{path}' is not a file; a checkpoint's {CONFIG_NAME} is a JSON file written by invkit.")
    doc = read_json(path, CONFIG_SCHEMA, "checkpoint config", CheckpointError, "the checkpoint is corrupt")
    if "invkit_kind" not in doc:
        raise CheckpointError(f"'{path}' lacks 'invkit_kind'; it was not written by invkit.")
    if kind is not None and doc["invkit_kind"] != kind:
        raise CheckpointError(f"'{directory}' holds a {doc['invkit_kind']} checkpoint, not a {kind}.")
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        doc["name"] = _inferred_name(doc, directory)
    return doc


def _inferred_name(doc: dict[str, Any], directory: Path) -> str:
    """The registry name of a checkpoint whose ``config.json`` has none (written before invkit stored the name
    of objects built without the registry): from the run that wrote it, else a one-line error saying what to do.
    """
    candidates: list[Any] = []
    if doc["invkit_kind"] == "inverter":
        train_cfg = doc.get("train_config") if isinstance(doc.get("train_config"), dict) else {}
        candidates.append(train_cfg.get("inverter"))  # invkit train and bench --train-steps record it
        run = directory.parent.parent / "train_config.json"  # OUT/checkpoints/step_N -> OUT/train_config.json
        run_doc = try_read_json(run, {"inverter": {"name": str}, "train": {"inverter": str}}) if run.exists() else None
        if run_doc is not None:
            candidates += [run_doc.get("inverter", {}).get("name"), run_doc.get("train", {}).get("inverter")]
    else:
        cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        clf_cfg = cfg.get("classifier_config") if isinstance(cfg.get("classifier_config"), dict) else {}
        candidates.append(clf_cfg.get("name"))
    for name in candidates:
        if isinstance(name, str) and name:
            return name
    kind = doc["invkit_kind"]
    raise CheckpointError(
        f"'{directory / CONFIG_NAME}' does not say which {kind} it holds (its \"name\" is empty: it was saved "
        f"from a {kind} built without the registry); write the registered name into it, e.g. "
        f'"name": "NAME.TAG" (see `invkit list {kind}s`).'
    )


def load_checkpoint_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder: its ``model.safetensors``, loaded on the CPU (see ``load_safetensors``).

    Raises:
        CheckpointError: ``model.safetensors`` is missing, a pickle, corrupt or truncated.
    """
    return load_safetensors(Path(directory) / WEIGHTS_NAME)


def check_weights(state: Mapping[str, torch.Tensor], model: torch.nn.Module, source: str) -> None:
    """Refuse weights that would load without error but compute nonsense.

    ``load_state_dict`` copies an int32 tensor into a float parameter, and NaN/inf weights into anything; the
    model then returns black images or NaN. Called by ``load_strict`` (``invkit.io.state_dict``), which every
    weights load goes through (checkpoints, ``--weights`` files, published weights).

    Args:
        state: the weights read from the checkpoint.
        model: the freshly built model they are for.
        source: what the weights are, for the message (``"weights in 'ckpt/'"``).

    Raises:
        CheckpointError: a floating-point parameter or buffer stored with an integer/bool dtype, or holding NaN/inf.
    """
    expected = model.state_dict()
    for key, value in state.items():
        want = expected.get(key)
        if want is None or not isinstance(value, torch.Tensor) or not want.is_floating_point():
            continue  # unexpected keys and integer buffers (BN counters) are load_state_dict's business
        if not value.is_floating_point():
            raise CheckpointError(
                f"{source}: '{key}' is stored as {value.dtype} but must be floating point; the file is corrupt or "
                "holds no weights for this network (re-create or convert it)."
            )
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: '{key}' holds {bad} NaN/inf value(s); a diverged or corrupt checkpoint cannot invert "
                "anything: use an earlier checkpoint or retrain."
            )


def build_from_config(factory: Any, doc: Mapping[str, Any], directory: str | os.PathLike, **kwargs: Any) -> Any:
    """Call a registry factory with the values a checkpoint's ``config.json`` stores, with one-line errors.

    Raises:
        CheckpointError: a value the factory's config check refuses (``"ch": "eight"``, ``-8``, ``"num_classes":
            null``) or that its constructor cannot build; the message names the ``config.json`` and keeps only the
            first meaningful line of a torch error (``invkit.errors.short_message``).
    """
    from ..errors import InvkitError

    path = Path(directory) / CONFIG_NAME
    try:
        return factory(**kwargs)
    except CheckpointError:
        raise
    except InvkitError as exc:  # InputError from check_fields, or a factory's own check (smallcnn's num_classes)
        raise CheckpointError(f"'{path}' holds a value {doc['name']} cannot use: {exc}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"'{path}' cannot build {doc['name']} ({type(exc).__name__}: {short_message(exc)}); the checkpoint is "
            "corrupt or from an incompatible version."
        ) from None


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, or of a checkpoint folder's ``model.safetensors``: 16 hex digits.

    Raises:
        CheckpointError: the path is not a regular file (a FIFO would hang the read; ``check_file``).
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    check_file(path, "weights file", CheckpointError)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def spec_identity(spec: str | None) -> str | None:
    """How outputs record a classifier, inverter or weights spec, to tell whether earlier results are theirs.

    A registry name stays as given; an existing path becomes absolute (the same folder from anywhere) and, for a
    weights file or a checkpoint folder with ``model.safetensors``, gets ``@`` and its ``weights_digest``: weights
    trained further or retrained into the same place are not mistaken for the ones that made earlier results. A
    training run folder is recorded as its newest checkpoint (``checkpoint_folder``), so a run trained further
    counts as other weights.
    """
    if spec is None:
        return None
    p = Path(checkpoint_folder(spec, note=False)).expanduser()  # a run folder: its newest checkpoint
    if not p.exists():
        return spec
    weights = p / WEIGHTS_NAME if p.is_dir() else p
    return f"{p.resolve()}@{weights_digest(weights)}" if weights.is_file() else str(p.resolve())
