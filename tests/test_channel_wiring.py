"""Issue 25 point 1: the observation channel as a recorded choice of learned inverters (invkit.core.observation).

`invkit train --channel` trains on channel(logits) and records it in every checkpoint; bench, invert and probe reuse
a checkpoint's own channel and refuse another in one line naming both; resume refuses another channel; with cached
logits a deterministic channel is applied to the cache once; noise resumes bit-exactly; probes that manipulate
logits say why they do not apply; optim inverts through the channel and is unchanged for logits. Tiny toy models
(tests/_toy_inverter.py), one torch thread.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error  # noqa: E402

import invkit  # noqa: E402
from invkit.core.channels import Channel  # noqa: E402
from invkit.core.observation import choose_observation, observe  # noqa: E402
from invkit.data import load_dataset  # noqa: E402
from invkit.errors import InputError, TrainingError  # noqa: E402
from invkit.training import TrainConfig, build_inverter, train_inverter  # noqa: E402
from invkit.training.source import _Source  # noqa: E402

TRAIN = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8"]
TRAIN += ["--sample-every", "2", "--log-every", "1", "--device", "cpu"]


@pytest.fixture
def toy(one_thread):
    _toy_inverter.register()


def _train(out: Path, *extra: str, steps: int = 2) -> Path:
    result = cli([*TRAIN, "--out", str(out), "--steps", str(steps), "--save-every", str(steps), *extra])
    assert result.exit_code == 0, result.output
    return out / "checkpoints" / f"step_{steps:06d}"


def _config(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "config.json").read_text())


def test_train_records_the_channel_and_invert_and_bench_reuse_it(toy, tmp_path, mnist_batch):
    ckpt = _train(tmp_path / "run", "--channel", "topk:5")
    assert _config(ckpt)["channel"] == "topk:5" and _config(ckpt)["layer"] is None
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["train"]["channel"] == "topk:5"
    inv = invkit.resolve_inverter(None, invkit.create_classifier("toyclf.base"), checkpoint=str(ckpt))
    assert inv.channel == "topk:5"  # the checkpoint's own is the default

    from invkit.io.figures import to_pil_grid

    to_pil_grid(mnist_batch[0][:1], nrow=1, padding=0).save(tmp_path / "digit.png")
    out = tmp_path / "inv"
    invert = ["invert", str(tmp_path / "digit.png"), "--classifier", "toyclf.base", "--checkpoint", str(ckpt)]
    result = cli([*invert, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "invert.json").read_text())
    assert doc["channel"] == "topk:5" and "topk:5" in doc["inverter_label"]

    bench = tmp_path / "bench"
    args = ["bench", "--classifier", "toyclf.base", "--inverter", "toyinv", "--checkpoint", str(ckpt), "-n", "10"]
    result = cli([*args, "--id-k", "2", "--out", str(bench), "--device", "cpu", "--keep-images", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads((bench / "results.json").read_text())["results"][0]
    assert record["channel"] == "topk:5" and "topk:5" in record["inverter_label"]
    assert "topk:5" in (bench / "report.md").read_text()


def test_a_checkpoint_used_with_another_channel_is_refused_naming_both(toy, tmp_path):
    ckpt = _train(tmp_path / "run", "--channel", "topk:5")
    args = ["bench", "--classifier", "toyclf.base", "--inverter", "toyinv", "--checkpoint", str(ckpt), "-n", "10"]
    result = cli([*args, "--id-k", "2", "--out", str(tmp_path / "bench"), "--channel", "probs", "--device", "cpu"])
    one_line_error(result, "topk:5", "probs")
    assert not (tmp_path / "bench" / "results.json").exists()
    # an old checkpoint (no channel recorded) is a logits checkpoint: refused for topk:5, accepted for logits
    doc = _config(ckpt)
    del doc["channel"], doc["layer"]
    (ckpt / "config.json").write_text(json.dumps(doc))
    clf = invkit.create_classifier("toyclf.base")
    assert invkit.load_inverter(ckpt).channel == "logits"
    with pytest.raises(InputError, match="trained on channel 'logits', not channel 'topk:5'"):
        invkit.resolve_inverter(None, clf, checkpoint=str(ckpt), channel="topk:5")
    assert invkit.resolve_inverter(None, clf, checkpoint=str(ckpt), channel="logits").channel == "logits"


def test_resume_refuses_another_channel_on_the_cli_and_in_the_library(toy, tmp_path):
    out = tmp_path / "run"
    _train(out, "--channel", "noise:0.5")
    one_line_error(cli(["train", "--out", str(out), "--resume", "--steps", "4", "--channel", "probs"]), "noise:0.5")
    clf = invkit.create_classifier("toyclf.base")
    config = TrainConfig(classifier="toyclf.base", inverter="toyinv.base", out=str(out), steps=4, batch_size=8)
    config.sample_every, config.save_every = 2, 2
    inv, opts = build_inverter(config, clf)  # channel logits: not the run's
    data = load_dataset("default", "train")
    with pytest.raises(TrainingError, match="trained on channel 'noise:0.5', not channel 'logits'"):
        train_inverter(config, clf, inv, data, trainer_options=opts, resume=True)


def test_noise_channel_resumes_bit_exactly(toy, tmp_path):
    straight = _train(tmp_path / "a", "--channel", "noise:0.5", steps=4)
    _train(tmp_path / "b", "--channel", "noise:0.5", steps=2)
    result = cli(["train", "--out", str(tmp_path / "b"), "--resume", "--steps", "4", "--save-every", "2"])
    assert result.exit_code == 0, result.output
    resumed = tmp_path / "b" / "checkpoints" / "step_000004"
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and the noise did something: a logits run of the same seed ends elsewhere
    c = load_file(_train(tmp_path / "c", steps=4) / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)


class Counting(Channel):
    """``probs``, counting how many times it is applied; ``random`` as asked."""

    name = "counting"

    def __init__(self, random: bool):
        super().__init__()
        self.random, self.calls = random, 0

    def observe(self, logits, generator=None):
        self.calls += 1
        return logits.softmax(1) + (
            0 if generator is None else torch.rand(1, generator=generator, device=logits.device)
        )


@pytest.mark.parametrize(("cache", "random", "calls"), [(True, False, 1), (False, False, 3), (True, True, 3)])
def test_a_deterministic_channel_is_applied_to_the_logit_cache_once(toy, cache, random, calls):
    clf = invkit.create_classifier("toyclf.base")
    data = load_dataset("default", "train")
    channel = Counting(random)
    source = _Source(data, (1, 16, 16), clf, torch.device("cpu"), False, cache, "none", 0, False, channel=channel)
    idx = torch.arange(8)
    batches = [source.batch(idx, position)[1] for position in (0, 8, 16)]
    assert channel.calls == calls
    raw = clf.logits(source._images(idx))
    assert torch.allclose(batches[0] - (batches[0] - raw.softmax(1))[:, :1], raw.softmax(1), atol=1e-5)
    if random:  # seeded from (seed, position): the same position draws the same, another position another
        assert torch.equal(batches[0], source.batch(idx, 0)[1]) and not torch.equal(batches[0], batches[1])


def test_probes_that_manipulate_logits_say_why_they_do_not_apply(toy, tmp_path):
    ckpt = _train(tmp_path / "run", "--channel", "probs")
    args = ["probe", "logit-*", "--classifier", "toyclf.base", "--checkpoint", str(ckpt), "-n", "8"]
    result = cli([*args, "--out", str(tmp_path / "probes"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for name in ("logit-shift", "logit-scale", "logit-perturb", "logit-interpolate"):
        assert f"{name}: not run: {name} manipulates logits" in result.output.replace("\n", " "), result.output
        assert not (tmp_path / "probes" / name).exists()  # refused before it wrote anything
    one_line_error(cli([*args, "--out", str(tmp_path / "p2"), "--channel", "label"]), "probs", "label")


def test_probes_invert_through_the_channel_and_keep_logit_space_channels(toy, tmp_path):
    from invkit_plugins.probes import _common as C

    clf = invkit.create_classifier("toyclf.base")
    inv = invkit.create_inverter("toyinv.base", classifier=clf)
    ctx = invkit.ProbeContext(clf, inv, load_dataset("default", "test"), tmp_path, torch.Generator().manual_seed(0))
    logits = torch.randn(4, 10)
    for spec, keeps in (("logits", True), ("noise:0.5", True), ("topk:3", False), ("label", False)):
        choose_observation(inv, clf, channel=spec)
        if keeps:
            C.require_logit_space(ctx, "logit-shift")
        else:
            with pytest.raises(InputError, match=f"logit-shift manipulates logits.*channel '{spec}'"):
                C.require_logit_space(ctx, "logit-shift")
    choose_observation(inv, clf, channel="label")
    assert torch.equal(C.observed(ctx, logits), torch.nn.functional.one_hot(logits.argmax(1), 10).float())


def _optim(clf, **kw):
    return invkit.create_inverter("optim.mv15", classifier=clf, **({"steps": 15, "jitter": 0} | kw))


def test_optim_with_logits_is_unchanged_and_inverts_through_a_channel(toy):
    clf = invkit.create_classifier("toyclf.base")
    x = load_dataset("default", "test")[0][0][None]
    logits = clf.logits(x).detach()
    plain = _optim(clf).invert(logits, generator=torch.Generator().manual_seed(0))
    chosen = _optim(clf)
    choose_observation(chosen, clf, channel="logits")
    assert torch.equal(plain, chosen.invert(logits, generator=torch.Generator().manual_seed(0)))
    from invkit_plugins.optim.optimization import logit_loss

    rep, target = torch.randn(3, 10), torch.randn(3, 10)
    assert torch.equal(chosen._match(rep, target), logit_loss(rep, target, True, "squared"))
    for spec in ("topk:3", "label", "round:1", "probs"):
        inv = _optim(clf, steps=40)
        choose_observation(inv, clf, channel=spec)
        target = observe(inv, clf, x)
        start = torch.full_like(x, 0.5)
        before = inv._match(clf.logits(start), target)
        recon, info = inv.invert_with_info(target, generator=torch.Generator().manual_seed(0), start=start)
        assert float(inv._match(clf.logits(recon), target)) < float(before), spec  # the channel's loss went down


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tpk:5", "topk"),
        ("topk:11", "K <= 10"),
        ("round:-1", "round"),
        ("noise:inf", "finite"),
        ("noise:nan", "finite"),
    ],
)
def test_bad_channels_are_one_line_and_write_nothing(toy, tmp_path, spec, says):
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    one_line_error(cli([*TRAIN, "--out", str(out), "--steps", "2", "--channel", spec]), says)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    ckpt = _train(tmp_path / "ok")
    bench = ["bench", "--classifier", "toyclf.base", "--inverter", "toyinv", "--checkpoint", str(ckpt), "-n", "4"]
    one_line_error(cli([*bench, "--out", str(out), "--channel", spec]), says)
    invert = ["invert", str(out / "mine.txt"), "--classifier", "toyclf.base", "--checkpoint", str(ckpt)]
    one_line_error(cli([*invert, "--out", str(out), "--channel", spec]), says)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep"
