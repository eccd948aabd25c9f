"""Leakage curves (issue 25 point 3): how reconstruction quality falls as a classifier reveals less of its output.

A *family* is one observation channel (``invkit.core.channels``) over a list of its parameter values, ``topk:1,5,20,
all`` (``all``: K = the number of classes), ``round:1,2,3``, ``noise:0,0.5,1,2``, or an explicit mixed list of
specs, ``logits,probs,topk:5,label``, whose x axis is categorical. ``Leakage`` runs one ``Bench`` per channel
(``invkit.evaluation.bench``, unchanged: same images, seed and settings, only ``BenchSettings.channel`` differs) into
``OUT/<channel slug>/``, so each channel is a complete bench folder (results.json, reports, per-image values) and a
rerun reuses every finished pair. Inverters built fresh (``optim``) invert through each channel; a learned inverter
runs a channel only with a ``--checkpoint`` trained on it (matched by the channel its ``config.json`` records; a
channel without one is skipped with a note, and a run where nothing fits is refused).

From the benches' results.json (never recomputed) ``document`` builds ``OUT/leakage.json``: per channel its spec,
parameter and, per (classifier, inverter), each main metric's value with its 95% interval and n; and the paired
difference of every channel against the first of the family on the same images, from the per-image files
(``OUT/<slug>/per_image/``, ``invkit.evaluation.per_image.compare_pair``, i.e. ``stats.paired_differences``: a BCa
bootstrap over images) with its verdict. The main metrics are the headline instance identification
(``id_accuracy``, in the bench's ``--id-space``), top-1 agreement, PSNR and, per evaluator, its top-1 accuracy on the
reconstructions and its identification. ``invkit.evaluation.leakage_page`` writes leakage.md, .html and .png.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..core.channels import create_channel, parse_spec
from ..core.classifier import Classifier
from ..core.resolve import is_learned, resolve_classifier
from ..errors import CheckpointError, InputError, InvkitError
from ..io.checkpoint import checkpoint_folder, read_checkpoint_config
from ..io.outputs import claim_output, input_paths
from ..utils.progress import Progress, ProgressCallback, no_progress
from .bench import RESULTS_NAME, Bench
from .leakage_page import write_leakage_files
from .per_image import compare_pair, load_per_image, per_image_path
from .settings import BenchSettings, PairResult

LEAKAGE_NAME = "leakage.json"
LEAKAGE_FILES = (LEAKAGE_NAME, "leakage.md", "leakage.html", "leakage.png")
BENCH_FILES = (RESULTS_NAME, "results.csv", "report.md", "report.html")  # what each channel's bench folder holds
BENCH_COMMAND = "invkit bench"  # each channel folder is a bench folder: `invkit bench --out OUT/<slug>` reuses it

# What the x axis of a built-in family is, in words (a plugin's channel: the name of its options' first field).
X_LABELS = {
    "topk": "K, the number of largest probabilities observed",
    "round": "D, decimals the probabilities are rounded to",
    "noise": "SIGMA, std. dev. of the Gaussian noise on the logits",
}


@dataclass(frozen=True)
class Member:
    """One channel of a family.

    Attributes:
        spec: the channel spec as its channel writes it (``topk:5``, ``noise:0.5``).
        slug: its sub-folder of the output folder (``topk_5``).
        parameter: its x value, the channel options' first field (K, D, SIGMA; None in a mixed list).
        label: its x tick label (``5``, ``all (200)``, ``probs``).
    """

    spec: str
    slug: str
    parameter: int | float | None
    label: str


@dataclass(frozen=True)
class Family:
    """The channels of one leakage curve, in the order given (the first is the reference of the comparisons).

    Attributes:
        name: the channel name of a family (``topk``); None for a mixed list of specs.
        text: the family as given (``topk:1,5,20,all`` or ``logits,probs,label``).
        members: its channels.
        x_label: what the x axis is, in words.
    """

    name: str | None
    text: str
    members: tuple[Member, ...]
    x_label: str

    @property
    def categorical(self) -> bool:
        """A mixed list: the x axis names channels, not values."""
        return self.name is None

    @property
    def log_x(self) -> bool:
        """Whether the x axis is logarithmic (``topk``: K from 1 to the number of classes)."""
        return self.name == "topk"


def slug_of(spec: str) -> str:
    """The folder name of a channel spec: ``topk:5`` -> ``topk_5`` (letters, digits, ``.``, ``-``, ``_`` kept)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", spec)


