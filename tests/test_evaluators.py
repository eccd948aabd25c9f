"""Evaluator metrics (invkit.evaluation.evaluator), FID/KID (invkit.evaluation.distribution) and `invkit bench
--evaluator` on tiny seeded stand-ins: values against hand-made cases and an independent reference, refusals."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from _cli import cli, one_line_error
from test_bench import TinyOptimConfig, settings, tiny  # noqa: F401 - tiny: the fixture of the tiny plugin

import invkit
from invkit.evaluation import distribution as dist
from invkit.evaluation import evaluator as ev
from invkit.evaluation.bench import Bench


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _evaluator(folder, seed: int = 3, num_classes: int = 10) -> str:
    """A vgg11s evaluator (random weights, 16-d penultimate features) saved as a checkpoint folder."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = invkit.create_classifier("vgg11s.base", channels=1, input_size=28, width=2, num_classes=num_classes)
    clf.save(folder)
    return str(folder)


# ------------------------------------------------------------------------------------------ per-image metrics
def test_topk_and_agreement():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    assert ev.topk_correct(logits, labels, 1).tolist() == [1, 0, 0]
    assert ev.topk_correct(logits, labels, 2).tolist() == [1, 0, 1]
    assert ev.topk_correct(logits, labels, 9).tolist() == [1, 1, 1]  # k capped at the classes
    assert ev.topk_correct(logits, labels).dtype == torch.float32
    assert ev.prediction_agreement(logits, logits.flip(0)).tolist() == [0, 1, 0]
    with pytest.raises(invkit.InputError, match="topk_correct"):
        ev.topk_correct(logits, labels[:2])


def test_cosine_identification_and_knn_by_hand():
    orig = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    recon = torch.tensor([[2.0, 0.1], [1.0, 1.0]])
    assert ev.cosine_distance(orig, orig * 3).abs().max() < 1e-6  # scale does not matter
    assert ev.cosine_distance(orig, -orig).tolist() == [2.0, 2.0]
    distractors = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])  # row 1: the distractor ties with the original
    assert ev.feature_identification_hits(recon, orig, distractors).tolist() == [1.0, 0.5]
    assert ev.feature_identification_hits(recon, orig, orig.flip(0)[:, None] * -1).tolist() == [1.0, 1.0]
    bank = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    d = ev.knn_distance(recon, torch.tensor([1, 2]), bank, torch.tensor([1, 1, 0]))
    expected0 = 1 - 2 / math.hypot(2.0, 0.1)  # nearest of class 1 is [1, 0]
    assert d[0].item() == pytest.approx(expected0, abs=1e-6) and math.isnan(d[1].item())  # no bank image of class 2
    assert ev.mean_of(d) == pytest.approx(expected0, abs=1e-6)


def test_heldout_draw_avoids_evaluated_images_and_is_seeded():
    labels = torch.arange(4).repeat(30)
    exclude = torch.arange(60)
    held = ev.draw_heldout(labels, exclude, per_class=5, seed=1)
    assert len(held) == 20 and held.min() >= 60
    assert torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert torch.equal(held, ev.draw_heldout(labels, exclude, per_class=5, seed=1))


# --------------------------------------------------------------------------------------------------- FID/KID
def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Heusel et al. 2017 with scipy's matrix square root: an independent check of the torchmetrics path."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_a_scipy_reference_and_is_zero_for_one_set():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(60, 8, generator=g, dtype=torch.float64)
    b = torch.randn(50, 8, generator=g, dtype=torch.float64) * 1.5 + 0.5
    assert dist.fid(a, b) == pytest.approx(_reference_fid(a.numpy(), b.numpy()), rel=1e-6)
    assert abs(dist.fid(a, a)) < 1e-8


def test_fid_refuses_fewer_images_than_feature_dimensions_plus_one():
    a = torch.randn(8, 8)
    with pytest.raises(invkit.InputError, match="at least 9 images for 8-dimensional") as err:
        dist.fid(a, a)
    assert "\n" not in str(err.value)
    assert dist.fid_refusal(9, 8) is None


