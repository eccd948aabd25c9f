"""The ``Probe`` interface: an experiment that uses an inverter to study a classifier.

A probe gets a ``ProbeContext`` (classifier, inverter, held-out data, output folder, seeded generator) and
returns a ``ProbeResult``: numbers (JSON) and the figures it wrote (PNG, HTML). Where the paper only showed
pictures, a probe also reports a number.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..utils.progress import ProgressCallback, no_progress

RESULTS_NAME = "results.json"


@dataclass
class ProbeContext:
    """What a probe runs on.

    Attributes:
        classifier: the frozen classifier whose logits are inverted.
        inverter: an inverter built for that classifier.
        data: held-out images, a dataset of ``(image, label)``: a float ``(C, H, W)`` image in [0, 1] at the data
            set's own size (``Inverter.target_images`` brings it to the inverter's) and an int class index.
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
    """Base class of every probe.

    Attributes:
        name: the registry name (set by ``invkit.create_probe``).
        description: one line, shown by ``invkit list``.
        options: optional; a dataclass instance whose fields are the options the probe takes
            (``--option key=value`` / ``ProbeContext.options``) and their defaults. A probe that declares
            them gets unknown keys refused by ``run_probe`` before it runs; one that does not receives every
            key unchecked.
    """

    name: str = ""
    description: str = ""
    options: Any = None

    @abc.abstractmethod
    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run the experiment, write figures under ``ctx.out`` and return the numbers.

        Args:
            ctx: what to run on (the built-in probes apply ``ctx.options`` over the options they were built with).

        Raises:
            InputError: ``ctx`` the probe cannot use, as the built-in probes report it: an unknown or badly typed
                option, too few suitable images or classes in ``ctx.data``, a second classifier with other labels.
            InvkitError: other errors of the classifier or inverter it runs (e.g. an ``optim`` inverter built
                without its classifier).
        """


def declared_options(probe: Any) -> set[str] | None:
    """The option names a probe declares (fields of its ``options`` dataclass), or None if it declares none."""
    options = getattr(probe, "options", None)
    if options is not None and dataclasses.is_dataclass(options):
        return {f.name for f in dataclasses.fields(options)}
    return None


class _CountingData(Dataset):
    """``ctx.data`` as a probe sees it, counting the distinct images the probe reads (``images_used``).

    Every other attribute (``labels()``, ``classes``, ``name``) is the wrapped data set's.
    """

    def __init__(self, data: Dataset):
        self._data = data
        self.read: set[int] = set()

    def __len__(self) -> int:
        return len(self._data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        item = self._data[index]
        self.read.add(int(index) % len(self))  # -1 and len - 1 are one image
        return item

    def __getattr__(self, name: str) -> Any:
        if name in ("_data", "read"):  # not set yet (copy, pickle): never recurse
            raise AttributeError(name)
        return getattr(self._data, name)


def run_probe(
    probe: Probe, ctx: ProbeContext, run_info: dict[str, Any] | None = None, *, write: bool = True
) -> ProbeResult:
    """Run a probe the way ``invkit probe`` does: check its options, run it, write ``ctx.out/results.json``.

    ``results.json`` is the ``ProbeResult`` as JSON plus a ``run`` section (``run_info``, the seconds the
    probe took and ``images_used``: how many distinct images of ``ctx.data`` it read, which is what its numbers
    are over; ``--num-images`` and a probe's own counts are upper bounds, and the data may hold fewer), written
    atomically and last, so a folder holding it holds a finished run.

    Args:
        probe: the probe (``invkit.create_probe``).
        ctx: what it runs on; ``ctx.out`` must exist.
        run_info: what to record about the run (classifier, inverter, data, seed, ...).
        write: False to only run (and check) it.

    Raises:
        InputError: an option in ``ctx.options`` that the probe does not declare (see ``Probe.options``).
        InvkitError: whatever the probe raises for input it cannot use.
    """
    from ..io.files import atomic_write_json

    declared = declared_options(probe)
    unknown = sorted(set(ctx.options) - declared) if declared is not None else []
    if unknown:
        raise InputError(
            f"{probe.name or type(probe).__name__} has no option '{unknown[0]}'; its options are: "
            f"{', '.join(sorted(declared or ())) or 'none'}."
        )
    started = time.perf_counter()
    data = _CountingData(ctx.data)
    result = probe.run(dataclasses.replace(ctx, data=data))
    if write:
        doc = json.loads(result.to_json())
        seconds = round(time.perf_counter() - started, 2)
        doc["run"] = dict(run_info or {}) | {"seconds": seconds, "images_used": len(data.read)}
        atomic_write_json(Path(ctx.out) / RESULTS_NAME, doc, sort_keys=True, default=float)  # NaN -> null
    return result
