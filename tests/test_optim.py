"""Tests of the optimisation inverter (Mahendran & Vedaldi 2015, Engstrom et al. 2019): loss terms on known inputs,
seeds, start images, range, progress, save/load and that the logit cosine improves. Tiny seeded models only."""

from __future__ import annotations

import math

import pytest
import torch
from invkit_plugins.optim import OptimInverter, alpha_norm, logit_loss, total_variation
from torch import nn

import invkit
from invkit.utils.progress import Progress

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_classifier(seed: int = 0) -> invkit.Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 16), nn.ReLU(), nn.Linear(16, 5)
    )
    cfg = invkit.ClassifierConfig(name="tiny.test", num_classes=5, input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))
    return invkit.Classifier(net, cfg)


def optim(clf: invkit.Classifier, preset: str = "mv15", **kw) -> OptimInverter:
    return invkit.create_inverter(f"optim.{preset}", classifier=clf, **{"steps": 40, **kw})


# ------------------------------------------------------------------------------------------------ loss terms
def test_total_variation_known_values():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 1.0
    # Non-zero forward differences: dx at (1,0) = 1 and (1,1) = -1; dy at (0,1) = 1 and (1,1) = -1.
    assert total_variation(x, beta=2.0).item() == pytest.approx(4 / 16)
    # beta = 1: sqrt(dx^2 + dy^2) per pixel = 1 at (1,0), 1 at (0,1), sqrt(2) at (1,1).
    # (the eps that keeps beta < 2 differentiable adds sqrt(1e-8) = 1e-4 per flat pixel: 13e-4 / 16)
    assert total_variation(x, beta=1.0).item() == pytest.approx((2 + math.sqrt(2) + 13e-4) / 16, abs=1e-6)
    assert total_variation(torch.full((2, 3, 5, 5), 0.3)).tolist() == [0.0, 0.0]


def test_alpha_norm_known_values():
    x = torch.full((2, 1, 4, 4), 0.5)
    assert alpha_norm(x, alpha=6.0, center=0.0).tolist() == pytest.approx([0.5**6] * 2)
    assert alpha_norm(x, alpha=6.0, center=0.5).tolist() == [0.0, 0.0]
    x[1] = 1.0
    assert alpha_norm(x, alpha=2.0, center=0.5).tolist() == pytest.approx([0.0, 1.0])


def test_logit_loss_known_values():
    z = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    phi = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    assert logit_loss(phi, z, normalize=False).tolist() == pytest.approx([25.0, 4.0])
    assert logit_loss(phi, z, normalize=True).tolist() == pytest.approx([1.0, 4.0])


