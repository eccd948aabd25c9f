"""Options and resolution shared by the commands that take a classifier, an inverter and data."""

from __future__ import annotations

from typing import Any

import click
import torch

from ..data import ImageDataset, load_dataset
from ..errors import InvkitError
from ..resolve import resolve_classifier as classifier_from_spec  # noqa: F401 - the library's spec resolution
from ..resolve import resolve_inverter as inverter_from_spec  # noqa: F401


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
