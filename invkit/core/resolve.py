"""Spec resolution: a registry name or a checkpoint folder -> a ``Classifier`` or an ``Inverter``.

Every place that takes a classifier or an inverter "by spec" (the CLI commands, the bench runner, probes,
plugins) goes through these two functions, so a name and a folder mean the same thing everywhere:

* a **registry name** (``resnet152.tv_in1k``, ``biggan_proj``) builds the object through its factory;
* a **checkpoint folder** (``config.json`` + ``model.safetensors``, see docs/checkpoints.md) is loaded, and
  the registry name stored in its ``config.json`` picks the factory;
* ``demo:NAME`` (a demo checkpoint shipped with invkit) and ``hf-hub:OWNER/NAME[@REVISION]`` (a checkpoint on
  the Hugging Face Hub) name checkpoint folders from anywhere (``invkit.io.locate.local_checkpoint``).

A spec counts as a folder when it is an existing directory, or when it looks like a path (contains ``/`` or
starts with ``.``) even if missing, so a mistyped folder fails with "does not exist" rather than "unknown
classifier".
"""

from __future__ import annotations

import functools
import typing
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, InvkitError
from ..io.locate import has_prefix, local_checkpoint
from .classifier import Classifier
from .inverter import Inverter


def is_checkpoint_spec(spec: str) -> bool:
    """Whether ``spec`` names a checkpoint folder rather than a registry name (see the module docstring)."""
    if has_prefix(spec):
        return True
    path = Path(spec).expanduser()
    return path.is_dir() or "/" in spec or spec.startswith(".")


def resolve_classifier(spec: str, weights: str | None = None, **kwargs: Any) -> Classifier:
    """A classifier from a registry name (``resnet152.tv_in1k``) or an invkit checkpoint folder.

    Args:
        spec: a registered ``name.tag`` (or bare ``name``), or a classifier checkpoint folder (a path, ``demo:NAME``
            or ``hf-hub:OWNER/NAME[@REVISION]``).
        weights: a published weights file for a registry name (``--weights``); not allowed with a folder.
        **kwargs: passed to the registry factory (``pretrained``, ...); ignored for a folder.

    Returns:
        The classifier, on the CPU, in eval mode for a checkpoint folder. A registry classifier built without
        trained weights (``Classifier.random_weights``: ``smallcnn.base`` without ``weights``) is returned with a
        ``RandomWeightsWarning`` (one line on stderr from the commands).

    Raises:
        UnknownNameError: ``spec`` is neither a folder nor a registered name (with the closest names).
        CheckpointError: the folder is missing, not a classifier checkpoint, or its weights do not fit; an unknown
            ``demo:`` name; an ``hf-hub:`` spec that cannot be had (``invkit.io.hub.hub_checkpoint``).
        InvkitError: ``weights`` given together with a checkpoint folder.
    """
    from .factory import create_classifier

    if is_checkpoint_spec(spec):
        if weights is not None:
            raise InvkitError(
                f"'{spec}' is a checkpoint folder, which already holds its weights; weights files "
                "(--weights) are for registry names."
            )
        return create_classifier(checkpoint=str(Path(local_checkpoint(spec)).expanduser()))
    if weights is not None:
        kwargs["weights"] = weights
    clf = create_classifier(spec, **kwargs)
    warn_random_weights(clf, spec, stacklevel=3)
    return clf


def warn_random_weights(classifier: Classifier, spec: str | None = None, stacklevel: int = 2) -> None:
    """Warn (``RandomWeightsWarning``, once per classifier object) when ``classifier`` has no trained weights.

    Called by ``resolve_classifier`` and ``resolve_inverter``, which every command goes through.
    """
    if not getattr(classifier, "random_weights", False) or getattr(classifier, "_random_weights_warned", False):
        return
    classifier._random_weights_warned = True  # type: ignore[attr-defined]
    warnings.warn(
        f"{spec or classifier.name} has no trained weights here: it runs on random weights, so its logits, and "
        "anything inverted or measured from them, mean nothing; pass --weights FILE or a trained classifier "
        "checkpoint (a folder made with `invkit train-classifier`, or demo:classifier_standard).",
        RandomWeightsWarning,
        stacklevel=stacklevel,
    )


class RandomWeightsWarning(UserWarning):
    """A registry classifier built without trained weights is about to be used (``Classifier.random_weights``)."""


