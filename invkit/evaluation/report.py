"""Bench reports: results.csv, report.md and one self-contained report.html, written from results.json.

``write_reports(out, doc)`` takes the document ``invkit.evaluation.bench.Bench.document()`` builds (the same one saved
as results.json) and the reconstruction tensors the bench saved under ``out/images/``. The HTML page embeds
every image as a data URI (``invkit.io.figures``), so it opens offline from anywhere.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..io.figures import html_table, img_tag, save_labelled_rows, write_html_page
from ..io.files import atomic_write_text
from . import report_uncertainty as uncertainty
from .resolutions import resolution_warnings

_ID_SPACES = {"pixel": "pixel L2 distance", "lpips": "LPIPS distance", "evaluator": "evaluator feature distance"}


def _id_space(settings: dict[str, Any]) -> str:
    """The headline identification's distance in words (``--id-space``; pixel in results of older invkits)."""
    space, _, name = str(settings.get("id_space") or "pixel").partition(":")
    return _ID_SPACES.get(space, space) + (f" ({name})" if name else "")


# (header, record key, format) of the comparison table, in order.
COLUMNS: list[tuple[str, str, str]] = [
    ("classifier", "classifier", "s"),
    ("inverter", "inverter", "s"),
    ("PSNR dB", "psnr", ".2f"),
    ("SSIM", "ssim", ".3f"),
    ("LPIPS", "lpips", ".3f"),
    ("acc Φ(x)", "accuracy", ".3f"),
    ("top-1 agree", "top1_agreement", ".3f"),
    ("agree (Φ(x) right)", "top1_agreement_correct", ".3f"),
    ("agree (Φ(x) wrong)", "top1_agreement_incorrect", ".3f"),
    ("logit cos", "logit_cosine", ".3f"),
    ("cos (right)", "logit_cosine_correct", ".3f"),
    ("cos (wrong)", "logit_cosine_incorrect", ".3f"),
    ("instance ID", "id_accuracy", ".3f"),
    ("ID pixel", "id_pixel", ".3f"),
    ("ID LPIPS", "id_lpips", ".3f"),
    ("ms / image", "time_per_image_s", "ms"),
    ("peak MB", "peak_memory_mb", ".1f"),
]

CSV_FIELDS = [
    "classifier",
    "classifier_name",
    "robust",
    "inverter",
    "inverter_name",
    "checkpoint",
    "n",
    "psnr",
    "ssim",
    "lpips",
    "accuracy",
    "n_correct",
    "n_incorrect",
    "top1_agreement",
    "top1_agreement_correct",
    "top1_agreement_incorrect",
    "logit_cosine",
    "logit_cosine_correct",
    "logit_cosine_incorrect",
    "id_accuracy",
    "id_space",
    "id_pixel",
    "id_lpips",
    "id_k",
    "id_chance",
    "time_per_image_s",
    "peak_memory_mb",
    "peak_total_mb",
    "memory_method",
    "device",
    "trained_steps",
]

