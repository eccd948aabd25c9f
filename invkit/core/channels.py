"""Observation channels: what an inverter sees of a classifier's output.

The paper inverts the full logit vector of a model one can run. A deployed model's API returns less: softmax
probabilities, often only the top-k of them, often rounded, sometimes only the label. A ``Channel`` turns the
classifier's logits ``(N, num_classes)`` into that observation, a vector of the same width ``(N, num_classes)``
that a learned inverter is trained on and conditioned on, so the same inverter architectures measure how much of an
image leaks through each kind of output.

Channels are registered like classifiers, inverters and probes: a plugin implements
``register_channels(register)`` (``invkit.hookspecs``) and calls ``register(name, factory, description=...,
options=...)``; ``factory(**options)`` returns a ``Channel``. A channel is named by a *spec*, ``NAME`` or
``NAME:VALUE`` (``topk:5``, ``round:2``, ``noise:0.5``), where ``VALUE`` sets the first field of the channel's
options dataclass; ``create_channel`` parses a spec and builds the channel. The built-ins are in
``invkit_plugins.channels`` (docs/channels.md): ``logits`` (the default: the paper's setting), ``probs``,
``topk:K``, ``round:D``, ``label`` and ``noise:SIGMA``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..errors import InputError, InvkitError

DEFAULT_CHANNEL = "logits"  # the paper's setting: the full logit vector


class Channel:
    """Turns logits into what an inverter observes.

    Subclasses set ``name`` (the registry name) and implement ``observe``; a channel with a parameter keeps its
    options dataclass in ``options`` (its first field is the ``VALUE`` of the ``NAME:VALUE`` spec).

    Attributes:
        name: the registry name (``topk``).
        options: the channel's options (a dataclass instance), or None.
        logit_space: whether the observation keeps the logits' own scale and offset, so that probes which shift,
            scale or perturb logits (``logit-shift``, ``logit-scale``, ...) mean the same through it; False for
            channels that see probabilities or labels (adding a constant to every logit changes no probability).
        random: whether ``observe`` draws random numbers (pass a ``generator`` to make it repeat).
    """

    name: str = ""
    logit_space: bool = False
    random: bool = False

    def __init__(self, options: Any = None):
        self.options = options

    @property
    def spec(self) -> str:
        """The spec that builds this channel again: ``NAME`` or ``NAME:VALUE``."""
        if self.options is None or not dataclasses.fields(self.options):
            return self.name
        first = dataclasses.fields(self.options)[0].name
        return f"{self.name}:{getattr(self.options, first)}"

    def check(self, num_classes: int) -> None:
        """Refuse a channel that cannot observe ``num_classes`` logits (e.g. top-k with k above it).

        Raises:
            InputError: one line saying what to use instead.
        """

    def observe(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The observation of ``logits``.

        Args:
            logits: ``(N, num_classes)`` float logits.
            generator: random numbers for a channel that draws them (``random``); others ignore it.

        Returns:
            ``(N, num_classes)`` float32, on the device of ``logits``.
        """
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``observe`` with the logits checked: a float ``(N, num_classes)`` tensor without NaN.

        Raises:
            InputError: logits of another shape or dtype, or with NaN.
        """
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise InputError(f"channel '{self.spec}': expected float logits (N, num_classes), got {got}.")
        if torch.isnan(logits).any():
            raise InputError(f"channel '{self.spec}': the logits hold NaN; check the classifier's output.")
        self.check(logits.shape[1])
        return self.observe(logits.float(), generator).float()

    def __repr__(self) -> str:
        return f"Channel({self.spec!r})"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME`` or ``NAME:VALUE`` into the name and the value (None without one).

    Raises:
        InputError: an empty name or value, or more than one ``:``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"channel spec {spec!r} is empty; use NAME or NAME:VALUE, e.g. 'logits' or 'topk:5'.")
    name, sep, value = spec.strip().partition(":")
    if not name or (sep and not value) or ":" in value:
        raise InputError(f"channel spec '{spec}' is not NAME or NAME:VALUE; e.g. 'topk:5', 'round:2', 'noise:0.5'.")
    return name, (value if sep else None)


def _convert(value: str, field: dataclasses.Field, spec: str) -> Any:
    kind = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str}.get(field.type, str)
    try:
        out = kind(value)
    except ValueError:
        raise InputError(f"channel '{spec}': {field.name} must be a {kind.__name__}, got '{value}'.") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise InputError(f"channel '{spec}': {field.name} must be a finite number, got '{value}'.")
    return out


def create_channel(spec: str | Channel = DEFAULT_CHANNEL, num_classes: int | None = None) -> Channel:
    """Build the channel a spec names (``logits``, ``topk:5``, ...), checked against ``num_classes``.

    Args:
        spec: ``NAME`` or ``NAME:VALUE`` (``VALUE`` sets the first field of the channel's options), or a channel
            (returned as it is, after the check).
        num_classes: the classifier's logit count; with it, a channel that cannot observe that many logits is
            refused here (``topk:K`` with K above it).

    Returns:
        The channel.

    Raises:
        UnknownNameError: no plugin registered the name (with the closest names).
        InputError: a malformed spec, a value of the wrong type or not finite, a value the channel refuses
            (K < 1, D < 0, SIGMA < 0), or a value for a channel that takes none.
    """
    from .plugins import get_registry

    if isinstance(spec, Channel):
        channel = spec
    else:
        name, value = parse_spec(spec)
        entry = get_registry("channel").resolve(name)
        declared = entry.declared_options()
        kwargs: dict[str, Any] = {}
        if value is not None:
            fields = dataclasses.fields(declared) if declared is not None else ()
            if not fields:
                raise InputError(f"channel '{name}' takes no value; use '{name}', not '{spec}'.")
            kwargs[fields[0].name] = _convert(value, fields[0], spec)
        channel = entry.build(**kwargs)
        if not isinstance(channel, Channel):
            raise InvkitError(f"the factory of channel '{name}' returned {type(channel).__name__}, not a Channel.")
    if num_classes is not None:
        channel.check(num_classes)
    return channel


def list_channels(pattern: str = "*") -> list[str]:
    """Registered channel names matching a shell wildcard, sorted."""
    from .plugins import get_registry

    return get_registry("channel").names(pattern)
