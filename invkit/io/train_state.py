"""Training state for ``--resume``: nested optimizer state dicts, EMA, RNG and step in one safetensors file.

``save_train_state`` flattens tensors to dotted keys and writes everything else (ints, floats, strings, lists,
None) as JSON into the file's metadata, so ``optimizer.state_dict()`` round-trips with no pickle;
``load_train_state`` is its inverse. In a checkpoint folder the file is ``train_state.safetensors``
(``TRAIN_STATE_NAME``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, short_message
from .files import atomic_save_safetensors
from .weights import load_safetensors

TRAIN_STATE_NAME = "train_state.safetensors"


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
            does not parse, is nested too deep, or names tensors the file lacks).
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
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # not JSON, another shape, nested too deep
        why = "nested too deep" if isinstance(exc, RecursionError) else short_message(exc)
        raise CheckpointError(
            f"'{path}': its invkit_tree metadata is corrupt ({why}); resume from another checkpoint."
        ) from None