DEFINITIONS = [
    (
        "PSNR",
        "10·log10(1/MSE) per image on [0,1] pixels at the originals' resolution (reconstructions resized "
        "bilinearly, channels matched), averaged over images; identical images are capped at 100 dB.",
    ),
    (
        "SSIM",
        "Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, L=1, no padding, mean of the "
        "SSIM map over positions and channels, averaged over images.",
    ),
    (
        "LPIPS",
        "lpips v0.1 with the ImageNet-trained torchvision backbone, images resized to >= 64 px; reported "
        "only when the backbone file is in the torch hub cache, never with a random backbone.",
    ),
    ("acc Φ(x)", "top-1 accuracy of the classifier on the originals (how many are 'right')."),
    (
        "top-1 agree",
        "fraction of images with argmax Φ(x̂) = argmax Φ(x) (the paper's iterative stability); "
        "then split by whether Φ(x) was right or wrong (blank when that group is empty).",
    ),
    ("logit cos", "cosine between the logit vectors Φ(x̂) and Φ(x), averaged; split the same way."),
    (
        "instance ID",
        "fraction of reconstructions whose own original is the nearest among k images of its class (the original + "
        "k-1 other held-out images; chance 1/k; ties shared), in the --id-space the settings name; ID pixel and ID "
        "LPIPS are the same identification by pixel L2 at the originals' resolution and by LPIPS distance (blank "
        "without the LPIPS backbone), the evaluator tables give it in each evaluator's features.",
    ),
    (
        "evaluator tables",
        "an independent classifier E (--evaluator) scores the reconstructions x̂: its top-1 on the originals x, its "
        "top-1/top-5 on x̂ against x's label, agreement argmax E(x̂) = argmax E(x), the cosine distance 1 - cos of E's "
        "penultimate features of x̂ and x, instance ID among k by that distance, the distance to the nearest held-out "
        "image of x's class, and FID/KID between the sets of x̂ and x in E's features (FID only with n > feature "
        "dimension). Details: docs/bench.md.",
    ),
    ("ms / image", "wall time of the inversion calls (batched) divided by the number of images."),
    (
        "peak MB",
        "peak memory the inversion calls allocated above what was in use before: CUDA max_memory_allocated on "
        "a GPU; on CPU malloc'ed bytes in use (glibc mallinfo2, sampled every 1 ms). results.csv names the method.",
    ),
]


# Marks the page once every embedded image has decoded (a headless browser test reads it from the DOM).
DECODE_CHECK = (
    "<script>addEventListener('load',()=>{const i=[...document.images];document.body.setAttribute("
    "'data-images-decoded',i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length)})</script>"
)


def fmt(value: Any, spec: str) -> str:
    """A table cell: blank for None/nan, milliseconds for ``ms``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if spec == "s":
        return str(value)
    if spec == "ms":
        return f"{value * 1000:.1f}"
    return format(value, spec)


def shown_inverter(record: dict[str, Any]) -> str:
    """The inverter of a result as tables and figures name it: what its weights are (``inverter_label``:
    ``biggan_proj.paper @ RUN/step_N (32x32, ch 16)``, ``invkit.core.naming``), or the name it was asked for in
    results written before invkit recorded that."""
    return str(record.get("inverter_label") or record.get("inverter", "?"))


def table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The comparison table as headers and rows of strings (report.md and report.html show this); the
    inverter column names what each inverter's weights are (``shown_inverter``), an ``n`` column the images, and each
    number with an interval is shown with it (``report_uncertainty.with_interval``: ``12.73 [12.41, 13.05]``)."""
    k = doc["results"][0].get("id_k") if doc.get("results") else None
    space = doc["results"][0].get("id_space") or "pixel" if doc.get("results") else "pixel"  # --id-space: headline
    headers = [h if key != "id_accuracy" or k is None else f"instance ID (k={k}, {space})" for h, key, _ in COLUMNS]

    def cell(r: dict[str, Any], key: str, spec: str) -> str:
        if key == "inverter":
            return shown_inverter(r)
        iv = uncertainty.interval_of(r, key) if spec != "s" else None
        return uncertainty.with_interval(r.get(key), iv, spec, r.get("n")) if iv else fmt(r.get(key), spec)

    at = [key for _, key, _ in COLUMNS].index("inverter") + 1  # an n column after the inverter
    rows = []
    for r in doc.get("results", []):
        row = [cell(r, key, spec) for _, key, spec in COLUMNS]
        rows.append(row[:at] + [fmt(r.get("n"), "s")] + row[at:])
    return headers[:at] + ["n"] + headers[at:], rows


# (header, key of a record's "evaluators" entry, format) of each evaluator's table (invkit.evaluation.evaluator)
EVALUATOR_COLUMNS: list[tuple[str, str, str]] = [
    ("E acc (x)", "orig_top1", ".3f"),
    ("E top-1 (x̂)", "top1", ".3f"),
    ("E top-5 (x̂)", "top5", ".3f"),
    ("E agree", "agreement", ".3f"),
    ("feature cos dist", "feature_cosine", ".3f"),
    ("E instance ID", "id_accuracy", ".3f"),
    ("KNN dist", "knn_distance", ".3f"),
    ("FID", "fid", ".2f"),
    ("KID", "kid", ".4f"),
    ("KID std", "kid_std", ".4f"),
    ("n", "n", "d"),
]


