"""Standing batch-norm statistics of biggan_proj (issue 12 point 1; the paper's compare_gan config evaluates with
``standardize_batch.use_moving_averages = False``): what they are, that checkpoints carry them by default, and
that a resumed run saves the same ones."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from invkit_plugins.biggan_proj.model import BigGANConfig
from invkit_plugins.biggan_proj.standing import accumulate_standing_stats
from torch import nn

import invkit
from invkit import Classifier, ClassifierConfig, InputError
from invkit.io import load_train_state, save_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> dict:
    base = dict(num_classes=10, channels=1, resolution=32, ch=4, cbn_hidden=8, g_attention=16, d_attention=16)
    return base | kw


@pytest.fixture
def clf() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    return Classifier(
        net, ClassifierConfig(name="tiny.test", num_classes=10, input_size=(1, 32, 32), mean=(0.5,), std=(0.5,))
    )


def batches(clf: Classifier, count: int, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        x = torch.rand(n, 1, 32, 32, generator=g)
        out.append((x, clf.logits(x)))
    return out


def feeder(items):
    it = iter(items)
    return lambda: next(it)


def test_standing_stats_are_the_mean_batch_statistics_of_the_generator():
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.mnist32", **tiny())
    logits = [torch.randn(5, 10) * 3 for _ in range(3)]
    seen: list[torch.Tensor] = []
    # The first CBN of the first block normalises the initial linear map of the first noise chunk: recompute it.
    gen = torch.Generator().manual_seed(7)
    chunk = inv.generator.chunk
    for z in logits:
        noise = torch.randn(z.shape[0], inv.noise_dim, generator=gen)
        with torch.no_grad():
            seen.append(inv.generator.linear(noise[:, :chunk]).view(z.shape[0], -1, 4, 4))
    before = {k: v.clone() for k, v in inv.state_dict().items()}
    out = accumulate_standing_stats(inv, logits, torch.Generator().manual_seed(7))
    bn = out.generator.blocks[0].bn1.bn
    mean = torch.stack([h.mean(dim=(0, 2, 3)) for h in seen]).mean(0)
    var = torch.stack([h.var(dim=(0, 2, 3), unbiased=True) for h in seen]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4)
    # Every BN was recomputed, weights (and spectral norm's u/v) are unchanged, the original is untouched.
    assert all(torch.equal(before[k], v) for k, v in inv.state_dict().items())
    changed = {k for k, v in out.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert {k.rsplit(".", 1)[0] for k in changed} == {
        n for n, m in inv.named_modules() if isinstance(m, nn.BatchNorm2d)
    }
    assert (out.config.bn_stats, out.config.standing_batches) == ("standing", 3)
    assert not out.training and all(not m.training for m in out.modules())
    with pytest.raises(InputError, match="at least one batch"):
        accumulate_standing_stats(inv, [])


def test_checkpoints_carry_standing_stats_by_default(tmp_path, clf):
    assert BigGANConfig().standing_batches == 16 and BigGANConfig().bn_stats == "running"
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **tiny(standing_batches=2))
    tr = inv.make_trainer(clf, seed=0, ema_start=0)
    items = batches(clf, 9)
    for s in range(3):
        tr.train_step(feeder(items[3 * s : 3 * s + 3]), s)
    saved = tr.inference_inverter()
    assert saved is not tr.ema and saved is tr.inference_inverter()  # computed once per step count
    assert saved.config.bn_stats == "standing" and saved.config.standing_batches == 2
    # Same weights as the EMA generator, other BN statistics: the standing ones over the last 2 G-step logits.
    ema = tr.ema.state_dict()
    for k, v in saved.state_dict().items():
        assert torch.equal(v, ema[k]) != k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    expected = accumulate_standing_stats(tr.ema, [items[5][1], items[8][1]], torch.Generator().manual_seed(3))
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in saved.state_dict().items())
    saved.save(tmp_path / "ckpt")
    back = invkit.load_inverter(tmp_path / "ckpt")
    assert back.config.bn_stats == "standing"
    z, e = torch.randn(2, 10), torch.randn(2, 120)
    assert torch.equal(back.invert(z, noise=e), saved.invert(z, noise=e))
    # standing_batches=0: the EMA generator with its EMA running statistics, as before issue 12.
    off = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **tiny(standing_batches=0)).make_trainer(clf)
    off.train_step(feeder(batches(clf, 3)), 0)
    assert off.inference_inverter() is off.ema and off.ema.config.bn_stats == "running"


def test_resumed_run_saves_the_same_standing_stats(tmp_path, clf):
    items = batches(clf, 6)

    def fresh():
        torch.manual_seed(0)
        inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **tiny(standing_batches=2))
        return inv.make_trainer(clf, ema_start=1)

    a = fresh()
    for s in range(2):
        a.train_step(feeder(items[3 * s : 3 * s + 3]), s)
    b = fresh()
    b.train_step(feeder(items[0:3]), 0)
    save_train_state(tmp_path / "state.safetensors", b.state_dict())
    c = fresh()
    c.load_state_dict(load_train_state(tmp_path / "state.safetensors"))
    c.train_step(feeder(items[3:6]), 1)
    sa, sc = a.inference_inverter().state_dict(), c.inference_inverter().state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)


def test_unknown_bn_stats_is_refused():
    with pytest.raises(InputError, match="bn_stats 'moving'"):
        invkit.create_inverter("biggan_proj.mnist32", **tiny(bn_stats="moving"))


def test_old_configs_without_the_fields_load_as_running(tmp_path):
    inv = invkit.create_inverter("biggan_proj.mnist32", **tiny())
    inv.save(tmp_path / "ckpt")
    cfg_path = tmp_path / "ckpt" / "config.json"
    import json

    doc = json.loads(cfg_path.read_text())
    for key in ("bn_stats", "standing_batches"):
        doc["config"].pop(key)
    cfg_path.write_text(json.dumps(doc))
    assert invkit.load_inverter(tmp_path / "ckpt").config.bn_stats == "running"
    assert dataclasses.asdict(inv.config)["bn_stats"] == "running"


# ------------------------------------------------------------------------------------------ invkit standing-stats
def _digits(root, n: int = 6):
    from PIL import Image

    for c in ("0", "1"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (28, 28), 30 * i + 100 * int(c)).save(root / "train" / c / f"{i}.png")
    return root


def test_cli_standing_stats_writes_a_new_checkpoint_and_keeps_the_old(tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from invkit.cli import build_cli

    data = _digits(tmp_path / "data")
    demo = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo" / "classifier_standard"
    clf = invkit.load_classifier(demo)
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, **tiny())
    inv.save(tmp_path / "old", extra={"step": 7})
    before = (tmp_path / "old" / "model.safetensors").read_bytes()
    args = ["standing-stats", str(tmp_path / "old"), "--classifier", str(demo), "--data", str(data)]
    args += ["--batches", "3", "--batch-size", "4", "--device", "cpu"]
    result = CliRunner().invoke(build_cli(), [*args, "--out", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    new = invkit.load_inverter(tmp_path / "new")
    assert (new.config.bn_stats, new.config.standing_batches) == ("standing", 3)
    assert (tmp_path / "old" / "model.safetensors").read_bytes() == before
    import json

    doc = json.loads((tmp_path / "new" / "config.json").read_text())
    assert doc["step"] == 7 and doc["standing_stats"]["split"] == "train"
    bn = dict(new.named_buffers())["generator.blocks.0.bn1.bn.running_mean"]
    assert not torch.equal(bn, dict(inv.named_buffers())["generator.blocks.0.bn1.bn.running_mean"])
    # Bad input: one line, nothing written.
    for extra, text in (
        (["--out", str(tmp_path / "new")], "not empty"),
        (["--out", str(tmp_path / "old")], "new folder"),
        (["--out", str(tmp_path / "x"), "--batches", "0"], "at least 1 batch"),
        (["--out", str(tmp_path / "y"), "--batches", "100"], "fewer than --batches x --batch-size"),
    ):
        result = CliRunner().invoke(build_cli(), [*args, *extra])
        assert result.exit_code != 0 and text in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    optim = ["standing-stats", str(tmp_path / "o"), "--classifier", str(demo), "--out", str(tmp_path / "z")]
    invkit.create_inverter("optim.mv15", classifier=clf).save(tmp_path / "o")
    result = CliRunner().invoke(build_cli(), [*optim, "--data", str(data)])
    assert result.exit_code != 0 and "no batch-norm statistics" in result.output
