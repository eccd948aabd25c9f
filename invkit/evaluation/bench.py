"""The benchmark runner: every (classifier, inverter) pair on the same held-out images, with every metric.

``Bench(settings, out)`` checks everything it will need before it computes anything (names, checkpoints,
data), then ``run()`` yields one ``PairResult`` per pair as it finishes and reports progress through an
``invkit.utils.progress.ProgressCallback``. With an ``out`` folder, ``results.json`` and the report files are
rewritten (atomically) after every pair, so a run that fails or is interrupted keeps what it finished, and a
rerun with the same settings reuses those pairs instead of computing them again.

``Bench`` is the orchestrator; the parts it runs live beside it: the options and pairs in ``settings``, the
checkpoint each pair uses in ``matching`` and the inverter it gets in ``pair_inverters`` (bases of ``Bench``), the
per-image values, intervals and comparisons in ``per_image`` (a base too), the draw of images in ``sampling``, their
reading a block at a time in ``blocks`` (a base too: memory does not grow with ``n``), the logits and
reconstructions of a pair in ``inversion`` (kept as they are made by ``recon_cache``), the metrics in
``invkit.evaluation.metrics``, the evaluators in ``evaluator``, the identification spaces in ``identification`` and
the report files in ``report``. What stays here: checking the inputs, running the pairs (reusing finished ones),
scoring a pair with the metrics and the ``results.json`` document. What each reported number means is in
docs/bench.md.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..core.classifier import Classifier
from ..core.inverter import Inverter
from ..core.naming import classifier_label, inverter_label
from ..core.observation import observation_of
from ..core.resolve import is_checkpoint_spec, resolve_classifier
from ..data.classes import for_classifier
from ..data.datasets import ImageDataset
from ..data.images import resize
from ..data.sources import load_dataset
from ..errors import DataError, InvkitError, short_message
from ..io.checkpoint import checkpoint_folder, load_checkpoint_weights, read_checkpoint_config
from ..io.download import ensure_weights
from ..io.files import atomic_write_json
from ..io.locate import has_prefix, local_checkpoint, spec_label
from ..io.outputs import machine_info
from ..io.read import Required, read_json
from ..utils.config import check_fields
from ..utils.progress import Progress, ProgressCallback, no_progress
from . import metrics
from .blocks import BlockReading
from .evaluator import BenchEvaluation, load_evaluators
from .identification import check_id_space, headline_id, identification_per_image
from .inversion import classifier_logits, invert_logits, pair_task
from .kept import has_kept, save_kept
from .matching import CheckpointMatching
from .pair_inverters import PairInverters
from .per_image import PerImageValues
from .report import COLUMNS
from .resolutions import resolution_warnings
from .sampling import pick_indices
from .settings import BenchSettings, Pair, PairResult, _location

# The public names of invkit 0.1's invkit.bench (the old path imports this module, invkit._compat.MOVED).
__all__ = [
    "RESULTS_NAME",
    "Bench",
    "BenchSettings",
    "Pair",
    "PairResult",
    "classifier_logits",
    "invert_logits",
    "pair_task",
    "pick_indices",
]

RESULTS_NAME = "results.json"

# What a rerun reads back from an earlier results.json (checked as it is read, invkit.io.read): the settings'
# fingerprint, and per finished pair the fields the reports and the reuse of the pair use.
_RECORD = {
    "key": Required(str),
    "slug": Required(str),
    "classifier": Required(str),
    "inverter": Required(str),
    "recon_shape": [int],
    "n": int,
    "id_k": (int, None),
    "intervals": dict,  # metric -> {low, high, n, method, confidence}; absent in results of older invkits
} | {key: (float, None) for _, key, spec in COLUMNS if spec != "s"}
RESULTS_SCHEMA = {"settings": {"fingerprint": dict}, "results": [_RECORD]}


class Bench(CheckpointMatching, PairInverters, PerImageValues, BlockReading):
    """A bench run. Construction checks every input; ``run()`` computes and yields the pairs.

    Args:
        settings: what to run.
        out: folder for results.json and the reports (None: compute only).
        progress: receives ``Progress`` events (tasks ``bench`` over pairs, and one per pair over images).

    Raises:
        InputError: a settings field of the wrong type, NaN/inf or a negative or zero size
            (``invkit.utils.config.check_fields``); an unsupported ``lpips_net``; a class with fewer than ``id_k``
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
        _resolve_prefixes(settings)  # demo:NAME and hf-hub:... become their folders before anything reads them
        if settings.n < 1:
            raise InvkitError(f"-n must be at least 1, got {settings.n}.")
        if settings.id_k < 2:
            raise InvkitError(f"--id-k must be at least 2 (the original and a distractor), got {settings.id_k}.")
        if not settings.classifiers or not settings.inverters:
            raise InvkitError("give at least one --classifier and one --inverter.")
        self._previous = self._read_previous()
        self.dataset = self._open_data()
        self.classifiers = {spec: self._load_classifier(spec) for spec in settings.classifiers}
        self.dataset = self._match_classes(self.dataset)
        self.evaluators = load_evaluators(settings.evaluators, self.classifiers, self.dataset, self.device)
        self._check_inverter_names()
        settings.checkpoints = [checkpoint_folder(c) for c in settings.checkpoints]  # a run: its newest
        self.checkpoint_docs = {c: read_checkpoint_config(c, kind="inverter") for c in settings.checkpoints}
        for c in settings.checkpoints:  # a missing, pickled or corrupt weights file fails now, not mid-run
            load_checkpoint_weights(c)
        self.pairs = self._plan()
        self._check_observations()  # --channel/--layer against each checkpoint's own (matching)
        self._pick_images()
        # last, so that a --download happens only once every other input is known to be good
        self.lpips_ok, self.lpips_message = metrics.lpips_status(settings.lpips_net, download=settings.download)
        if self.evaluators:  # and the Inception-V3 of standard FID/KID, which the evaluators' scoring adds
            ensure_weights("inception", settings.download)
        self.id_space = check_id_space(
            settings.id_space, self.lpips_ok, self.lpips_message, settings.lpips_net, [*self.evaluators]
        )

    # ------------------------------------------------------------------------------------------ checking
    def _read_previous(self) -> dict[str, Any]:
        if self.out is None or not (self.out / RESULTS_NAME).exists():
            return {}
        path = self.out / RESULTS_NAME
        remedy = "move it away or use another --out (it is left untouched)"
        doc = read_json(path, RESULTS_SCHEMA, "results file", InvkitError, remedy)
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
            raise DataError(f"cannot read data '{spec}' ({type(exc).__name__}: {short_message(exc)}).") from None

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
        from ..core.plugins import get_registry

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

    def _options(self, inv_name: str) -> dict[str, Any]:
        opts = self.settings.inverter_options
        return dict(opts.get(inv_name.split(".")[0], {})) | dict(opts.get(inv_name, {}))

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
        # The images themselves are read a block at a time while a pair runs (invkit.evaluation.blocks: originals,
        # and the id_k - 1 distractors of each as uint8); here only their sizes are checked, so that an unreadable
        # original, or originals or distractors of mixed sizes, are refused before anything is computed.
        self._check_one_size(self.indices)
        self.distractor_idx = metrics.draw_distractors(labels, self.indices, self.settings.id_k, self.settings.seed)
        self._check_one_size(self.distractor_idx.flatten().unique())

    # ------------------------------------------------------------------------------------------ running
    def run(self) -> Iterator[PairResult]:
        """Compute every pair not already in ``out``; yield each result as it finishes.

        Raises:
            TrainingError: a learned inverter trained here (``train_steps``) that cannot be trained, or whose
                training stops (``invkit.training.loop.train_inverter``).
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
            reuse = pair.key in previous and self._images_reusable(pair, previous[pair.key])
            values = self.stored_values(pair.slug, f"{pair.classifier_label} x {pair.inverter}") if reuse else None
            if values is not None:  # its per-image values read back (invkit.evaluation.per_image): its intervals
                result = PairResult(pair, previous[pair.key] | self.keep_values(pair.slug, values, False), reused=True)
            else:
                result = PairResult(pair, self._run_pair(pair))
            self.results.append(result)
            if self.out is not None:
                self.write()
            yield result
        self.progress(Progress("bench", total, total, {}))
        for line in resolution_warnings(r.record for r in self.results):  # issue 22 point 8; also in the reports
            warnings.warn(line, stacklevel=2)

    def _images_path(self, pair: Pair) -> Path:
        return (self.out or Path(".")) / "images" / f"{pair.slug}.safetensors"

    def _images_reusable(self, pair: Pair, record: dict[str, Any]) -> bool:
        """Whether a finished pair's reconstructions in ``images/`` are there and whole: the file loads and holds
        finite float ``images`` ``(k, *recon_shape)`` with 1 <= k <= n (``--grid-images`` may have changed). A
        damaged file (truncated, replaced) is named in a warning and the pair is computed again, so it is never
        reused as it is."""
        from ..errors import CheckpointError
        from ..io.weights import load_safetensors

        path = self._images_path(pair)
        if not path.exists():
            return False
        want = "(k, " + ", ".join(map(str, record.get("recon_shape", ["C", "H", "W"]))) + f"), k <= {len(self.indices)}"
        try:
            images = load_safetensors(path).get("images")
            fits = images is not None and images.is_floating_point() and images.dim() == 4
            fits = fits and 1 <= len(images) <= len(self.indices)
            fits = fits and list(images.shape[1:]) == record.get("recon_shape", list(images.shape[1:]))
            if not fits:
                shape = "none" if images is None else f"{images.dtype} {tuple(images.shape)}"
                raise CheckpointError(f"'{path}' holds images {shape}, not float {want}")
            if not bool(torch.isfinite(images).all()):
                raise CheckpointError(f"'{path}' holds NaN/inf pixels")
        except CheckpointError as exc:
            warnings.warn(
                f"{str(exc).rstrip('.')}; computing {pair.classifier_label} x {pair.inverter} again.", stacklevel=2
            )
            return False
        # more report (--report-images) or study (--keep-images) images asked for than were kept: computed again
        n, s, out = len(self.indices), self.settings, self.out or Path(".")
        return len(images) >= min(s.grid_images, n) and has_kept(out, pair.slug, min(s.keep_images, n))

    def _save_originals(self) -> None:
        from ..io.files import atomic_save_safetensors

        m = min(self.settings.grid_images, len(self.indices))
        originals = self.originals_block(0, m)  # only the report grid's: never all n images
        atomic_save_safetensors(
            self.out / "images" / "originals.safetensors", {"images": originals, "labels": self.labels[:m]}
        )

    def _run_pair(self, pair: Pair) -> dict[str, Any]:
        """The data path of one pair, a block of images at a time (``invkit.evaluation.blocks``): images ->
        classifier -> logits -> inverter -> reconstructions -> metrics."""
        s = self.settings
        clf = self.classifiers[pair.classifier_spec]
        inv, train_info = self._inverter(pair, clf)
        # The image the inverter reconstructs is the data image at its resolution; the classifier sees that image
        # and the reconstruction is scored against it (Inverter.target_images; issue 12 point 2). What the inverter
        # inverts: its observation channel of the logits (--channel; the logits themselves by default), a layer's
        # pooled activations (--layer), or another representation of the same images for an inverter that says so
        # (optim.robust: the penultimate layer, as Engstrom et al. 2019). The metrics below still compare the
        # classifier's logits of the reconstructions with those of the originals. A first pass over the blocks.
        logits, targets = self._observe(inv, clf)
        inversion = self._inversion(pair, inv, targets)  # one generator over the blocks, kept in the recon cache
        evaluation = self._evaluation_of_run()  # None without evaluators
        first = max(min(s.grid_images, len(targets)), min(s.keep_images, len(targets)))  # kept for figures, study
        recon_logits, pixel, kept = [], [], ([], [])
        for start, stop in self.blocks():  # the second pass: the same images again, inverted and scored
            images = inv.target_images(self.originals_block(start, stop)).to(self.device)
            recon = inversion(targets[start:stop])
            recon_logits.append(classifier_logits(clf, recon, s.batch_size))
            pixel.append(self._pixel_scores(inv, images.cpu(), recon, self.distractors_block(start, stop)))
            if evaluation is not None:
                evaluation.add(recon.cpu())
            kept[0].append(recon[: max(0, first - start)].cpu())
            kept[1].append(images[: max(0, first - start)].cpu())
        recon, images = torch.cat(kept[0]), torch.cat(kept[1])  # the first `first` only
        record = self._describe(pair, clf, inv)
        pixel_values = {k: torch.cat([p[k] for p in pixel]) for k in pixel[0]}
        scores = self._summarize(pixel_values, torch.cat(recon_logits), logits)
        per_image = scores.pop("per_image")  # metric -> (n,) value per image: the record's intervals (keep_values)
        record.update(scores)
        evaluated, evaluated_per_image = evaluation.finish() if evaluation is not None else ({}, {})
        record.update(evaluated)  # per image: "eval:LABEL:METRIC"
        headline_id(self.id_space, record, per_image, evaluated_per_image)  # --id-space: which is id_accuracy
        per_image.update(evaluated_per_image)  # the evaluators' per-image values get intervals too (issue 21)
        timing = inversion.timing()
        record.update(timing | {"recon_shape": list(recon.shape[1:]), "target_shape": list(images.shape[1:])})
        record["inverter_config"] = inv.config_dict()
        record["channel"], record["layer"] = observation_of(inv)  # what it observed (invkit.core.observation)
        record.update(train_info)
        if self.out is not None:
            from ..io.files import atomic_save_safetensors

            g = min(s.grid_images, len(recon))
            # the originals as this pair's metrics saw them (at the inverter's resolution), for the report's figures
            atomic_save_safetensors(self._images_path(pair), {"images": recon[:g], "targets": images[:g]})
            # the first keep_images as uint8 with their data set indices, for `invkit study` (invkit.evaluation.kept)
            save_kept(self.out, pair.slug, recon, images, self.indices, s.keep_images)
        record.update(self.keep_values(pair.slug, per_image))  # also writes OUT/per_image/<slug>.safetensors
        return record

    def _evaluation_of_run(self) -> BenchEvaluation | None:
        """The run's evaluation by its evaluators (``invkit.evaluation.evaluator.BenchEvaluation``), None without
        evaluators; the evaluators' features of the originals, distractors and held-out bank are computed once."""
        if not self.evaluators:
            return None
        if getattr(self, "_evaluation", None) is None:
            self._evaluation = BenchEvaluation(self)
        self._evaluation.reset()  # a pair starts with no blocks
        return self._evaluation

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
            "n": len(self.indices),
            # what the weights are, as tables and pages show them (invkit.core.naming)
            "classifier_weights": classifier_label(clf),
            "inverter_label": inverter_label(inv),
        }

    def _score(
        self, inv: Inverter, orig: torch.Tensor, recon: torch.Tensor, recon_logits: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, Any]:
        """Every metric of docs/bench.md for all ``n`` reconstructions ``recon`` of ``orig`` at once, the originals
        at the inverter's resolution (``inv.target_images``): ``_summarize`` of ``_pixel_scores`` with every
        distractor (a run scores a block at a time instead, ``_run_pair``)."""
        return self._summarize(self._pixel_scores(inv, orig, recon, self.distractors), recon_logits, logits)

    def _pixel_scores(
        self, inv: Inverter, orig: torch.Tensor, recon: torch.Tensor, distractors: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The per-image values of the metrics that compare pixels, for a block of ``m`` reconstructions ``recon``
        of ``orig``, the originals at the inverter's resolution (``inv.target_images``): what it was asked to
        reconstruct. PSNR, SSIM, LPIPS (when it can run) and identification among ``distractors`` (``(m, id_k - 1,
        C, H, W)`` uint8, brought to the same size): ``{name: (m,) float32}`` under results.json names."""
        s = self.settings
        recon_px = resize(recon, tuple(orig.shape[-2:]), channels=orig.shape[1]).cpu()  # a no-op for a sound inverter
        per_image = {"psnr": metrics.psnr(recon_px, orig), "ssim": metrics.ssim(recon_px, orig)}
        if self.lpips_ok and getattr(self, "_lpips", None) is None:  # built once per run: loading takes seconds
            self._lpips = metrics.LPIPS(s.lpips_net, self.device)
        lpips = self._lpips if self.lpips_ok else None
        if lpips is not None:
            per_image["lpips"] = lpips(recon_px, orig)
        # distractors at the inverter's resolution; id_pixel, and id_lpips with LPIPS (invkit.evaluation.identification)
        return per_image | identification_per_image(recon_px, orig, distractors, inv.target_images, s.batch_size, lpips)

    def _summarize(
        self, pixel: dict[str, torch.Tensor], recon_logits: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, Any]:
        """The scores of a pair from its per-image pixel values ``pixel`` (``_pixel_scores`` of all ``n`` images)
        and the classifier's ``(n, classes)`` logits of the reconstructions and of the originals (agreement).

        Every metric is first a float32 ``(n,)`` value per image in ``scores["per_image"]`` (keyed by its results.json
        name, NaN where it does not apply); the record's means, and its intervals, come from those.
        """
        s = self.settings
        scores: dict[str, Any] = {"lpips": None, "lpips_status": self.lpips_message}
        per_image = {k: pixel[k] for k in ("psnr", "ssim", "lpips") if k in pixel}
        per_image.update(metrics.classifier_agreement_per_image(recon_logits.cpu(), logits.cpu(), self.labels))
        n_correct = int(per_image["accuracy"].sum())
        scores.update({"n_correct": n_correct, "n_incorrect": len(logits) - n_correct})
        per_image.update({k: v for k, v in pixel.items() if k not in per_image})  # id_pixel, id_lpips
        per_image["id_accuracy"] = per_image["id_lpips" if self.id_space == "lpips" else "id_pixel"]  # evaluator: later
        scores["id_space"] = self.id_space
        scores.update({"id_k": s.id_k, "id_chance": 1 / s.id_k})
        # (per-image values of further metrics go above this line: the means below cover every key)
        return scores | {k: metrics.mean_defined(v) for k, v in per_image.items()} | {"per_image": per_image}

    # ------------------------------------------------------------------------------------------ writing
    def document(self) -> dict[str, Any]:
        """results.json: settings, environment, metric definitions and one record per finished pair."""
        s = self.settings
        done = {r.pair.key for r in getattr(self, "results", [])}
        # Earlier pairs are kept, except those this run redid with new weights in the same folders (superseded).
        redone = {_location(k) for k in done}  # a pair redone with the same weights has the same location too
        kept = [r for r in self._previous.get("results", []) if _location(r.get("key") or "") not in redone]
        results = kept + [r.record | {"slug": r.pair.slug} for r in getattr(self, "results", [])]
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
            "results": results,
            # paired differences with intervals and verdicts, from the per-image files (invkit.evaluation.per_image)
            "comparisons": self.comparisons_of(results),
        }

    def write(self) -> None:
        """Write results.json, results.csv, report.md and report.html into ``out`` (each atomically)."""
        from .report import write_reports

        doc = self.document()
        atomic_write_json(self.out / RESULTS_NAME, doc)  # NaN metrics become null: results.json stays valid JSON
        write_reports(self.out, doc)


def _resolve_prefixes(settings: BenchSettings) -> None:
    """Replace the ``demo:NAME`` and ``hf-hub:...`` specs of ``settings`` by their folders
    (``invkit.io.locate.local_checkpoint``); such a classifier keeps its short name as its label (``NAME``)."""
    local = {spec: local_checkpoint(spec) for spec in settings.classifiers if has_prefix(spec)}
    for spec, folder in local.items():
        settings.classifier_labels.setdefault(folder, settings.classifier_labels.pop(spec, None) or spec_label(spec))
    settings.classifiers = [local.get(spec, spec) for spec in settings.classifiers]
    settings.checkpoints = [local_checkpoint(c) for c in settings.checkpoints]
    settings.evaluators = [local_checkpoint(e) if has_prefix(e) else e for e in settings.evaluators]
    renamed = {}
    for key, folder in settings.checkpoint_map.items():  # "classifier spec|inverter base" -> checkpoint
        clf, _, inv = key.rpartition("|")
        renamed[f"{local.get(clf, clf)}|{inv}"] = local_checkpoint(folder)
    settings.checkpoint_map = renamed
