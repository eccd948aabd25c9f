"""The names people read for a classifier or an inverter: what the weights are, not only the registry entry.

A registry name says which code builds a model, not which weights it holds: a 32x32, ``ch`` 16 ``biggan_proj``
trained by ``invkit train`` is registered as ``biggan_proj.paper`` like the paper's 128x128 one, and every
classifier ``invkit train-classifier`` writes is a ``smallcnn.base``, like the untrained registry entry. The tables,
reports and pages of ``invkit bench``, ``invert`` and ``probe`` therefore name a model loaded from a checkpoint
folder by its registry name *and* the folder (``load_classifier`` and ``load_inverter`` record it as
``checkpoint_dir``), and an inverter also by its image size and width:

* ``smallcnn.base @ classifier_standard``
* ``biggan_proj.paper @ mnist_run/step_004000 (32x32, ch 16)``
* ``smallcnn.base (random weights)`` for a registry classifier built without trained weights.

``checkpoint_label`` is the folder part: the folder's name, ``RUN/step_NNNNNN`` for a checkpoint of an ``invkit
train`` run, ``OWNER/NAME@COMMIT`` for a folder of huggingface_hub's cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_label", "classifier_label", "inverter_label"]


def checkpoint_label(folder: str | os.PathLike) -> str:
    """A short name for a checkpoint folder that says which one it is.

    Returns:
        ``RUN/step_NNNNNN`` for ``RUN/checkpoints/step_NNNNNN``; ``OWNER/NAME@COMMIT`` (7 hex digits) for
        huggingface_hub's ``models--OWNER--NAME/snapshots/COMMIT``; else the folder's name.
    """
    p = Path(folder).expanduser()
    p = p.resolve() if p.name in ("", ".", "..") else p
    if p.parent.name == "checkpoints" and p.name.startswith("step_"):
        return f"{p.parent.parent.name}/{p.name}"
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        repo = p.parent.parent.name[len("models--") :].replace("--", "/", 1)
        return f"{repo}@{p.name[:7]}"
    return p.name


def classifier_label(classifier: Any) -> str:
    """``NAME @ FOLDER`` for a classifier loaded from a checkpoint folder, ``NAME (random weights)`` for a registry
    classifier without trained weights, else its registry name (``resnet152.tv_in1k``)."""
    name = getattr(classifier, "registry_name", "") or classifier.name
    folder = getattr(classifier, "checkpoint_dir", None)
    if folder is not None:
        return f"{name} @ {checkpoint_label(folder)}"
    if getattr(classifier, "random_weights", False):
        return f"{name} (random weights)"
    return name


def inverter_label(inverter: Any) -> str:
    """``NAME @ FOLDER (HxW, ch C)`` for an inverter loaded from a checkpoint folder (``ch`` when its config has
    one), else its registry name (a fresh inverter is what its registry entry and options build). What it observes
    is added when it is not the logits (``invkit.core.observation``): ``NAME @ FOLDER (32x32, ch 16, topk:5)``,
    ``optim.mv15 (layer fc)``."""
    name = getattr(inverter, "registry_name", "") or type(inverter).__name__
    folder = getattr(inverter, "checkpoint_dir", None)
    channel, layer = getattr(inverter, "channel", None) or "logits", getattr(inverter, "layer", None)
    seen = [f"layer {layer}"] if layer else ([] if channel == "logits" else [channel])
    if folder is None:
        return name + (f" ({seen[0]})" if seen else "")
    shape = tuple(getattr(inverter, "image_shape", ()))
    details = [f"{shape[-2]}x{shape[-1]}"] if len(shape) >= 2 else []
    config = inverter.config_dict() if hasattr(inverter, "config_dict") else {}
    if isinstance(config.get("ch"), int):
        details.append(f"ch {config['ch']}")
    details += seen
    return f"{name} @ {checkpoint_label(folder)}" + (f" ({', '.join(details)})" if details else "")
