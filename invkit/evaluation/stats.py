"""Uncertainty of bench numbers: 95% intervals over images, paired differences, and a verdict on each.

Every bench number is a mean over the same ``n`` held-out images, so its uncertainty is that of a mean over a sample
of images. Two kinds of interval:

* **Wilson** (Wilson 1927, "Probable inference, the law of succession, and statistical inference", JASA 22), for a
  proportion: a per-image value that is 0 or 1 for every image (top-1 agreement, accuracy, instance identification
  without ties). Computed by ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` (the score interval,
  without continuity correction). Unlike the normal ("Wald") interval it stays inside [0, 1] and does not collapse
  to a point at 0/n or n/n.
* **Bootstrap** over images (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 14), for every other
  mean: ``scipy.stats.bootstrap`` with the **BCa** (bias-corrected and accelerated) method, ``RESAMPLES`` resamples
  drawn by a numpy ``Generator`` seeded with ``seed``. BCa rather than the percentile interval because several bench
  metrics are bounded and skewed (SSIM and cosines near 1, PSNR capped at 100 dB), where BCa is second-order
  accurate and the percentile interval is not; for a symmetric metric both agree. If BCa cannot be computed (its
  acceleration is undefined for some degenerate samples) the percentile interval of the same resamples is used.

A **paired difference** compares two per-image arrays measured on the *same* images (two inverters on one classifier,
two classifiers with one inverter): the mean of ``a - b`` with a BCa bootstrap interval over images, which resamples
image pairs, so what the images share cancels out. It is a bootstrap also when both arrays are 0/1: the difference of
two paired proportions is not itself a proportion, and one method for every metric keeps the verdicts comparable.

``verdict`` reads a difference's interval: ``"better"`` or ``"worse"`` when the interval excludes 0 (taking the
metric's ``better_direction`` into account), ``"no clear difference"`` when it contains 0. No correction for multiple
comparisons is applied: among many comparisons at 95%, about 1 in 20 of those with no true difference still shows
one.

Degenerate cases (each documented where it applies):

* NaN values are left out (a per-image value undefined for that image, e.g. agreement on correctly classified
  originals for an image the classifier got wrong); ``n`` counts the finite values. No finite value: ``InputError``.
* ``n < MIN_BOOTSTRAP_N`` (10): Wilson is defined (and wide); a bootstrap interval is not given, ``(nan, nan)``, read
  as "no clear difference": resampling 2 or 5 values gives a handful of distinct means, and percentile and BCa
  intervals of so few images cover far less often than they claim.
* All values equal (n >= 10): every resample has the same mean, so the bootstrap interval is that value, ``[v, v]``
  (it says nothing about images that were not drawn). A paired difference of two identical arrays is ``[0, 0]``:
  no clear difference.

Public names: ``Interval``, ``wilson_interval``, ``bootstrap_interval``, ``mean_interval``, ``intervals``,
``paired_difference``, ``paired_differences``, ``verdict``, ``better_direction``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

CONFIDENCE = 0.95  # the confidence level of every bench and probe interval
# Bootstrap resamples: Efron & Tibshirani (1993) advise at least 1000 for interval endpoints; 2000 keeps their
# Monte Carlo error well below an interval's width, and a 1000-image bench's ~200 intervals within seconds.
RESAMPLES = 2000
MIN_BOOTSTRAP_N = 10  # fewer finite values: no bootstrap interval (nan), see the module docstring
_BATCH = 500  # resamples computed at once: bounds memory to ~ rows x 500 x n values (n = 10,000 images: 40 MB a row)

VERDICTS = ("better", "no clear difference", "worse")


@dataclass(frozen=True)
class Interval:
    """A mean (or a proportion, or a mean difference) with its confidence interval.

    Attributes:
        estimate: the mean of the finite values (a proportion in [0, 1] for Wilson; ``a - b`` for a difference).
        low: lower bound, in the unit of the values (nan where undefined: a bootstrap of fewer than
            ``MIN_BOOTSTRAP_N`` values).
        high: upper bound.
        n: how many values (images) it rests on.
        method: ``"wilson"`` or ``"bootstrap"``.
        confidence: the confidence level, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        """``{"low", "high", "n", "method", "confidence"}`` as results.json stores it (nan bounds as None)."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "low": num(self.low),
            "high": num(self.high),
            "n": self.n,
            "method": self.method,
            "confidence": self.confidence,
        }


def _check_confidence(confidence: float) -> None:
    if not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InputError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}.")


def _as_1d(values: Any, what: str) -> np.ndarray:
    """``values`` (numpy array, torch tensor or sequence) as a 1-D float64 array; InputError when not 1-D."""
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{what}: expected a 1-D array of per-image values, got shape {arr.shape}.")
    return arr


def _finite(values: Any, what: str) -> np.ndarray:
    """The finite entries of ``values`` (``_as_1d``); InputError when there is none."""
    arr = _as_1d(values, what)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise InputError(f"{what}: no finite values (empty, or all NaN); an interval needs at least one image.")
    return arr


def _is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0) | (arr == 1)))


# ---------------------------------------------------------------------------------------------------- Wilson
def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a proportion ``successes / n`` (Wilson 1927; no continuity correction).

    Computed by ``scipy.stats.binomtest(successes, n).proportion_ci(confidence, method="wilson")``.

    Args:
        successes: how many of the ``n`` trials succeeded, ``0 <= successes <= n``.
        n: the number of independent trials (images), at least 1.
        confidence: confidence level in (0, 1).

    Returns:
        An ``Interval`` with ``estimate = successes / n`` and bounds in [0, 1], method ``"wilson"``.

    Raises:
        InputError: ``n < 1``, ``successes`` outside ``[0, n]``, either not a whole number, or ``confidence`` not
            in (0, 1).
    """
    from scipy.stats import binomtest

    _check_confidence(confidence)
    for name, v in (("successes", successes), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise InputError(f"wilson_interval: {name} must be a whole number, got {v!r}.")
    if n < 1 or not 0 <= successes <= n:
        raise InputError(f"wilson_interval: need n >= 1 and 0 <= successes <= n, got successes={successes}, n={n}.")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), int(n), "wilson", float(confidence))