def evaluator_tables(doc: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """One table per evaluator found in the results: ``(title, headers, rows, notes)``, a row per pair (classifier,
    inverter, then ``EVALUATOR_COLUMNS``); notes say why FID is blank and what Inception FID/KID found."""
    out = []
    labels = dict.fromkeys(label for r in doc.get("results", []) for label in (r.get("evaluators") or {}))
    for label in labels:
        headers = ["classifier", "inverter"] + [h for h, _, _ in EVALUATOR_COLUMNS]
        rows, why_not = [], {}  # reason FID is blank -> the pairs it applies to (one note per reason)
        for r in doc.get("results", []):
            e = (r.get("evaluators") or {}).get(label)
            if e is None:
                continue
            rows.append(
                [str(r.get("classifier")), shown_inverter(r)] + [fmt(e.get(k), f) for _, k, f in EVALUATOR_COLUMNS]
            )
            if e.get("fid") is None and e.get("fid_status"):
                why_not.setdefault(e["fid_status"], []).append(f"{r.get('classifier')} x {r.get('inverter')}")
        notes = [
            f"FID of {'every pair' if len(pairs) == len(rows) else ', '.join(pairs)}: not computed: {reason}"
            for reason, pairs in why_not.items()
        ]
        out.append((f"Evaluator {label}", headers, rows, notes))
    inception = [(r, r["inception"]) for r in doc.get("results", []) if isinstance(r.get("inception"), dict)]
    if inception:
        headers = ["classifier", "inverter", "FID", "KID", "KID std", "n"]
        rows = [
            [str(r.get("classifier")), shown_inverter(r)] + [fmt(i.get(k), f) for k, f in EVAL_INCEPTION]
            for r, i in inception
            if i.get("kid") is not None
        ]
        note = [f"inception FID: {inception[-1][1].get('status')}"]
        out.append(("Inception FID and KID", headers if rows else [], rows, note))  # no weights: the note alone
    return out


EVAL_INCEPTION = [("fid", ".2f"), ("kid", ".4f"), ("kid_std", ".4f"), ("n", "d")]


def settings_lines(doc: dict[str, Any]) -> list[str]:
    s, env = doc["settings"], doc["environment"]
    labels = s.get("classifier_labels", {})
    lines = [
        f"data: {s['data']} (test split), n = {s['n']} images (equal share per class), seed {s['seed']}",
        f"instance identification: k = {s['id_k']} (chance {1 / s['id_k']:.3f}), headline by {_id_space(s)}",
        "classifiers: " + ", ".join(f"{labels[c]} ({c})" if labels.get(c, c) != c else c for c in s["classifiers"]),
        f"inverters: {', '.join(s['inverters'])}",
        f"LPIPS: {doc['lpips']}",
        f"machine: {env['platform']}, {env.get('cpu', 'CPU')} x {env['cpu_count']} ({env['torch_threads']} torch "
        f"threads, {env.get('cpu_capability', '?')}{', native bf16' if env.get('cpu_bf16') else ''}), device "
        f"{env['device']}{' (' + env['gpu'] + ')' if 'gpu' in env else ''}; torch {env['torch']}; invkit "
        f"{doc['invkit_version']}; {doc['created']}",
    ]
    if s.get("inverter_options"):
        opts = "; ".join(
            f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in s["inverter_options"].items()
        )
        lines.append(f"inverter settings: {opts}")
    if s.get("checkpoints"):
        lines.append(f"checkpoints: {', '.join(s['checkpoints'])}")
    if s.get("train_steps"):
        lines.append(f"learned inverters without a checkpoint trained for {s['train_steps']} steps")
    lines += [f"WARNING: {line}" for line in resolution_warnings(doc.get("results", []))]  # one size per classifier?
    return lines


# ----------------------------------------------------------------------------------------------------- grids
def _load(path: Path, key: str = "images") -> torch.Tensor | None:
    """The ``key`` tensor of a file under ``images/`` for a figure; None when it is absent, or damaged (named in a
    warning: a bench rerun computes that pair again, see ``Bench._images_reusable``)."""
    import warnings

    from ..errors import CheckpointError
    from ..io.weights import load_safetensors

    if not path.exists():
        return None
    try:
        images = load_safetensors(path).get(key)
    except CheckpointError as exc:
        warnings.warn(f"{str(exc).rstrip('.')}; its row is left out of the report's figures.", stacklevel=2)
        return None
    if key != "images" and images is None:
        return None  # written before invkit kept it: the caller falls back
    if images is None or images.dim() != 4 or not images.is_floating_point():
        warnings.warn(
            f"'{path}' holds no float (N, C, H, W) '{key}'; its row is left out of the report's figures.", stacklevel=2
        )
        return None
    return images


# (row label, short name for alt texts, images) of one figure row
GridRow = tuple[str, str, torch.Tensor]


def grid_rows(out: Path, doc: dict[str, Any]) -> dict[str, list[GridRow]]:
    """Per classifier, the rows of its figure: the originals as the metrics saw them, then each inverter's
    reconstructions of them, every row labelled.

    The metrics score a reconstruction against the originals at its inverter's resolution
    (``Inverter.target_images``), which the bench saves beside the reconstructions (``targets``); an ``original HxW``
    row stands above the inverters scored against it, and another where the next inverter's originals differ (a
    28x28 ``optim`` after a 32x32 ``biggan_proj``). Images stay at their own resolution (no resampling for the
    figure). Results saved before invkit kept ``targets`` show the data's originals resized to the inverter's size.
    """
    originals = _load(out / "images" / "originals.safetensors")
    if originals is None:
        return {}
    by_clf: dict[str, list[GridRow]] = {}
    shown: dict[str, torch.Tensor] = {}  # classifier -> the originals row it shows last
    for r in doc.get("results", []):
        path = out / "images" / f"{r['slug']}.safetensors"
        recon = _load(path)
        if recon is None:
            continue
        targets = _load(path, "targets")
        if targets is None:
            targets = _match_size(originals, recon.shape[-1])
        n = min(len(recon), len(targets))
        targets, recon = targets[:n], recon[:n]
        rows = by_clf.setdefault(r["classifier"], [])
        last = shown.get(r["classifier"])
        if last is None or last.shape != targets.shape or not torch.equal(last, targets):
            rows.append((f"original {targets.shape[-2]}x{targets.shape[-1]}", "original", targets))
            shown[r["classifier"]] = targets
        rows.append((shown_inverter(r), str(r.get("inverter", "?")), recon))
    return by_clf


def _match_size(images: torch.Tensor, size: int) -> torch.Tensor:
    from ..data.images import resize

    return resize(images.float(), size) if images.shape[-1] != size else images


def _cell(rows: list[GridRow]) -> int:
    """The side of one image's cell in a figure: the largest image side, enlarged by a whole factor to ~96 px."""
    side = max(max(images.shape[-2:]) for _, _, images in rows)
    return side * max(1, 96 // side)


def _names() -> dict[str, tuple[str, str]]:
    """metric key -> (header, format) of the table's metrics, for the comparisons (report_uncertainty)."""
    return {key: (header, spec) for header, key, spec in COLUMNS if spec not in ("s", "ms")}


# --------------------------------------------------------------------------------------------------- writers
def write_reports(out: str | os.PathLike, doc: dict[str, Any]) -> dict[str, Path]:
    """Write results.csv, report.md, report.html and the grid PNGs under ``out``; return their paths."""
    out = Path(out)
    paths = {"csv": write_csv(out / "results.csv", doc)}
    grids = grid_rows(out, doc)
    pngs: dict[str, Path] = {}
    for clf, rows in grids.items():
        slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in clf)
        labelled = [(label, images) for label, _, images in rows]
        pngs[clf] = save_labelled_rows(labelled, out / "images" / f"grid_{slug}.png", cell=_cell(rows))
    paths["md"] = write_markdown(out / "report.md", doc, pngs, out)
    paths["html"] = write_html(out / "report.html", doc, grids, out)
    return paths


def write_csv(path: Path, doc: dict[str, Any]) -> Path:
    buf = io.StringIO()
    fields = CSV_FIELDS + uncertainty.csv_fields(doc)  # + METRIC_low, METRIC_high, METRIC_n (report_uncertainty)
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in doc.get("results", []):
        r = dict(r) | uncertainty.csv_values(r)
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    atomic_write_text(path, buf.getvalue())
    return path


def write_markdown(path: Path, doc: dict[str, Any], pngs: dict[str, Path], out: Path) -> Path:
    headers, rows = table(doc)
    lines = ["# invkit bench report", ""]
    lines += [f"- {line}" for line in settings_lines(doc)] + [""]

    def cells(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    lines += [cells(headers), "|" + "|".join("---" for _ in headers) + "|"]
    lines += [cells(r) for r in rows]
    for title, e_headers, e_rows, notes in evaluator_tables(doc):  # invkit.evaluation.evaluator; docs/bench.md
        lines += ["", f"## {title}", ""]
        if e_headers:
            lines += [cells(e_headers), "|" + "|".join("---" for _ in e_headers) + "|"] + [cells(r) for r in e_rows]
            lines += [""] if notes else []
        lines += [f"- {note}" for note in notes]
    lines += [
        "",
        "## Reconstructions",
        "",
        "Each figure, rows labelled: the originals at the resolution the metrics compared them at (the inverter's), "
        "then each inverter's reconstructions from their logits.",
        "",
    ]
    for clf, png in pngs.items():
        lines += [f"### {clf}", "", f"![{clf}]({png.relative_to(out).as_posix()})", ""]
    lines += uncertainty.comparisons_markdown(doc, _names())  # paired differences: better / no clear difference / worse
    lines += ["## Metrics", ""] + [f"- **{name}**: {text}" for name, text in DEFINITIONS] + [""]
    atomic_write_text(path, "\n".join(lines))
    return path


def write_html(path: Path, doc: dict[str, Any], grids: dict[str, list[GridRow]], out: Path) -> Path:
    headers, rows = table(doc)
    table_html = html_table([dict(zip(headers, r)) for r in rows], headers).replace(
        "<table>", "<table id='results'>", 1
    )
    settings = "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in settings_lines(doc)) + "</ul>"
    style = (
        "<style>#results td:nth-child(2),#results th:nth-child(2){text-align:left} .grid td{text-align:left}"
        " .grid-scroll{overflow-x:auto} .grid img{max-width:none}</style>"
    )
    sections = [("Settings", settings), ("Comparison", style + table_html)]
    for title, e_headers, e_rows, notes in evaluator_tables(doc):  # invkit.evaluation.evaluator; docs/bench.md
        notes_html = "".join(f"<p class='caption'>{html.escape(note)}</p>" for note in notes)
        table_part = html_table([dict(zip(e_headers, r)) for r in e_rows], e_headers) if e_headers else ""
        sections.append((title, table_part + notes_html))
    for clf, rows_ in grids.items():
        cell = _cell(rows_)  # one cell size for every row: the columns line up
        cells = []
        for i, (label, short, images) in enumerate(rows_):
            strip = out / "images" / f".strip{i}.png"
            save_labelled_rows([("", images)], strip, cell=cell, per_line=max(len(images), 1))
            cells.append(
                f"<tr><th>{html.escape(label)}</th><td class='grid-row'>"
                f"{img_tag(strip, alt=f'{clf} {short}')}</td></tr>"
            )
            strip.unlink()
        body = (
            f"<p class='caption'>The originals at the resolution the metrics compared them at (a row per resolution), "
            f"then each inverter's reconstruction from the logits of {html.escape(clf)}.</p>"
            f"<div class='grid-scroll'><table class='grid'>{''.join(cells)}</table></div>"
        )
        sections.append((f"Reconstructions: {clf}", body))
    defs = "<dl>" + "".join(f"<dt><b>{html.escape(n)}</b></dt><dd>{html.escape(t)}</dd>" for n, t in DEFINITIONS)
    if doc.get("comparisons"):  # paired differences: better / no clear difference / worse (report_uncertainty)
        sections.append(("Comparisons", uncertainty.comparisons_html(doc, _names())))
    sections.append(("Metrics", defs + "</dl>" + DECODE_CHECK))
    return write_html_page(path, "invkit bench report", sections)