def resolve_inverter(
    spec: str | None,
    classifier: Classifier,
    checkpoint: str | None = None,
    *,
    untrained: bool = False,
    channel: str | None = None,
    layer: str | None = None,
    **kwargs: Any,
) -> Inverter:
    """An inverter for ``classifier`` from a checkpoint folder, or a registry name built fresh.

    Nothing is defaulted silently: options (``kwargs``, from ``--option``) given with a checkpoint, whose settings
    come from its config.json, are refused, and so is a learned inverter built fresh (random weights) unless
    ``untrained`` is set (``invkit train``, which trains it).

    Args:
        spec: a registered inverter name, a checkpoint folder (or ``demo:NAME``, ``hf-hub:OWNER/NAME[@REVISION]``),
            or None when ``checkpoint`` is given. With ``checkpoint`` too, it must name the inverter the checkpoint
            holds (its part before the tag).
        classifier: the classifier whose logits will be inverted (gives the logit size; ``optim`` runs it). One
            without trained weights gets a ``RandomWeightsWarning`` (unless ``resolve_classifier`` gave one).
        checkpoint: an inverter checkpoint folder, ``demo:NAME`` or ``hf-hub:OWNER/NAME[@REVISION]``.
        untrained: allow a learned inverter with random weights (for training it).
        channel: the observation channel (``--channel``, e.g. ``topk:5``); None: a checkpoint's own, ``logits`` for a
            fresh inverter (``invkit.core.observation.choose_observation``).
        layer: the classifier layer observed instead (``--layer``); None: a checkpoint's own, none for a fresh one.
        **kwargs: factory options (config fields such as ``steps`` or ``ch``) for a fresh inverter.

    Returns:
        The inverter, on the CPU (in eval mode when loaded from a folder), with ``registry_name``, ``channel`` and
        ``layer`` set.

    Raises:
        UnknownNameError: an unregistered name, or a checkpoint that stores one.
        CheckpointError: the folder is missing or corrupt, holds another inverter than ``spec``, or inverts
            another number of logits than ``classifier`` gives; a ``demo:``/``hf-hub:`` spec that cannot be had.
        InvkitError: neither a name nor a checkpoint was given; options given with a checkpoint; a learned
            inverter without a checkpoint (and not ``untrained``).
        InputError: ``channel`` and ``layer`` together, or either one other than a checkpoint's own; a channel spec
            or layer name the classifier cannot give (``choose_observation``); UnknownNameError for a channel name.
    """
    from .factory import create_inverter
    from .observation import choose_observation

    warn_random_weights(classifier, stacklevel=3)
    if checkpoint is not None:
        checkpoint = local_checkpoint(checkpoint)
        if kwargs:
            raise InvkitError(
                f"--option {', '.join(sorted(kwargs))} is for an inverter built fresh; checkpoint '{checkpoint}' "
                "keeps the settings it was trained with (its config.json). Drop --option or --checkpoint."
            )
        inv = create_inverter(classifier=classifier, checkpoint=checkpoint)
        if spec is not None and spec.split(".")[0] != inv.registry_name.split(".")[0]:
            raise CheckpointError(f"checkpoint '{checkpoint}' holds a {inv.registry_name} inverter, not {spec}.")
        if inv.layer is None and inv.num_classes != classifier.num_classes:  # a layer's width: choose_observation
            raise CheckpointError(
                f"checkpoint '{checkpoint}' inverts {inv.num_classes} logits but {classifier.name} "
                f"gives {classifier.num_classes}; use the checkpoint trained for this classifier."
            )
        choose_observation(inv, classifier, channel, layer)
        return inv
    if spec is None:
        raise InvkitError("give an inverter name (--inverter NAME) or a checkpoint folder (--checkpoint DIR).")
    if has_prefix(spec) or Path(spec).expanduser().is_dir():
        folder = str(Path(local_checkpoint(spec)).expanduser())
        return resolve_inverter(None, classifier, checkpoint=folder, channel=channel, layer=layer, **kwargs)
    if not untrained and is_learned(spec, classifier, kwargs):
        raise InvkitError(
            f"{spec} is a learned inverter and has only random weights without --checkpoint; train one "
            f"(`invkit train --classifier ... --inverter {spec} --out DIR`) and pass --checkpoint DIR."
        )
    inv = create_inverter(spec, classifier=classifier, **kwargs)
    choose_observation(inv, classifier, channel, layer)
    return inv


def is_learned(spec: str, classifier: Classifier | None = None, options: dict[str, Any] | None = None) -> bool:
    """Whether the registered inverter ``spec`` learns (``Inverter.trainable``), found before building it.

    ``Inverter.trainable`` on the inverter's class is the one declaration. It is read from the class the factory's
    return annotation names (``def factory(...) -> MyInverter``, or the class itself registered as the factory),
    else from an inverter built on the meta device (no weights), else from one built for real. A ``trainable``
    attribute on the factory (how invkit 0.1 plugins declared it) is still read, with a ``DeprecationWarning``.
    ``resolve_inverter`` and ``invkit bench`` ask it to refuse a learned inverter without a checkpoint.

    Args:
        spec: a registered inverter name.
        classifier: what the inverter is built for, when it has to be built.
        options: the factory options (checked first, so a misspelt key is reported as such).

    Raises:
        UnknownNameError: ``spec`` is not registered.
        InputError: an option its registration does not declare, or a value of the wrong type.
    """
    from ..utils.config import check_options
    from .factory import create_inverter
    from .plugins import get_registry

    entry = get_registry("inverter").resolve(spec)
    options = dict(options or {})
    if entry.declared_options() is not None:
        check_options(entry.declared_options(), options, entry.name, accept=("classifier",))
    flag = getattr(entry.factory, "trainable", None)
    if isinstance(flag, bool):  # invkit 0.1: factory.trainable beside Inverter.trainable
        warnings.warn(
            f"the factory of {entry.name} (plugin {entry.plugin}) declares trainable; Inverter.trainable on the "
            "inverter's class is the one declaration now, and factory.trainable will stop being read.",
            DeprecationWarning,
            stacklevel=2,
        )
        return flag
    cls = _built_class(entry.factory)
    if cls is not None:
        return bool(cls.trainable)
    try:
        with torch.device("meta"):
            return bool(getattr(create_inverter(spec, classifier=classifier, **options), "trainable", False))
    except InvkitError:
        raise  # bad options: the same one line the real build would give
    except Exception:  # noqa: BLE001 - a factory that cannot run on the meta device: build it for real
        return bool(getattr(create_inverter(spec, classifier=classifier, **options), "trainable", False))


def _built_class(factory: Any) -> type[Inverter] | None:
    """The ``Inverter`` subclass a factory builds, when it says so without being called: the factory is that class,
    or its return annotation names it (through ``functools.partial`` too); None when it does not say."""
    func = factory.func if isinstance(factory, functools.partial) else factory
    if isinstance(func, type):
        return func if issubclass(func, Inverter) else None
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: build it instead
        return None
    return hint if isinstance(hint, type) and issubclass(hint, Inverter) else None


_is_learned = is_learned  # the name before issue 24
