"""The benchmark runner: every (classifier, inverter) pair on the same held-out images, with every metric.

``Bench(settings, out)`` checks everything it will need before it computes anything (names, checkpoints,
data), then ``run()`` yields one ``PairResult`` per pair as it finishes and reports progress through an
``invkit.progress.ProgressCallback``. With an ``out`` folder, ``results.json`` and the report files are
rewritten (atomically) after every pair, so a run that fails or is interrupted keeps what it finished, and a
rerun with the same settings reuses those pairs instead of computing them again.

The metrics are defined in ``invkit.metrics``; what each reported number means is in docs/bench.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from . import __version__, metrics
from .checkpoint import (
    atomic_write_json,
    load_checkpoint_weights,
    read_checkpoint_config,
    spec_identity,
    weights_digest,
)
from .classifier import Classifier
from .config import check_fields
from .data import ImageDataset, for_classifier, load_dataset, resize
from .errors import CheckpointError, DataError, InputError, InvkitError, TrainingError
from .inverter import Inverter
from .outputs import machine_info
from .progress import Progress, ProgressCallback, no_progress
from .resolve import is_checkpoint_spec, resolve_classifier, resolve_inverter

RESULTS_NAME = "results.json"


@dataclass
class BenchSettings:
    """What to compare and on which images.

    Classifier specs are registry names (``smallcnn.base``) or classifier checkpoint folders; inverters are
    registry names. Learned inverters come from ``checkpoints`` (matched to pairs by what they hold) or are
    trained for ``train_steps`` steps.
    """

    classifiers: list[str]  # classifier specs: registry names or checkpoint folders
    inverters: list[str]  # inverter registry names (name or name.tag)
    data: str = "default"  # 'default', a folder, a .tar.gz or a torchvision data set name; its test split
    data_root: str | None = None  # where torchvision-format data sets live
    checkpoints: list[str] = field(default_factory=list)  # inverter checkpoint folders
    n: int = 50  # held-out images evaluated (an equal number per class, classes interleaved)
    id_k: int = 10  # candidates per instance identification (chance = 1 / id_k)
    seed: int = 0  # image draw, distractor draw, inverter noise
    train_steps: int = 0  # train a learned inverter that has no checkpoint for this many steps (0: refuse)
    device: str = "cpu"  # torch device
    batch_size: int = 64  # images per inversion call
    inverter_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # inverter base -> factory kwargs
    lpips_net: str = "alex"  # LPIPS backbone: alex or vgg
    grid_images: int = 10  # originals shown in the report grid (one per class first)
    classifier_labels: dict[str, str] = field(default_factory=dict)  # spec -> name shown in tables
    checkpoint_map: dict[str, str] = field(default_factory=dict)  # "clf spec|inverter base" -> checkpoint folder
    only_correct: bool = False  # draw only images every classifier classifies correctly (the paper's Fig. 1)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the numbers of every pair: a rerun with other values needs another --out."""
        return {
            "data": self.data,
            "n": self.n,
            "id_k": self.id_k,
            "seed": self.seed,
            "inverter_options": self.inverter_options,
            "lpips_net": self.lpips_net,
            **({"only_correct": True} if self.only_correct else {}),  # absent when off: older results still match
        }


@dataclass
class Pair:
    """One (classifier, inverter) pair of a bench run."""

    classifier_spec: str
    classifier_label: str
    inverter: str  # registry name as given
    checkpoint: str | None  # inverter checkpoint folder, or None (built fresh, or trained when learned)
    train: bool = False  # train the inverter first (no checkpoint, learned inverter, train_steps > 0)

    @cached_property
    def key(self) -> str:
        """What a finished pair is found by in results.json: the classifier, the inverter and the checkpoint, each
        folder by its resolved path and its weights' digest (weights retrained into the same folder are new)."""
        ckpt = spec_identity(self.checkpoint) if self.checkpoint else ("trained" if self.train else "fresh")
        return f"{spec_identity(self.classifier_spec)}|{self.inverter}|{ckpt}"

    @property
    def slug(self) -> str:
        raw = f"{self.classifier_label}__{self.inverter}"
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in raw)


