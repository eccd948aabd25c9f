"""Options and resolution shared by the commands that take a classifier, an inverter and data."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import click
import torch

from ..core.resolve import resolve_classifier as classifier_from_spec  # noqa: F401 - the library's spec resolution
from ..core.resolve import resolve_inverter as inverter_from_spec  # noqa: F401
from ..data.datasets import ImageDataset
from ..data.sources import load_dataset
from ..errors import InvkitError


def local_spec(spec: str | None) -> str | None:
    """A command's classifier or checkpoint spec with ``demo:NAME`` and ``hf-hub:...`` replaced by the folder they
    name (``invkit.io.locate.local_checkpoint``), so outputs record the folder and its weights digest; for an
    ``hf-hub:`` spec, says on stderr which commit it is. Other specs (names, folders, None) are returned as given.

    Raises:
        CheckpointError: an unknown demo name, or an ``hf-hub:`` spec that cannot be had (one line).
    """
    from ..io.hub import is_hub_spec
    from ..io.locate import has_prefix, local_checkpoint

    if spec is None or not has_prefix(spec):
        return spec
    folder = local_checkpoint(spec)
    if is_hub_spec(spec):
        from ._ui import err_console

        err_console.print(f"{spec}: commit {Path(folder).name} from the Hugging Face cache", soft_wrap=True)
    return folder


def dataset_from_spec(
    spec: str | None, split: str = "test", root: str | None = None, download: bool = False
) -> ImageDataset:
    return load_dataset(spec or "default", split, root=root, download=download)


DEVICE_HELP = "cpu, cuda, cuda:N or auto."
_DEVICE_RE = re.compile(r"(auto|cpu|cuda|cuda:\d+|mps)")


def check_device(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """Click callback for ``--device``: refuse names torch would fail on later with a traceback."""
    if value is None:
        return None
    name = value.strip().lower()
    if not _DEVICE_RE.fullmatch(name):
        raise click.BadParameter(f"'{value}' is not a device invkit can use; use {DEVICE_HELP}", ctx, param)
    return name


def pick_device(name: str) -> torch.device:
    """The torch device for a ``--device`` value, checked against the devices this machine has.

    Raises:
        InvkitError: an unknown device name, CUDA or a CUDA index that is not there, MPS off macOS.
    """
    name = check_device(None, None, name) if name else "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvkitError(f"--device {name} asked for, but no CUDA device is available; use --device cpu.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise InvkitError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0."
            )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvkitError("--device mps asked for, but no Apple MPS device is available; use --device cpu.")
    return torch.device(name)


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN/inf and values below ``min`` (or equal to it when ``min_open``)."""

    name = "float"

    def __init__(self, min: float | None = None, min_open: bool = False, max: float | None = None):
        self.min, self.min_open, self.max = min, min_open, max

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number.", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value} is not a finite number.", param, ctx)
        if self.min is not None and (x < self.min or (self.min_open and x == self.min)):
            self.fail(f"{value} must be {'above' if self.min_open else 'at least'} {self.min:g}.", param, ctx)
        if self.max is not None and x > self.max:
            self.fail(f"{value} must be at most {self.max:g}.", param, ctx)
        return x


# The value types of every numeric CLI option (one place, so each command refuses the same bad values).
POSITIVE_INT = click.IntRange(min=1)  # counts and sizes: images, steps, batch sizes, widths
NON_NEGATIVE_INT = click.IntRange(min=0)  # counts where 0 means "none" or "off"
POSITIVE_FLOAT = FiniteFloat(min=0.0, min_open=True)  # learning rates, epochs
NON_NEGATIVE_FLOAT = FiniteFloat(min=0.0)  # weight decay, radii
FRACTION = FiniteFloat(min=0.0, max=1.0)  # shares of a run, attack radii in pixel units
SEED = click.IntRange(min=0, max=2**63 - 1)  # what torch.Generator.manual_seed takes


def parse_options(pairs: tuple[str, ...], flag: str = "--option") -> dict[str, Any]:
    """``key=value`` pairs (``--option steps=100``) into a dict; values parsed as JSON when they can be.

    The values' types and ranges are checked by the config they go to (``invkit.utils.config.check_fields``).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        k, eq, v = pair.partition("=")
        key = k.strip().replace("-", "_")
        if not eq or not key:
            raise click.BadParameter(f"'{pair}' is not key=value", param_hint=flag)
        try:
            out[key] = json.loads(v)
        except json.JSONDecodeError:
            out[key] = v
        except RecursionError:
            raise click.BadParameter(
                f"the value of '{key}' is nested too deeply to be an option", param_hint=flag
            ) from None
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
device_option = click.option("--device", default="auto", show_default=True, callback=check_device, help=DEVICE_HELP)


def apply(options: list) -> Any:
    def deco(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco
