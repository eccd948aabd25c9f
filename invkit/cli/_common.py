"""Options and resolution shared by the commands that take a classifier, an inverter and data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from .. import create_classifier, create_inverter
from ..classifier import Classifier
from ..data import ImageDataset, load_dataset
from ..errors import InvkitError
from ..inverter import Inverter


def classifier_from_spec(spec: str, weights: str | None = None, **kwargs: Any) -> Classifier:
    """A classifier from a registry name (``resnet152.tv_in1k``) or an invkit checkpoint folder."""
    path = Path(spec).expanduser()
    if path.is_dir() or (("/" in spec or spec.startswith(".")) and not path.exists()):
        if weights is not None:
            raise InvkitError("--weights is for registry names; a checkpoint folder already holds its weights.")
        return create_classifier(checkpoint=str(path))
    if weights is not None:
        kwargs["weights"] = weights
    return create_classifier(spec, **kwargs)


def inverter_from_spec(
    spec: str | None,
    classifier: Classifier,
    checkpoint: str | None = None,
    *,
    untrained: bool = False,
    **kwargs: Any,
) -> Inverter:
    """An inverter from a checkpoint folder, or a registry name built fresh for ``classifier``.

    Nothing is defaulted silently: settings (``kwargs``, from ``--option``) given with a checkpoint, whose
    settings come from its config.json, are refused, and so is a learned inverter built fresh (random weights)
    unless ``untrained`` (``invkit train``, which trains it).
    """
    if checkpoint is not None:
        if kwargs:
            raise InvkitError(
                f"--option {', '.join(sorted(kwargs))} is for an inverter built fresh; checkpoint '{checkpoint}' "
                "keeps the settings it was trained with (its config.json). Drop --option or --checkpoint."
            )
        inv = create_inverter(classifier=classifier, checkpoint=checkpoint)
        if spec is not None and spec.split(".")[0] != inv.registry_name.split(".")[0]:
            raise InvkitError(f"checkpoint '{checkpoint}' holds a {inv.registry_name} inverter, not {spec}.")
        if inv.num_classes != classifier.num_classes:
            raise InvkitError(
                f"checkpoint '{checkpoint}' inverts {inv.num_classes} logits but {classifier.name} "
                f"gives {classifier.num_classes}; use the checkpoint trained for this classifier."
            )
        return inv
    if spec is None:
        raise InvkitError("give --inverter NAME or --checkpoint DIR.")
    path = Path(spec).expanduser()
    if path.is_dir():
        return inverter_from_spec(None, classifier, checkpoint=str(path), **kwargs)
    if not untrained and _is_learned(spec, classifier, kwargs):
        raise InvkitError(
            f"{spec} is a learned inverter and has only random weights without --checkpoint; train one "
            f"(`invkit train --classifier ... --inverter {spec} --out DIR`) and pass --checkpoint DIR."
        )
    return create_inverter(spec, classifier=classifier, **kwargs)


def _is_learned(spec: str, classifier: Classifier, kwargs: dict[str, Any]) -> bool:
    """Whether ``spec`` builds a trainable inverter, found without building its weights (on the meta device)."""
    from ..plugins import get_registry

    flag = getattr(get_registry("inverter").resolve(spec).factory, "trainable", None)
    if flag is not None:
        return bool(flag)
    try:
        with torch.device("meta"):
            return bool(getattr(create_inverter(spec, classifier=classifier, **kwargs), "trainable", False))
    except InvkitError:
        raise  # bad options: the same one line the real build would give
    except Exception:  # noqa: BLE001 - a factory that cannot run on the meta device: build it for real
        return bool(getattr(create_inverter(spec, classifier=classifier, **kwargs), "trainable", False))


def dataset_from_spec(
    spec: str | None, split: str = "test", root: str | None = None, download: bool = False
) -> ImageDataset:
    return load_dataset(spec or "default", split, root=root, download=download)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvkitError(f"--device {name} asked for, but no CUDA device is available; use --device cpu.")
    return torch.device(name)


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs (``--option steps=100``) into a dict; values parsed as JSON when they can be."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"'{pair}' is not key=value", param_hint="--option")
        k, v = pair.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip().replace("-", "_")] = v
    return out


data_root_option = click.option("--data-root", default=None, help="Where torchvision-format data sets live.")
data_options = [
    click.option(
        "--data",
        default="default",
        show_default=True,
        help="'default' (MNIST subset shipped with invkit), an ImageFolder folder, a .tar.gz of one, "
        "or mnist/fashionmnist/cifar10/cifar100 under --data-root.",
    ),
    data_root_option,
]
device_option = click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")


def apply(options: list) -> Any:
    def deco(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco
