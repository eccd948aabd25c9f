"""The ``Probe`` interface: an experiment that uses an inverter to study a classifier.

A probe gets a ``ProbeContext`` (classifier, inverter, held-out data, output folder, seeded generator) and
returns a ``ProbeResult``: numbers (JSON) and the figures it wrote (PNG, HTML). Where the paper only showed
pictures, a probe also reports a number.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .progress import ProgressCallback, no_progress


@dataclass
class ProbeContext:
    """What a probe runs on.

    Attributes:
        classifier: the frozen classifier whose logits are inverted.
        inverter: an inverter built for that classifier.
        data: held-out images, a dataset of (image in [0, 1], label).
        out: the folder to write figures into (exists).
        generator: seeded; use it for every random draw so runs repeat.
        num_images: how many images of ``data`` to use.
        device: where to compute.
        extra_data: other data sets by name (``ood`` uses ``extra_data["ood"]``).
        options: probe-specific options from ``--option key=value``.
        progress: progress callback.
    """

    classifier: Any
    inverter: Any
    data: Dataset
    out: Path
    generator: torch.Generator
    num_images: int = 64
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    extra_data: dict[str, Dataset] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback = no_progress


@dataclass
class ProbeResult:
    """What a probe found.

    Attributes:
        probe: the probe's registry name.
        numbers: JSON-serialisable results (floats, lists, nested dicts); no NaN unless meaningful.
        figures: figure name -> path relative to the output folder.
        summary: one or two sentences for people.
    """

    probe: str
    numbers: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=float)


class Probe(abc.ABC):
    """Base class of every probe. ``name`` is set from the registry; ``description`` is one line."""

    name: str = ""
    description: str = ""

    @abc.abstractmethod
    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run the experiment, write figures under ``ctx.out`` and return the numbers."""
