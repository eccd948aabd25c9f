"""What the throughput benchmarks that time interleaved modes share: a mean with its 95% t-interval, and the CPU's
model name for the results file. Imported as a sibling module (the scripts run as `python benchmarks/throughput/X.py`).
"""

from __future__ import annotations

import math
import platform
import statistics
import subprocess

# two-sided 95% t quantiles by sample size n (df = n - 1); an n between two keys takes the smaller key's (wider) value
T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26, 11: 2.23, 16: 2.13, 21: 2.09}


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN for a single value)."""
    n = len(values)
    if n < 2:
        return values[0], float("nan")
    t = T95.get(n, T95[max(k for k in T95 if k <= n)])
    return statistics.fmean(values), t * statistics.stdev(values) / math.sqrt(n)


def cpu_model() -> str:
    """lscpu's model name, or platform.processor() where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"
