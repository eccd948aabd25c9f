"""FGSM and PGD (invkit.core.adversarial): eps balls, valid images, higher loss, any classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import invkit
from invkit.core.adversarial import AttackConfig, accuracy, fgsm, pgd


@pytest.fixture
def clf() -> invkit.Classifier:
    """A tiny seeded classifier that takes 28x28 grey images (any size, through Classifier.preprocess)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    cfg = invkit.ClassifierConfig(name="tiny.test", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,))
    return invkit.Classifier(net, cfg)


def _loss(clf, x, y):
    with torch.no_grad():
        return F.cross_entropy(clf.logits(x), y).item()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_ball_and_image_range_and_raises_loss(clf, mnist_batch, norm, random_start):
    x, y = mnist_batch
    eps = 0.1 if norm == "linf" else 1.5
    adv = pgd(
        clf, x, y, eps=eps, norm=norm, steps=10, random_start=random_start, generator=torch.Generator().manual_seed(1)
    )
    assert adv.shape == x.shape and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert size.max() > 0.5 * eps  # the attack moved
    assert _loss(clf, adv, y) > _loss(clf, x, y) + 0.05


def test_pgd_respects_image_bounds_for_saturated_pixels(clf):
    x = torch.zeros(3, 1, 28, 28)
    x[1] = 1.0
    y = torch.tensor([0, 1, 2])
    adv = pgd(clf, x, y, eps=0.3, steps=5)
    assert adv.min() >= 0 and adv.max() <= 1
    assert ((adv - x).abs() <= 0.3 + 1e-6).all()


def test_fgsm_is_one_sign_step_of_size_eps(clf, mnist_batch):
    x, y = mnist_batch
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(clf.logits(xg), y, reduction="sum"), xg)
    expected = (x + 0.05 * grad.sign()).clamp(0, 1)
    adv = fgsm(clf, x, y, eps=0.05)
    torch.testing.assert_close(adv, expected)
    # FGSM equals one PGD step with step size eps and no random start
    torch.testing.assert_close(pgd(clf, x, y, eps=0.05, steps=1, step_size=0.05, random_start=False), expected)


def test_targeted_pgd_lowers_target_loss(clf, mnist_batch):
    x, _ = mnist_batch
    target = torch.full((len(x),), 3)
    adv = pgd(clf, x, target, eps=0.2, steps=10, targeted=True)
    assert _loss(clf, adv, target) < _loss(clf, x, target)


def test_attack_leaves_weights_alone_and_works_under_no_grad(clf, mnist_batch):
    x, y = mnist_batch
    clf.requires_grad_(True)
    with torch.no_grad():
        adv = pgd(clf, x, y, eps=0.1, steps=2)
    assert all(p.grad is None for p in clf.parameters())
    assert not torch.equal(adv, x)


def test_pgd_is_seeded_and_zero_steps_is_identity(clf, mnist_batch):
    x, y = mnist_batch
    a = pgd(clf, x, y, eps=0.1, steps=3, generator=torch.Generator().manual_seed(5))
    b = pgd(clf, x, y, eps=0.1, steps=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(pgd(clf, x, y, eps=0.1, steps=0, random_start=False), x)


def test_attacks_accept_a_plain_callable_and_other_image_sizes(clf, mnist_batch):
    x, y = mnist_batch
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear")
    adv = pgd(clf.logits, big, y, eps=0.1, steps=2)  # a callable, and 32 px images into a 28 px classifier
    assert adv.shape == big.shape
    assert accuracy(clf, adv, y) <= accuracy(clf, big, y)


def test_attack_config_defaults_and_run(clf, mnist_batch):
    x, y = mnist_batch
    cfg = AttackConfig(norm="l2", eps=1.0, steps=4)
    assert cfg.resolved_step_size == pytest.approx(2.5 * 1.0 / 4)
    assert cfg.to_dict()["step_size"] == pytest.approx(0.625)
    adv = cfg.run(clf, x, y, generator=torch.Generator().manual_seed(0))
    assert ((adv - x).flatten(1).norm(dim=1) <= 1.0 + 1e-5).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm": "l1", "eps": 0.1}, "unknown attack norm"),
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"eps": 0.1, "steps": -1}, "steps must be >= 0"),
    ],
)
def test_bad_attack_arguments_raise_input_error(clf, mnist_batch, kwargs, match):
    x, y = mnist_batch
    with pytest.raises(invkit.InputError, match=match):
        pgd(clf, x, y, **kwargs)


def test_label_count_must_match(clf, mnist_batch):
    x, y = mnist_batch
    with pytest.raises(invkit.InputError, match="one label per image"):
        fgsm(clf, x, y[:3], eps=0.1)
