"""Checking config values where they enter: ``--option``/``-o`` pairs, factory keyword arguments, ``config.json``.

Every inverter and classifier config is a dataclass whose annotations say what each field holds. ``check_fields``
checks values against them before anything is built, so ``steps="abc"``, ``lr=nan``, ``ch=-8`` or
``cbn_hidden="abc"`` fail with one line naming the field and what it accepts, instead of a torch traceback deep
inside a constructor (or, worse, a model built with nonsense sizes).

Rules, for each field:

- the value has the annotated type (``int`` takes whole numbers, ``float`` takes any finite number, ``bool`` only
  true/false, ``X | None`` also takes None);
- numbers are finite (never NaN or inf);
- a number is not negative when the field's default is not negative (sizes, rates, weights, step counts);
- a number is above 0 when its field is in ``POSITIVE_FIELDS`` or in the dataclass' own ``positive_fields``
  (widths, sizes, learning rates, epsilons: 0 means nothing sensible there).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import InputError

# Fields that must be > 0 in every config that has them (sizes, widths, learning rates, epsilons).
POSITIVE_FIELDS = frozenset(
    {
        "num_classes",
        "channels",
        "resolution",
        "ch",
        "cbn_hidden",
        "batch_size",
        "fc_dim",
        "fc_layers",
        "start_channels",
        "min_channels",
        "d_channels",
        "d_fc_dim",
        "width",
        "width_mult",
        "lr",
        "g_lr",
        "lr_g",
        "lr_d",
        "d_lr",
        "bn_eps",
        "sn_eps",
        "adam_eps",
        "num_d_steps",
        "input_size",
    }
)


def _type_name(tp: Any) -> str:
    return {int: "a whole number", float: "a finite number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _check_one(name: str, value: Any, tp: Any, default: Any, positive: bool, where: str, signs: bool = True) -> Any:
    """``value`` checked (and an int widened to float for a float field), or InputError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check_one(name, value, inner[0], default, positive, where, signs)
        return value  # a union of several types: left to the constructor
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: '{name}' must be true or false, got {value!r}.")
        return value
    if tp in (int, float):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if tp is float:
            ok = ok or isinstance(value, float)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value, ok = int(value), True  # 8.0 from a JSON writer that writes every number as a float
        if not ok or not math.isfinite(value):
            raise InputError(f"{where}: '{name}' must be {_type_name(tp)}, got {value!r}.")
        numeric_default = isinstance(default, int | float) and not isinstance(default, bool)
        floor = 0 if signs and numeric_default and default >= 0 else None
        if signs and positive and value <= 0:
            raise InputError(f"{where}: '{name}' must be above 0, got {value!r}.")
        if floor is not None and value < floor:
            raise InputError(f"{where}: '{name}' must be 0 or more, got {value!r}.")
        return float(value) if tp is float else value
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: '{name}' must be a string, got {value!r}.")
        return value
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: '{name}' must be a JSON object (key: value), got {value!r}.")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise InputError(f"{where}: '{name}' must be a list, got {value!r}.")
        return value
    return value  # Literal, custom classes: left to the constructor


def check_fields(config_cls: type, values: Mapping[str, Any], where: str, signs: bool = True) -> dict[str, Any]:
    """Check config values against a dataclass' field types and value rules (see the module docstring).

    Args:
        config_cls: the config dataclass (``BigGANConfig``, ``OptimConfig``, ...).
        values: field name -> value (from ``--option``, keyword arguments or a checkpoint's ``config.json``).
            Names that are not fields are left for the caller to report (it knows its accepted extras).
        where: who the values are for, starting the message (``"biggan_proj.mnist32"``, ``"'ckpt/config.json'"``).
        signs: apply the sign rules (not negative, above 0); False checks types and finiteness only.

    Returns:
        The values, with whole numbers given for float fields turned into floats.

    Raises:
        InputError: one line naming the field, what it accepts and the value given.
    """
    if not dataclasses.is_dataclass(config_cls):
        return dict(values)
    hints = typing.get_type_hints(config_cls)
    positive = POSITIVE_FIELDS | frozenset(getattr(config_cls, "positive_fields", ()))
    out = dict(values)
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = _check_one(
            f.name, values[f.name], hints.get(f.name, Any), default, f.name in positive, where, signs
        )
    return out
