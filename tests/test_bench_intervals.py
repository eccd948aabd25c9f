"""Issue 21 point 4: per-image values in the bench, 95% intervals on every number, paired comparisons, their report,
and the probes' headline proportions with intervals. Tiny seeded stand-ins from test_bench and test_probes."""

from __future__ import annotations

import json
import re

import pytest
import torch
from test_bench import _one_thread, settings, tiny  # noqa: F401 - the tiny bench plugin and its fixtures
from test_probes import make_ctx, models  # noqa: F401 - the tiny probe models

import invkit
from invkit.evaluation import report_uncertainty, stats
from invkit.evaluation.bench import Bench
from invkit.evaluation.metrics import mean_defined
from invkit.evaluation.per_image import load_per_image, per_image_path, save_per_image


def _doc(out):
    return json.loads((out / "results.json").read_text())


def test_every_metric_has_per_image_values_an_interval_and_paired_comparisons(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    list(Bench(settings(tiny), out).run())  # 2 classifiers x 2 inverters, n = 10
    doc = _doc(out)
    index = torch.tensor(doc["settings"]["image_indices"])
    for r in doc["results"]:
        values = load_per_image(per_image_path(out, r["slug"]), index)  # order = settings.image_indices
        assert {"psnr", "ssim", "accuracy", "top1_agreement", "logit_cosine_correct", "id_accuracy"} <= set(values)
        assert all(v.dtype == torch.float32 and v.shape == (10,) for v in values.values())
        for key, v in values.items():  # the record's means are the per-image values' means
            assert r[key] == pytest.approx(mean_defined(v), abs=1e-6), key
        assert set(r["intervals"]) == {k for k, v in values.items() if torch.isfinite(v).any()}
        agree, psnr = r["intervals"]["top1_agreement"], r["intervals"]["psnr"]
        assert agree["method"] == "wilson" and psnr["method"] == "bootstrap" and psnr["confidence"] == 0.95
        assert psnr["low"] <= r["psnr"] <= psnr["high"] and psnr["n"] == 10
        if "top1_agreement_correct" in r["intervals"]:
            assert r["intervals"]["top1_agreement_correct"]["n"] == r["n_correct"]
    # 2 inverter pairs (one per classifier) + 2 classifier pairs (one per inverter)
    kinds = sorted(c["kind"] for c in doc["comparisons"])
    assert kinds == ["classifiers", "classifiers", "inverters", "inverters"]
    by_slug = {r["slug"]: r for r in doc["results"]}
    for c in doc["comparisons"]:
        a, b = by_slug[c["a"]["slug"]], by_slug[c["b"]["slug"]]
        same = "classifier" if c["kind"] == "inverters" else "inverter"
        assert a[same] == b[same]
        psnr = c["metrics"]["psnr"]
        assert psnr["difference"] == pytest.approx(a["psnr"] - b["psnr"], abs=1e-4) and psnr["n"] == 10
        for key, m in c["metrics"].items():
            assert m["verdict"] == stats.verdict(m, stats.better_direction(key)), key
        assert c["metrics"]["lpips" if "lpips" in c["metrics"] else "psnr"]["better"] in ("higher", "lower")
    # the reports: each number with its interval, the comparisons as words (and colours), csv low/high columns
    md = (out / "report.md").read_text()
    assert re.search(r"\| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|", md)  # PSNR 12.73 [12.41, 13.05]
    assert "## Comparisons" in md and re.search(r"\| (better|worse|no clear difference) \|", md)
    html = (out / "report.html").read_text()
    assert "<h2>Comparisons</h2>" in html and re.search(r"<td class='v-(better|worse|no-clear-difference)'>", html)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"psnr_low", "psnr_high", "psnr_n", "top1_agreement_low"} <= set(header)


