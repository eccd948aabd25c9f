"""Tests of the Dosovitskiy & Brox (2016) baseline: loss terms on known inputs, shapes, errors, save/load, seeds,
exact resume and a few training steps. Tiny seeded models only."""

from __future__ import annotations

import math

import pytest
import torch
from invkit_plugins.dosovitskiy_brox import (
    Comparator,
    DosovitskiyBroxConfig,
    DosovitskiyBroxInverter,
    adversarial_loss,
    discriminator_loss,
    feature_loss,
    pixel_loss,
)
from torch import nn

import invkit
from invkit.io import load_train_state, save_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_classifier(seed: int = 0, size: int = 8) -> invkit.Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * (size // 2) ** 2, 8),
        nn.ReLU(),
        nn.Linear(8, 10),
    )
    cfg = invkit.ClassifierConfig(name="tiny.test", num_classes=10, input_size=(1, size, size), mean=(0.5,), std=(0.5,))
    return invkit.Classifier(net, cfg)


def tiny_inverter(clf: invkit.Classifier, seed: int = 0, **kw) -> DosovitskiyBroxInverter:
    torch.manual_seed(seed)
    kw = {"resolution": 8, "fc_dim": 16, "start_channels": 8, "min_channels": 4, "d_channels": 4, "d_fc_dim": 16, **kw}
    return invkit.create_inverter("dosovitskiy_brox.mnist", classifier=clf, **kw)


# ------------------------------------------------------------------------------------------------ loss terms
def test_pixel_loss_known_value():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.full((2, 1, 4, 4), 0.5)
    b[0, 0, 0, 0] = 1.5  # one element with error 1.5^2 = 2.25 instead of 0.25
    expected = (31 * 0.25 + 2.25) / 32
    assert pixel_loss(a, b).item() == pytest.approx(expected)


def test_feature_loss_with_a_known_linear_comparator():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0], [2.0], [-1.0]]).expand(3, 64) / 64)
        net[1].bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    cfg = invkit.ClassifierConfig(name="lin.test", num_classes=3, input_size=(1, 8, 8), mean=(0.0,), std=(1.0,))
    comp = Comparator(invkit.Classifier(net, cfg), "logits")
    x1, x2 = torch.full((1, 1, 8, 8), 0.25), torch.full((1, 1, 8, 8), 0.75)
    # Features of a constant image c: c * (1, 2, -1) + (0.5, 0, -0.5).
    assert torch.allclose(comp(x1), torch.tensor([[0.75, 0.5, -0.75]]))
    # Difference (0.5, 1.0, -0.5): mean of squares (0.25 + 1 + 0.25) / 3 = 0.5.
    assert feature_loss(comp(x1), comp(x2)).item() == pytest.approx(0.5)


def test_comparator_penultimate_and_named_layers():
    clf = tiny_classifier()
    x = torch.rand(3, 1, 8, 8)
    net = clf.network
    pre = net[:5](clf.preprocess(x))  # input of the last Linear
    assert torch.allclose(Comparator(clf, "penultimate")(x), pre)
    assert torch.allclose(Comparator(clf, "0")(x), net[0](clf.preprocess(x)).flatten(1))
    with pytest.raises(invkit.InvkitError, match="no module 'conv9'"):
        Comparator(clf, "conv9")


def test_comparator_spatial_is_the_deepest_feature_map_and_the_default():
    clf = tiny_classifier()
    x = torch.rand(3, 1, 8, 8)
    net = clf.network
    conv_map = net[:2](clf.preprocess(x))  # ReLU(conv): (3, 4, 4, 4), the last map before Flatten
    assert torch.allclose(Comparator(clf, "spatial")(x), conv_map.flatten(1))
    assert DosovitskiyBroxConfig().comparator_layer == "spatial"  # the paper compares AlexNet conv5 maps
    flat = invkit.Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), clf.config)
    with pytest.raises(invkit.InvkitError, match="no \\(N, C, H, W\\) map"):
        Comparator(flat, "spatial")(x)


def test_comparator_close_removes_every_hook():
    clf = tiny_classifier()
    comp = Comparator(clf, "spatial")
    comp.close()
    assert all(not m._forward_hooks for m in clf.network.modules())