def _member(spec: str, num_classes: int, seen: dict[str, str], where: str, label: str | None = None) -> Member:
    """The checked channel ``spec`` (``topk:all`` meaning K = ``num_classes``) as a member; refuses a repeat."""
    name, value = parse_spec(spec)
    shown = value
    if value is not None and value.strip().lower() == "all":
        if name != "topk":
            raise InputError(
                f"{where}: 'all' is a value of topk only (K = the number of classes); give {name} a number."
            )
        value = str(num_classes)
        shown = f"all ({num_classes})"
    channel = create_channel(name if value is None else f"{name}:{value}", num_classes=num_classes)
    if channel.spec in seen:
        raise InputError(f"{where} names channel '{channel.spec}' twice ('{seen[channel.spec]}', '{spec}'); drop one.")
    seen[channel.spec] = spec
    fields = dataclasses.fields(channel.options) if dataclasses.is_dataclass(channel.options) else ()
    x = getattr(channel.options, fields[0].name) if fields else None
    parameter = x if isinstance(x, int | float) and not isinstance(x, bool) else None
    return Member(channel.spec, slug_of(channel.spec), parameter, label or shown or channel.spec)


def parse_family(text: str, num_classes: int) -> Family:
    """A family ``NAME:V1,V2,...`` (``topk:1,5,20,all``, ``round:1,2,3``, ``noise:0,0.5,1,2``) as its channels.

    Args:
        text: the family; ``all`` for topk means K = ``num_classes``.
        num_classes: the classifier's number of classes (checks K).

    Returns:
        The family, its members in the order given; x = each channel's parameter (its options' first field).

    Raises:
        UnknownNameError: an unknown channel name (with the closest names).
        InputError: no values (an empty family), an empty value, a channel without a parameter (``label``), a value
            the channel refuses (K above ``num_classes`` or below 1, D < 0, SIGMA negative or not finite, a value
            of the wrong type), ``all`` for another channel than topk, or a channel named twice. One line each.
    """
    from ..core.plugins import get_registry

    name, _, values = str(text).strip().partition(":")
    name = name.strip()
    if not name:
        raise InputError(f"family '{text}' names no channel; give NAME:V1,V2,..., e.g. 'topk:1,5,20,all'.")
    entry = get_registry("channel").resolve(name)  # UnknownNameError with the closest names
    declared = entry.declared_options()
    fields = dataclasses.fields(declared) if declared is not None else ()
    if not fields:
        raise InputError(
            f"channel '{name}' has no parameter to vary; compare it with others with --channels (e.g. "
            f"'logits,probs,{name}')."
        )
    items = [v.strip() for v in values.split(",")]
    if not values.strip():
        raise InputError(f"family '{text}' is empty; give values, e.g. '{name}:1,2,3'.")
    if not all(items):
        raise InputError(f"family '{text}' has an empty value; separate values by single commas, e.g. '{name}:1,2'.")
    seen: dict[str, str] = {}
    members = tuple(_member(f"{name}:{v}", num_classes, seen, f"family '{text}'") for v in items)
    x_label = X_LABELS.get(name, f"{fields[0].name} of {name}:VALUE")
    return Family(name, str(text).strip(), members, x_label + (" (log scale)" if name == "topk" else ""))


def parse_channels(specs: str | list[str], num_classes: int) -> Family:
    """An explicit list of channel specs (``logits,probs,topk:5,label``) as a family with a categorical x axis.

    Args:
        specs: comma-separated specs, or a list of them; ``topk:all`` means K = ``num_classes``.
        num_classes: the classifier's number of classes.

    Returns:
        The family (``name`` None), its members in the order given.

    Raises:
        UnknownNameError, InputError: as ``parse_family`` (an empty list, an empty spec, a refused value, a repeat).
    """
    items = [s.strip() for part in ([specs] if isinstance(specs, str) else specs) for s in str(part).split(",")]
    text = ",".join(items)
    if not any(items):
        raise InputError("--channels is empty; give specs, e.g. 'logits,probs,topk:5,label'.")
    if not all(items):
        raise InputError(f"--channels '{text}' has an empty spec; separate specs by single commas.")
    seen: dict[str, str] = {}
    members = tuple(
        dataclasses.replace(_member(s, num_classes, seen, f"--channels '{text}'", label=s), parameter=None)
        for s in items
    )
    return Family(None, text, members, "the observation channel")


