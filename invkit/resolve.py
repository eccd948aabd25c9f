"""Spec resolution: a registry name or a checkpoint folder -> a ``Classifier`` or an ``Inverter``.

Every place that takes a classifier or an inverter "by spec" (the CLI commands, the bench runner, probes,
plugins) goes through these two functions, so a name and a folder mean the same thing everywhere:

* a **registry name** (``resnet152.tv_in1k``, ``biggan_proj``) builds the object through its factory;
* a **checkpoint folder** (``config.json`` + ``model.safetensors``, see docs/checkpoints.md) is loaded, and
  the registry name stored in its ``config.json`` picks the factory.

A spec counts as a folder when it is an existing directory, or when it looks like a path (contains ``/`` or
starts with ``.``) even if missing, so a mistyped folder fails with "does not exist" rather than "unknown
classifier".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .classifier import Classifier
from .errors import CheckpointError, InvkitError
from .inverter import Inverter


def is_checkpoint_spec(spec: str) -> bool:
    """Whether ``spec`` names a checkpoint folder rather than a registry name (see the module docstring)."""
    path = Path(spec).expanduser()
    return path.is_dir() or "/" in spec or spec.startswith(".")


def resolve_classifier(spec: str, weights: str | None = None, **kwargs: Any) -> Classifier:
    """A classifier from a registry name (``resnet152.tv_in1k``) or an invkit checkpoint folder.

    Args:
        spec: a registered ``name.tag`` (or bare ``name``), or a classifier checkpoint folder.
        weights: a published weights file for a registry name (``--weights``); not allowed with a folder.
        **kwargs: passed to the registry factory (``pretrained``, ...); ignored for a folder.

    Returns:
        The classifier, on the CPU, in eval mode for a checkpoint folder.

    Raises:
        UnknownNameError: ``spec`` is neither a folder nor a registered name (with the closest names).
        CheckpointError: the folder is missing, not a classifier checkpoint, or its weights do not fit.
        InvkitError: ``weights`` given together with a checkpoint folder.
    """
    from . import create_classifier

    if is_checkpoint_spec(spec):
        if weights is not None:
            raise InvkitError(
                f"'{spec}' is a checkpoint folder, which already holds its weights; weights files "
                "(--weights) are for registry names."
            )
        return create_classifier(checkpoint=str(Path(spec).expanduser()))
    if weights is not None:
        kwargs["weights"] = weights
    return create_classifier(spec, **kwargs)


def resolve_inverter(
    spec: str | None, classifier: Classifier, checkpoint: str | None = None, **kwargs: Any
) -> Inverter:
    """An inverter for ``classifier`` from a checkpoint folder, or a registry name built fresh.

    Args:
        spec: a registered inverter name, a checkpoint folder, or None when ``checkpoint`` is given. With
            ``checkpoint`` too, it must name the inverter the checkpoint holds (its part before the tag).
        classifier: the classifier whose logits will be inverted (gives the logit size; ``optim`` runs it).
        checkpoint: an inverter checkpoint folder.
        **kwargs: factory options (config fields such as ``steps`` or ``ch``) for a fresh inverter.

    Returns:
        The inverter, on the CPU (in eval mode when loaded from a folder), with ``registry_name`` set.

    Raises:
        UnknownNameError: an unregistered name, or a checkpoint that stores one.
        CheckpointError: the folder is missing or corrupt, holds another inverter than ``spec``, or inverts
            another number of logits than ``classifier`` gives.
        InvkitError: neither a name nor a checkpoint was given.
    """
    from . import create_inverter

    if checkpoint is not None:
        inv = create_inverter(classifier=classifier, checkpoint=checkpoint)
        if spec is not None and spec.split(".")[0] != inv.registry_name.split(".")[0]:
            raise CheckpointError(f"checkpoint '{checkpoint}' holds a {inv.registry_name} inverter, not {spec}.")
        if inv.num_classes != classifier.num_classes:
            raise CheckpointError(
                f"checkpoint '{checkpoint}' inverts {inv.num_classes} logits but {classifier.name} "
                f"gives {classifier.num_classes}; use the checkpoint trained for this classifier."
            )
        return inv
    if spec is None:
        raise InvkitError("give an inverter name (--inverter NAME) or a checkpoint folder (--checkpoint DIR).")
    if Path(spec).expanduser().is_dir():
        return resolve_inverter(None, classifier, checkpoint=str(Path(spec).expanduser()))
    return create_inverter(spec, classifier=classifier, **kwargs)
