"""Classifier.features / logits_and_features / layer_names on every in-house network (tiny random widths) and on
the conformance classifier: shapes, agreement with the logits, the penultimate rule, gradients and bad layer names."""

from __future__ import annotations

import warnings

import pytest
import torch

import invkit
from invkit.testing import tiny_classifier

NETS = {  # registry name -> (factory options, penultimate width = the head's input)
    "smallcnn.base": ({"width": 4}, 128),
    "resnet18s.base": ({"width": 4, "channels": 3, "input_size": 32}, 32),
    "vgg11s.base": ({"width": 2, "channels": 1, "input_size": 28}, 16),
}


def _build(name: str) -> invkit.Classifier:
    torch.manual_seed(0)
    with warnings.catch_warnings():  # random weights: fine for shapes
        warnings.simplefilter("ignore")
        return invkit.create_classifier(name, **NETS[name][0])


@pytest.mark.parametrize("name", list(NETS))
def test_penultimate_is_the_head_input_and_matches_the_logits(name, one_thread):
    clf = _build(name)
    x = torch.rand(3, 1, 28, 28)
    feats = clf.features(x)
    assert feats.shape == (3, NETS[name][1])
    logits, feats2 = clf.logits_and_features(x)
    assert torch.allclose(feats, feats2) and torch.allclose(logits, clf.logits(x))
    head = [m for m in clf.network.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert torch.allclose(head(feats), logits, atol=1e-5)  # it is what the last linear layer was fed


@pytest.mark.parametrize("name", list(NETS))
def test_named_layers_pooled_and_spatial(name, one_thread):
    clf = _build(name)
    names = clf.layer_names()
    assert names[0] == "penultimate" and all(n in dict(clf.network.named_modules()) for n in names[1:])
    x = torch.rand(2, 3, 32, 32)
    first_conv = next(n for n, m in clf.network.named_modules() if isinstance(m, torch.nn.Conv2d))
    spatial = clf.features(x, first_conv, pooled=False)
    c, h, w = clf.config.input_size
    assert spatial.dim() == 4 and spatial.shape[0] == 2 and spatial.shape[-2:] == (h, w)
    assert torch.allclose(clf.features(x, first_conv), spatial.mean(dim=(2, 3)))


def test_a_layer_before_an_inplace_relu_is_its_own_output(one_thread):
    """smallcnn's first convolution is followed by ReLU(inplace=True): the copy keeps the negative values."""
    clf = _build("smallcnn.base")
    x = torch.rand(2, 1, 28, 28)
    conv = clf.features(x, "features.0", pooled=False)
    expected = clf.network.features[0](clf.preprocess(x))
    assert torch.allclose(conv, expected) and (conv < 0).any()


def test_gradients_reach_the_images(one_thread):
    clf = tiny_classifier()
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    clf.features(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_names_the_nearest(one_thread):
    clf = _build("vgg11s.base")
    with pytest.raises(invkit.InputError, match=r"no layer 'featurs\.3' \(nearest: features\.3") as err:
        clf.features(torch.rand(1, 1, 28, 28), "featurs.3")
    assert "\n" not in str(err.value) and "layer_names()" in str(err.value)


def test_a_network_without_a_linear_layer_has_no_penultimate(one_thread):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 10, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    clf = invkit.Classifier(net, invkit.ClassifierConfig(name="conv.head", num_classes=10, input_size=(1, 28, 28),
                                                         mean=(0.5,), std=(0.5,)))  # fmt: skip
    with pytest.raises(invkit.InputError, match="calls no nn.Linear"):
        clf.features(torch.rand(1, 1, 28, 28))
    assert clf.features(torch.rand(2, 1, 28, 28), "0").shape == (2, 10)