def test_adversarial_and_discriminator_loss_formulas():
    # Two-way softmax, index 1 = real: -log D = log(1 + exp(l0 - l1)).
    assert adversarial_loss(torch.tensor([[0.0, 0.0]])).item() == pytest.approx(math.log(2))
    assert adversarial_loss(torch.tensor([[2.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(
        (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2
    )
    # L_discr = -log D(real) - log(1 - D(generated)).
    real, fake = torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 0.0]])
    assert discriminator_loss(real, fake).item() == pytest.approx(
        math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-1.0))
    )


# ---------------------------------------------------------------------------------------------- the inverter
@pytest.mark.parametrize("resolution", [8, 28, 32])
def test_output_shape_and_range(resolution):
    clf = tiny_classifier()
    inv = tiny_inverter(clf, resolution=resolution)
    out = inv.invert(torch.randn(5, 10) * 10)
    assert out.shape == (5, 1, resolution, resolution)
    assert out.min() >= 0 and out.max() <= 1
    assert inv.noise_dim == 0


def test_generator_follows_the_published_layer_sequence():
    # Dosovitskiy & Brox's fc generator at 256 px: deconv5 256, conv5_1 512, deconv4 256, conv4_1 256, deconv3 128,
    # conv3_1 128, deconv2 64, deconv1 32, deconv0 3 (fc widths kept small here: they are tested below).
    inv = invkit.create_inverter("dosovitskiy_brox.paper", num_classes=10, channels=3, resolution=256, fc_dim=8)
    layers = [m for m in inv.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    kinds = ["up" if isinstance(m, nn.ConvTranspose2d) else "conv" for m in layers]
    assert kinds == ["up", "conv", "up", "conv", "up", "conv", "up", "up", "up"]
    outs = [m.out_channels for m in layers]
    assert outs == [256, 512, 256, 256, 128, 128, 64, 32, 3]
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m, k in zip(layers, kinds) if k == "up")
    assert all(m.kernel_size == (3, 3) for m, k in zip(layers, kinds) if k == "conv")
    assert [m.out_features for m in inv.fc if isinstance(m, nn.Linear)] == [8, 8, 256 * 4 * 4]
    # Scaled to 32 px: the first two stages, then the image layer.
    small = invkit.create_inverter("dosovitskiy_brox.paper", num_classes=10, channels=1, resolution=32, fc_dim=8)
    assert [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)] == [
        256,
        512,
        256,
        256,
        1,
    ]


def test_odd_or_tiny_resolution_is_refused():
    for resolution in (6, 7, 27):
        with pytest.raises(invkit.InputError, match="even resolution of at least 8"):
            invkit.create_inverter("dosovitskiy_brox.mnist", num_classes=10, resolution=resolution)


def test_paper_preset_has_the_paper_widths():
    cfg = DosovitskiyBroxConfig()  # what dosovitskiy_brox.paper builds (building it allocates 70M weights)
    assert (cfg.fc_dim, cfg.fc_layers, cfg.start_channels, cfg.leak) == (4096, 3, 256, 0.3)
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.d_pause_ratio) == (2e-4, 0.9, 0.999, 0.1)


def test_wrong_logits_raise_input_error():
    inv = tiny_inverter(tiny_classifier())
    with pytest.raises(invkit.InputError, match=r"shape \(N, 10\)"):
        inv.invert(torch.randn(2, 7))
    with pytest.raises(invkit.InputError, match="unsqueeze"):
        inv.invert(torch.randn(10))
    with pytest.raises(invkit.InputError, match="has no option 'widht_mult' .did you mean 'width_mult'"):
        invkit.create_inverter("dosovitskiy_brox.mnist", num_classes=10, widht_mult=2)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    clf = tiny_classifier()
    inv = tiny_inverter(clf).eval()
    z = torch.randn(4, 10)
    inv.save(tmp_path / "ckpt")
    loaded = invkit.load_inverter(tmp_path / "ckpt")
    assert loaded.registry_name == "dosovitskiy_brox.mnist"
    assert loaded.config == inv.config
    assert torch.equal(loaded.invert(z), inv.invert(z))