@dataclass
class Planned:
    """A channel's bench: which inverters run it, with which checkpoints, and why any was left out."""

    member: Member
    inverters: list[str]
    checkpoints: list[str]
    skipped: list[str] = field(default_factory=list)  # one line per inverter left out


@dataclass
class ChannelRun:
    """A channel whose bench finished: its pairs (``PairResult.reused``: from an earlier run) and its document."""

    member: Member
    results: list[PairResult]
    document: dict[str, Any]


class Leakage:
    """A leakage curve run. Construction checks the family, the classifiers and the checkpoints; ``run()`` benches each
    channel and rewrites the leakage files after each one.

    Args:
        settings: the bench settings every channel shares (classifiers, inverters, data, n, seed, evaluators, ...);
            ``channel`` and ``layer`` must be None (the run sets the channel); ``checkpoints`` are learned
            inverters' checkpoints, each used for the channel its config.json records.
        out: the output folder: ``OUT/<slug>/`` per channel and the four leakage files.
        family: a family ``NAME:V1,V2,...`` (``parse_family``), or
        channels: a mixed list of specs (``parse_channels``); exactly one of the two.
        progress: receives the ``leakage`` task (over channels) and every bench's events.

    Raises:
        InputError: both or neither of ``family`` and ``channels``; a bad family (``parse_family``); ``settings``
            with a channel or layer; classifiers with different numbers of classes.
        UnknownNameError: an unknown channel, classifier or inverter name.
        CheckpointError: a checkpoint that cannot be read, that was trained on a layer, on a channel outside the
            family or for an inverter not asked for; no channel that any inverter can run.
    """

    def __init__(
        self,
        settings: BenchSettings,
        out: str | Path,
        family: str | None = None,
        channels: str | list[str] | None = None,
        progress: ProgressCallback = no_progress,
    ):
        if (family is None) == (channels is None):
            raise InputError("give a family (e.g. 'topk:1,5,20,all') or a list of --channels, exactly one.")
        if settings.channel is not None or settings.layer is not None:
            raise InputError("a leakage run sets each bench's channel; leave the settings' channel and layer unset.")
        if not settings.classifiers or not settings.inverters:
            raise InvkitError("give at least one --classifier and one --inverter.")
        self.settings, self.out, self.progress = settings, Path(out), progress
        self.classifiers = {spec: resolve_classifier(spec).eval() for spec in settings.classifiers}
        counts = {clf.num_classes for clf in self.classifiers.values()}
        if len(counts) > 1:
            raise InputError(
                f"the classifiers have {sorted(counts)} classes; a leakage curve needs one number of classes (K of "
                "topk); run one leakage per classifier."
            )
        num_classes = counts.pop()
        self.family = parse_family(family, num_classes) if family is not None else parse_channels(channels, num_classes)
        self.plan = self._plan()
        self.notes = [f"{p.member.spec}: {line}" for p in self.plan for line in p.skipped]
        if not any(p.inverters for p in self.plan):
            raise CheckpointError(
                f"no channel of '{self.family.text}' can be run: {'; '.join(self.notes)}; pass --checkpoint folders "
                "trained with `invkit train --channel SPEC` or add --inverter optim."
            )
        self.finished: dict[str, ChannelRun] = {}
        self._compared: dict[tuple[str, str, str], dict[str, Any]] = {}  # (channel, first, pair) -> differences

    # ------------------------------------------------------------------------------------------ checking
    def _plan(self) -> list[Planned]:
        """Each channel's inverters and checkpoints; refuse a checkpoint that no (channel, inverter) uses."""
        s = self.settings
        first = next(iter(self.classifiers.values()))
        options = s.inverter_options
        learned = {
            inv: is_learned(inv, first, dict(options.get(inv.split(".")[0], {})) | dict(options.get(inv, {})))
            for inv in s.inverters
        }
        observed = {}  # checkpoint folder -> (channel spec, inverter name) it was trained on
        for given in s.checkpoints:
            folder = str(checkpoint_folder(given))
            doc = read_checkpoint_config(folder, kind="inverter")
            if doc.get("layer"):
                raise CheckpointError(
                    f"checkpoint '{given}' was trained on layer '{doc['layer']}'; a leakage curve compares channels of "
                    "the logits: drop it."
                )
            observed[folder] = (create_channel(doc.get("channel") or "logits").spec, str(doc["name"]))
        specs = {m.spec for m in self.family.members}
        for folder, (channel, name) in observed.items():
            if channel not in specs:
                raise CheckpointError(
                    f"checkpoint '{folder}' was trained on channel '{channel}', which '{self.family.text}' does not "
                    "hold; add the channel or drop the checkpoint."
                )
            if not any(_same_inverter(name, inv) for inv in s.inverters if learned[inv]):
                raise CheckpointError(
                    f"checkpoint '{folder}' is a {name} checkpoint but --inverter asks for {', '.join(s.inverters)}; "
                    f"add --inverter {name.split('.')[0]} or drop the checkpoint."
                )
        plan = []
        for member in self.family.members:
            p = Planned(member, [], [])
            for inv in s.inverters:
                if not learned[inv]:
                    p.inverters.append(inv)
                    continue
                mine = [f for f, (ch, name) in observed.items() if ch == member.spec and _same_inverter(name, inv)]
                if mine:
                    p.inverters.append(inv)
                    p.checkpoints += [f for f in mine if f not in p.checkpoints]
                else:
                    p.skipped.append(f"{inv} skipped: no --checkpoint trained on channel '{member.spec}'.")
            plan.append(p)
        return plan

    # ------------------------------------------------------------------------------------------ running
    def channel_settings(self, planned: Planned) -> BenchSettings:
        """The bench settings of one channel: the shared ones with its channel, inverters and checkpoints."""
        s = copy.deepcopy(self.settings)
        s.channel, s.inverters, s.checkpoints = planned.member.spec, list(planned.inverters), list(planned.checkpoints)
        return s

    def run(self) -> Iterator[ChannelRun]:
        """Bench every channel that has an inverter, in the family's order; yield each as it finishes.

        Each channel's folder ``OUT/<slug>`` is held as an ``invkit bench`` output folder while its bench runs
        (``invkit.io.outputs.claim_output``); the leakage files are rewritten (atomically) after every channel.

        Raises:
            What ``Bench`` and ``Bench.run`` raise for a channel (a results.json of other settings in its folder, a
            checkpoint that does not fit a classifier, ...): the channels finished before are kept.
            OutputError: a file cannot be written.
        """
        todo = [p for p in self.plan if p.inverters]
        s = self.settings
        inputs = input_paths(*s.classifiers, *s.checkpoints, *s.evaluators, s.data, s.data_root)
        for i, planned in enumerate(todo):
            self.progress(Progress("leakage", i, len(todo), {"channel": planned.member.spec}))
            folder = self.out / planned.member.slug
            with claim_output(folder, BENCH_COMMAND, inputs=inputs, writes=BENCH_FILES, records=(RESULTS_NAME,)):
                bench = _ChannelBench(self.classifiers, self.channel_settings(planned), folder, self.progress)
                results = list(bench.run())
                done = ChannelRun(planned.member, results, bench.document())
            self.finished[planned.member.spec] = done
            write_leakage_files(self.out, self.document())
            yield done
        self.progress(Progress("leakage", len(todo), len(todo), {}))

    # ------------------------------------------------------------------------------------------ the document
    def document(self) -> dict[str, Any]:
        """leakage.json: the family, the settings, the main metrics and, per channel, its records' values with their
        intervals and the paired differences against the first channel (see the module docstring)."""
        runs = [self.finished[m.spec] for m in self.family.members if m.spec in self.finished]
        evaluators = next((list((r.document["results"] or [{}])[0].get("evaluators") or {}) for r in runs), [])
        keys = ["id_accuracy", "top1_agreement", "psnr"]
        keys += [f"eval:{label}:{m}" for label in evaluators for m in ("top1", "id_accuracy")]
        reference: dict[tuple[str, str], tuple[Member, dict[str, Any], Path]] = {}  # line -> first channel with it
        channels = []
        for planned in self.plan:
            member, run = planned.member, self.finished.get(planned.member.spec)
            entry: dict[str, Any] = {
                "spec": member.spec,
                "parameter": member.parameter,
                "label": member.label,
                "folder": member.slug,
                "status": "skipped" if not planned.inverters else ("done" if run else "not run yet"),
                "skipped": planned.skipped,
                "results": [],
            }
            for record in run.document["results"] if run else []:
                line = (record["classifier"], record["inverter"])
                row = {
                    "classifier": record["classifier"],
                    "inverter": record["inverter"],
                    "inverter_label": record.get("inverter_label"),
                    "slug": record["slug"],
                    "n": record.get("n"),
                    "metrics": {k: metric_entry(record, k) for k in keys},
                }
                index = torch.tensor(run.document["settings"]["image_indices"], dtype=torch.int64)
                here = self.out / member.slug
                if line not in reference:
                    reference[line] = (member, record, here)
                else:
                    first, first_record, there = reference[line]
                    row["against"] = first.spec
                    key = (member.spec, first.spec, record["slug"])
                    if key not in self._compared:  # the document is rebuilt after every channel: compared once
                        self._compared[key] = _differences(
                            (here, record["slug"]), (there, first_record["slug"]), index, keys, self.settings.seed
                        )
                    row["differences"] = self._compared[key]
                entry["results"].append(row)
            channels.append(entry)
        s = self.settings
        return {
            "invkit_version": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "family": {
                "name": self.family.name,
                "text": self.family.text,
                "categorical": self.family.categorical,
                "log_x": self.family.log_x,
                "x_label": self.family.x_label,
            },
            "settings": {
                "classifiers": s.classifiers,
                "inverters": s.inverters,
                "checkpoints": s.checkpoints,
                "data": s.data,
                "n": s.n,
                "id_k": s.id_k,
                "seed": s.seed,
                "evaluators": s.evaluators,
                "inverter_options": s.inverter_options,
            },
            "metrics": [{"key": k, "chance": _chance(runs, k)} for k in keys],
            "id_space": next((r.document["results"][0].get("id_space") for r in runs if r.document["results"]), None),
            "channels": channels,
        }


