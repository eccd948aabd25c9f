"""invkit: invert image classifiers — reconstruct an image from the logits a classifier produced for it.

Library use::

    import invkit
    clf = invkit.create_classifier("smallcnn.mnist", checkpoint="path/to/ckpt")
    inv = invkit.load_inverter("path/to/biggan_ckpt")
    images = inv.invert(clf.logits(x))

    # a registry name or a checkpoint folder, the way every CLI command takes them
    clf = invkit.resolve_classifier("path/to/classifier_ckpt")
    inv = invkit.resolve_inverter("optim.mv15", clf)
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any  # noqa: E402

from .classifier import Classifier, ClassifierConfig, load_classifier  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    DataError,
    InputError,
    InvkitError,
    TrainingError,
    TrainingInterrupted,
    UnknownNameError,
    UnsafeCheckpointError,
    WeightsNotFoundError,
)
from .hookspecs import hookimpl  # noqa: E402
from .inverter import Inverter, InverterTrainer, load_inverter  # noqa: E402
from .plugins import get_registry, plugin_cache_dir, register_plugin  # noqa: E402
from .probe import Probe, ProbeContext, ProbeResult  # noqa: E402
from .resolve import resolve_classifier, resolve_inverter  # noqa: E402


def create_classifier(name: str | None = None, *, checkpoint: str | None = None, **kwargs: Any) -> Classifier:
    """Build a registered classifier, or load one from an invkit checkpoint folder.

    Args:
        name: ``name.tag`` or a bare ``name`` (its default tag). May be None when ``checkpoint`` is given.
        checkpoint: an invkit checkpoint folder (config.json + model.safetensors); ``kwargs`` are then unused.
        **kwargs: passed to the factory (``pretrained``, ``weights`` for a published weights file, ...).

    Raises:
        UnknownNameError: ``name``, or the name stored in the checkpoint, is not registered.
        AmbiguousNameError: several plugins registered that name.
        CheckpointError: the checkpoint is missing, corrupt or does not fit (see ``load_classifier``), or it holds
            a classifier other than ``name`` (the names before the tag differ).
        InvkitError: neither ``name`` nor ``checkpoint`` given; the built-in factories raise it (or its subclass
            ``InputError``) for an option they do not take or a value they refuse.
        WeightsNotFoundError: from the built-in factories: the pretrained weights are not cached and cannot be
            downloaded, or the ``weights`` file does not exist.
    """
    if checkpoint is not None:
        clf = load_classifier(checkpoint)
        if name is not None and get_registry("classifier").resolve(name).base != clf.registry_name.split(".")[0]:
            raise CheckpointError(f"checkpoint '{checkpoint}' holds {clf.registry_name}, not {name}.")
        return clf
    if name is None:
        raise InvkitError("give a classifier name or a checkpoint folder.")
    entry = get_registry("classifier").resolve(name)
    clf = entry.factory(**kwargs)
    if isinstance(clf, Classifier):
        clf.registry_name = clf.registry_name or entry.name
    return clf


def create_inverter(
    name: str | None = None, *, classifier: Classifier | None = None, checkpoint: str | None = None, **kwargs: Any
) -> Inverter:
    """Build a registered inverter for a classifier, or load one from a checkpoint folder.

    Args:
        name: ``name.tag`` or a bare ``name`` (its default tag). Unused when ``checkpoint`` is given.
        classifier: the classifier whose logits it inverts; the built-in factories take the logit dimension and
            image channels from it, and ``optim`` keeps it to run it.
        checkpoint: an invkit checkpoint folder (see ``load_inverter``); ``name`` and ``kwargs`` are then unused:
            the name stored in the checkpoint picks the factory.
        **kwargs: passed to the factory (its config fields, e.g. ``resolution`` or ``steps``).

    Returns:
        The inverter, with ``registry_name`` set to the full ``name.tag``.

    Raises:
        UnknownNameError: ``name``, or the name stored in the checkpoint, is not registered.
        AmbiguousNameError: several plugins registered that name.
        CheckpointError: the checkpoint is missing, corrupt or its weights do not fit (see ``load_inverter``).
        InvkitError: neither ``name`` nor ``checkpoint`` given.
        InputError: from the built-in factories: an option that is not a config field, or a value they refuse.
    """
    if checkpoint is not None:
        return load_inverter(checkpoint, classifier=classifier)
    if name is None:
        raise InvkitError("give an inverter name or a checkpoint folder.")
    entry = get_registry("inverter").resolve(name)
    inv = entry.factory(classifier=classifier, **kwargs)
    inv.registry_name = inv.registry_name or entry.name
    return inv


def create_probe(name: str, **kwargs: Any) -> Probe:
    """Build a registered probe.

    Args:
        name: the probe's registry name (``invkit list probes``).
        **kwargs: the probe's options (the fields of its ``options`` dataclass), as ``--option key=value`` gives.

    Raises:
        UnknownNameError: ``name`` is not registered.
        AmbiguousNameError: several plugins registered it.
        InputError: from the factory: the built-in probes refuse an option they do not have or a value of the
            wrong type (``rows=2.5``) or NaN/inf.
    """
    entry = get_registry("probe").resolve(name)
    probe = entry.factory(**kwargs)
    probe.name = probe.name or entry.name
    return probe


def list_classifiers(pattern: str = "*") -> list[str]:
    """Registered classifier names matching ``pattern``, sorted (an empty list when none does).

    Args:
        pattern: a shell wildcard on the full ``name.tag`` (``resnet*``, ``*.tv_in1k``), or a bare name, which
            matches every tag of that name.
    """
    return get_registry("classifier").names(pattern)


def list_inverters(pattern: str = "*") -> list[str]:
    """Registered inverter names matching ``pattern``, sorted (an empty list when none does).

    Args:
        pattern: a shell wildcard on the full ``name.tag`` (``biggan_proj.*``), or a bare name, which matches
            every tag of that name.
    """
    return get_registry("inverter").names(pattern)


def list_probes(pattern: str = "*") -> list[str]:
    """Registered probe names matching ``pattern``, sorted (an empty list when none does).

    Args:
        pattern: a shell wildcard (``logit-*``) or a plain name.
    """
    return get_registry("probe").names(pattern)


__all__ = [
    "__version__",
    "Classifier",
    "ClassifierConfig",
    "Inverter",
    "InverterTrainer",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "InvkitError",
    "UnknownNameError",
    "WeightsNotFoundError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "InputError",
    "DataError",
    "TrainingError",
    "TrainingInterrupted",
    "hookimpl",
    "create_classifier",
    "create_inverter",
    "create_probe",
    "list_classifiers",
    "list_inverters",
    "list_probes",
    "load_classifier",
    "load_inverter",
    "register_plugin",
    "get_registry",
    "resolve_classifier",
    "resolve_inverter",
    "plugin_cache_dir",
]