@dataclass
class PairResult:
    """A finished pair: its metrics (``record``, one flat dict) and whether it came from an earlier run."""

    pair: Pair
    record: dict[str, Any]
    reused: bool = False


def _location(key: str) -> str:
    """A pair key without its weights digests: which folders, not which weights."""
    return re.sub(r"@[0-9a-f]{16}(?=\||$)", "", key)


def classifier_identity(spec: str) -> dict[str, str]:
    """What an inverter checkpoint may record about the classifier it was trained for (see ``match``)."""
    if is_checkpoint_spec(spec) and Path(spec).expanduser().is_dir():
        return {"path": str(Path(spec).expanduser().resolve()), "weights_sha256": weights_digest(spec)}
    return {"name": spec}


def recorded_classifier(doc: dict[str, Any]) -> dict[str, str]:
    """The classifier an inverter checkpoint says it was trained for, from its ``config.json``.

    ``invkit train`` writes ``classifier`` (the registry name), ``classifier_identity`` (absolute folder and
    weights digest) and ``train_config.classifier`` (the spec it was given: a name or a checkpoint folder). A
    ``classifier`` dict with ``name``/``checkpoint``/``path``/``weights_sha256`` is read too. Empty when the
    checkpoint does not say.

    A relative folder recorded in a checkpoint was relative to the folder the run was started from, which is
    unknown here: it is kept as ``relpath`` and never resolved against the current folder (see
    ``_identity_matches``).
    """
    out: dict[str, str] = {}
    train_cfg = doc.get("train_config") if isinstance(doc.get("train_config"), dict) else {}
    extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}

    def folder(value: str) -> None:
        p = Path(value).expanduser()
        if p.is_absolute():
            out.setdefault("path", str(p.resolve()))
        else:
            out.setdefault("relpath", p.as_posix())

    values = (doc.get("classifier_identity"), doc.get("classifier"), extra.get("classifier"))
    for value in (*values, train_cfg.get("classifier")):
        if isinstance(value, str) and value:
            if is_checkpoint_spec(value):
                folder(value)
            else:
                out["name"] = value
        elif isinstance(value, dict):
            for k in ("name", "weights_sha256"):
                if isinstance(value.get(k), str):
                    out.setdefault(k, value[k])
            for k in ("checkpoint", "path"):
                if isinstance(value.get(k), str):
                    folder(value[k])
    return out


def _relpath_matches(relpath: str, path: str) -> bool:
    """Whether an absolute folder can be the one a relative path recorded elsewhere named: its last parts are
    the relative path's (``..`` and ``.`` parts dropped), e.g. ``/x/invkit/assets/demo/clf`` for
    ``invkit/assets/demo/clf``."""
    parts = [p for p in Path(relpath).parts if p not in ("..", ".")]
    return bool(parts) and list(Path(path).parts[-len(parts) :]) == parts


def _identity_matches(recorded: dict[str, str], spec: str, clf: Classifier) -> bool:
    """Whether a recorded classifier is this one: same weights digest, else same folder, else (for classifiers
    built from the registry) the same registry name."""
    ident = classifier_identity(spec)
    if "weights_sha256" in recorded and "weights_sha256" in ident:
        return recorded["weights_sha256"] == ident["weights_sha256"]
    if "path" in recorded and "path" in ident:
        return recorded["path"] == ident["path"]
    if "relpath" in recorded and "path" in ident:
        return _relpath_matches(recorded["relpath"], ident["path"])
    if "path" in recorded or "relpath" in recorded or "path" in ident:
        return False
    return "name" in recorded and recorded["name"].split(".")[0] == clf.config.name.split(".")[0]


def _checkpoint_folder(path: str) -> str:
    """A checkpoint folder as given, or the newest checkpoint of an ``invkit train`` run folder."""
    p = Path(path).expanduser()
    if p.is_dir() and not (p / "config.json").exists() and (p / "checkpoints").is_dir():
        from .train import latest_checkpoint

        newest = latest_checkpoint(p)
        if newest is not None:
            return str(newest)
    return path


