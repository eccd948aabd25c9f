"""biggan_proj's precision default (issue 11): bf16 autocast + channels_last where bf16 is native, fp32 elsewhere,
and what bf16 does to the numbers of a tiny model. Timing lives in benchmarks/throughput/, not here."""

from __future__ import annotations

import copy

import pytest
import torch
from invkit_plugins.biggan_proj import model
from invkit_plugins.biggan_proj.model import BigGANConfig, BigGANInverter

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_inverter() -> BigGANInverter:
    torch.manual_seed(0)
    cfg = BigGANConfig(num_classes=10, channels=3, resolution=32, ch=4, cbn_hidden=8, g_attention=16, d_attention=16)
    return BigGANInverter(cfg)


def batches(count: int, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, 3, 32, 32, generator=g), torch.randn(n, 10, generator=g) * 3) for _ in range(count)]


@pytest.mark.parametrize("native", [True, False])
def test_precision_default_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(model, "native_bf16", lambda device: native)
    tr = tiny_inverter().make_trainer(None, seed=0)
    assert tr.bf16 is native and tr.channels_last is native
    first_conv = tr.G.blocks[0].conv1.parametrizations.weight.original
    assert first_conv.is_contiguous(memory_format=torch.channels_last) is native
    # Explicit options win over the default, in both directions.
    tr = tiny_inverter().make_trainer(None, seed=0, bf16=not native, channels_last=not native)
    assert tr.bf16 is (not native) and tr.channels_last is (not native)


def test_native_bf16_is_false_where_bf16_would_be_emulated(monkeypatch):
    assert model.native_bf16(torch.device("meta")) is False
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert model.native_bf16(torch.device("cpu")) is False
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert model.native_bf16(torch.device("cpu")) is torch.backends.mkldnn.is_available()


def test_bf16_channels_last_generator_output_stays_close_to_fp32():
    """Same weights and inputs: bf16 autocast + channels_last moves G's tanh output (range [-1, 1]) by a few
    hundredths at most; the mean change is far smaller."""
    inv = tiny_inverter()
    G = inv.generator.train()
    G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    noise, logits = torch.randn(8, 120, generator=g), torch.randn(8, 10, generator=g) * 3
    with torch.no_grad():
        ref = G(noise, logits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = G_cl(noise, logits).float()
    diff = (out - ref).abs()
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert diff.max() < 0.1 and diff.mean() < 0.02
    assert diff.max() > 0  # bf16 really ran (a silently ignored autocast would give zero difference)


def test_bf16_training_steps_are_finite_deterministic_and_keep_fp32_weights():
    data = batches(6)

    def run():
        tr = tiny_inverter().make_trainer(None, seed=0, bf16=True, channels_last=True)
        it = iter(data)
        return tr, [tr.train_step(lambda: next(it), s) for s in range(2)]

    a, losses_a = run()
    b, losses_b = run()
    assert losses_a == losses_b  # bf16 on the CPU is deterministic from the same seed
    assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses_a)
    assert all(p.dtype == torch.float32 for p in a.G.parameters()) and all(
        p.dtype == torch.float32 for p in a.D.parameters()
    )
    sa, sb = a.ema.state_dict(), b.ema.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
