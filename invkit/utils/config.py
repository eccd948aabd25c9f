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

``check_options`` is the one entry for options given by name (``--option``, keyword arguments of a factory or a
trainer, ``ProbeContext.options``): it refuses a key the options dataclass does not declare, naming the closest
ones, takes ``yes``/``no`` text (and 0/1) for a yes/no field and a list (or one number) for a
``tuple[float, ...]`` field, then applies ``check_fields``. ``invkit.create_classifier``, ``create_inverter``,
``create_probe``, ``load_inverter``/``load_classifier`` (the values a ``config.json`` stores), ``InverterTrainer``
and ``run_probe`` call it with what a plugin declares (docs/hooks.md, "Options"), so no plugin writes these checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
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


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_names(options: Any) -> list[str]:
    """The option names an options dataclass (a class or an instance) declares, in declaration order."""
    return [f.name for f in dataclasses.fields(options)]


def check_options(
    options: Any, values: Mapping[str, Any], where: str, *, signs: bool = True, accept: Iterable[str] = ()
) -> dict[str, Any]:
    """Check options given by name against the dataclass that declares them: the one option check of invkit.

    Keys may use ``-`` for ``_`` (``--option id-k=3``). A key the dataclass does not declare is refused with the
    closest declared names; every value is checked against its field's annotation (``check_fields``: ``grid=3.5``
    for an ``int`` field, ``lr=nan``, ``"abc"`` for a number). Before that, text ``true/false/yes/no/on/off/1/0``
    (any case) becomes a bool for a ``bool`` field, and a list or a single number becomes a tuple for a
    ``tuple[float, ...]`` (or ``tuple[int, ...]``) field, each element checked; the numbers 0 and 1 are taken as
    false and true for a ``bool`` field (``--option flag=1``).

    Args:
        options: the options dataclass, as a class or an instance (a probe's ``options``); None accepts every key
            unchecked (a plugin that declares nothing).
        values: option name -> value, as given (``--option`` values are already JSON-parsed).
        where: who takes them, starting the message (``"biggan_proj.paper"``, ``"fgsm"``).
        signs: also apply ``check_fields``' sign rules (not negative when the default is not, above 0 for sizes
            and rates); probes pass False (their options may be negative shifts or turns).
        accept: more names taken unchecked besides the fields (``classifier`` of an inverter factory,
            ``pretrained`` and ``weights`` of a classifier factory).

    Returns:
        The values under their field names, converted as above (whole numbers given for float fields as floats).

    Raises:
        InputError: one line: ``"<where> has no option 'gird' (did you mean 'grid'?); its options are: ..."``, or
            the field, what it accepts and the value given.
    """
    if not isinstance(values, Mapping):
        raise InputError(f"{where}: options must be given as name -> value, got {type(values).__name__}.")
    if options is None or not dataclasses.is_dataclass(options):
        return dict(values)
    cls = options if isinstance(options, type) else type(options)
    names = option_names(cls)
    accepted = set(accept)
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in accepted:
            out[name] = value
            continue
        if name not in names:
            close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise InputError(f"{where} has no option '{name}'{hint}; its options are: {', '.join(names) or 'none'}.")
        out[name] = value
    hints = typing.get_type_hints(cls)
    for name in names:
        if name in out:
            out[name] = _from_text_or_list(name, out[name], hints.get(name, Any), where)
    checked = check_fields(cls, {k: v for k, v in out.items() if k not in accepted}, where, signs=signs)
    return {**out, **checked}


def _from_text_or_list(name: str, value: Any, tp: Any, where: str) -> Any:
    """``yes``/``no`` text for a bool field, a list or one number for a ``tuple[X, ...]`` field, converted."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or len(inner) != 1:
            return value
        tp, origin = inner[0], typing.get_origin(inner[0])
    if tp is bool and isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        return value  # check_fields says it must be true or false
    if tp is bool and type(value) is int and value in (0, 1):  # --option flag=1 (JSON gives the number)
        return bool(value)
    args = typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float):
        items = list(value) if isinstance(value, list | tuple) else [value]
        return tuple(_check_one(f"{name}[{i}]", v, args[0], None, False, where, False) for i, v in enumerate(items))
    return value
