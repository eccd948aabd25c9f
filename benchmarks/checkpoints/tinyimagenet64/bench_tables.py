"""The results page's two bench tables, with 95% intervals, from a bench folder's results.json (issue 21).

Table 1: the bench metrics (PSNR, SSIM, top-1 agreement, logit cosine, pixel instance identification, ms per image);
table 2: the evaluator's metrics (top-1/top-5 of the reconstructions, agreement, feature cosine distance, instance
identification and KNN distance in its feature space, FID, KID +- its subset std). Each value is the mean over the
bench's n images with its interval from results.json `intervals` (Wilson for proportions, BCa bootstrap otherwise);
FID and KID carry none (docs/bench.md).

usage: python bench_tables.py BENCH_DIR [--evaluator NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCH = [("psnr", "PSNR dB", 2), ("ssim", "SSIM", 3), ("top1_agreement", "top-1 agree", 3),
         ("logit_cosine", "logit cos", 3), ("id_pixel", "instance ID (pixel)", 3)]  # fmt: skip
EVAL = [("top1", "E top-1 (x̂)"), ("top5", "E top-5 (x̂)"), ("agreement", "E agree"), ("feature_cosine",
        "feature cos dist"), ("id_accuracy", "E instance ID"), ("knn_distance", "KNN dist")]  # fmt: skip


def with_interval(record: dict, key: str, digits: int = 3, value: float | None = None) -> str:
    value = record.get(key) if value is None else value
    if value is None:
        return "–"
    ci = record.get("intervals", {}).get(key)
    text = f"{value:.{digits}f}"
    return f"{text} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]" if ci else text


def label(record: dict) -> tuple[str, str]:
    return record["classifier"].removeprefix("classifier_"), record["inverter"]


def tables(doc: dict, evaluator: str) -> list[str]:
    rows = ["| classifier | inverter | " + " | ".join(t for _, t, _ in BENCH) + " | ms / image | n |",
            "|---" * (len(BENCH) + 4) + "|"]  # fmt: skip
    for r in doc["results"]:
        cells = [with_interval(r, k, d) for k, _, d in BENCH]
        ms = 1000 * r["time_per_image_s"] if r.get("time_per_image_s") is not None else float("nan")
        rows.append(f"| {' | '.join(label(r))} | {' | '.join(cells)} | {ms:.1f} | {r['n']} |")
    rows += ["", "| classifier | inverter | " + " | ".join(t for _, t in EVAL) + " | FID | KID ± std |",
             "|---" * (len(EVAL) + 4) + "|"]  # fmt: skip
    for r in doc["results"]:
        e = r.get("evaluators", {}).get(evaluator)
        if e is None:
            rows.append(f"| {' | '.join(label(r))} | " + " | ".join("–" for _ in EVAL) + " | – | – |")
            continue
        cells = [with_interval(r, f"eval:{evaluator}:{k}", 3, e.get(k)) for k, _ in EVAL]
        fid = f"{e['fid']:.1f}" if e.get("fid") is not None else "–"
        kid = f"{e['kid']:.3f} ± {e['kid_std']:.3f}" if e.get("kid") is not None else "–"
        rows.append(f"| {' | '.join(label(r))} | {' | '.join(cells)} | {fid} | {kid} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("--evaluator", default="evaluator")
    args = parser.parse_args()
    doc = json.loads((args.bench / "results.json").read_text())
    print("\n".join(tables(doc, args.evaluator)))


if __name__ == "__main__":
    main()
