"""The factories: build a registered classifier, inverter or probe by name, or load one from a checkpoint folder.

These are the functions ``invkit.create_classifier`` & co. re-export; they look names up in the plugin registry
(``invkit.core.plugins``), so a third-party plugin's names work exactly like the built-in ones (timm's
``create_model`` over its ``_registry``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, InvkitError
from .classifier import Classifier, load_classifier
from .inverter import Inverter, load_inverter
from .plugins import get_registry

if TYPE_CHECKING:
    from .probe import Probe


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
        InputError: an option the registration does not declare (``register(..., options=...)``; the message
            names the closest ones) or a value of the wrong type, checked before the factory is called
            (``invkit.utils.config.check_options``).
        InvkitError: neither ``name`` nor ``checkpoint`` given; a factory's own refusal of a value.
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
    clf = entry.build(**kwargs)  # options the registration declares are checked first (Entry.build)
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
        InputError: an option that is not a field of the options the registration declares (the message names the
            closest ones), or a value of the wrong type, NaN/inf or a negative size (``check_options``), before the
            factory is called; or a value the factory itself refuses.
    """
    if checkpoint is not None:
        return load_inverter(checkpoint, classifier=classifier)
    if name is None:
        raise InvkitError("give an inverter name or a checkpoint folder.")
    entry = get_registry("inverter").resolve(name)
    inv = entry.build(classifier=classifier, **kwargs)  # its declared options checked first (Entry.build)
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
        InputError: an option the probe does not declare in ``Probe.options`` (the message names the closest ones)
            or a value of the wrong type (``rows=2.5``) or NaN/inf (``invkit.utils.config.check_options``).
    """
    entry = get_registry("probe").resolve(name)
    probe = entry.build(**kwargs)  # checked against the probe's options first (Entry.build)
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
