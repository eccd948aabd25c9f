"""The same checks for every registered inverter: shape and range, seeding, save/load, bad logits.

Parametrised over the registry, so an inverter added by a built-in plugin is covered without a new test
(after timm's tests/test_models.py). Large presets are built at a reduced width (``ch``/``width`` options
where the inverter has them) so the suite stays fast; their architecture is checked in their own tests.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invkit
from invkit.classifier import Classifier, ClassifierConfig


def _tiny_classifier() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)
    )
    return Classifier(
        net, ClassifierConfig(name="tiny.conformance", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,))
    )


# Reduced widths for the big presets, and few optimisation steps for optim: config fields of each method.
SMALL = {"biggan_proj": {"ch": 4}, "dosovitskiy_brox": {"width_mult": 0.125}, "optim": {"steps": 3}}


def _build(name: str) -> invkit.Inverter:
    return invkit.create_inverter(name, classifier=_tiny_classifier(), **SMALL.get(name.split(".")[0], {}))


def _invert(inv: invkit.Inverter, logits: torch.Tensor, seed: int) -> torch.Tensor:
    context = torch.enable_grad() if inv.registry_name.startswith("optim") else torch.no_grad()
    with context:
        return inv.invert(logits, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", invkit.list_inverters())
def test_inverter_conformance(name, tmp_path):
    clf = _tiny_classifier()
    inv = _build(name).eval()
    assert inv.num_classes == 10 and inv.image_shape[0] == 1
    x = torch.rand(2, 1, 28, 28)
    # What the inverter inverts: logits, or what its optional targets(images) gives (optim.robust: penultimate)
    logits = inv.targets(x) if hasattr(inv, "targets") else clf.logits(x)
    out = _invert(inv, logits, seed=1)
    again = _invert(inv, logits, seed=1)
    assert out.shape == (2, *inv.image_shape)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    assert torch.equal(out, again), "the same generator seed must give the same images"

    inv.save(tmp_path / "ck")
    loaded = invkit.load_inverter(tmp_path / "ck", classifier=clf)
    assert loaded.config == inv.config
    assert torch.equal(_invert(loaded, logits, seed=1), out)

    with pytest.raises(invkit.InputError, match=rf"\(N, {logits.shape[1]}\)"):
        inv.invert(torch.randn(2, 7))
    with pytest.raises(invkit.InputError):
        inv.invert(torch.randn(10))


@pytest.mark.parametrize("name", invkit.list_inverters())
def test_inverter_is_trainable_or_says_why_not(name):
    inv = _build(name)
    if inv.trainable:
        trainer = inv.make_trainer(_tiny_classifier())
        assert isinstance(trainer, invkit.InverterTrainer)
    else:
        with pytest.raises(invkit.TrainingError, match="no training step"):
            inv.make_trainer(_tiny_classifier())