def test_kid_is_seeded_and_leaves_the_global_rng_alone():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 6, generator=g), torch.randn(40, 6, generator=g) + 1.0
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = dist.kid(a, b, subsets=10, subset_size=20, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    assert first == dist.kid(a, b, subsets=10, subset_size=20, seed=5)
    assert first[0] > dist.kid(a, a[torch.randperm(40, generator=g)], subsets=10, subset_size=20)[0]
    assert first[2] == 20 and dist.kid(a[:5], b, subset_size=1000)[2] == 5
    with pytest.raises(invkit.InputError, match="at least 2 images"):
        dist.kid(a[:1], b)


def test_classifier_features_module_gives_the_same_fid_as_precomputed_features(tmp_path):
    """torchmetrics' FID fed images through ``ClassifierFeatures`` equals ``fid`` on the same features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    clf = invkit.load_classifier(_evaluator(tmp_path / "e"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, 1, 28, 28, generator=g), torch.rand(20, 1, 28, 28, generator=g) ** 2
    metric = FrechetInceptionDistance(feature=dist.ClassifierFeatures(clf), normalize=True)
    metric.update(x, real=True)
    metric.update(y, real=False)
    ours = dist.fid(clf.features(x).double(), clf.features(y).double())
    assert float(metric.compute()) == pytest.approx(ours, rel=1e-4)


def test_inception_is_never_downloaded(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    ok, message = dist.inception_status()
    assert not ok and "weights not present" in message and str(dist.inception_file()) in message
    with pytest.raises(invkit.InputError, match="inception FID: weights not present"):
        dist.InceptionFeatures()


# ---------------------------------------------------------------------------------------------------- bench
def test_bench_records_evaluator_metrics_and_reports_them(tiny, tmp_path):  # noqa: F811
    clf, dec = tiny["std"]
    s = settings(tiny, classifiers=[clf], checkpoints=[dec], evaluators=[_evaluator(tmp_path / "e")])
    out = tmp_path / "out"
    (a, b) = list(Bench(s, out).run())
    for r in (a, b):
        e = r.record["evaluators"]["e"]
        for key in ("orig_top1", "top1", "top5", "agreement", "id_accuracy"):
            assert 0 <= e[key] <= 1
        assert e["top1"] <= e["top5"] and 0 <= e["feature_cosine"] <= 2 and 0 <= e["knn_distance"] <= 2
        assert e["n"] == 10 and e["id_k"] == 5 and e["feature_dim"] == 16 and e["knn_n"] == 10
        assert e["fid"] is None and "at least 17 images" in e["fid_status"]  # n = 10 < 16 + 1
        assert e["kid"] is not None and e["kid_subset_size"] == 5  # half the images: the subsets differ
        assert r.record["inception"]["status"].startswith(("weights not present", "unavailable", "torchmetrics"))
    assert a.record["evaluators"]["e"]["orig_top1"] == b.record["evaluators"]["e"]["orig_top1"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["fingerprint"]["evaluators"][0].endswith(tuple("0123456789abcdef"))
    report = (out / "report.md").read_text()
    assert "## Evaluator e" in report and "FID of every pair: not computed: FID needs at least 17 images" in report
    assert "Evaluator e" in (out / "report.html").read_text()


def test_a_perfect_reconstruction_scores_perfectly(tiny, tmp_path, monkeypatch):  # noqa: F811
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[], n=20)
    s.evaluators = [_evaluator(tmp_path / "eval")]
    bench = Bench(s)
    originals = bench.originals

    class Oracle(invkit.Inverter):
        def invert(self, logits, noise=None, generator=None):
            return originals

    from invkit.evaluation import bench as bench_mod

    monkeypatch.setattr(bench_mod.Bench, "_inverter", lambda self, pair, clf: (Oracle(TinyOptimConfig()), {}))
    bench.settings.batch_size = 100
    (result,) = list(bench.run())
    e = result.record["evaluators"]["eval"]
    assert e["top1"] == e["orig_top1"] and e["agreement"] == 1.0 and e["id_accuracy"] == 1.0
    assert e["feature_cosine"] == pytest.approx(0, abs=1e-6)
    assert e["fid"] == pytest.approx(0, abs=1e-6) and e["kid"] == pytest.approx(0, abs=1e-6)


def test_bench_without_evaluators_keeps_its_fingerprint(tiny):  # noqa: F811
    assert "evaluators" not in settings(tiny).fingerprint()


def test_an_evaluator_that_is_a_studied_classifier_is_refused(tiny, tmp_path):  # noqa: F811
    import shutil

    with pytest.raises(invkit.InvkitError, match="one of the classifiers under study"):
        Bench(settings(tiny, evaluators=[tiny["std"][0]]))
    copy = tmp_path / "copy_of_std"
    shutil.copytree(tiny["std"][0], copy)  # the same weights in another folder
    with pytest.raises(invkit.InvkitError, match="one of the classifiers under study"):
        Bench(settings(tiny, evaluators=[str(copy)]))
    clf, dec = tiny["std"]
    result = cli(["bench", "--classifier", clf, "--inverter", "tinydec", "--checkpoint", dec, "-n", "10",
                  "--id-k", "5", "--evaluator", str(copy), "--out", str(tmp_path / "o")])  # fmt: skip
    one_line_error(result, "one of the classifiers under study")
    assert not (tmp_path / "o" / "results.json").exists()


def test_an_evaluator_of_other_classes_is_refused(tiny, tmp_path):  # noqa: F811
    with pytest.raises(invkit.DataError):
        Bench(settings(tiny, evaluators=[_evaluator(tmp_path / "e5", num_classes=5)]))


def test_demo_settings_use_the_shipped_evaluator(tmp_path, monkeypatch):
    from invkit import demo

    assert demo.EVALUATOR in demo.names()  # shipped with the package like the other demo folders
    for name in demo.all_folders():
        (tmp_path / name).symlink_to(demo.DEMO_DIR / name, target_is_directory=True)
    monkeypatch.setenv("INVKIT_DEMO_DIR", str(tmp_path))
    assert demo.default_settings().evaluators == [str(tmp_path / demo.EVALUATOR)]
    assert demo.default_settings(evaluators=[]).evaluators == []
    evaluator = invkit.load_classifier(tmp_path / demo.EVALUATOR)
    assert evaluator.config.name == "vgg11s.base" and evaluator.num_classes == 10  # not the classifiers' smallcnn
    (tmp_path / demo.EVALUATOR).unlink()
    with pytest.raises(invkit.CheckpointError, match="evaluator"):
        demo.default_settings()


def test_distractors_drawn_twice_are_embedded_once_to_the_same_features(tiny, tmp_path):  # noqa: F811
    s = settings(tiny, classifiers=[tiny["std"][0]], checkpoints=[tiny["std"][1]], n=20)
    s.evaluators = [_evaluator(tmp_path / "e")]
    bench = Bench(s)
    (clf,) = bench.evaluators.values()
    args = (clf, bench.originals, bench.labels, bench.distractors, bench.dataset, torch.arange(3))
    once = ev.BenchEvaluator(*args, distractor_idx=bench.distractor_idx)
    each = ev.BenchEvaluator(*args)
    assert len(bench.distractor_idx.unique()) < bench.distractor_idx.numel()  # some were drawn more than once
    assert torch.allclose(once.distractor_features, each.distractor_features, atol=1e-6)
