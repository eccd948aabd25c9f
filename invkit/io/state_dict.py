"""State dicts as common training scripts save them: wrapped, prefixed, and compared with what a network expects.

Weights files from the field rarely hold a bare state dict. ``torch.save({"state_dict": ..., "epoch": ...})``
(the PyTorch ImageNet example), ``{"model": ...}`` (MadryLab robustness, timm's ``train.py``),
``{"model_state_dict": ...}`` (the PyTorch tutorials) wrap it; ``nn.DataParallel`` and
``DistributedDataParallel`` prefix every key with ``module.``, ``torch.compile`` with ``_orig_mod.``, a
Lightning module with the attribute name of its network (``model.``, ``net.``). This module undoes both and,
when keys still do not fit, says briefly which are missing and which are unexpected (PyTorch's own message
lists every key, and was cut mid-key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..errors import CheckpointError, short_message
from .checkpoint import check_weights

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "model_state", "net", "network")
"""Entries of a checkpoint dict that hold the state dict, in the order they are tried."""

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes that wrappers add to every key (DataParallel/DDP, torch.compile); stripped without a target."""


def unwrap(obj: Any) -> tuple[Any, str]:
    """The state dict inside a checkpoint dict, and where it was found.

    Descends into the first of ``WRAPPER_KEYS`` that holds a dict (also nested, as in
    ``{"model": {"state_dict": ...}}``); a state dict, whose values are tensors, is returned as is.

    Returns:
        The state dict (or ``obj`` itself when nothing wraps it) and ``"top level"`` or ``"'key'"``.
    """
    where: list[str] = []
    while isinstance(obj, Mapping):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj = obj[key]
        where.append(key)
    return obj, "/".join(f"'{k}'" for k in where) if where else "top level"


def shared_prefix(keys: Iterable[str]) -> str:
    """The longest dotted prefix (ending in ``.``) that every key starts with; ``""`` if none."""
    keys = list(keys)
    if not keys:
        return ""
    parts = [k.split(".")[:-1] for k in keys]  # never the last component: that is the tensor's own name
    common: list[str] = []
    for group in zip(*parts):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return "".join(c + "." for c in common)


def strip_prefix(state: Mapping[str, Any], expected: Iterable[str] | None = None) -> tuple[dict[str, Any], str]:
    """Remove a prefix that every key shares and that the target does not have.

    Args:
        state: a flat state dict.
        expected: the keys the target network has. When given, the longest shared dotted prefix whose removal
            makes more keys match is stripped (``module.``, ``module.model.``, ``model.``, ...); without it,
            only the wrapper prefixes in ``WRAPPER_PREFIXES`` are, repeatedly (``module._orig_mod.``).

    Returns:
        The state dict with the prefix removed, and the prefix (``""`` when none was removed).
    """
    state = dict(state)
    if expected is None:
        removed = ""
        while state and (p := next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)):
            state = {k[len(p) :]: v for k, v in state.items()}
            removed += p
        return state, removed
    expected = set(expected)
    if set(state) <= expected:
        return state, ""
    best, best_hits = "", len(set(state) & expected)
    prefix = shared_prefix(state)
    while prefix:  # try "a.b.", then "a."
        hits = len({k[len(prefix) :] for k in state} & expected)
        if hits > best_hits:
            best, best_hits = prefix, hits
        prefix = shared_prefix([prefix[:-1]]) if prefix.count(".") > 1 else ""
    if not best:
        return state, ""
    return {k[len(best) :]: v for k, v in state.items()}, best


def _few(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:n])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > n else shown


def mismatch(module: torch.nn.Module, state: Mapping[str, Any]) -> str:
    """One short clause on why ``state`` does not load into ``module``; ``""`` when it loads strictly.

    Names at most three missing, three unexpected and three wrongly shaped keys, with counts.
    """
    target = module.state_dict()
    missing = set(target) - set(state)
    unexpected = set(state) - set(target)
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
        for k in sorted(set(state) & set(target))
        if isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(target[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected {_few(unexpected)}")
    if shapes:
        parts.append(f"wrong shape {', '.join(shapes[:3])}{f' ({len(shapes)} in all)' if len(shapes) > 3 else ''}")
    return "; ".join(parts)


def load_strict(module: torch.nn.Module, state: Mapping[str, Any], source: str, name: str, **kwargs: Any) -> str:
    """Load a state dict strictly after stripping a shared prefix the module does not have.

    Args:
        module: the network to load into.
        state: a flat state dict (``unwrap`` it first).
        source: where the weights came from, for the message (``weights file 'x.pt'``).
        name: what they are loaded into, for the message (``resnet152.tv_in1k``).
        kwargs: passed to ``load_state_dict`` (``assign=True``).

    Returns:
        The prefix that was stripped (``""`` if none).

    Raises:
        CheckpointError: keys or shapes still do not fit; one line naming a few of each. A floating-point
            parameter or buffer given an integer, bool or NaN/inf tensor (``check_weights``: load_state_dict would
            copy it in and the network would compute nonsense).
    """
    state, prefix = strip_prefix(state, module.state_dict().keys())
    check_weights(state, module, source)  # bool/integer weights for float parameters, NaN/inf: never copied in
    detail = mismatch(module, state)
    if not detail:
        try:
            module.load_state_dict(state, strict=True, **kwargs)
            return prefix
        except RuntimeError as exc:  # e.g. a dtype that cannot be copied
            detail = short_message(exc).rstrip(".")
    stripped = f" (after stripping the prefix '{prefix}' every key had)" if prefix else ""
    raise CheckpointError(f"{source} does not fit {name}{stripped}: {detail}.")
