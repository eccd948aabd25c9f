"""The ``Probe`` interface: an experiment that uses an inverter to study a classifier.

A probe gets a ``ProbeContext`` (classifier, inverter, held-out data, output folder, seeded generator) and
returns a ``ProbeResult``: numbers (JSON), the figures it wrote (PNG) with their captions, and tables. Where the
paper only showed pictures, a probe also reports a number. ``run_probe`` (what ``invkit probe`` runs) checks the
options against the probe's ``options`` dataclass, runs it, and writes the probe's page ``index.html`` from the
result (``invkit.core.probe_page``) and ``results.json``: a probe writes no HTML.
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
from ..utils.config import check_options
from ..utils.progress import ProgressCallback, no_progress

RESULTS_NAME = "results.json"
PAGE_NAME = "index.html"  # the probe's page, rendered by run_probe; invkit probe also writes one across probes


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
    """What a probe found; ``run_probe`` renders it as the probe's ``index.html`` and writes it as ``results.json``.

    Attributes:
        probe: the probe's registry name.
        numbers: JSON-serialisable results (floats, lists, nested dicts); no NaN unless meaningful.
        figures: figure name -> path of a PNG the probe wrote, relative to the output folder; shown on the page in
            this order, embedded. ``run_probe`` adds ``"page": "index.html"``.
        summary: one or two sentences for people (plain text), the page's first paragraph.
        captions: figure name -> a caption shown under that figure (plain text).
        tables: table title -> rows (dicts with the same keys, the columns), shown on the page after the numbers.
    """

    probe: str
    numbers: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    captions: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=float)


class Probe(abc.ABC):
    """Base class of every probe.

    Attributes:
        name: the registry name (set by ``invkit.create_probe``).
        description: one line, shown by ``invkit list``.
        options: optional; a dataclass instance, declared on the class, whose fields are the options the probe
            takes (``--option key=value`` / ``ProbeContext.options``) and their defaults. invkit checks every
            option against it (``invkit.utils.config.check_options``: an unknown key, with the closest names; a
            value of the wrong type such as ``grid=3.5`` for an ``int``; NaN) when the probe is built with options
            and in ``run_probe`` before ``run``; ``options_for(ctx)`` gives the options to run with. A probe that
            declares none receives every key unchecked.
    """

    name: str = ""
    description: str = ""
    options: Any = None

    def __init__(self, **options: Any):
        """Build the probe with ``options`` applied over its declared defaults (``invkit.create_probe`` passes them).

        Raises:
            InputError: an option it does not declare (any option, when it declares none), or a value of the wrong
                type or NaN/inf (``check_options``).
        """
        if not options:
            return
        where = self.name or type(self).__name__
        if self.options is None or not dataclasses.is_dataclass(self.options):
            raise InputError(f"{where} declares no options, got {', '.join(sorted(options))}.")
        self.options = dataclasses.replace(self.options, **check_options(self.options, options, where, signs=False))

    def options_for(self, ctx: ProbeContext) -> Any:
        """``self.options`` with ``ctx.options`` applied, checked (``run_probe`` has checked them already; checking
        again costs nothing and covers a ``run`` called directly).

        Raises:
            InputError: as ``__init__``.
        """
        if self.options is None:
            return None
        where = self.name or type(self).__name__
        return dataclasses.replace(self.options, **check_options(self.options, ctx.options, where, signs=False))

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


def check_probe_options(probe: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against what ``probe`` declares (``Probe.options``), as ``run_probe`` checks them.

    Returns:
        The options under their field names, with their values converted (``4.0`` -> ``4`` for an int field, a
        list -> a tuple); every key unchanged for a probe that declares no options.

    Raises:
        InputError: ``"<probe> has no option 'gird' (did you mean 'grid'?); its options are: ..."``, or a value of
            the wrong type or NaN/inf (``invkit.utils.config.check_options``).
    """
    declared = getattr(probe, "options", None)
    if declared is None or not dataclasses.is_dataclass(declared):
        return dict(options)
    return check_options(declared, options, getattr(probe, "name", "") or type(probe).__name__, signs=False)


def run_probe(
    probe: Probe, ctx: ProbeContext, run_info: dict[str, Any] | None = None, *, write: bool = True
) -> ProbeResult:
    """Run a probe the way ``invkit probe`` does: check its options, run it, write its page and ``results.json``.

    The probe returns numbers, figures, captions and tables (``ProbeResult``); invkit renders them as
    ``ctx.out/index.html`` (``invkit.core.probe_page.render_probe_page``: summary, what it ran on, the numbers,
    the tables, the figures embedded, so the page opens offline) and adds it to ``figures`` as ``"page"``. A probe
    that lists a ``"page"`` figure of its own keeps it (probes written for invkit 0.1 wrote their own).
    ``results.json`` is the ``ProbeResult`` as JSON plus a ``run`` section (``run_info``, the seconds the
    probe took and ``images_used``: how many distinct images of ``ctx.data`` it read, which is what its numbers
    are over; ``--num-images`` and a probe's own counts are upper bounds, and the data may hold fewer), written
    atomically and last, so a folder holding it holds a finished run.

    Args:
        probe: the probe (``invkit.create_probe``).
        ctx: what it runs on; ``ctx.out`` must exist. ``ctx.options`` reach ``run`` checked and converted.
        run_info: what to record about the run (classifier, inverter, data, seed, ...).
        write: False to only run (and check) it: no page, no ``results.json``.

    Raises:
        InputError: an option in ``ctx.options`` that the probe does not declare, or a value of the wrong type
            (``check_probe_options``), before the probe runs.
        InvkitError: whatever the probe raises for input it cannot use.
    """
    from ..io.files import atomic_write_json
    from .naming import classifier_label, inverter_label
    from .probe_page import render_probe_page

    ctx = dataclasses.replace(ctx, options=check_probe_options(probe, ctx.options))
    started = time.perf_counter()
    data = _CountingData(ctx.data)
    result = probe.run(dataclasses.replace(ctx, data=data))
    if write:
        if "page" not in result.figures:
            about = {  # what the weights are (invkit.core.naming: "smallcnn.base @ FOLDER")
                "classifier": classifier_label(ctx.classifier) if hasattr(ctx.classifier, "name") else "",
                "inverter": inverter_label(ctx.inverter),
                "data": getattr(ctx.data, "name", ""),
            }
            render_probe_page(result, Path(ctx.out), about)
            result.figures = {**result.figures, "page": PAGE_NAME}
        doc = json.loads(result.to_json())
        seconds = round(time.perf_counter() - started, 2)
        doc["run"] = dict(run_info or {}) | {"seconds": seconds, "images_used": len(data.read)}
        atomic_write_json(Path(ctx.out) / RESULTS_NAME, doc, sort_keys=True, default=float)  # NaN -> null
    return result
