"""Peak memory of the bench's bootstrap intervals at n = 10,000 (issue 21, "Speed and scale").

``invkit.evaluation.stats`` gives every per-image bench metric a 95% BCa bootstrap interval (2000 resamples; scipy's
``bootstrap`` with its jackknife for the acceleration). Until 2026-12-06 the metrics of one length were resampled
together in one vectorised call (``stacked``): BCa's jackknife then holds ``batch x (n - 1)`` values for every metric
at once. Since, ``_bootstrap_many`` calls ``_bootstrap_rows`` one metric at a time (``per-metric``); the intervals are
the same (the rows share the resampled indices). Each mode runs in a subprocess of its own on 25 metrics of 10,000
seeded uniform values, and reports the growth of its peak RSS (``ru_maxrss``) over the call and its wall time.

usage: OMP_NUM_THREADS=1 python benchmarks/throughput/bootstrap_memory.py [--metrics 25] [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def child(mode: str, metrics: int, n: int) -> dict:
    from invkit.evaluation import stats

    rng = np.random.default_rng(0)
    rows = rng.random((metrics, n))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if mode == "stacked":
        low, high = stats._bootstrap_rows(rows, stats.CONFIDENCE, stats.RESAMPLES, 0)
    else:
        found = stats.intervals({f"m{i}": row for i, row in enumerate(rows)}, seed=0)
        low = np.array([found[f"m{i}"].low for i in range(metrics)])
        high = np.array([found[f"m{i}"].high for i in range(metrics)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "growth_mib": peak - before, "seconds": time.perf_counter() - t0,
            "low": low.tolist(), "high": high.tolist()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=25)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.metrics, args.n)))
        return
    runs = {}
    for mode in ("stacked", "per-metric"):
        cmd = [sys.executable, __file__, "--child", mode, "--metrics", str(args.metrics), "--n", str(args.n)]
        runs[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"{mode}: peak RSS +{runs[mode]['growth_mib']:.0f} MiB, {runs[mode]['seconds']:.0f} s", flush=True)
    a, b = runs["stacked"], runs["per-metric"]
    gap = max(abs(x - y) for x, y in zip(a["low"] + a["high"], b["low"] + b["high"]))
    print(f"largest difference between the two modes' interval bounds: {gap:.1e}")


if __name__ == "__main__":
    main()
