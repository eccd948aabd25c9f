"""The paper's orderings, metric by metric, from a bench's paired comparisons (issue 21, point 7).

The paper's human study (Teterwak et al. 2021, Table 1) preferred its reconstructions (biggan_proj) over Dosovitskiy
& Brox's 87.5% to 12.5%, and those from a robust classifier over a standard one's 76.5% to 23.5%. For each such
ordering this script reads the paired comparison `invkit bench` recorded in results.json (difference of means over
the same images, 95% paired bootstrap interval) and says, per metric, whether it supports the ordering (the
interval lies on the paper's side of 0), contradicts it (on the other side) or cannot tell at this n (it holds 0).

usage: python orderings.py BENCH_DIR [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (title, preferred pair, other pair): pairs as (classifier label, inverter) in results.json
ORDERINGS = [
    (
        "biggan_proj over dosovitskiy_brox, robust classifier (the paper: 87.5% vs 12.5% of people)",
        ("classifier_robust", "biggan_proj"),
        ("classifier_robust", "dosovitskiy_brox"),
    ),
    (
        "biggan_proj over dosovitskiy_brox, standard classifier",
        ("classifier_standard", "biggan_proj"),
        ("classifier_standard", "dosovitskiy_brox"),
    ),
    (
        "robust over standard classifier, biggan_proj (the paper: 76.5% vs 23.5% of people)",
        ("classifier_robust", "biggan_proj"),
        ("classifier_standard", "biggan_proj"),
    ),
]
# properties of the originals, not of the reconstructions: the classifier's accuracy and the evaluator's on them
SKIP = {"accuracy"}
SKIP_SUFFIX = ":orig_top1"
VERDICT = {"better": "supports", "worse": "contradicts", "no clear difference": "cannot tell"}
FLIP = {"better": "worse", "worse": "better", "no clear difference": "no clear difference", None: None}


def find(doc: dict, preferred: tuple[str, str], other: tuple[str, str]) -> tuple[dict, bool] | None:
    """The comparison of the two pairs, and whether it is stored as (other, preferred)."""
    for c in doc.get("comparisons", []):
        a, b = (c["a"]["classifier"], c["a"]["inverter"]), (c["b"]["classifier"], c["b"]["inverter"])
        if (a, b) == (preferred, other):
            return c, False
        if (a, b) == (other, preferred):
            return c, True
    return None


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def table(doc: dict, title: str, preferred: tuple[str, str], other: tuple[str, str]) -> list[str]:
    found = find(doc, preferred, other)
    lines = [f"### {title}", ""]
    if found is None:
        return [*lines, "Not in this bench (one of the two pairs is missing).", ""]
    comp, flipped = found
    lines += [
        f"Difference = {preferred[1]} on {preferred[0]} minus {other[1]} on {other[0]}, over the same images.",
        "",
        "| metric | better is | difference [95% CI] | n | the ordering |",
        "|---|---|---|---|---|",
    ]
    tally = {"supports": [], "contradicts": [], "cannot tell": []}
    for name, m in comp["metrics"].items():
        if name in SKIP or name.endswith(SKIP_SUFFIX) or (name == "id_accuracy" and "id_pixel" in comp["metrics"]):
            continue  # id_accuracy repeats the headline space (pixel here)
        diff, low, high = m["difference"], m["low"], m["high"]
        if flipped:
            diff, low, high = -diff, (None if high is None else -high), (None if low is None else -low)
        verdict = FLIP[m["verdict"]] if flipped else m["verdict"]
        word = VERDICT.get(verdict, "cannot tell")
        tally[word].append(name)
        lines.append(f"| {name} | {m['better']} | {fmt(diff)} [{fmt(low)}, {fmt(high)}] | {m['n']} | **{word}** |")
    lines += [""] + [f"- {k}: {', '.join(v) if v else 'none'}" for k, v in tally.items()] + [""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    doc = json.loads((args.bench / "results.json").read_text())
    lines = []
    for title, preferred, other in ORDERINGS:
        lines += table(doc, title, preferred, other)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