# ---------------------------------------------------------------------------------------------- the inverter
def test_same_seed_same_images_and_different_seed_differs():
    clf = tiny_classifier()
    z = clf.logits(torch.rand(3, 1, 8, 8))
    inv = optim(clf, steps=10)
    a = inv.invert(z, generator=torch.Generator().manual_seed(1))
    b = inv.invert(z, generator=torch.Generator().manual_seed(1))
    c = inv.invert(z, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("param", ["sigmoid", "clamp"])
def test_start_image_is_honoured(param):
    clf = tiny_classifier()
    start = torch.rand(2, 1, 8, 8) * 0.9 + 0.05
    z = clf.logits(torch.rand(2, 1, 8, 8))
    out = optim(clf, steps=0, param=param).invert(z, start=start)
    assert torch.allclose(out, start, atol=1e-5)
    # Starting at the image the target logits came from, plain logit matching stays there.
    x = torch.rand(2, 1, 8, 8) * 0.8 + 0.1
    out = optim(clf, "mv15", steps=20, lambda_tv=0, lambda_alpha=0, jitter=0, lr=0.01).invert(clf.logits(x), start=x)
    assert (out - x).abs().max() < 0.05
    # The robust preset keeps its best iterate: started at the answer, it returns it.
    inv = optim(clf, "robust", steps=20)
    assert torch.allclose(inv.invert(inv.targets(x), start=x), x)
    with pytest.raises(invkit.InputError, match="start must be"):
        optim(clf).invert(z, start=torch.rand(2, 1, 9, 9))


@pytest.mark.parametrize("preset", ["mv15", "robust"])
def test_output_in_unit_range_and_cosine_improves(preset):
    clf = tiny_classifier()
    # 8x8 images and a 16-unit representation: a small constant L2 step (the preset: 1.0 for 28x28 and larger)
    inv = optim(clf, preset, steps=80) if preset == "mv15" else optim(clf, preset, steps=800, lr=0.02)
    z = inv.targets(torch.rand(4, 1, 8, 8))
    g = torch.Generator().manual_seed(0)
    std = inv.config.init_std
    start = (0.5 + std * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    before = torch.nn.functional.cosine_similarity(inv.targets(start), z, dim=1)
    images, info = inv.invert_with_info(z, generator=g)
    assert images.shape == (4, 1, 8, 8)
    assert images.min() >= 0 and images.max() <= 1
    assert info["logit_cosine"].shape == (4,) and info["logit_mse"].shape == (4,)
    assert (info["logit_cosine"] > before).all()
    # (robust: a 16-unit ReLU representation of a random net, not every target is reachable from grey noise)
    assert info["logit_cosine"].mean() > (0.9 if preset == "mv15" else 0.8)
    after = torch.nn.functional.cosine_similarity(inv.targets(images), z, dim=1)
    assert torch.allclose(after, info["logit_cosine"], atol=1e-5)


def test_batches_larger_than_batch_size_are_chunked():
    clf = tiny_classifier()
    z = clf.logits(torch.rand(5, 1, 8, 8))
    images, info = optim(clf, steps=5, batch_size=2).invert_with_info(z, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 8, 8) and info["logit_cosine"].shape == (5,)


def test_progress_reports_steps():
    clf = tiny_classifier()
    events: list[Progress] = []
    optim(clf, steps=20).invert(clf.logits(torch.rand(2, 1, 8, 8)), progress=events.append)
    assert events and events[-1].completed == events[-1].total == 20
    assert all(e.task == "optim" and "loss" in e.fields for e in events)


def test_save_load_round_trip(tmp_path):
    clf = tiny_classifier()
    inv = optim(clf, steps=5, lambda_tv=0.2)
    inv.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    loaded = invkit.load_inverter(tmp_path / "ckpt", classifier=clf)
    assert loaded.registry_name == "optim.mv15" and loaded.config == inv.config
    assert loaded.config.classifier_name == "tiny.test"
    z = clf.logits(torch.rand(2, 1, 8, 8))
    assert torch.equal(
        loaded.invert(z, generator=torch.Generator().manual_seed(0)),
        inv.invert(z, generator=torch.Generator().manual_seed(0)),
    )
    with pytest.raises(invkit.InvkitError, match="needs the classifier"):
        invkit.load_inverter(tmp_path / "ckpt").invert(z)


def test_errors():
    clf = tiny_classifier()
    inv = optim(clf)
    with pytest.raises(invkit.TrainingError, match="no training step"):
        inv.make_trainer(clf)
    with pytest.raises(invkit.InputError, match=r"shape \(N, 5\)"):
        inv.invert(torch.randn(2, 7))
    with pytest.raises(invkit.InputError, match="has no option 'stpes' .did you mean 'steps'"):
        optim(clf, stpes=3)
    with pytest.raises(invkit.InputError, match="param must be"):
        optim(clf, param="tanh")
    with pytest.raises(invkit.InputError, match="layer must be one of"):
        optim(clf, layer="conv1")
    with pytest.raises(invkit.InputError, match="use it with param='clamp'"):
        optim(clf, optimizer="pgd_l2")
    with pytest.raises(invkit.InputError, match="penultimate representations"):
        optim(clf, "robust").invert(torch.randn(2, 3, 1))
    with pytest.raises(invkit.InputError, match=r"of shape \(N, 16\), got \(2, 5\).*layer=logits"):
        optim(clf, "robust").invert(clf.logits(torch.rand(2, 1, 8, 8)))  # logits given to a penultimate inverter


def test_engstrom_loss_and_pgd_step():
    from invkit_plugins.optim.optimization import logit_loss

    r, t = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 8.0]])
    assert logit_loss(r, t, normalize=True, distance="l2").item() == pytest.approx(5.0 / 8.0)  # ||(3,-4)|| / 8
    assert logit_loss(r, t, normalize=False, distance="squared").item() == pytest.approx(25.0)
    # One L2 PGD step moves every image by exactly lr in L2 (unless clamped).
    clf = tiny_classifier()
    inv = optim(clf, "robust", steps=1, lr=0.05, use_best=False)
    start = torch.full((3, 1, 8, 8), 0.5)
    target = inv.targets(torch.rand(3, 1, 8, 8))
    out = inv.invert(target, start=start)
    assert (out - start).flatten(1).norm(dim=1).tolist() == pytest.approx([0.05] * 3, rel=1e-4)
    # The penultimate representation is the input of the last Linear layer.
    x = torch.rand(2, 1, 8, 8)
    pen = clf.network[:-1](clf.preprocess(x)).flatten(1)
    assert torch.allclose(inv.targets(x), pen)


def test_presets():
    clf = tiny_classifier()
    mv, rb = optim(clf, "mv15").config, optim(clf, "robust").config
    assert (mv.alpha, mv.tv_beta, mv.normalize) == (6.0, 2.0, True) and mv.lambda_tv > 0 and mv.jitter > 0
    # Engstrom et al. 2019 / robustness library: penultimate layer, ||R - t|| / ||t||, L2 PGD step 1, no prior,
    # seed clamp(0.5 + N(0, 1) / 20), best iterate.
    assert (rb.lambda_tv, rb.lambda_alpha, rb.jitter, rb.param) == (0.0, 0.0, 0, "clamp")
    assert (rb.layer, rb.distance, rb.normalize, rb.optimizer, rb.lr, rb.init_std, rb.use_best) == (
        "penultimate",
        "l2",
        True,
        "pgd_l2",
        1.0,
        0.05,
        True,
    )
    assert (mv.num_classes, mv.channels, mv.resolution) == (5, 1, 8)


def test_works_under_no_grad():
    """Bench runners call inverters under torch.no_grad(); optim turns gradients back on for its own loop."""
    clf = tiny_classifier()
    inv = optim(clf, "robust", steps=400, lr=0.05)
    z = inv.targets(torch.rand(2, 1, 8, 8))
    with torch.no_grad():
        _, info = inv.invert_with_info(z, generator=torch.Generator().manual_seed(0))
    assert info["logit_cosine"].mean() > 0.8  # (gradients ran: the grey start is far lower)