class _ChannelBench(Bench):
    """``Bench`` with the classifiers the leakage run already loaded (one load per run, not per channel)."""

    def __init__(self, loaded: dict[str, Classifier], *args: Any, **kwargs: Any):
        self._loaded = loaded
        super().__init__(*args, **kwargs)

    def _load_classifier(self, spec: str) -> Classifier:
        clf = self._loaded.get(spec)
        return clf.to(self.device).eval() if clf is not None else super()._load_classifier(spec)


def _same_inverter(checkpoint_name: str, inverter: str) -> bool:
    """Whether a checkpoint of registry name ``checkpoint_name`` is one of ``inverter`` (a name or a base name),
    as bench matches them (``invkit.evaluation.matching``)."""
    if "." in inverter:
        return checkpoint_name == inverter
    return checkpoint_name.split(".")[0] == inverter


def metric_value(record: dict[str, Any], key: str) -> Any:
    """A bench record's mean of metric ``key``: a top-level field, or ``eval:LABEL:METRIC`` of an evaluator."""
    if key.startswith("eval:"):
        label, _, name = key[len("eval:") :].rpartition(":")
        return ((record.get("evaluators") or {}).get(label) or {}).get(name)
    return record.get(key)


def metric_entry(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``{"value", "low", "high", "n"}`` of metric ``key`` in a bench record (its ``intervals``; None where absent)."""
    iv = (record.get("intervals") or {}).get(key) or {}
    return {"value": metric_value(record, key), "low": iv.get("low"), "high": iv.get("high"), "n": iv.get("n")}


def _chance(runs: list[ChannelRun], key: str) -> float | None:
    """The chance level of an identification metric (1 / candidates), None for the others."""
    for run in runs:
        for record in run.document["results"]:
            if key == "id_accuracy":
                return record.get("id_chance")
            if key.startswith("eval:") and key.endswith(":id_accuracy"):
                k = ((record.get("evaluators") or {}).get(key[len("eval:") : -len(":id_accuracy")]) or {}).get("id_k")
                return 1 / k if k else None
    return None


def _differences(
    a: tuple[Path, str], b: tuple[Path, str], index: torch.Tensor, keys: list[str], seed: int
) -> dict[str, Any]:
    """Per metric of ``keys``: the paired difference a - b on the same images, from the two benches' per-image files
    (``compare_pair``: difference, low, high, n, better, verdict). ``{"error": ...}`` when a file is missing or holds
    other images."""
    try:
        va = load_per_image(per_image_path(*a), index)
        vb = load_per_image(per_image_path(*b), index)
    except CheckpointError as exc:
        return {"error": str(exc)}
    return compare_pair({k: va[k] for k in keys if k in va}, {k: vb[k] for k in keys if k in vb}, seed)