# ------------------------------------------------------------------------------------------------ image draw
def pick_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices, an equal share per class, classes interleaved (the first images are one per class)."""
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique().tolist()
    per_class = [(labels == c).nonzero().flatten() for c in classes]
    per_class = [m[torch.randperm(len(m), generator=g)] for m in per_class]
    out: list[int] = []
    depth = 0
    while len(out) < n and depth < max(len(m) for m in per_class):
        for m in per_class:
            if depth < len(m) and len(out) < n:
                out.append(int(m[depth]))
        depth += 1
    return torch.tensor(out, dtype=torch.long)


def _stack(dataset: ImageDataset, indices: torch.Tensor) -> torch.Tensor:
    images = [dataset[int(i)][0] for i in indices]
    shape = images[0].shape
    if any(im.shape != shape for im in images):  # folders of mixed sizes: bring all to the first one's
        images = [resize(im[None], tuple(shape[-2:]), channels=shape[0])[0] for im in images]
    return torch.stack(images)


# ---------------------------------------------------------------------------------------------------- stages
def pair_task(pair: Pair) -> str:
    """The progress task name of a pair (``classifier x inverter``)."""
    return f"{pair.classifier_label} x {pair.inverter}"


def classifier_logits(classifier: Classifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits ``(N, num_classes)`` of ``images`` (``(N, C, H, W)`` in [0, 1]), ``batch_size`` at a time, no autograd."""
    with torch.no_grad():
        return torch.cat([classifier.logits(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def invert_logits(
    inverter: Inverter,
    logits: torch.Tensor,  # or the representation the inverter says it inverts (``inverter.targets``)
    *,
    seed: int,
    batch_size: int,
    progress: ProgressCallback = no_progress,
    task: str = "invert",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reconstruct images from ``logits``, seeded and timed.

    Learned inverters run without autograd, after one untimed call (lazy initialisation is not inversion
    time); optimisation inverters need autograd and report their steps to ``progress``. The global RNG is
    seeded too, for inverters that also draw from it (jitter).

    Args:
        inverter: the inverter, on the device of ``logits``.
        logits: ``(N, num_classes)`` logits of the inverter's classifier (N >= 1), or the ``(N, ...)``
            representation the inverter says it inverts (``inverter.targets``).
        seed: seeds the generator handed to ``inverter.invert`` (noise, random starts) and the global torch RNG.
        batch_size: rows of ``logits`` per ``inverter.invert`` call.
        progress: receives ``Progress`` events of ``task`` over the N images.
        task: the progress task name.

    Returns:
        Reconstructions ``(N, C, H, W)`` float in [0, 1] on the inverter's device, and the timing fields of a
        result record (``time_per_image_s`` in seconds, peak memory in MiB and how it was measured).

    Raises:
        InputError: ``logits`` is not a non-empty ``(N, ...)`` tensor; or passed up from ``inverter.invert``,
            e.g. logits of the wrong shape or dtype or with NaN/inf values (``Inverter.check_logits``).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or len(logits) == 0:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"invert_logits: expected a non-empty (N, num_classes) batch of logits, got {got}.")
    device = logits.device
    torch.manual_seed(seed)  # inverters that also draw from the global RNG (jitter) repeat run to run
    gen = torch.Generator(device=device).manual_seed(seed)
    learned = getattr(inverter, "trainable", False)
    grad = torch.no_grad() if learned else contextlib.nullcontext()
    progress(Progress(task, 0, len(logits), {}))
    if hasattr(inverter, "progress"):  # optimisation inverters report their steps
        inverter.progress = progress
    if learned:
        with torch.no_grad():
            inverter.invert(logits[:1], generator=torch.Generator(device=device).manual_seed(seed))
    recons = []
    with metrics.measure(device) as m, grad:
        for i in range(0, len(logits), batch_size):
            recons.append(inverter.invert(logits[i : i + batch_size].detach(), generator=gen).detach())
            progress(Progress(task, min(i + batch_size, len(logits)), len(logits), {}))
    recon = torch.cat(recons).float().clamp(0, 1)
    return recon, {
        "time_per_image_s": m.seconds / len(logits),
        "peak_memory_mb": None if m.peak_bytes is None else m.peak_bytes / 2**20,
        "peak_total_mb": None if m.peak_total_bytes is None else m.peak_total_bytes / 2**20,
        "memory_method": m.method,
        "device": str(device),
    }


# ---------------------------------------------------------------------------------------------------- runner
class Bench:
    """A bench run. Construction checks every input; ``run()`` computes and yields the pairs.

    Args:
        settings: what to run.
        out: folder for results.json and the reports (None: compute only).
        progress: receives ``Progress`` events (tasks ``bench`` over pairs, and one per pair over images).

    Raises:
        InputError: a settings field of the wrong type, NaN/inf or a negative or zero size
            (``invkit.config.check_fields``); an unsupported ``lpips_net``; a class with fewer than ``id_k``
            test images (``metrics.draw_distractors``).
        InvkitError: ``n < 1``, ``id_k < 2``, no classifier or no inverter; ``n`` above the test images (with
            ``only_correct``: above those every classifier gets right); ``inverter_options`` for an inverter
            read from a checkpoint; a ``results.json`` in ``out`` that is not JSON or holds other settings.
        DataError: data that cannot be opened, with classes a classifier does not know, or that two classifiers
            number differently.
        CheckpointError: a classifier or inverter checkpoint folder that is missing or corrupt; a learned
            inverter with no fitting checkpoint and ``train_steps`` 0; a checkpoint that fits no pair, or
            several that fit one pair and cannot be told apart.
        UnknownNameError: an unregistered classifier or inverter name.
        WeightsNotFoundError: a registry classifier whose pretrained weights are not in the local caches.
    """

    def __init__(
        self, settings: BenchSettings, out: str | os.PathLike | None = None, progress: ProgressCallback = no_progress
    ):
        self.settings = settings
        self.out = Path(out) if out is not None else None
        self.progress = progress
        self.device = torch.device(settings.device)
        check_fields(BenchSettings, asdict(settings), "bench settings")  # types, NaN, negative sizes, batch 0
        if settings.n < 1:
            raise InvkitError(f"-n must be at least 1, got {settings.n}.")
        if settings.id_k < 2:
            raise InvkitError(f"--id-k must be at least 2 (the original and a distractor), got {settings.id_k}.")
        if not settings.classifiers or not settings.inverters:
            raise InvkitError("give at least one --classifier and one --inverter.")
        self.lpips_ok, self.lpips_message = metrics.lpips_status(settings.lpips_net)
        self._previous = self._read_previous()
        self.dataset = self._open_data()
        self.classifiers = {spec: self._load_classifier(spec) for spec in settings.classifiers}
        self.dataset = self._match_classes(self.dataset)
        self._check_inverter_names()
        settings.checkpoints = [_checkpoint_folder(c) for c in settings.checkpoints]
        self.checkpoint_docs = {c: read_checkpoint_config(c, kind="inverter") for c in settings.checkpoints}
        for c in settings.checkpoints:  # a missing, pickled or corrupt weights file fails now, not mid-run
            load_checkpoint_weights(c)
        self.pairs = self._plan()
        self._pick_images()

    # ------------------------------------------------------------------------------------------ checking
    def _read_previous(self) -> dict[str, Any]:
        if self.out is None or not (self.out / RESULTS_NAME).exists():
            return {}
        path = self.out / RESULTS_NAME
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise InvkitError(
                f"'{path}' exists but is not readable JSON ({exc}); move it away or use another "
                "--out (it is left untouched)."
            ) from None
        old = doc.get("settings", {}).get("fingerprint") or {}
        new = json.loads(json.dumps(self.settings.fingerprint()))
        if old != new:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new[k])
            raise InvkitError(
                f"'{path}' holds results of other settings ({diff}); use another --out or delete "
                "that folder (nothing was changed)."
            )
        return doc

    def _open_data(self) -> ImageDataset:
        spec = self.settings.data
        try:
            return load_dataset(spec, "test", root=self.settings.data_root)
        except DataError:
            raise
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read data '{spec}' ({type(exc).__name__}: {exc}).") from None

    def _match_classes(self, dataset: ImageDataset) -> ImageDataset:
        """The data labelled by the classifiers' class names (``data.for_classifier``); one numbering for all."""
        matched = {spec: for_classifier(dataset, clf) for spec, clf in self.classifiers.items()}
        first, *others = matched
        for spec in others:
            if matched[spec].labels() != matched[first].labels():
                raise DataError(
                    f"{self.label(first)} and {self.label(spec)} number the classes of '{self.settings.data}' "
                    "differently; bench them in separate runs."
                )
        return matched[first]  # type: ignore[return-value]

    def _load_classifier(self, spec: str) -> Classifier:
        return resolve_classifier(spec).to(self.device).eval()

    def _check_inverter_names(self) -> None:
        from .plugins import get_registry

        registry = get_registry("inverter")
        for name in self.settings.inverters:
            registry.resolve(name)  # UnknownNameError with suggestions

    def label(self, spec: str) -> str:
        """The name a classifier goes by in tables and file names (unique within the run)."""
        if not hasattr(self, "_labels"):
            self._labels: dict[str, str] = {}
            for sp in self.settings.classifiers:
                base = self.settings.classifier_labels.get(sp) or (Path(sp).name if is_checkpoint_spec(sp) else sp)
                label, i = base, 2
                while label in self._labels.values():
                    label, i = f"{base}#{i}", i + 1
                self._labels[sp] = label
        return self._labels[spec]

    def _plan(self) -> list[Pair]:
        """Every (classifier, inverter) pair with its checkpoint; raise before anything runs when one is missing."""
        from .plugins import get_registry

        registry = get_registry("inverter")
        used: set[str] = set()
        pairs = []
        for spec, clf in self.classifiers.items():
            for inv_name in self.settings.inverters:
                base = registry.resolve(inv_name).base
                ckpt = self.settings.checkpoint_map.get(f"{spec}|{base}") or self._match(spec, clf, inv_name)
                train = False
                if ckpt is None and self._is_learned(inv_name, clf):
                    if self.settings.train_steps <= 0:
                        raise CheckpointError(
                            f"{inv_name} is a learned inverter and no checkpoint fits {self.label(spec)} "
                            f"({clf.num_classes} logits): pass --checkpoint DIR (trained with `invkit train "
                            f"--classifier {spec} --inverter {inv_name}`) or --train-steps N to train it here."
                        )
                    train = True
                if ckpt is not None:
                    used.add(ckpt)
                    if self._options(inv_name):  # a checkpoint keeps its own settings: the option would be ignored
                        raise InvkitError(
                            f"--option {inv_name.split('.')[0]}:{', '.join(sorted(self._options(inv_name)))} is for "
                            f"an inverter built fresh; checkpoint '{ckpt}' keeps the settings it was trained with."
                        )
                pairs.append(Pair(spec, self.label(spec), inv_name, ckpt, train))
        unused = [c for c in self.settings.checkpoints if c not in used]
        if unused:
            doc = self.checkpoint_docs[unused[0]]
            rec = recorded_classifier(doc)
            trained_for = f", trained for {rec.get('path') or rec.get('relpath') or rec.get('name')}" if rec else ""
            raise CheckpointError(
                f"checkpoint '{unused[0]}' ({doc['name']}, {doc.get('config', {}).get('num_classes')} logits"
                f"{trained_for}) fits none of the (classifier, inverter) pairs; check --classifier/--inverter or "
                "drop it."
            )
        return pairs

    def _match(self, spec: str, clf: Classifier, inv_name: str) -> str | None:
        """The --checkpoint folder for this pair: same inverter name and logit size; when several fit, the
        one whose config.json records this classifier (see ``recorded_classifier``)."""
        base = inv_name.split(".")[0]
        fits = []
        for path, doc in self.checkpoint_docs.items():
            if doc["name"].split(".")[0] != base or "." in inv_name and doc["name"] != inv_name:
                continue
            if int(doc.get("config", {}).get("num_classes", -1)) != clf.num_classes:
                continue
            fits.append((path, recorded_classifier(doc)))
        if not fits:
            return None
        same = [p for p, rec in fits if rec and _identity_matches(rec, spec, clf)]
        unknown = [p for p, rec in fits if not rec]
        if len(same) == 1:
            return same[0]
        sharing = [c for c in self.classifiers.values() if c.num_classes == clf.num_classes]
        if not same and len(unknown) == 1 and len(sharing) == 1:
            return unknown[0]  # the only classifier it can be for
        if not same and not unknown:
            return None  # every fitting checkpoint records another classifier
        candidates = same or unknown
        raise CheckpointError(
            f"cannot tell which of {', '.join(candidates)} is the {inv_name} for {self.label(spec)}: their "
            "config.json does not record the classifier; bench one classifier at a time."
        )

    def _is_learned(self, inv_name: str, clf: Classifier) -> bool:
        from .plugins import get_registry

        factory = get_registry("inverter").resolve(inv_name).factory
        trainable = getattr(factory, "trainable", None)
        if trainable is not None:
            return bool(trainable)
        inv = factory(classifier=clf, **self._options(inv_name))
        return bool(getattr(inv, "trainable", False))

    def _options(self, inv_name: str) -> dict[str, Any]:
        opts = self.settings.inverter_options
        return dict(opts.get(inv_name.split(".")[0], {})) | dict(opts.get(inv_name, {}))

    def _correct_everywhere(self, labels: torch.Tensor) -> torch.Tensor:
        """Mask of the images that every classifier of the run classifies correctly (data at its own size)."""
        keep = torch.ones(len(labels), dtype=torch.bool)
        batch = self.settings.batch_size
        with torch.no_grad():
            for start in range(0, len(labels), batch):
                idx = torch.arange(start, min(start + batch, len(labels)))
                x = _stack(self.dataset, idx).to(self.device)
                for clf in self.classifiers.values():
                    keep[idx] &= clf.logits(x).argmax(1).cpu() == labels[idx]
        return keep

    def _pick_images(self) -> None:
        labels = torch.tensor(self.dataset.labels())
        if self.settings.n > len(labels):  # never report "n = 1500" for the 1000 images there are
            raise InvkitError(
                f"-n {self.settings.n} is more than the {len(labels)} images of the test split of "
                f"'{self.settings.data}'; use -n {len(labels)} or fewer."
            )
        if self.settings.only_correct:
            keep = self._correct_everywhere(labels).nonzero().flatten()
            if len(keep) < self.settings.n:
                raise InvkitError(
                    f"only {len(keep)} test images are classified correctly by every classifier, fewer than "
                    f"-n {self.settings.n}; lower -n or drop --only-correct."
                )
            self.indices = keep[pick_indices(labels[keep], self.settings.n, self.settings.seed)]
        else:
            self.indices = pick_indices(labels, self.settings.n, self.settings.seed)
        self.labels = labels[self.indices]
        self.originals = _stack(self.dataset, self.indices)
        self.distractor_idx = metrics.draw_distractors(labels, self.indices, self.settings.id_k, self.settings.seed)
        flat = _stack(self.dataset, self.distractor_idx.flatten())
        self.distractors = resize(flat, tuple(self.originals.shape[-2:]), channels=self.originals.shape[1])
        self.distractors = self.distractors.view(len(self.indices), self.settings.id_k - 1, *self.originals.shape[1:])

    # ------------------------------------------------------------------------------------------ running
    def run(self) -> Iterator[PairResult]:
        """Compute every pair not already in ``out``; yield each result as it finishes.

        Raises:
            TrainingError: a learned inverter trained here (``train_steps``) that cannot be trained, or whose
                training stops (``invkit.train.train_inverter``).
            CheckpointError: an inverter checkpoint that does not load or does not fit its classifier.
            InputError: passed up from an inverter: options it refuses, or inputs it cannot take.
            DataError: the train split of ``data``, for an inverter trained here, cannot be opened or matched.
            OutputError: a results, report or image file in ``out`` cannot be written.
        """
        previous = {r.get("key"): r for r in self._previous.get("results", [])}
        self.results: list[PairResult] = []
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._save_originals()
        total = len(self.pairs)
        for i, pair in enumerate(self.pairs):
            self.progress(Progress("bench", i, total, {"pair": f"{pair.classifier_label} x {pair.inverter}"}))
            if pair.key in previous and self._images_path(pair).exists():
                result = PairResult(pair, previous[pair.key], reused=True)
            else:
                result = PairResult(pair, self._run_pair(pair))
            self.results.append(result)
            if self.out is not None:
                self.write()
            yield result
        self.progress(Progress("bench", total, total, {}))

    def _images_path(self, pair: Pair) -> Path:
        return (self.out or Path(".")) / "images" / f"{pair.slug}.safetensors"

    def _save_originals(self) -> None:
        from .checkpoint import atomic_save_safetensors

        m = min(self.settings.grid_images, len(self.originals))
        atomic_save_safetensors(
            self.out / "images" / "originals.safetensors", {"images": self.originals[:m], "labels": self.labels[:m]}
        )

    def _inverter(self, pair: Pair, clf: Classifier) -> tuple[Inverter, dict[str, Any]]:
        """The pair's inverter: loaded from its checkpoint, trained here, or built fresh; plus training facts."""
        if pair.checkpoint is not None:
            # --option for an inverter read from a checkpoint would be ignored: resolve_inverter refuses it
            inv = resolve_inverter(pair.inverter, clf, checkpoint=pair.checkpoint, **self._options(pair.inverter))
            return inv.to(self.device).eval(), {}
        if pair.train:
            return self._train(pair, clf)
        inv = resolve_inverter(pair.inverter, clf, **self._options(pair.inverter))
        return inv.to(self.device).eval(), {}

    def _train(self, pair: Pair, clf: Classifier) -> tuple[Inverter, dict[str, Any]]:
        """Train a learned inverter for ``train_steps`` steps with the core loop (``invkit.train``), on the
        train split of the bench's data; a rerun continues from the checkpoint already in ``out/trained``."""
        try:
            from .train import TrainConfig, build_inverter, latest_checkpoint, train_inverter
        except ImportError as exc:
            raise TrainingError(
                f"the training loop (invkit.train) cannot be used here ({exc}); pass --checkpoint "
                f"DIR with a {pair.inverter} trained for {pair.classifier_label}."
            ) from None
        s = self.settings
        folder = (self.out or Path("invkit-bench")) / "trained" / pair.slug
        cfg = TrainConfig(
            classifier=pair.classifier_spec,
            inverter=pair.inverter,
            data=s.data,
            out=str(folder),
            steps=s.train_steps,
            seed=s.seed,
            device=str(self.device),
            options=self._options(pair.inverter),
            save_every=s.train_steps,
            sample_every=0,
            log_every=max(1, s.train_steps // 50),
        )
        inv, trainer_options = build_inverter(cfg, clf)
        t0 = time.perf_counter()
        result = train_inverter(
            cfg,
            clf,
            inv,
            load_dataset(s.data, "train", root=s.data_root),
            self.dataset,
            trainer_options=trainer_options,
            resume=latest_checkpoint(folder) is not None,
            progress=self.progress,
        )
        trained = result.trainer.inference_inverter()
        return trained.to(self.device).eval(), {
            "trained_steps": result.step,
            "train_seconds": round(time.perf_counter() - t0, 2),
            "trained_checkpoint": str(result.checkpoint),
        }

    def _run_pair(self, pair: Pair) -> dict[str, Any]:
        """The data path of one pair: images -> classifier -> logits -> inverter -> reconstructions -> metrics."""
        s = self.settings
        clf = self.classifiers[pair.classifier_spec]
        inv, train_info = self._inverter(pair, clf)
        # The image the inverter reconstructs is the data image at its resolution; the classifier sees that image
        # and the reconstruction is scored against it (Inverter.target_images; issue 12 point 2).
        images = inv.target_images(self.originals).to(self.device)
        logits = classifier_logits(clf, images, s.batch_size)
        # What the inverter inverts: the logits, or another representation of the same images for an inverter that
        # says so (optim.robust: the penultimate layer, as Engstrom et al. 2019).
        targets = inv.targets(images) if hasattr(inv, "targets") else logits
        recon, timing = invert_logits(
            inv, targets, seed=s.seed, batch_size=s.batch_size, progress=self.progress, task=pair_task(pair)
        )
        recon_logits = classifier_logits(clf, recon, s.batch_size)
        record = self._describe(pair, clf, inv)
        record.update(self._score(inv, images.cpu(), recon, recon_logits, logits))
        record.update(timing | {"recon_shape": list(recon.shape[1:]), "target_shape": list(images.shape[1:])})
        record["inverter_config"] = inv.config_dict()
        record.update(train_info)
        if self.out is not None:
            from .checkpoint import atomic_save_safetensors

            g = min(s.grid_images, len(recon))
            atomic_save_safetensors(self._images_path(pair), {"images": recon[:g].cpu()})
        return record

    def _describe(self, pair: Pair, clf: Classifier, inv: Inverter) -> dict[str, Any]:
        """The record's identifying fields: which classifier, inverter and checkpoint."""
        return {
            "key": pair.key,
            "classifier": pair.classifier_label,
            "classifier_name": clf.name,
            "robust": bool(clf.config.robust),
            "inverter": pair.inverter,
            "inverter_name": inv.registry_name,
            "checkpoint": pair.checkpoint,
            "n": len(self.originals),
        }

    def _score(
        self, inv: Inverter, orig: torch.Tensor, recon: torch.Tensor, recon_logits: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, Any]:
        """Every metric of docs/bench.md for reconstructions ``recon`` of ``orig``, the originals at the inverter's
        resolution (``inv.target_images``): what it was asked to reconstruct.

        Pixel metrics compare with ``orig`` (and identification with distractors brought to the same size);
        classifier agreement compares the classifier's logits of the reconstructions with those of ``orig``.
        """
        s = self.settings
        recon_px = resize(recon, tuple(orig.shape[-2:]), channels=orig.shape[1]).cpu()  # a no-op for a sound inverter
        scores: dict[str, Any] = {
            "psnr": metrics.mean(metrics.psnr(recon_px, orig)),
            "ssim": metrics.mean(metrics.ssim(recon_px, orig)),
            "lpips": None,
            "lpips_status": self.lpips_message,
        }
        if self.lpips_ok:
            scores["lpips"] = metrics.mean(metrics.LPIPS(s.lpips_net, self.device)(recon_px, orig))
        scores.update(metrics.classifier_agreement(recon_logits.cpu(), logits.cpu(), self.labels))
        k = self.distractors.shape[1]
        distractors = inv.target_images(self.distractors.flatten(0, 1)).view(len(orig), k, *orig.shape[1:])
        hits = metrics.identification_hits(recon_px, orig, distractors)
        scores.update({"id_accuracy": metrics.mean(hits), "id_k": s.id_k, "id_chance": 1 / s.id_k})
        return scores

    # ------------------------------------------------------------------------------------------ writing
    def document(self) -> dict[str, Any]:
        """results.json: settings, environment, metric definitions and one record per finished pair."""
        s = self.settings
        done = {r.pair.key for r in getattr(self, "results", [])}
        # Earlier pairs are kept, except those this run redid with new weights in the same folders (superseded).
        redone = {_location(k) for k in done}  # a pair redone with the same weights has the same location too
        kept = [r for r in self._previous.get("results", []) if _location(r.get("key") or "") not in redone]
        return {
            "invkit_version": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "settings": {
                **{k: v for k, v in asdict(s).items() if k != "checkpoint_map"},
                "fingerprint": s.fingerprint(),
                "image_indices": self.indices.tolist(),
            },
            "environment": machine_info(self.device),
            "lpips": self.lpips_message,
            "pairs": [{"classifier": p.classifier_label, "inverter": p.inverter, "slug": p.slug} for p in self.pairs],
            "results": kept + [r.record | {"slug": r.pair.slug} for r in getattr(self, "results", [])],
        }

    def write(self) -> None:
        """Write results.json, results.csv, report.md and report.html into ``out`` (each atomically)."""
        from .report import write_reports

        doc = self.document()
        atomic_write_json(self.out / RESULTS_NAME, doc)  # NaN metrics become null: results.json stays valid JSON
        write_reports(self.out, doc)