def test_same_seed_same_weights_and_training():
    clf = tiny_classifier()
    x = torch.rand(6, 1, 8, 8)
    batch = (x, clf.logits(x))
    outs = []
    for _ in range(2):
        inv = tiny_inverter(clf, seed=3)
        torch.manual_seed(7)
        trainer = inv.make_trainer(clf)
        for step in range(3):
            trainer.train_step(lambda: batch, step)
        outs.append(inv.invert(batch[1]).detach())
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(tiny_inverter(clf, seed=3).invert(batch[1]), tiny_inverter(clf, seed=4).invert(batch[1]))


def test_training_reduces_the_pixel_loss():
    clf = tiny_classifier()
    inv = tiny_inverter(clf)
    torch.manual_seed(0)
    x = torch.linspace(0.05, 0.95, 8).view(8, 1, 1, 1).expand(8, 1, 8, 8).contiguous()  # 8 flat grey levels
    batch = (x, clf.logits(x))
    trainer = inv.make_trainer(clf, lr=2e-3)
    first = trainer.train_step(lambda: batch, 0)
    for step in range(1, 80):
        last = trainer.train_step(lambda: batch, step)
    assert set(first) >= {"img", "feat", "adv", "discr", "loss_g"}
    assert last["img"] < 0.6 * first["img"]


def test_trainer_state_round_trip_resumes_exactly(tmp_path):
    clf = tiny_classifier()
    x = torch.rand(6, 1, 8, 8)
    batch = (x, clf.logits(x))
    inv = tiny_inverter(clf)
    trainer = inv.make_trainer(clf)
    for step in range(2):
        trainer.train_step(lambda: batch, step)
    inv.save(tmp_path / "ckpt", train_state=trainer.state_dict())
    trainer.train_step(lambda: batch, 2)

    resumed = invkit.load_inverter(tmp_path / "ckpt").train()
    t2 = resumed.make_trainer(clf)
    t2.load_state_dict(load_train_state(tmp_path / "ckpt" / "train_state.safetensors"))
    t2.train_step(lambda: batch, 2)
    for a, b in zip(inv.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(trainer.discriminator.state_dict().values(), t2.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    save_train_state(tmp_path / "again.safetensors", t2.state_dict())  # plain tensors and containers only


def test_discriminator_pauses_below_the_ratio():
    clf = tiny_classifier()
    x = torch.rand(4, 1, 8, 8)
    batch = (x, clf.logits(x))
    trainer = tiny_inverter(clf).make_trainer(clf, d_pause_ratio=1e9)  # ratio never reached: D never updates
    before = [p.clone() for p in trainer.discriminator.parameters()]
    losses = trainer.train_step(lambda: batch, 0)
    assert losses["d_updated"] == 0.0 and trainer.d_skips == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))


def test_distribute_wraps_generator_and_discriminator():
    clf = tiny_classifier()
    inv = tiny_inverter(clf)
    trainer = inv.make_trainer(clf)
    wrapped = []
    trainer.distribute(lambda m: wrapped.append(m) or m)
    assert wrapped == [inv, trainer.discriminator]


def test_trainer_rejects_unknown_options():
    clf = tiny_classifier()
    with pytest.raises(invkit.InputError, match="trainer has no option 'lamda_pix'"):
        tiny_inverter(clf).make_trainer(clf, lamda_pix=1.0)


def test_invkit_train_runs_a_few_steps(tmp_path):
    from invkit.cli import main

    torch.manual_seed(0)
    clf = invkit.create_classifier("smallcnn.base", width=2)
    with torch.no_grad():  # spread the untrained logits, so that the run's collapse check sees distinct samples
        clf.network.head[-1].weight.mul_(100)
    clf.save(tmp_path / "clf")
    out = tmp_path / "run"
    args = [
        "train",
        "--classifier",
        str(tmp_path / "clf"),
        "--inverter",
        "dosovitskiy_brox.mnist",
        "--data",
        "default",
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--save-every",
        "3",
        "--sample-every",
        "0",
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--no-cache-logits",
        "-o",
        "fc_dim=16",
        "-o",
        "start_channels=8",
    ]
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)
    ckpts = sorted((out / "checkpoints").iterdir())
    inv = invkit.load_inverter(ckpts[-1])
    assert inv.invert(torch.randn(2, 10)).shape == (2, 1, 32, 32)