# ------------------------------------------------------------------------------------------------- bootstrap
def _bootstrap_rows(rows: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """BCa bootstrap intervals of the mean of each row of ``rows`` ``(m, n)``, all finite, n >= 2, no row constant.

    The rows share the resampled image indices (one draw of ``resamples x n`` from ``default_rng(seed)``), so a row's
    interval is the same whether it is computed alone or with others. A row whose BCa bounds are not finite gets
    the percentile interval of the same resamples."""
    from scipy.stats import bootstrap

    def run(method: str) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():  # scipy warns for a degenerate BCa; we fall back to percentile below
            warnings.simplefilter("ignore")
            res = bootstrap(
                (rows,),
                np.mean,
                n_resamples=resamples,
                batch=_BATCH,
                vectorized=True,
                axis=-1,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(seed),
            )
        return np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)

    low, high = run("BCa")
    bad = ~(np.isfinite(low) & np.isfinite(high))
    if bad.any():
        p_low, p_high = run("percentile")
        low, high = np.where(bad, p_low, low), np.where(bad, p_high, high)
    return low.astype(np.float64), high.astype(np.float64)


def _bootstrap_many(
    arrays: Mapping[str, np.ndarray], confidence: float, resamples: int, seed: int
) -> dict[str, Interval]:
    """Bootstrap intervals of the mean of each finite 1-D array (the degenerate cases of the module docstring).

    One array at a time: BCa's jackknife holds ``batch x (n - 1)`` values per array resampled together, which for 25
    metrics of a 10,000-image bench came to 1.8 GiB (benchmarks/results/bench-memory-cpu-torch2.14.1.md); the
    intervals are the same either way (``_bootstrap_rows`` draws the same image indices for every row)."""
    out: dict[str, Interval] = {}
    resampled: list[str] = []
    for key, arr in arrays.items():
        n, mean = arr.size, float(arr.mean())
        if n < MIN_BOOTSTRAP_N:
            out[key] = Interval(mean, math.nan, math.nan, n, "bootstrap", confidence)
        elif np.all(arr == arr[0]):
            out[key] = Interval(float(arr[0]), float(arr[0]), float(arr[0]), n, "bootstrap", confidence)
        else:
            resampled.append(key)
    for key in resampled:
        (lo,), (hi,) = _bootstrap_rows(arrays[key][None], confidence, resamples, seed)
        out[key] = Interval(float(arrays[key].mean()), float(lo), float(hi), arrays[key].size, "bootstrap", confidence)
    return {key: out[key] for key in arrays}


def _check_resampling(confidence: float, resamples: int, seed: int) -> None:
    _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise InputError(f"resamples must be a whole number of at least 100, got {resamples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative whole number, got {seed!r}.")


