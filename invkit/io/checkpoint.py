"""Checkpoint folders: writing and reading them, checking their weights, and the digests that identify them.

A checkpoint is a folder (after diffusers' ``save_pretrained``)::

    config.json              {"invkit_kind": "inverter", "name": "biggan_proj.paper", "config": {...}, ...}
    model.safetensors        the weights used for inference (for a GAN: the EMA generator)
    train_state.safetensors  optional: optimizers, EMA, discriminator, step, RNG, for ``--resume``

The file names are ``CONFIG_NAME`` (here), ``WEIGHTS_NAME`` (``invkit.io.weights``) and ``TRAIN_STATE_NAME``
(``invkit.io.train_state``). Nothing is ever pickled. Every file is written atomically (``invkit.io.files``), so a
process killed mid-write leaves the previous checkpoint intact, never a half-written one. ``weights_digest`` and
``spec_identity`` say which weights made a result.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import CheckpointError
from .files import atomic_save_safetensors, atomic_write_text, make_dirs
from .train_state import TRAIN_STATE_NAME, save_train_state
from .weights import WEIGHTS_NAME, load_safetensors

CONFIG_NAME = "config.json"


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
    """Write a checkpoint folder atomically, file by file (weights first, config last).

    Args:
        directory: the folder; created if missing.
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
            where the folder should be); files already there keep their old content.
        TypeError: ``config`` or ``extra`` is not JSON-serialisable, or ``train_state`` holds a value
            ``save_train_state`` cannot store (the weights may already be written, ``config.json`` is not).
    """
    directory = make_dirs(directory)
    atomic_save_safetensors(directory / WEIGHTS_NAME, state_dict, {"invkit_version": __version__})
    if train_state is not None:
        save_train_state(directory / TRAIN_STATE_NAME, train_state)
    doc = {"invkit_kind": kind, "name": name, "config": dict(config), "invkit_version": __version__}
    doc.update(extra or {})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return directory


def read_checkpoint_config(directory: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Read and check ``config.json`` of a checkpoint folder.

    Args:
        directory: the checkpoint folder.
        kind: ``classifier`` or ``inverter`` to require that kind; None accepts either.

    Returns:
        The parsed ``config.json``: ``invkit_kind``, ``name`` (the registry name; when empty, inferred from the
        training run's config or the stored classifier config), ``config`` and any extra fields.

    Raises:
        CheckpointError: the folder does not exist or is a file; ``config.json`` is missing, not a file, not
            valid JSON or unreadable; it lacks ``invkit_kind`` or has a ``name`` or ``config`` of the wrong type;
            it holds another ``kind``; its ``name`` is empty and cannot be inferred (the message says what to write).
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
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"'{path}' is not valid JSON ({exc}); the checkpoint is corrupt.") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read '{path}' ({exc.strerror or exc}); check its permissions.") from None
    if not isinstance(doc, dict) or "invkit_kind" not in doc:
        raise CheckpointError(f"'{path}' lacks 'invkit_kind'; it was not written by invkit.")
    if not isinstance(doc.get("name", ""), str) or not isinstance(doc.get("config", {}), dict):
        raise CheckpointError(
            f"'{path}': 'name' must be a registry name and 'config' a JSON object; the checkpoint is corrupt."
        )
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
        if run.is_file():
            try:
                run_doc = json.loads(run.read_text())
                candidates += [run_doc.get("inverter", {}).get("name"), run_doc.get("train", {}).get("inverter")]
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
                pass
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
    model then returns black images or NaN. Called by ``load_inverter`` and ``load_classifier`` before loading.

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
                f"{source}: '{key}' is stored as {value.dtype} but must be floating point; the checkpoint is "
                "corrupt or was not written by invkit (re-create it)."
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
        CheckpointError: a value the factory's config check refuses (``"ch": "eight"``, ``-8``) or that its
            constructor cannot build; the message names the ``config.json``.
    """
    from ..errors import InputError

    path = Path(directory) / CONFIG_NAME
    try:
        return factory(**kwargs)
    except InputError as exc:
        raise CheckpointError(f"'{path}' holds a value {doc['name']} cannot use: {exc}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"'{path}' cannot build {doc['name']} ({type(exc).__name__}: {str(exc)[:200]}); the checkpoint is "
            "corrupt or from an incompatible version."
        ) from None


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, or of a checkpoint folder's ``model.safetensors``: 16 hex digits.

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def spec_identity(spec: str | None) -> str | None:
    """How outputs record a classifier, inverter or weights spec, to tell whether earlier results are theirs.

    A registry name stays as given; an existing path becomes absolute (the same folder from anywhere) and, for a
    weights file or a checkpoint folder with ``model.safetensors``, gets ``@`` and its ``weights_digest``: weights
    trained further or retrained into the same place are not mistaken for the ones that made earlier results.
    """
    if spec is None:
        return None
    p = Path(spec).expanduser()
    if not p.exists():
        return spec
    weights = p / WEIGHTS_NAME if p.is_dir() else p
    return f"{p.resolve()}@{weights_digest(weights)}" if weights.is_file() else str(p.resolve())
