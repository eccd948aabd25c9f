"""invkit: invert image classifiers — reconstruct an image from the logits a classifier produced for it.

Library use::

    import invkit
    clf = invkit.create_classifier("smallcnn.mnist", checkpoint="path/to/ckpt")
    inv = invkit.load_inverter("path/to/biggan_ckpt")
    images = inv.invert(clf.logits(x))

    # a registry name or a checkpoint folder, the way every CLI command takes them
    clf = invkit.resolve_classifier("path/to/classifier_ckpt")
    inv = invkit.resolve_inverter("optim.mv15", clf)

The package follows the data path, one subpackage a layer (docs/architecture.md): ``utils`` and ``io`` (plumbing
and files), ``data`` (images in), ``core`` (the Classifier, Inverter and Probe interfaces, the plugin registry),
``training``, ``evaluation`` (bench, metrics, reports) and ``cli``. This module re-exports the public API.
"""

from __future__ import annotations

from . import _compat
from ._version import __version__
from .core import (
    Channel,
    Classifier,
    ClassifierConfig,
    Inverter,
    InverterTrainer,
    Probe,
    ProbeContext,
    ProbeResult,
    create_channel,
    create_classifier,
    create_inverter,
    create_probe,
    get_registry,
    list_channels,
    list_classifiers,
    list_inverters,
    list_probes,
    load_classifier,
    load_inverter,
    plugin_cache_dir,
    register_plugin,
    resolve_classifier,
    resolve_inverter,
    run_probe,
)
from .errors import (
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
from .hookspecs import hookimpl
from .utils.config import check_options

_compat.install()  # old module paths (invkit.checkpoint, invkit.train, ...) keep importing, with a warning

__all__ = [
    "__version__",
    "Channel",
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
    "check_options",
    "create_channel",
    "create_classifier",
    "create_inverter",
    "create_probe",
    "list_channels",
    "list_classifiers",
    "list_inverters",
    "list_probes",
    "load_classifier",
    "load_inverter",
    "register_plugin",
    "get_registry",
    "resolve_classifier",
    "resolve_inverter",
    "run_probe",
    "plugin_cache_dir",
]