def bootstrap_interval(
    values: Any, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """BCa bootstrap interval of the mean of per-image values, resampling images (``scipy.stats.bootstrap``).

    Args:
        values: ``(n,)`` per-image values (numpy array, torch tensor or sequence), any unit; NaN entries are left out.
        confidence: confidence level in (0, 1).
        resamples: bootstrap resamples (at least 100).
        seed: seeds the numpy ``Generator`` that draws the resamples; the same values and seed give the same interval.

    Returns:
        An ``Interval`` in the unit of ``values``, method ``"bootstrap"``; ``(nan, nan)`` bounds for fewer than
        ``MIN_BOOTSTRAP_N`` finite values, ``[v, v]`` when all finite values equal ``v``.

    Raises:
        InputError: ``values`` is not 1-D or has no finite value; ``confidence``, ``resamples`` or ``seed`` out of
            range.
    """
    _check_resampling(confidence, resamples, seed)
    return _bootstrap_many({"": _finite(values, "bootstrap_interval")}, confidence, resamples, seed)[""]


def mean_interval(values: Any, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The interval of a per-image mean: Wilson when every finite value is 0 or 1, else ``bootstrap_interval``.

    Args:
        values: ``(n,)`` per-image values; NaN entries are left out.
        confidence: confidence level in (0, 1).
        resamples: bootstrap resamples (not used for Wilson).
        seed: bootstrap seed (not used for Wilson).

    Returns:
        An ``Interval`` (method ``"wilson"`` or ``"bootstrap"``).

    Raises:
        InputError: as ``bootstrap_interval``.
    """
    return intervals({"": values}, confidence, resamples, seed)[""]


def intervals(
    values: Mapping[str, Any], confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Interval]:
    """``mean_interval`` of each of several per-image arrays at once (metrics of one bench pair), vectorised.

    The bootstrap arrays of equal length are resampled in one ``scipy.stats.bootstrap`` call with shared image
    indices; each result equals ``mean_interval`` of that array alone with the same seed.

    Args:
        values: metric name -> ``(n,)`` per-image values; NaN entries are left out.
        confidence: confidence level in (0, 1).
        resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        metric name -> ``Interval``, for every metric with at least one finite value (the others are left out).

    Raises:
        InputError: an array that is not 1-D; ``confidence``, ``resamples`` or ``seed`` out of range.
    """
    _check_resampling(confidence, resamples, seed)
    out: dict[str, Interval] = {}
    boot: dict[str, np.ndarray] = {}
    for key, v in values.items():
        arr = _as_1d(v, f"'{key}'" if key else "mean_interval")
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            if len(values) == 1:
                _finite(arr, f"'{key}'" if key else "mean_interval")  # raises: the one array asked for has none
            continue  # no finite value: no interval for this metric
        if _is_binary(arr):
            out[key] = wilson_interval(int(arr.sum()), arr.size, confidence)
        else:
            boot[key] = arr
    out.update(_bootstrap_many(boot, confidence, resamples, seed))
    return {key: out[key] for key in values if key in out}


# ----------------------------------------------------------------------------------------- paired difference
def _paired(a: Any, b: Any, what: str) -> np.ndarray:
    """``a - b`` on the images where both are finite; InputError for other shapes or no such image."""
    x, y = _as_1d(a, what), _as_1d(b, what)
    if x.shape != y.shape:
        raise InputError(
            f"{what}: expected two 1-D arrays of per-image values on the same images, got shapes {x.shape} and "
            f"{y.shape}."
        )
    both = np.isfinite(x) & np.isfinite(y)
    if not both.any():
        raise InputError(f"{what}: no image has a finite value in both arrays; a difference needs at least one.")
    return x[both] - y[both]


def paired_difference(
    a: Any, b: Any, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Mean difference ``a - b`` of two per-image arrays on the same images, with a paired BCa bootstrap interval.

    Images are resampled as pairs (for a mean this is the bootstrap of the differences ``a[i] - b[i]``), so what the
    two share per image cancels. Only images where both values are finite count (``n``). Also for 0/1 arrays (see
    the module docstring).

    Args:
        a: ``(n,)`` per-image values of the first (e.g. inverter A on these images).
        b: ``(n,)`` per-image values of the second, image ``i`` the same image as in ``a``.
        confidence: confidence level in (0, 1).
        resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        An ``Interval`` of the difference in the unit of the values (``estimate`` = mean of ``a - b``), method
        ``"bootstrap"``; ``[d, d]`` when every difference is ``d`` (0 for identical arrays), ``(nan, nan)`` for
        fewer than ``MIN_BOOTSTRAP_N`` images.

    Raises:
        InputError: the arrays are not 1-D of the same length, no image is finite in both, or ``confidence``,
            ``resamples`` or ``seed`` out of range.
    """
    return paired_differences({"": a}, {"": b}, confidence, resamples, seed)[""]


def paired_differences(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Interval]:
    """``paired_difference`` of every metric the two mappings share, vectorised (one bootstrap call per length).

    Args:
        a: metric name -> ``(n,)`` per-image values of the first.
        b: metric name -> ``(n,)`` per-image values of the second, on the same images.
        confidence: confidence level in (0, 1).
        resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        metric name -> ``Interval`` of ``a - b``, for the metrics in both with at least one image finite in both, in
        ``a``'s order.

    Raises:
        InputError: a shared metric's arrays are not 1-D of one length; ``confidence``, ``resamples`` or ``seed``
            out of range; with a single shared metric, no image finite in both.
    """
    _check_resampling(confidence, resamples, seed)
    shared = [k for k in a if k in b]
    diffs: dict[str, np.ndarray] = {}
    for key in shared:
        try:
            diffs[key] = _paired(a[key], b[key], f"'{key}'" if key else "paired_difference")
        except InputError as exc:
            if "no image" not in str(exc) or len(shared) == 1:
                raise
    return _bootstrap_many(diffs, confidence, resamples, seed)


# ----------------------------------------------------------------------------------------------------- verdict
def verdict(diff_interval: Interval | Mapping[str, Any] | tuple[float, float], direction: int) -> str:
    """Read the interval of a difference ``a - b``: is ``a`` better, worse, or not clearly different from ``b``?

    Args:
        diff_interval: the difference's interval: an ``Interval``, a dict with ``low`` and ``high`` (as results.json
            stores it; None for an undefined bound) or a ``(low, high)`` pair.
        direction: +1 when higher values are better for the metric, -1 when lower are (``better_direction``).

    Returns:
        ``"better"`` when the interval lies wholly on the good side of 0, ``"worse"`` when wholly on the other, and
        ``"no clear difference"`` when it contains 0 (or a bound is undefined).

    Raises:
        InputError: ``direction`` is not +1 or -1.
    """
    if direction not in (1, -1) or isinstance(direction, bool):
        raise InputError(
            f"verdict: direction must be +1 (higher is better) or -1 (lower is better), got {direction!r}."
        )
    if isinstance(diff_interval, Interval):
        low, high = diff_interval.low, diff_interval.high
    elif isinstance(diff_interval, Mapping):
        low, high = diff_interval.get("low"), diff_interval.get("high")
    else:
        low, high = diff_interval
    low = math.nan if low is None else float(low)
    high = math.nan if high is None else float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no clear difference"
    if low > 0:
        return "better" if direction > 0 else "worse"
    if high < 0:
        return "worse" if direction > 0 else "better"
    return "no clear difference"


# Words of a metric name (after its last ':'; ``eval:LABEL:knn_distance`` -> knn, distance) that say which way is
# better. Identification (``id_...``: the share of originals picked out, in any space) is higher-better first.
_LOWER = {"lpips", "fid", "kid", "distance", "dist", "mse", "knn", "error", "loss", "time", "seconds", "memory", "mb"}
_HIGHER = {"psnr", "ssim", "accuracy", "acc", "agreement", "agree", "cosine", "cos", "top1", "top5", "hit", "hits"}
_HIGHER |= {"rate", "stability", "identical", "id", "identification", "preference", "precision", "recall"}
# Names whose words mislead: the evaluators' feature_cosine is a cosine *distance* (invkit.evaluation.evaluator).
_NAMED = {"feature_cosine": -1}


def better_direction(metric: str) -> int:
    """Which way is better for a bench metric: +1 when higher values are better, -1 when lower are.

    Decided from the name after its last ``:``: ``feature_cosine`` (an evaluator's cosine distance) is lower-better;
    otherwise from its words (``eval:LABEL:cosine_distance`` -> ``cosine``, ``distance``): a name that starts with
    ``id_`` is an instance-identification rate (``id_accuracy``, ``id_lpips``: higher is better); else any of lpips,
    fid, kid, distance, dist, mse, knn, error, loss, time, seconds, memory, mb means lower is better; else any of
    psnr, ssim, accuracy, agreement, cosine, top1, top5, hit(s), rate, stability, identical, identification,
    preference, precision, recall means higher is better.

    Args:
        metric: a results.json metric name (``psnr``, ``lpips``, ``top1_agreement_correct``, ``eval:NAME:top1``).

    Returns:
        +1 or -1.

    Raises:
        InputError: a name none of these words decides (say which way it goes by naming it with one of them).
    """
    name = str(metric).rsplit(":", 1)[-1].lower()
    if name in _NAMED:
        return _NAMED[name]
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    if words and words[0] == "id":
        return 1
    if any(w in _LOWER for w in words):
        return -1
    if any(w in _HIGHER for w in words):
        return 1
    raise InputError(
        f"better_direction: cannot tell whether higher or lower is better for metric '{metric}'; name it with a word "
        "such as 'distance' or 'error' (lower is better) or 'accuracy' or 'agreement' (higher is better)."
    )