def test_a_rerun_reads_the_per_image_values_back_and_recomputes_a_damaged_file(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    s = dict(inverters=["tinydec"])
    first = list(Bench(settings(tiny, **s), out).run())
    doc = _doc(out)
    again = list(Bench(settings(tiny, **s), out).run())
    assert all(r.reused for r in again)
    assert [r.record["intervals"] for r in again] == [r.record["intervals"] for r in first]
    assert _doc(out)["comparisons"] == doc["comparisons"] and len(doc["comparisons"]) == 1
    # a per-image file of another length: named in a warning, and that pair is computed again, to the same numbers
    path = per_image_path(out, first[0].pair.slug)
    save_per_image(path, {"psnr": torch.zeros(3)}, torch.arange(3))
    with pytest.warns(UserWarning, match="other images than this run's"):
        third = list(Bench(settings(tiny, **s), out).run())
    assert [r.reused for r in third] == [False, True]
    assert third[0].record["intervals"] == first[0].record["intervals"]
    # no file (an older invkit's results): computed again, silently
    path.unlink()
    assert [r.reused for r in Bench(settings(tiny, **s), out).run()] == [False, True]


def test_results_of_an_older_invkit_without_intervals_still_load(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    s = dict(inverters=["tinydec"], classifiers=[tiny["std"][0]], checkpoints=[tiny["std"][1]])
    list(Bench(settings(tiny, **s), out).run())
    doc = _doc(out)
    doc.pop("comparisons")
    for r in doc["results"]:
        r.pop("intervals")
    (out / "results.json").write_text(json.dumps(doc))
    for f in (out / "per_image").iterdir():
        f.unlink()
    (result,) = Bench(settings(tiny, **s), out).run()
    assert not result.reused and "psnr" in result.record["intervals"]
    # a hand-edited record whose intervals are not an object: one line naming the field, nothing changed
    doc = _doc(out)
    doc["results"][0]["intervals"] = [1, 2]
    (out / "results.json").write_text(json.dumps(doc))
    with pytest.raises(invkit.InvkitError, match="intervals") as err:
        Bench(settings(tiny, **s), out)
    assert "\n" not in str(err.value)


def test_a_metric_another_part_of_the_bench_adds_gets_its_interval_and_comparisons(tiny, tmp_path, monkeypatch):  # noqa: F811
    original = Bench._summarize  # a pair's scores from its per-image values of all blocks

    def with_extra(self, pixel, recon_logits, logits):
        scores = original(self, pixel, recon_logits, logits)
        scores["per_image"]["eval:tiny:knn_distance"] = 1 - scores["per_image"]["ssim"]  # lower is better
        return scores

    monkeypatch.setattr(Bench, "_summarize", with_extra)
    out = tmp_path / "out"
    list(Bench(settings(tiny, inverters=["tinydec"]), out).run())
    doc = _doc(out)
    assert all(r["intervals"]["eval:tiny:knn_distance"]["method"] == "bootstrap" for r in doc["results"])
    (c,) = doc["comparisons"]
    extra, ssim = c["metrics"]["eval:tiny:knn_distance"], c["metrics"]["ssim"]
    assert extra["better"] == "lower" and extra["difference"] == pytest.approx(-ssim["difference"], abs=1e-6)
    assert {extra["verdict"], ssim["verdict"]} in ({"no clear difference"}, {"better", "worse"})


def test_a_malformed_interval_is_shown_as_none():
    record = {"psnr": 12.734, "n": 100, "intervals": {"psnr": {"low": 12.41, "high": 13.05, "n": 100}, "ssim": [1]}}
    assert report_uncertainty.interval_of(record, "ssim") is None
    iv = report_uncertainty.interval_of(record, "psnr")
    assert report_uncertainty.with_interval(12.734, iv, ".2f", 100) == "12.73 [12.41, 13.05]"
    assert report_uncertainty.with_interval(0.5, iv | {"n": 54}, ".3f", 100).endswith("(n=54)")


# ---------------------------------------------------------------------------------------------------- probes
def test_stability_proportions_get_wilson_intervals_with_their_n(models, tmp_path):  # noqa: F811
    options = {"images": 12, "rounds": 1}
    result = invkit.create_probe("iterative-stability").run(make_ctx(models, tmp_path, options=options))
    n = result.numbers
    both = n["intervals"]["identical_all"]
    assert both["method"] == "wilson" and both["n"] == 12 and both["low"] <= n["identical_all"] <= both["high"]
    for group in ("correct", "incorrect"):
        if f"identical_{group}" in n:
            assert n["intervals"][f"identical_{group}"]["n"] == n[f"n_{group}"]
    assert "[" in result.summary and "(n=" in result.summary


def test_mirror_rates_get_intervals_over_images(models, tmp_path):  # noqa: F811
    result = invkit.create_probe("mirror").run(make_ctx(models, tmp_path, options={"images": 6, "samples": 3}))
    n = result.numbers
    if n["images_counted"] == 0:
        pytest.skip("no asymmetric image drawn")
    ivs = n["intervals"]
    assert set(ivs) == {"hflip_rate", "vflip_rate", "hflip_images_with_any"}
    assert all(iv["n"] == n["images_counted"] for iv in ivs.values())
    assert ivs["hflip_images_with_any"]["method"] == "wilson"
    for key in ("hflip_rate", "vflip_rate"):
        assert ivs[key]["low"] is None or ivs[key]["low"] <= n[key] <= ivs[key]["high"]
