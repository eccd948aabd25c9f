"""Peak memory of a bench by block size and n (issue 21, "Speed and scale": "a bench on 10,000 images must not hold
all images at full size in memory").

One pair of the committed Tiny ImageNet models: classifier ``classifier_standard`` x ``dosovitskiy_brox``
(checkpoint ``dbrox_standard``), scored by the independent ``evaluator`` (its features of the originals, the
distractors and the held-out bank included), on the first ``n`` images that bench draws from the val split of
``~/.cache/invkit-data/tinyimagenet64`` (10,000 images of 64x64), id_k 10, batch size 64. Each configuration (n,
block size) runs in a subprocess of its own, and the report gives that process' peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the Python interpreter, torch and the models), the
wall time and the pair's PSNR and evaluator top-1 (the same numbers at every block size: they come from the same
batches). Block ``all`` is a block of at least n images, what a bench did before it ran in blocks.

usage: OMP_NUM_THREADS=1 nice -n 15 python benchmarks/throughput/bench_memory.py \
           [--config 1000:512 --config 10000:all ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "benchmarks" / "checkpoints" / "tinyimagenet64"
DATA = Path.home() / ".cache" / "invkit-data" / "tinyimagenet64"
BATCH = 64
CONFIGS = ["1000:512", "1000:all", "10000:512", "10000:all"]


def child(n: int, block: str) -> dict:
    """One bench in this process; its peak RSS, wall time and numbers."""
    from invkit.evaluation.bench import Bench, BenchSettings

    block_size = math.ceil(n / BATCH) * BATCH if block == "all" else int(block)
    settings = BenchSettings(
        classifiers=[str(MODELS / "classifier_standard")],
        inverters=["dosovitskiy_brox"],
        checkpoints=[str(MODELS / "dbrox_standard")],
        evaluators=[str(MODELS / "evaluator")],
        data=str(DATA),
        n=n,
        batch_size=BATCH,
        block_size=block_size,
    )
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        bench = Bench(settings, out)
        (result,) = list(bench.run())
        seconds = time.perf_counter() - t0
        blocks = len(bench.blocks())
    rec = result.record
    return {
        "n": n,
        "block": block,
        "blocks": blocks,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "seconds": seconds,
        "psnr": rec["psnr"],
        "evaluator_top1": rec["evaluators"]["evaluator"]["top1"],
        "id_pixel": rec["id_pixel"],
    }


def machine() -> str:
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines() if "Model name" in line), "?")
    return (
        f"{name}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None, help="N:BLOCK (BLOCK a number or 'all')")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one configuration, in its own process
        n, block = args.child.split(":")
        print(json.dumps(child(int(n), block)))
        return
    rows = []
    for config in args.config or CONFIGS:
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, __file__, "--child", config], capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"{config} failed:\n{run.stderr[-3000:]}")
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
    lines = [
        "| n | block size | blocks | peak RSS (MiB) | wall time (s) | PSNR | evaluator top-1 | id_pixel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['block']} | {r['blocks']} | {r['peak_rss_mib']:.0f} | {r['seconds']:.0f} | "
            f"{r['psnr']:.6f} | {r['evaluator_top1']:.6f} | {r['id_pixel']:.6f} |"
        )
    text = "\n".join([f"machine: {machine()}", "", *lines])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
