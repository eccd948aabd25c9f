"""invkit.evaluation.stats: Wilson and bootstrap intervals, paired differences, verdicts and metric directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from invkit.errors import InputError
from invkit.evaluation import stats


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson 1927's score interval, written out (no continuity correction)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(3, 10), (0, 20), (20, 20), (512, 1000), (1, 1)])
def test_wilson_interval_is_the_score_interval(k, n):
    iv = stats.wilson_interval(k, n)
    low, high = _wilson_by_hand(k, n)
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=1e-9)
    assert iv.estimate == k / n and iv.n == n and iv.method == "wilson" and iv.confidence == 0.95
    assert 0 <= iv.low <= k / n <= iv.high <= 1


@pytest.mark.parametrize("k,n", [(1, 0), (5, 4), (-1, 4), (1.5, 4), (True, 4)])
def test_wilson_interval_refuses_impossible_counts(k, n):
    with pytest.raises(InputError, match="wilson_interval"):
        stats.wilson_interval(k, n)


def test_bootstrap_interval_is_seeded_and_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=80)  # skewed, as SSIM or PSNR can be
    a, b = stats.bootstrap_interval(x, seed=1), stats.bootstrap_interval(x, seed=1)
    assert a == b and a.method == "bootstrap" and a.n == 80
    assert a.low < x.mean() < a.high and a.estimate == pytest.approx(x.mean())
    assert stats.bootstrap_interval(x, seed=2) != a  # another draw of resamples
    # 300 samples of 40 draws from a distribution of known mean 1, all resampled in one vectorised call
    samples = {str(i): rng.exponential(size=40) for i in range(300)}
    found = stats.intervals(samples, resamples=1000, seed=0)
    covered = np.mean([iv.low <= 1.0 <= iv.high for iv in found.values()])
    assert 0.88 <= covered <= 0.99, covered


def test_vectorised_intervals_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    values = {"psnr": rng.normal(12, 2, 50), "ssim": rng.uniform(0, 0.3, 50), "hit": (rng.random(50) < 0.4) * 1.0}
    values["cos_correct"] = np.where(rng.random(50) < 0.5, rng.uniform(0.5, 1, 50), np.nan)
    together = stats.intervals(values, seed=7)
    for key, v in values.items():
        alone = stats.mean_interval(v, seed=7)
        assert (together[key].low, together[key].high) == pytest.approx((alone.low, alone.high), rel=1e-12)
        assert together[key].n == alone.n
    assert together["hit"].method == "wilson" and together["psnr"].method == "bootstrap"
    assert together["cos_correct"].n == int(np.isfinite(values["cos_correct"]).sum())  # NaN left out


def test_degenerate_samples():
    one = stats.bootstrap_interval([0.3])
    assert one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    assert one.as_dict() == {"low": None, "high": None, "n": 1, "method": "bootstrap", "confidence": 0.95}
    few = stats.bootstrap_interval([0.1, 0.5, 0.2, 0.9, 0.4])  # too few images to trust a bootstrap
    assert few.n == 5 and math.isnan(few.low) and stats.verdict(few, 1) == "no clear difference"
    same = stats.bootstrap_interval(torch.full((30,), 0.25))
    assert (same.low, same.high, same.estimate) == (0.25, 0.25, 0.25)
    with_nan = stats.mean_interval([1.0, float("nan"), 0.0, 1.0])
    assert with_nan.method == "wilson" and with_nan.n == 3 and with_nan.estimate == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="no finite values"):
        stats.bootstrap_interval([float("nan")] * 3)
    with pytest.raises(InputError, match="1-D"):
        stats.bootstrap_interval(np.zeros((2, 3)))
    assert "empty" not in stats.intervals({"a": [1.0, 2.0], "empty": [float("nan")]})
    for bad in ({"confidence": 1.0}, {"resamples": 10}, {"seed": -1}):
        with pytest.raises(InputError):
            stats.bootstrap_interval([1.0, 2.0], **bad)


def test_paired_difference_cancels_what_the_images_share():
    rng = np.random.default_rng(5)
    base = rng.normal(15, 3, 60)  # images differ a lot from each other ...
    a = base + 0.2 + rng.normal(0, 0.05, 60)  # ... a is a little better on every one of them
    b = base + rng.normal(0, 0.05, 60)
    diff = stats.paired_difference(a, b, seed=0)
    assert diff.estimate == pytest.approx((a - b).mean()) and diff.n == 60
    assert 0.1 < diff.low < diff.high < 0.3
    alone_a, alone_b = stats.bootstrap_interval(a), stats.bootstrap_interval(b)
    assert alone_a.low < alone_b.high  # unpaired intervals overlap: only the pairing shows the difference
    assert stats.verdict(diff, +1) == "better" and stats.verdict(diff, -1) == "worse"
    exact = stats.paired_difference(base + 0.5, base)
    assert (exact.low, exact.high) == pytest.approx((0.5, 0.5))
    zero = stats.paired_difference(base, base)
    assert (zero.low, zero.high) == (0.0, 0.0) and stats.verdict(zero, 1) == "no clear difference"


def test_paired_difference_uses_images_defined_in_both_and_refuses_other_shapes():
    a = np.array([1.0, np.nan, 3.0, 4.0])
    b = np.array([0.0, 2.0, np.nan, 3.0])
    assert stats.paired_difference(a, b).n == 2
    with pytest.raises(InputError, match="same images"):
        stats.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="no image"):
        stats.paired_difference([np.nan, 1.0], [1.0, np.nan])
    found = stats.paired_differences({"x": a, "y": [1.0] * 4, "only_a": a}, {"x": b, "y": [0.0] * 4})
    assert list(found) == ["x", "y"] and found["y"].estimate == 1.0


@pytest.mark.parametrize(
    "interval,direction,expected",
    [
        ((0.1, 0.4), 1, "better"),
        ((0.1, 0.4), -1, "worse"),
        ((-0.4, -0.1), -1, "better"),
        ((-0.4, -0.1), 1, "worse"),
        ((-0.1, 0.4), 1, "no clear difference"),
        ((0.0, 0.4), 1, "no clear difference"),
        ((float("nan"), float("nan")), 1, "no clear difference"),
        ({"low": None, "high": None}, -1, "no clear difference"),
        ({"low": 0.2, "high": 0.3}, 1, "better"),
    ],
)
def test_verdict(interval, direction, expected):
    assert stats.verdict(interval, direction) == expected


def test_verdict_refuses_a_direction_that_is_not_plus_or_minus_one():
    with pytest.raises(InputError, match="direction"):
        stats.verdict((0.1, 0.2), 0)


@pytest.mark.parametrize(
    "metric,direction",
    [
        ("psnr", 1),
        ("ssim", 1),
        ("lpips", -1),
        ("top1_agreement_correct", 1),
        ("logit_cosine_incorrect", 1),
        ("accuracy", 1),
        ("id_accuracy", 1),
        ("id_lpips", 1),
        ("id_pixel", 1),
        ("fid", -1),
        ("kid", -1),
        ("eval:resnet:top5", 1),
        ("eval:resnet:knn_distance", -1),
        ("eval:resnet:cosine_distance", -1),
        ("eval:resnet:feature_cosine", -1),  # the evaluator's cosine distance
        ("eval:resnet:orig_top1", 1),
        ("eval:resnet:agreement", 1),
        ("time_per_image_s", -1),
    ],
)
def test_better_direction(metric, direction):
    assert stats.better_direction(metric) == direction


def test_better_direction_of_an_unknown_name_says_how_to_name_it():
    with pytest.raises(InputError, match="cannot tell whether higher or lower"):
        stats.better_direction("wobble")
