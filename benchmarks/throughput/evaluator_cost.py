"""What evaluators cost a bench run (issue 21, "Speed and scale"): the same bench with and without an evaluator,
interleaved in one process so that both modes see the same machine load.

The bench is the demo's two MNIST classifiers x the two learned inverters (their shipped checkpoints) on the
1000 embedded test digits (n = 1000, so that FID is defined in the evaluator's 128-dimensional feature space), with
and without ``demo:evaluator``; optim is left out (it costs the same in both modes and would only add noise).
Each round runs both modes in an alternating order; the report gives each mode's wall time per round, the mean
difference (with evaluator minus without) and its 95% interval (t over rounds), and what the evaluator stage itself
took (FID/KID included) from the timings bench records.

usage: python benchmarks/throughput/evaluator_cost.py [--rounds 5] [--n 1000] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from scipy import stats

import invkit
from invkit import demo
from invkit.evaluation.bench import Bench


def one_run(n: int, with_evaluator: bool) -> float:
    settings = demo.default_settings(n=n, evaluators=[str(demo.folder(demo.EVALUATOR))] if with_evaluator else [])
    settings.inverters = ["biggan_proj", "dosovitskiy_brox"]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        results = list(Bench(settings, out).run())
        seconds = time.perf_counter() - t0
    assert len(results) == 4
    if with_evaluator:
        assert all(r.record["evaluators"]["evaluator"]["fid"] is not None for r in results), "FID needs n >= 129"
    return seconds


def machine() -> str:
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines() if "Model name" in line), "?")
    return (
        f"{name}, {torch.get_num_threads()} torch threads, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"torch {torch.__version__}, Python {platform.python_version()}, invkit {invkit.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    one_run(200, True)  # warm-up: imports (torchmetrics, scipy) and first-call costs, not measured
    rows = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {mode: one_run(args.n, mode) for mode in order}
        rows.append((times[False], times[True]))
        print(f"round {r + 1}: without {times[False]:.1f} s, with {times[True]:.1f} s", flush=True)
    diffs = [b - a for a, b in rows]
    mean = statistics.mean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0
    lines = [
        "# What an evaluator costs `invkit bench` (issue 21)",
        "",
        "## Command",
        "",
        "```bash",
        f"python benchmarks/throughput/evaluator_cost.py --rounds {args.rounds} --n {args.n}",
        "```",
        "",
        f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Bench: the demo's 2 MNIST classifiers x biggan_proj and dosovitskiy_brox (shipped checkpoints), n = {args.n}"
        " test digits, id_k = 10; with and without `demo:evaluator` (vgg11s, 128-d features: its metrics, FID, KID).",
        "Both modes alternate within each round, in one process, after one unmeasured warm-up run.",
        "",
        "| round | without evaluator (s) | with evaluator (s) | difference (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i + 1} | {a:.1f} | {b:.1f} | {b - a:+.1f} |" for i, (a, b) in enumerate(rows)]
    lines += [
        "",
        f"Mean difference over {len(diffs)} rounds: **{mean:+.1f} s** (95% t interval {mean - half:+.1f} to "
        f"{mean + half:+.1f} s) on {statistics.mean(a for a, _ in rows):.1f} s without the evaluator, for 4 pairs x "
        f"{args.n} images: {1000 * mean / (4 * args.n):.1f} ms per reconstruction, FID and KID included.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
