"""biggan_proj's bench numbers against its training steps, from the run folders' saved checkpoints (issue 10).

Usage:

    python benchmarks/checkpoints/tinyimagenet64/agreement_by_step.py RUNS TIN OUT [STEP ...]
    TREND_PREFIX=biggan_cg python ...   # the run folders RUNS/biggan_cg_{standard,robust} instead (issue 22)

RUNS holds the run folders of make_tinyimagenet.sh (``classifier_{standard,robust}``, ``biggan_{standard,robust}``
trained with ``--keep-checkpoints 0`` so every checkpoint is kept), TIN the Tiny ImageNet folder, OUT where the bench
folders and the summary go. For each classifier and each STEP (default: every 1000th saved step) it runs
``invkit bench --inverter biggan_proj`` on the same 1000 val images as the committed bench (seed 0), with that
step's float32 checkpoint, then writes ``OUT/agreement_by_step.{json,md,png}``. A finished bench folder is reused,
so an interrupted run continues. Rows of an earlier ``OUT/agreement_by_step.json`` (the committed one, copied there)
are kept for steps whose checkpoints RUNS no longer has, as on a fresh machine that resumed the run from
``resume/``; a step present in both must have the same weights digest, or the script stops (RUNS then holds another
run than the one those rows measured). This reports how the numbers move with training; no checkpoint is picked by it
(the committed folders are always the last step of each run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from invkit.io import atomic_write_text, save_curves, weights_digest

KINDS = ("standard", "robust")
PREFIX = os.environ.get("TREND_PREFIX", "biggan")  # run folders RUNS/<PREFIX>_<kind>
COLUMNS = (
    ("PSNR dB", "psnr", ".2f"),
    ("SSIM", "ssim", ".3f"),
    ("top-1 agree", "top1_agreement", ".3f"),
    ("logit cos", "logit_cosine", ".3f"),
    ("instance ID (k=10)", "id_accuracy", ".3f"),
)


def saved_steps(run: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("step_*") if p.is_dir())


def bench(runs: Path, tin: str, out: Path, kind: str, step: int) -> dict:
    folder = out / f"{kind}_step_{step:06d}"
    ckpt = runs / f"{PREFIX}_{kind}" / "checkpoints" / f"step_{step:06d}"
    cmd = ["invkit", "bench", "--classifier", str(runs / f"classifier_{kind}"), "--inverter", "biggan_proj",
           "--checkpoint", str(ckpt), "--data", tin, "-n", "1000", "--seed", "0", "--device", "cpu",
           "--out", str(folder)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    (record,) = json.loads((folder / "results.json").read_text())["results"]
    return record


def earlier_rows(runs: Path, out: Path, kind: str, have: list[int]) -> dict[int, dict]:
    """Rows of OUT's earlier summary for `kind`, checked against the run's checkpoints that both have."""
    summary = out / "agreement_by_step.json"
    if not summary.is_file():
        return {}
    rows = {int(s): r for s, r in json.loads(summary.read_text()).get(kind, {}).items()}
    for step in sorted(set(rows) & set(have)):
        digest = weights_digest(runs / f"{PREFIX}_{kind}" / "checkpoints" / f"step_{step:06d}")
        if not rows[step]["key"].endswith(f"@{digest}"):
            sys.exit(
                f"{summary}: its {kind} row for step {step} was measured on other weights than "
                f"{runs}/{PREFIX}_{kind} has at that step; move that file away to start the trend afresh."
            )
    return rows


def main(runs: Path, tin: str, out: Path, steps: list[int]) -> None:
    table: dict[str, dict[int, dict]] = {}
    for kind in KINDS:
        have = saved_steps(runs / f"{PREFIX}_{kind}")
        wanted = [s for s in have if (s in steps if steps else s % 1000 == 0 or s == have[-1])]
        rows = earlier_rows(runs, out, kind, have)
        rows.update({s: bench(runs, tin, out, kind, s) for s in wanted})
        table[kind] = dict(sorted(rows.items()))
        print(kind, {s: round(r["top1_agreement"], 3) for s, r in table[kind].items()}, flush=True)
    atomic_write_text(out / "agreement_by_step.json", json.dumps(table, indent=1, sort_keys=True))
    lines = ["| classifier | G step | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]  # fmt: skip
    for kind, rows in table.items():
        for step, r in rows.items():
            lines.append(f"| {kind} | {step} | " + " | ".join(format(r[k], f) for _, k, f in COLUMNS) + " |")
    atomic_write_text(out / "agreement_by_step.md", "\n".join(lines) + "\n")
    # one x axis for the figure: the steps both runs have (the longer run's extra steps stay in the table)
    common = sorted(set(table["standard"]) & set(table["robust"]))
    curves = {f"{kind} {name}": [table[kind][s][key] for s in common] for kind in KINDS
              for name, key in (("top-1 agreement", "top1_agreement"), ("instance ID", "id_accuracy"))}  # fmt: skip
    save_curves(out / "agreement_by_step.png", common, curves, xlabel="G steps (batch 64)", ylabel="fraction",
                title="biggan_proj on 1000 Tiny ImageNet val images")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__.split("Usage:")[1].split("RUNS holds")[0].strip())
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), [int(s) for s in sys.argv[4:]])
