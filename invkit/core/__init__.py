"""The interfaces a plugin implements and how invkit finds them: the middle of the data path.

images -> ``Classifier`` -> logits -> ``Inverter`` -> reconstructions; a ``Probe`` is an experiment over both.

* ``classifier``: ``Classifier`` (frozen network + its preprocessing ``ClassifierConfig``), ``load_classifier``.
* ``inverter``: ``Inverter`` (logits -> images), ``InverterTrainer`` (one training step), ``load_inverter``.
* ``probe``: ``Probe``, ``ProbeContext``, ``ProbeResult``, ``run_probe``.
* ``probe_page``: the HTML page of a probe's result (``run_probe`` renders it) and the page across probes.
* ``registry``: ``name.tag`` registries with wildcards and close-match errors (after timm's ``_registry``).
* ``plugins``: discovery through pluggy and the ``invkit`` entry-point group; ``get_registry``.
* ``factory``: ``create_classifier``, ``create_inverter``, ``create_probe`` and ``list_*``.
* ``resolve``: a CLI spec (registry name or checkpoint folder) -> classifier or inverter.
* ``provenance``: which classifier an inverter checkpoint was trained for, and whether a classifier is that one.
* ``naming``: the names people read for a model: what its weights are (``smallcnn.base @ FOLDER``).
* ``adversarial``: FGSM and PGD against any classifier (adversarial training, the FGSM probe).
* ``channels``: observation channels, what an inverter sees of a classifier's output (``logits``, ``topk:5``, ...).
* ``observation``: what an inverter observes (a channel, or a layer's pooled activations), checked against what a
  checkpoint records (``choose_observation``), and computed for images (``observe``).

Modules here import from ``invkit.io``, ``invkit.data``, ``invkit.utils`` and the base modules only.
"""

from __future__ import annotations

from .channels import Channel, create_channel, list_channels
from .classifier import Classifier, ClassifierConfig, load_classifier
from .factory import create_classifier, create_inverter, create_probe, list_classifiers, list_inverters, list_probes
from .inverter import Inverter, InverterTrainer, load_inverter
from .plugins import get_registry, plugin_cache_dir, register_plugin
from .probe import Probe, ProbeContext, ProbeResult, run_probe
from .resolve import resolve_classifier, resolve_inverter

__all__ = [
    "Channel",
    "Classifier",
    "ClassifierConfig",
    "Inverter",
    "InverterTrainer",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "create_channel",
    "create_classifier",
    "create_inverter",
    "create_probe",
    "get_registry",
    "list_channels",
    "list_classifiers",
    "list_inverters",
    "list_probes",
    "load_classifier",
    "load_inverter",
    "plugin_cache_dir",
    "register_plugin",
    "resolve_classifier",
    "resolve_inverter",
    "run_probe",
]
