"""Issue 22's paper variants: compare_gan's G and D details in biggan_proj, Engstrom et al.'s fake_relu and
Mahendran & Vedaldi's optimiser in optim, and bench's one-resolution warning. Each test fails if the variant drifts
from its source, if a `.paper` preset stops using it, or if another preset or an older checkpoint picks it up."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from invkit_plugins.biggan_proj import PRESETS
from invkit_plugins.biggan_proj.model import (
    BigGANConfig,
    CondBatchNorm,
    DBlock,
    Discriminator,
    Generator,
    unpool,
)
from invkit_plugins.optim.optimization import FakeReLU, fake_relu_hooks

import invkit
from invkit.errors import InputError
from invkit.evaluation.resolutions import resolution_warnings
from invkit.testing import tiny_classifier

COMPARE_GAN = {
    "upsample": "unpool",
    "cbn": "compare_gan",
    "d_shortcut": "none",
    "d_input_range": "0..1",
    "init": "compare_gan",
}


def tiny(**kw) -> BigGANConfig:
    base = dict(num_classes=10, channels=1, resolution=32, ch=4, cbn_hidden=8, g_attention=0, d_attention=0)
    return BigGANConfig(**(base | kw))


# ------------------------------------------------------------------------------------------------- point 3
def _tf_unpool_nhwc(value: torch.Tensor) -> torch.Tensor:
    """compare_gan's resnet_ops.unpool step by step on an NHWC tensor: reshape to [-1, W, C], concatenate zeros
    along axis 2 then axis 1, reshape to [B, 2H, 2W, C]."""
    b, h, w, c = value.shape
    out = value.reshape(-1, w, c)
    for axis in (2, 1):
        out = torch.cat([out, torch.zeros_like(out)], dim=axis)
    return out.reshape(b, 2 * h, 2 * w, c)


def test_unpool_is_compare_gans_zero_insertion():
    x = torch.randn(2, 3, 4, 5)
    out = unpool(x)
    assert out.shape == (2, 3, 8, 10)
    assert torch.equal(out[:, :, 0::2, 0::2], x)
    mask = torch.ones_like(out, dtype=torch.bool)
    mask[:, :, 0::2, 0::2] = False
    assert torch.count_nonzero(out[mask]) == 0
    reference = _tf_unpool_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.equal(out, reference)


def test_g_blocks_upsample_as_configured():
    torch.manual_seed(0)
    near = Generator(tiny())
    unp = Generator(tiny(upsample="unpool"))
    unp.load_state_dict(near.state_dict())  # same weights: only the upsampling differs
    block_n, block_u = near.blocks[0].eval(), unp.blocks[0].eval()
    x, cond = torch.randn(2, 16, 4, 4), torch.randn(2, 10 + near.chunk)
    with torch.no_grad():
        h = block_u.conv1(unpool(F.relu(block_u.bn1(x, cond))))
        expected = block_u.conv2(F.relu(block_u.bn2(h, cond))) + block_u.conv_sc(unpool(x))
        assert torch.allclose(block_u(x, cond), expected, atol=1e-6)
        assert not torch.allclose(block_n(x, cond), expected, atol=1e-3)


# ------------------------------------------------------------------------------------------------- point 4
def test_compare_gan_cbn_path_parameter_counts_match_the_docs():
    with torch.device("meta"):
        g = Generator(BigGANConfig(cbn="compare_gan"))
    cbn = sum(p.numel() for m in g.modules() if isinstance(m, CondBatchNorm) for p in m.parameters())
    assert sum(p.numel() for p in g.parameters()) == 70_239_108  # docs/biggan_proj.md, compare_gan column
    assert cbn == 2_159_616 and g.embed.weight.numel() == 128_000 and g.embed.bias is None


def test_compare_gan_cbn_is_one_linear_layer_without_plus_one():
    torch.manual_seed(0)
    cbn = CondBatchNorm(6, 5, hidden=99, bn_eps=1e-5, sn_eps=1e-6, variant="compare_gan").eval()
    assert cbn.gain.bias is None and cbn.bias.bias is None
    h, cond = torch.randn(3, 6, 2, 2), torch.randn(3, 5)
    with torch.no_grad():
        gamma, beta = cbn.gain(cond)[:, :, None, None], cbn.bias(cond)[:, :, None, None]
        assert torch.allclose(cbn(h, cond), cbn.bn(h) * gamma + beta, atol=1e-6)


def test_compare_gan_generator_conditions_on_noise_chunk_and_shared_embedding():
    torch.manual_seed(0)
    g = Generator(tiny(cbn="compare_gan")).eval()
    assert not hasattr(g.embed, "parametrizations")  # compare_gan: embed_y without spectral norm
    seen = []
    g.blocks[1].bn1.gain.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    noise, logits = torch.randn(2, 120), torch.randn(2, 10)
    with torch.no_grad():
        g(noise, logits)
        chunk = torch.split(noise, g.chunk, dim=1)[2]
        assert torch.equal(seen[0], torch.cat([chunk, g.embed(logits)], dim=1))


# ------------------------------------------------------------------------------------------------- point 6
def test_d_block_without_skip_where_widths_agree():
    torch.manual_seed(0)
    block = DBlock(8, 8, downsample=False, preactivation=True, sn_eps=1e-6, shortcut="none").eval()
    assert block.conv_sc is None
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), block.conv2(F.relu(block.conv1(F.relu(x)))), atol=1e-6)
    with_skip = DBlock(8, 8, downsample=False, preactivation=True, sn_eps=1e-6).eval()
    with_skip.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert torch.allclose(with_skip(x), block(x) + x, atol=1e-6)
    d = Discriminator(BigGANConfig(ch=2, num_classes=4, d_shortcut="none"))  # the paper's 64x64 layout
    assert [b.skip for b in d.blocks] == [True, True, True, True, False]


def test_d_input_range_zero_one_sees_what_compare_gans_d_sees():
    torch.manual_seed(0)
    signed = Discriminator(tiny()).eval()
    unit = Discriminator(tiny(d_input_range="0..1")).eval()
    unit.load_state_dict(signed.state_dict())
    x, z = torch.rand(2, 1, 32, 32) * 2 - 1, torch.randn(2, 10)
    with torch.no_grad():
        assert torch.allclose(unit(x, z), signed((x + 1) / 2, z), atol=1e-5)


# ------------------------------------------------------------------------------------------------ point 11
def test_compare_gan_init_zero_biases_and_glorot_normal_embedding():
    torch.manual_seed(0)
    cfg = BigGANConfig(num_classes=400, channels=3, ch=4, init="compare_gan", g_attention=0, d_attention=0)
    for net in (Generator(cfg), Discriminator(cfg)):
        biases = [m.bias for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
        assert all(b is None or not b.any() for b in biases)
    w = Discriminator(cfg).embed.parametrizations.weight.original  # (128, 400) before spectral norm
    std = math.sqrt(2.0 / sum(w.shape))
    assert w.std().item() == pytest.approx(std, rel=0.05)  # Glorot variance (the truncation is rescaled)
    assert w.abs().max().item() <= 2 * std / 0.87962566103423978 + 1e-6  # truncated at 2 of its stddevs
    torch.manual_seed(0)
    default = Discriminator(dataclasses.replace(cfg, init="pytorch"))
    assert any(m.bias.abs().sum() > 0 for m in default.modules() if isinstance(m, torch.nn.Conv2d))


# ---------------------------------------------------------------------------------------------- presets
def test_paper_preset_uses_compare_gan_and_the_others_keep_the_defaults():
    inv = invkit.create_inverter("biggan_proj.paper", num_classes=10, channels=1, resolution=32, ch=4, cbn_hidden=8)
    assert {k: getattr(inv.config, k) for k in COMPARE_GAN} == COMPARE_GAN
    for tag, (values, _) in PRESETS.items():
        if tag != "paper":
            assert not set(values) & set(COMPARE_GAN), tag
    assert {k: getattr(BigGANConfig(), k) for k in COMPARE_GAN} == BigGANConfig.checkpoint_legacy


def test_a_checkpoint_without_the_new_fields_loads_as_it_was_trained(tmp_path):
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.paper", **dataclasses.asdict(tiny(**BigGANConfig.checkpoint_legacy)))
    inv.save(tmp_path / "old")
    doc = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in COMPARE_GAN:
        del doc["config"][key]  # as written before issue 22
    (tmp_path / "old" / "config.json").write_text(json.dumps(doc))
    loaded = invkit.load_inverter(tmp_path / "old")
    assert {k: getattr(loaded.config, k) for k in COMPARE_GAN} == BigGANConfig.checkpoint_legacy
    z, e = torch.randn(2, 10), torch.randn(2, 120)
    assert torch.equal(loaded.invert(z, noise=e), inv.invert(z, noise=e))
    new = invkit.create_inverter("biggan_proj.paper", **dataclasses.asdict(tiny(**COMPARE_GAN)))
    new.save(tmp_path / "new")  # written now: every field stored, compare_gan's values kept
    assert {k: getattr(invkit.load_inverter(tmp_path / "new").config, k) for k in COMPARE_GAN} == COMPARE_GAN


@pytest.mark.parametrize("field", sorted(COMPARE_GAN))
def test_unknown_variant_value_is_refused(field):
    with pytest.raises(InputError, match=field):
        invkit.create_inverter("biggan_proj.mnist32", num_classes=10, channels=1, **{field: "bogus"})


# ------------------------------------------------------------------------------------------------- point 9
def test_fake_relu_forward_is_relu_and_backward_is_identity():
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5], requires_grad=True)
    y = FakeReLU.apply(x)
    assert torch.equal(y, F.relu(x))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g, torch.ones(4))


def _last_block_manual(block: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    if hasattr(block, "relu"):  # torchvision BasicBlock
        out = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))
        return FakeReLU.apply(out + (block.downsample(h) if block.downsample is not None else h))
    out = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h)))))
    return FakeReLU.apply(out + block.shortcut(h))


def _networks():
    import torchvision
    from invkit_plugins.inhouse.models import ResNet18S

    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=5).eval()
    tv_head = lambda h: tv.fc(torch.flatten(tv.avgpool(h), 1))  # noqa: E731
    tv_body = lambda x: tv.layer4[0](tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))  # noqa: E731
    ours = ResNet18S(channels=3, num_classes=5, width=4).eval()
    ours_head = lambda h: ours.fc(ours.pool(h).flatten(1))  # noqa: E731
    ours_body = lambda x: ours.stages[-1][0](ours.stages[:-1](ours.stem(x)))  # noqa: E731
    return [(tv, tv.layer4[-1], tv_body, tv_head), (ours, ours.stages[-1][-1], ours_body, ours_head)]


@pytest.mark.parametrize("index", [0, 1], ids=["torchvision_resnet18", "inhouse_resnet18s"])
def test_fake_relu_hooks_fake_only_the_last_relu(index, one_thread):
    net, last, body, head = _networks()[index]
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    plain = net(x)
    with fake_relu_hooks(net) as found:
        faked = net(x)
        (g_hooks,) = torch.autograd.grad(faked.sum(), x)
    assert found and torch.equal(plain, faked)  # forward values unchanged
    (g_manual,) = torch.autograd.grad(head(_last_block_manual(last, body(x))).sum(), x)
    (g_plain,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.allclose(g_hooks, g_manual, atol=1e-6)
    assert not torch.allclose(g_hooks, g_plain, atol=1e-6)  # the hooks did change the gradient
    assert not net._forward_hooks and not last._forward_hooks  # removed on exit


def test_optim_presets_fake_relu_and_optimiser():
    clf = tiny_classifier()
    assert invkit.create_inverter("optim.robust", classifier=clf).config.fake_relu is True
    assert invkit.create_inverter("optim.mv15", classifier=clf).config.fake_relu is False
    paper = invkit.create_inverter("optim.mv15_paper", classifier=clf)
    assert (paper.config.optimizer, paper.config.momentum) == ("sgd_momentum", 0.9)
    assert invkit.create_inverter("optim.mv15", classifier=clf).config.optimizer == "adam"  # bench numbers kept


def test_fake_relu_warns_on_a_classifier_without_a_resnet_block(mnist_batch, one_thread):
    clf = tiny_classifier()
    inv = invkit.create_inverter("optim.robust", classifier=clf, steps=2)
    images, _ = mnist_batch
    with pytest.warns(UserWarning, match="fake_relu is on but"):
        inv.invert(inv.targets(images[:2]), generator=torch.Generator().manual_seed(0))


def test_momentum_sgd_lowers_the_objective(mnist_batch, one_thread):
    clf = tiny_classifier()
    images, _ = mnist_batch
    z = clf.logits(images[:4]).detach()
    losses = []
    for steps in (0, 30):
        inv = invkit.create_inverter("optim.mv15_paper", classifier=clf, steps=steps)
        _, info = inv.invert_with_info(z, generator=torch.Generator().manual_seed(0))
        losses.append(info["loss"].mean().item())
    assert losses[1] < losses[0]


# ------------------------------------------------------------------------------------------------- point 8
def test_resolution_warning_names_the_classifier_and_sizes():
    results = [
        {"classifier": "robust", "inverter": "biggan_proj", "recon_shape": [3, 64, 64]},
        {"classifier": "robust", "inverter": "dosovitskiy_brox", "recon_shape": [3, 224, 224]},
        {"classifier": "standard", "inverter": "biggan_proj", "recon_shape": [3, 64, 64]},
        {"classifier": "standard", "inverter": "dosovitskiy_brox", "recon_shape": [3, 64, 64]},
        {"classifier": "standard", "inverter": "old", "recon_shape": None},
    ]
    lines = resolution_warnings(results)
    assert len(lines) == 1
    assert lines[0].startswith("robust:") and "biggan_proj 64x64" in lines[0] and "dosovitskiy_brox 224x224" in lines[0]
    assert resolution_warnings(results[2:]) == []


def test_bench_reports_inverters_at_different_resolutions(tmp_path, one_thread):
    from invkit.evaluation.bench import Bench
    from invkit.evaluation.settings import BenchSettings

    settings = BenchSettings(
        classifiers=["invkit/assets/demo/classifier_standard"],
        inverters=["biggan_proj", "dosovitskiy_brox"],
        checkpoints=["invkit/assets/demo/biggan_standard"],
        train_steps=1,
        inverter_options={"dosovitskiy_brox": {"resolution": 16, "fc_dim": 8, "start_channels": 8}},
        n=4,
        batch_size=4,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(Bench(settings, out=tmp_path).run())
    said = [str(w.message) for w in caught if "different resolutions" in str(w.message)]
    assert len(said) == 1 and "32x32" in said[0] and "16x16" in said[0]
    assert "WARNING: " in (tmp_path / "report.md").read_text()
