"""Checkpoint folders and safe weight loading.

A checkpoint is a folder (after diffusers' ``save_pretrained``)::

    config.json              {"invkit_kind": "inverter", "name": "biggan_proj.paper", "config": {...}, ...}
    model.safetensors        the weights used for inference (for a GAN: the EMA generator)
    train_state.safetensors  optional: optimizers, EMA, discriminator, step, RNG, for ``--resume``

Nothing is ever pickled. Files are written to a temporary name in the same folder and renamed into place,
so a process killed mid-write leaves the previous checkpoint intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import CheckpointError, OutputError, UnsafeCheckpointError, WeightsNotFoundError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_STATE_NAME = "train_state.safetensors"
TEMP_SUFFIX = ".tmp"  # atomic writes go to .NAME.XXXXXX.tmp beside NAME first


# ---------------------------------------------------------------------------------------------- atomic writes
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


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputError:
    """One line for a file that cannot be written, saying why (disk full, read-only, ...) and what to do."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code is None and ("StorageFull" in text or "No space left" in text or "os error 28" in text):
        code = errno.ENOSPC
    if code == errno.ENOSPC:
        why = "the disk is full; free some space or write to another folder"
    elif code == errno.EDQUOT:
        why = "the disk quota is used up; free some space or write to another folder"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable; choose another output folder or fix its permissions"
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        why = "a file stands where a folder should be (or the reverse); choose another output folder"
    else:
        why = f"{getattr(exc, 'strerror', None) or text or type(exc).__name__}; check the output folder"
    return OutputError(f"cannot write '{path}': {why} (files already written are kept).")


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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:
        pass  # a file system without modes (FAT, some mounts): the file is still written
    return fd, tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one.

    The file gets the mode the umask gives new files (like ``open``), not mkstemp's 0600.

    Raises:
        OutputError: the folder is not writable or the disk is full; ``path`` keeps its old content.
    """
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        OutputError: the folder is not writable or the disk is full; ``path`` keeps its old content.
    """
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    os.close(fd)
    try:
        # safetensors refuses shared or non-contiguous storage; checkpoints hold plain copies.
        save_file(
            {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, tmp, metadata=dict(metadata or {})
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # safetensors writes a file of its own (0600): give it the umask's mode
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) that a killed writer left in ``folder`` and below.

    Only call this on a folder the caller holds (see ``invkit.outputs.claim_output``): another process'
    write in progress would lose its temporary file.
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.rglob(f".*{TEMP_SUFFIX}"):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


# ------------------------------------------------------------------------------------------ checkpoint folders
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
    from .errors import InputError

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


# ------------------------------------------------------------------------------------------------ safe loading
def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU.

    Returns:
        Tensor name -> tensor.

    Raises:
        CheckpointError: the file does not exist, is a folder or unreadable, is a pickle (``torch.save``; the
            message says how to convert it), or is not a readable safetensors file (corrupt or truncated). One line
            each.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file '{path}' does not exist.")
    if path.is_dir():
        raise CheckpointError(
            f"'{path}' is a folder, but a safetensors weights file is expected; give the file in it "
            f"({WEIGHTS_NAME} for an invkit checkpoint folder)."
        )
    try:
        pickled = _looks_like_pickle(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file '{path}': {exc.strerror or exc}.") from None
    if pickled:
        raise CheckpointError(
            f"'{path}' is a pickle (torch.save) file, but a safetensors file is expected; "
            "convert it with `invkit convert-weights` or save it with safetensors."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"'{path}' is not a readable safetensors file ({exc}); it is corrupt or "
            "truncated: re-download or re-create it."
        ) from None


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head == b"PK\x03\x04"


def load_weights_file(path: str | os.PathLike, *, what: str = "weights", flag: str = "--weights") -> dict[str, Any]:
    """Load published weights from safetensors, a torch state dict (``weights_only=True``) or an ``.npz``.

    A pickle that contains code or arbitrary objects is refused: ``torch.load(weights_only=True)`` only
    rebuilds tensors and plain containers. The format follows the suffix: ``.safetensors``, ``.npz``, else torch.

    Args:
        path: the weights file (``~`` is expanded).
        what: what the file is, for messages (``"resnet50.tv_in1k weights"``).
        flag: the CLI option that gave the path, for messages.

    Returns:
        Whatever mapping the file holds, on the CPU (callers pick the keys).

    Raises:
        WeightsNotFoundError: ``path`` does not exist or is a folder.
        UnsafeCheckpointError: a torch pickle with code or Python objects, or an ``.npz`` with pickled objects.
        CheckpointError: a corrupt or truncated file, a pickle named ``.safetensors``, or a torch file that holds
            something other than a mapping.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"{what} file '{path}' does not exist; check the path given to {flag}.")
    if path.is_dir():
        raise WeightsNotFoundError(f"{what} path '{path}' is a folder; give {flag} the weights file itself.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_safetensors(path)
    if suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise UnsafeCheckpointError(
                    f"'{path}' holds pickled Python objects; invkit only loads plain numeric arrays from .npz files."
                ) from None
            raise CheckpointError(f"'{path}' is not a readable .npz file ({exc}).") from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"'{path}' is not a readable .npz file ({exc}); it is corrupt or truncated."
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            raise UnsafeCheckpointError(
                f"'{path}' is a pickle that contains code or Python objects, not just tensors; invkit refuses to "
                "load it. Re-save only the state dict (torch.save(model.state_dict())) or use safetensors."
            ) from None
        raise CheckpointError(
            f"'{path}' is not a readable weights file ({type(exc).__name__}); it is corrupt "
            "or not a PyTorch/safetensors/npz file."
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a state dict of tensors.")
    return dict(obj)


# --------------------------------------------------------------------------------------------- training state
def save_train_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Save a nested training state (optimizer state dicts, EMA, RNG, step) as one safetensors file.

    Tensors are flattened to dotted keys; everything else (ints, floats, strings, lists, None) goes to JSON
    in the file's metadata, so ``optimizer.state_dict()`` round-trips with no pickle.

    Args:
        path: the file to write (atomically, see ``atomic_save_safetensors``).
        state: nested mappings, lists and tuples of tensors, bools, ints, floats, strings and None.

    Raises:
        TypeError: ``state`` holds a value of another type (the message names its key); nothing is written.
        OutputError: the file cannot be written; ``path`` keeps its old content.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(obj: Any, key: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[key] = obj
            return {"__tensor__": key}
        if isinstance(obj, Mapping):
            return {
                "__dict__": [
                    [encode(k, f"{key}.k{i}"), encode(v, f"{key}.{i}")] for i, (k, v) in enumerate(obj.items())
                ]
            }
        if isinstance(obj, list | tuple):
            return {
                "__list__" if isinstance(obj, list) else "__tuple__": [
                    encode(v, f"{key}.{i}") for i, v in enumerate(obj)
                ]
            }
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise TypeError(f"cannot save {type(obj).__name__} at '{key}' in a training state")

    tree = encode(state, "s")
    atomic_save_safetensors(path, tensors, {"invkit_tree": json.dumps(tree)})


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """Inverse of ``save_train_state``: the nested state, tensors on the CPU.

    Raises:
        CheckpointError: ``path`` does not exist (the checkpoint cannot be resumed), is not a readable
            safetensors file, or is not an invkit training state (no ``invkit_tree`` metadata, or metadata that
            does not parse or names tensors the file lacks).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"'{path}' does not exist; this checkpoint cannot be resumed (it has no training state).")
    tensors = load_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "invkit_tree" not in meta:
        raise CheckpointError(f"'{path}' is not an invkit training state.")

    def decode(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "__tensor__" in obj:
                if obj["__tensor__"] not in tensors:
                    raise CheckpointError(f"'{path}': its invkit_tree names a tensor the file lacks; it is corrupt.")
                return tensors[obj["__tensor__"]]
            if "__dict__" in obj:
                return {decode(k): decode(v) for k, v in obj["__dict__"]}
            if "__list__" in obj:
                return [decode(v) for v in obj["__list__"]]
            if "__tuple__" in obj:
                return tuple(decode(v) for v in obj["__tuple__"])
        return obj

    try:
        return decode(json.loads(meta["invkit_tree"]))
    except (ValueError, TypeError, KeyError) as exc:  # JSON that does not parse, or a tree of another shape
        raise CheckpointError(
            f"'{path}': its invkit_tree metadata is corrupt ({exc}); resume from another checkpoint."
        ) from None
