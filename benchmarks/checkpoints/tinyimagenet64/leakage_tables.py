"""The issue-25 results page's tables, from the bench folders `make_tinyimagenet.sh leakage` writes (issue 25).

Reads, under RUNS: `leakage-{standard,robust}/<channel>/` (dosovitskiy_brox per observation channel: `invkit
leakage`), `layer-{standard,robust}/` (dosovitskiy_brox on the penultimate layer: `invkit bench`) and
`leakage-biggan-robust/<channel>/` (biggan_proj, robust classifier). Every folder is a bench on the same 1000 val
images (seed 0; checked), so every difference below is paired over the same images: the mean difference with its 95%
BCa bootstrap interval over images (`invkit.evaluation.per_image.compare_pair`) and its verdict. Values are means with
their 95% interval from the bench (Wilson for proportions, bootstrap otherwise). The per-pixel MSE column is Yang et
al.'s measure (pixels in [0, 1], the mean over images of each image's mean squared error, from its PSNR).

usage: python leakage_tables.py RUNS [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_tables import with_interval  # the page's other tables' cell format (this folder)

from invkit.evaluation import stats
from invkit.evaluation.leakage import metric_value
from invkit.evaluation.per_image import compare_pair, load_per_image, per_image_path

E = "eval:evaluator"
COLUMNS = [  # (key in results/per-image, heading, digits)
    ("id_accuracy", "instance ID (pixel, k=10)", 3),
    ("top1_agreement", "top-1 agree", 3),
    (f"{E}:top1", "E top-1 (x̂)", 3),
    (f"{E}:id_accuracy", "E instance ID", 3),
    ("psnr", "PSNR dB", 2),
    ("mse", "MSE (Yang et al.)", 4),
]
COMPARED = ["id_accuracy", f"{E}:id_accuracy", f"{E}:top1", "top1_agreement", "mse"]
CHANNELS = ["logits", "probs", "topk:5", "topk:1", "label"]


class Bench:
    """One bench folder holding one pair: its record and per-image values (with ``mse`` added from ``psnr``)."""

    def __init__(self, folder: Path):
        doc = json.loads((folder / "results.json").read_text())
        (self.record,) = doc["results"]
        self.index = torch.tensor(doc["settings"]["image_indices"], dtype=torch.int64)
        self.values = load_per_image(per_image_path(folder, self.record["slug"]), self.index)
        self.values["mse"] = 10 ** (-self.values["psnr"].double() / 10)  # PSNR = -10 log10(MSE), pixels in [0, 1]
        self.folder = folder

    def cell(self, key: str, digits: int) -> str:
        if key == "mse":  # not a bench metric: its interval from the per-image values, as bench makes them
            iv = stats.mean_interval(self.values["mse"].numpy(), seed=0)
            return with_interval({"intervals": {"mse": iv.as_dict()}}, "mse", digits, iv.estimate)
        return with_interval(self.record, key, digits, metric_value(self.record, key))

    def fid(self) -> str:
        fid = self.record["evaluators"]["evaluator"].get("fid")
        return "–" if fid is None else f"{fid:.1f}"


def difference(a: Bench, b: Bench, keys: list[str]) -> dict[str, dict]:
    if not torch.equal(a.index, b.index):
        raise SystemExit(f"{a.folder} and {b.folder} bench other images; rerun them with the same -n and --seed.")
    return compare_pair({k: a.values[k] for k in keys}, {k: b.values[k] for k in keys}, seed=0)


def fmt_diff(d: dict, digits: int = 3) -> str:
    return f"{d['difference']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}] {d['verdict']}"


def observation_table(rows: list[tuple[str, Bench]]) -> list[str]:
    out = ["| observed | " + " | ".join(h for _, h, _ in COLUMNS) + " | E FID |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name, bench in rows:
        out.append(f"| {name} | " + " | ".join(bench.cell(k, d) for k, h, d in COLUMNS) + f" | {bench.fid()} |")
    return out


def against_table(rows: list[tuple[str, Bench, Bench]], what: str) -> list[str]:
    """One row per (name, bench, reference): the paired differences bench - reference of the COMPARED metrics."""
    heads = {k: h for k, h, _ in COLUMNS}
    out = [f"| {what} | " + " | ".join(heads[k] for k in COMPARED) + " |", "|---" * (len(COMPARED) + 1) + "|"]
    for name, bench, reference in rows:
        d = difference(bench, reference, COMPARED)
        out.append(f"| {name} | " + " | ".join(fmt_diff(d[k], 4 if k == "mse" else 3) for k in COMPARED) + " |")
    return out


def slug(spec: str) -> str:
    return spec.replace(":", "_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines: list[str] = []
    by_label: dict[str, dict[str, Bench]] = {}
    for label in ("standard", "robust"):
        rows = {ch: Bench(args.runs / f"leakage-{label}" / slug(ch)) for ch in CHANNELS}
        rows["penultimate layer"] = Bench(args.runs / f"layer-{label}")
        by_label[label] = rows
        lines += [f"### dosovitskiy_brox, {label} classifier", "", *observation_table(list(rows.items())), ""]
        lines += ["Paired difference against `logits` (same 1000 images):", ""]
        lines += [*against_table([(k, v, rows["logits"]) for k, v in rows.items() if k != "logits"], "observed"), ""]
    lines += ["### Robust minus standard classifier, dosovitskiy_brox, per observation (same 1000 images)", ""]
    robust, standard = by_label["robust"], by_label["standard"]
    lines += [*against_table([(k, robust[k], standard[k]) for k in robust], "robust observed"), ""]
    gan = args.runs / "leakage-biggan-robust"
    if gan.is_dir():
        rows = {ch: Bench(gan / slug(ch)) for ch in ("logits", "topk:5", "label")}
        lines += ["### biggan_proj, robust classifier (all three trained on from the logits run's step 12000)", ""]
        lines += [*observation_table(list(rows.items())), ""]
        lines += ["Paired difference against `logits`:", ""]
        lines += [*against_table([(k, v, rows["logits"]) for k, v in rows.items() if k != "logits"], "observed"), ""]
        lines += ["biggan_proj minus dosovitskiy_brox, robust classifier, same observation:", ""]
        lines += [*against_table([(k, v, robust[k]) for k, v in rows.items()], "observed"), ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
