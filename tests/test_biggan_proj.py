"""Paper-fidelity tests for the biggan_proj inverter (Teterwak et al. 2021): each fails if the method drifts.

Forward passes use tiny configs (ch=4); the paper-sized widths are checked from the layout tables that the
networks are built from (and the tiny networks are checked to be built from those tables).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from invkit_plugins.biggan_proj.model import (
    BigGANConfig,
    CondBatchNorm,
    Discriminator,
    Generator,
    SelfAttention,
    d_hinge_loss,
    discriminator_widths,
    g_hinge_loss,
    generator_widths,
    spectral_norm_modules,
)
from torch import nn

import invkit
from invkit import Classifier, ClassifierConfig, InputError
from invkit.io import load_train_state, save_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> BigGANConfig:
    base = dict(num_classes=10, channels=1, resolution=32, ch=4, cbn_hidden=8, g_attention=16, d_attention=16)
    return BigGANConfig(**(base | kw))


@pytest.fixture
def clf() -> Classifier:
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    return Classifier(
        net, ClassifierConfig(name="tiny.test", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,))
    )


def make_batches(clf: Classifier, n: int = 6, size: int = 32, count: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        x = torch.rand(n, 1, size, size, generator=g)
        batches.append((x, clf.logits(x)))
    return batches


def feeder(batches):
    it = iter(batches)
    return lambda: next(it)


# ------------------------------------------------------------------------------------- paper architecture
@pytest.mark.parametrize("resolution", [32, 64])
def test_spectral_norm_on_every_conv_and_linear_of_g_and_d(resolution):
    cfg = tiny(resolution=resolution, g_attention=resolution, d_attention=resolution // 2)
    for net in (Generator(cfg), Discriminator(cfg)):
        layers = spectral_norm_modules(net)
        assert len(layers) > 10
        missing = [name for name, _, has_sn in layers if not has_sn]
        assert missing == [], f"layers without spectral norm: {missing}"


def test_orthogonal_init():
    g = Generator(tiny())
    w = g.blocks[0].conv1.parametrizations.weight.original.flatten(1)  # (out, in*9): orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)


def test_paper_widths_64_ch96_equal_the_supplement_table():
    cfg = BigGANConfig()
    assert generator_widths(cfg) == [1536, 1536, 768, 384, 192]
    assert discriminator_widths(cfg) == [192, 384, 768, 1536, 1536]


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_networks_are_built_from_the_width_tables(resolution):
    cfg = tiny(resolution=resolution, g_attention=64, d_attention=32)
    g, d = Generator(cfg), Discriminator(cfg)
    gw, dw = generator_widths(cfg), discriminator_widths(cfg)
    assert g.linear.out_features == gw[0] * 16  # 4x4 initial map
    assert [b.conv2.out_channels for b in g.blocks] == gw[1:]
    assert [b.conv2.out_channels for b in d.blocks] == dw
    assert d.embed.out_features == dw[-1] and d.linear.in_features == dw[-1]
    assert g(torch.randn(2, cfg.noise_dim), torch.randn(2, 10)).shape == (2, 1, resolution, resolution)


def test_attention_at_64_in_g_and_32_in_d_for_the_paper_layout():
    cfg = tiny(resolution=64, g_attention=64, d_attention=32)
    g, d = Generator(cfg), Discriminator(cfg)
    assert list(g.attention) == [str(len(g.blocks) - 1)]  # after the last up-block (64x64)
    assert list(d.attention) == ["0"]  # after the first down-block (64 -> 32)
    assert isinstance(g.attention["3"], SelfAttention) and isinstance(d.attention["0"], SelfAttention)


def test_hierarchical_noise_one_chunk_per_block_plus_initial_linear():
    g = Generator(tiny(resolution=64, noise_dim=120))
    assert g.num_chunks == len(g.blocks) + 1 == 5 and g.chunk == 24
    assert g.linear.in_features == 24
    cbns = [m for m in g.modules() if isinstance(m, CondBatchNorm)]
    assert len(cbns) == 2 * len(g.blocks)  # every BN in the up-blocks is conditional (Eq. 3)
    for m in cbns:  # two-layer MLPs of [logits, noise chunk]
        assert len([x for x in m.gain if isinstance(x, nn.Linear)]) == 2
        assert m.gain[0].in_features == 10 + 24 and m.bias[0].in_features == 10 + 24
    with pytest.raises(InputError, match="noise_dim"):
        Generator(tiny(resolution=64, noise_dim=121))


def test_logits_change_the_output_only_through_the_cbn_mlps():
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.paper", **dataclasses.asdict(tiny()))
    noise = torch.randn(3, inv.noise_dim)
    z1, z2 = torch.randn(3, 10), torch.randn(3, 10)
    a, b = inv.invert(z1, noise=noise), inv.invert(z2, noise=noise)
    assert (a - b).abs().max() > 1e-3  # logits matter with noise fixed
    assert torch.equal(inv.invert(z1, noise=noise), a)  # and nothing else varies
    # Cut the CBN MLPs (force their output to 0, i.e. plain BN with gain 1 and bias 0): logits stop mattering.
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
        for m in inv.modules()
        if isinstance(m, CondBatchNorm)
        for m in (m.gain, m.bias)
    ]
    a0, b0 = inv.invert(z1, noise=noise), inv.invert(z2, noise=noise)
    for h in hooks:
        h.remove()
    assert torch.equal(a0, b0)
    assert not torch.equal(a0, a)


def test_discriminator_is_unconditional_term_plus_projection_eq2():
    torch.manual_seed(0)
    d = Discriminator(tiny()).eval()  # eval: spectral norm's power iteration does not move between calls
    x, z = torch.randn(4, 1, 32, 32), torch.randn(4, 10)
    out = d(x, z)
    uncond, proj = d.terms(x, z)
    assert torch.allclose(out, uncond + proj)
    psi = d.features(x)
    w1, b, w2 = d.linear.weight, d.linear.bias, d.embed.weight  # spectrally normalised weights
    assert torch.allclose(uncond, psi @ w1[0] + b[0], atol=1e-5)
    assert torch.allclose(proj, ((z @ w2.T) * psi).sum(1), atol=1e-4)
    assert torch.allclose(d(x, torch.zeros_like(z)), uncond, atol=1e-5)  # zero logits: no projection term
    assert torch.allclose(d(x, 2 * z) - uncond, 2 * proj, atol=1e-4)  # projection is linear in the logits


def test_hinge_losses_equal_their_formula():
    d_real = torch.tensor([2.0, 0.5, -1.0])
    d_fake = torch.tensor([-2.0, 0.0, 0.5])
    real, fake = d_hinge_loss(d_real, d_fake)
    assert real.item() == pytest.approx((0.0 + 0.5 + 2.0) / 3)  # mean(max(0, 1 - D(x)))
    assert fake.item() == pytest.approx((0.0 + 1.0 + 1.5) / 3)  # mean(max(0, 1 + D(G(e, z))))
    assert g_hinge_loss(d_fake).item() == pytest.approx(-(-2.0 + 0.0 + 0.5) / 3)  # -mean(D(G(e, z)))


def test_default_hyper_parameters_equal_the_paper(clf):
    cfg = BigGANConfig()
    assert (cfg.resolution, cfg.ch, cfg.noise_dim) == (64, 96, 120)
    assert (cfg.g_lr, cfg.d_lr, cfg.beta1, cfg.beta2) == (1e-4, 5e-4, 0.0, 0.999)
    assert cfg.num_d_steps == 2 and cfg.ema_decay == 0.9999
    # The paper's compare_gan config: TF Adam's epsilon and ModularGAN's ema_start_step (not BigGAN-PyTorch's).
    assert (cfg.adam_eps, cfg.ema_start) == (1e-8, 40000)
    # Two conditional batch-norms per residual up-block (compare_gan BigGanResNetBlock bn1/bn2, Eq. 3).
    block = Generator(tiny()).blocks[0]
    assert sum(isinstance(m, CondBatchNorm) for m in block.modules()) == 2
    assert (cfg.g_attention, cfg.d_attention) == (64, 32)
    assert (cfg.paper_batch_size, cfg.paper_steps) == (2048, 250000)
    # The registered paper preset and its trainer use exactly these values, with compare_gan's variants (issue 22;
    # tests/test_paper_variants.py checks those).
    inv = invkit.create_inverter("biggan_proj.paper", classifier=clf, ch=4, cbn_hidden=8)
    compare_gan = {k: getattr(inv.config, k) for k in BigGANConfig.checkpoint_legacy}
    assert compare_gan == {
        "upsample": "unpool",
        "cbn": "compare_gan",
        "d_shortcut": "none",
        "d_input_range": "0..1",
        "init": "compare_gan",
    }
    assert (
        dataclasses.replace(
            inv.config,
            ch=96,
            cbn_hidden=cfg.cbn_hidden,
            num_classes=cfg.num_classes,
            channels=cfg.channels,
            **BigGANConfig.checkpoint_legacy,
        )
        == cfg
    )
    tr = inv.make_trainer(clf)
    for opt, lr in ((tr.opt_G, 1e-4), (tr.opt_D, 5e-4)):
        group = opt.param_groups[0]
        assert group["lr"] == lr and group["betas"] == (0.0, 0.999) and group["eps"] == cfg.adam_eps
    assert tr.num_d_steps == 2 and tr.ema_decay == 0.9999 and tr.ema_start == cfg.ema_start


# ------------------------------------------------------------------------------------- inverter interface
def test_factory_takes_shape_from_the_classifier_and_registers_presets(clf):
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch=4)
    assert inv.num_classes == 10 and inv.image_shape == (1, 32, 32) and inv.noise_dim == 120
    names = invkit.list_inverters("biggan_proj.*")
    assert {"biggan_proj.paper", "biggan_proj.mnist32"} <= set(names)
    assert all(e.description for e in invkit.get_registry("inverter").entries("biggan_proj.*"))
    with pytest.raises(InputError, match="biggan_proj.paper has no option 'widht'"):  # invkit.check_options
        invkit.create_inverter("biggan_proj.paper", classifier=clf, widht=3)


def test_invert_shape_range_and_errors():
    inv = invkit.create_inverter("biggan_proj.paper", **dataclasses.asdict(tiny(resolution=64, g_attention=64)))
    out = inv.invert(torch.randn(5, 10) * 20, generator=torch.Generator().manual_seed(1))
    assert out.shape == (5, 1, 64, 64)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(InputError):
        inv.invert(torch.randn(5, 11))
    with pytest.raises(InputError):
        inv.invert(torch.randn(10))
    with pytest.raises(InputError):
        inv.invert(torch.randn(5, 10), noise=torch.randn(5, 7))


def test_invert_is_reproducible_with_a_generator():
    inv = invkit.create_inverter("biggan_proj.paper", **dataclasses.asdict(tiny()))
    z = torch.randn(3, 10)
    a = inv.invert(z, generator=torch.Generator().manual_seed(3))
    b = inv.invert(z, generator=torch.Generator().manual_seed(3))
    c = inv.invert(z, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_save_load_round_trip(tmp_path, clf):
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch=4, cbn_hidden=8)
    with torch.no_grad():  # move BN statistics away from their defaults so that they are checked too
        for name, buf in inv.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
    inv.save(tmp_path / "ckpt")
    back = invkit.load_inverter(tmp_path / "ckpt", classifier=clf)
    assert back.registry_name == "biggan_proj.mnist32" and back.config == inv.config
    assert set(back.state_dict()) == set(inv.state_dict())
    assert all(k.startswith("generator.") for k in back.state_dict())  # G only, no discriminator
    z, e = torch.randn(2, 10), torch.randn(2, 120)
    assert torch.equal(back.invert(z, noise=e), inv.invert(z, noise=e))


# --------------------------------------------------------------------------------------------------- trainer
def test_train_step_two_d_steps_then_one_g_step(clf):
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **dataclasses.asdict(tiny()))
    tr = inv.make_trainer(clf, seed=0)
    calls = []
    batches = make_batches(clf)

    def next_batch():
        calls.append(1)
        return batches[len(calls) - 1]

    d_before = [p.detach().clone() for p in tr.D.parameters()]
    g_before = [p.detach().clone() for p in tr.G.parameters()]
    losses = tr.train_step(next_batch, 0)
    assert len(calls) == 3  # 2 D steps + 1 G step, each on a fresh batch
    assert {"d_loss_real", "d_loss_fake", "g_loss"} <= set(losses)
    assert all(isinstance(v, float) for v in losses.values())
    assert any(not torch.equal(a, p) for a, p in zip(d_before, tr.D.parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(g_before, tr.G.parameters()))
    assert tr.inference_inverter() is not inv  # the EMA copy is what gets saved


def test_ema_tracks_g_before_ema_start_and_averages_after(clf):
    batches = make_batches(clf, count=3)
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **dataclasses.asdict(tiny()))
    tr = inv.make_trainer(clf, seed=0, ema_start=10)
    tr.train_step(feeder(batches), 0)  # 1 G step < ema_start: the EMA copy equals G
    g = dict(tr.inverter.named_parameters())
    assert all(torch.equal(p, g[k]) for k, p in tr.ema.named_parameters())

    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **dataclasses.asdict(tiny()))
    before = {k: p.detach().clone() for k, p in inv.named_parameters()}
    tr = inv.make_trainer(clf, seed=0, ema_start=0, ema_decay=0.75)
    tr.train_step(feeder(batches), 0)  # ema = 0.75 * ema + 0.25 * G
    g = dict(tr.inverter.named_parameters())
    for k, p in tr.ema.named_parameters():
        assert torch.allclose(p, 0.75 * before[k] + 0.25 * g[k], atol=1e-6)
    assert any(not torch.equal(p, g[k]) for k, p in tr.ema.named_parameters())


def test_training_is_deterministic_and_resumes_bit_identically(tmp_path, clf):
    batches = make_batches(clf, n=4, count=6)

    def fresh():
        torch.manual_seed(0)
        inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **dataclasses.asdict(tiny()))
        return inv.make_trainer(clf, ema_start=1)

    a = fresh()
    for s in range(2):
        a.train_step(feeder(batches[3 * s : 3 * s + 3]), s)

    b = fresh()
    b.train_step(feeder(batches[0:3]), 0)
    save_train_state(tmp_path / "state.safetensors", b.state_dict())
    c = fresh()  # a new process would rebuild the trainer and load the saved state
    torch.manual_seed(123)  # global RNG differs on purpose: the trainer draws its noise from its own generator
    c.load_state_dict(load_train_state(tmp_path / "state.safetensors"))
    c.train_step(feeder(batches[3:6]), 1)

    for x, y in ((a.G, c.G), (a.D, c.D), (a.ema, c.ema)):
        sx, sy = x.state_dict(), y.state_dict()
        assert all(torch.equal(sx[k], sy[k]) for k in sx)
    assert a.opt_G.state_dict()["state"][0]["exp_avg"].equal(c.opt_G.state_dict()["state"][0]["exp_avg"])


def test_unknown_trainer_option_is_refused(clf):
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **dataclasses.asdict(tiny()))
    with pytest.raises(InputError, match="trainer has no option 'g_lrr' .did you mean 'g_lr'"):
        inv.make_trainer(clf, g_lrr=1.0)
