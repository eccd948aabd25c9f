"""The training loop (invkit.training.loop) and `invkit train`, with a tiny MLP inverter registered at run time.

Covers the issue's points: torchrun DDP ranks end with identical weights; a SIGKILLed run resumed ends
bit-identical to an uninterrupted one; checkpoints are atomic; NaN and collapse stop the run with one line
and keep the last good checkpoint; CLI errors are one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import invkit
import invkit.io.files
from invkit.data import load_dataset
from invkit.io import load_train_state
from invkit.training import BatchStream, TrainConfig, build_inverter, latest_checkpoint, train_inverter
from invkit.training.report import read_log

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402

TOY = Path(__file__).parent / "_toy_inverter.py"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _toy_plugin():
    _toy_inverter.register()


def _run(out, resume=False, progress=None, **changes):
    """Train the toy inverter in this process through the library API."""
    fields = dict(
        classifier="toyclf.base",
        inverter="toyinv.base",
        out=str(out),
        steps=10,
        batch_size=8,
        save_every=5,
        sample_every=5,
        log_every=1,
        device="cpu",
        seed=0,
    )
    fields.update(changes)
    config = TrainConfig(**fields)
    clf = invkit.create_classifier("toyclf.base")
    inverter, trainer_options = build_inverter(config, clf)
    data = load_dataset("default", "train")
    kw = {"progress": progress} if progress is not None else {}
    return train_inverter(
        config, clf, inverter, data, load_dataset("default", "test"), trainer_options=trainer_options, resume=resume,
        **kw,
    )  # fmt: skip


def _cli(args):
    from invkit.cli import build_cli

    return CliRunner().invoke(build_cli(), ["train", *args])


def _subprocess_env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def _toy_args(out, steps, *more):
    return [
        "train",
        "--classifier",
        "toyclf.base",
        "--inverter",
        "toyinv.base",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--save-every",
        "5",
        "--sample-every",
        "5",
        "--log-every",
        "1",
        "--device",
        "cpu",
        *more,
    ]


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}.{k}"))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}.{i}"))
    else:
        out[prefix] = tree  # ints, floats, strings: compared with ==
    return out


def _assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


# ------------------------------------------------------------------------------------------------ outputs
def test_run_writes_config_log_samples_and_checkpoints(tmp_path):
    result = _run(tmp_path / "run", steps=10, log_every=2)
    out = tmp_path / "run"
    assert result.step == 10 and result.checkpoint == out / "checkpoints" / "step_000010"
    doc = json.loads((out / "train_config.json").read_text())
    assert doc["train"]["steps"] == 10 and doc["inverter"]["name"] == "toyinv.base" and doc["cache_logits"]
    lines = read_log(out / "log.jsonl")  # the step lines; the "started" event line with the machine comes first
    assert [ln["step"] for ln in lines] == [2, 4, 6, 8, 10]
    first = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert first["event"] == "started" and first["step"] == 0 and first["machine"]["cpu_count"] >= 1
    assert json.loads((out / "checkpoints" / "step_000010" / "config.json").read_text())["machine"]["cpu"]
    assert all(ln["img_per_s"] > 0 and "mse_loss" in ln for ln in lines)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000005.png", "step_000010.png"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000010"
    inv = invkit.load_inverter(result.checkpoint)
    assert inv.invert(torch.randn(3, 10)).shape == (3, 1, 16, 16)
    # the saved weights are the trainer's inference inverter (the EMA), the raw weights go to train_state
    ema = result.trainer.inference_inverter().state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in inv.state_dict().items())
    state = load_train_state(result.checkpoint / "train_state.safetensors")
    assert state["step"] == 10 and state["position"] == 10 * 2 * 8 and "inverter" in state


def test_the_run_folder_gets_curves_and_an_html_report_that_follow_it(tmp_path):
    from PIL import Image

    from invkit.training.report import write_train_report

    out = tmp_path / "run"
    _run(out, steps=10, log_every=2)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # curves + the two sample grids, embedded: opens offline
    assert page.index("step_000010") < page.index("step_000005")  # newest samples first
    assert "toyinv.base" in page and "sample std" in page and "mean of" not in page  # 5 log lines: no smoothing
    ckpt = json.loads((out / "checkpoints" / "step_000010" / "config.json").read_text())
    assert f"{ckpt['health']['sample_std']:.4g}" in page and ckpt["machine"]["cpu"] in page  # health, machine
    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.width > 300
    # event lines and a line cut short by a kill are not steps; a report with one embedded grid links the other
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 10, "event": "interrupted", "signal": "SIGINT"}\n{"step": 12, "mse_lo')
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [2, 4, 6, 8, 10]
    write_train_report(out, embed_samples=1)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "href='samples/step_000005.png'" in page
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no step logged yet" in write_train_report(empty).read_text()


def test_cli_report_redraws_a_run_folder_and_refuses_other_folders(tmp_path):
    from invkit.cli import build_cli

    out = tmp_path / "run"
    _run(out, steps=5, log_every=1)
    (out / "report.html").unlink()
    (out / "curves.png").unlink()
    result = CliRunner().invoke(build_cli(), ["report", str(out), "--samples", "0"])
    assert result.exit_code == 0 and f"report: {out / 'report.html'}" in result.output, result.output
    assert (out / "curves.png").is_file() and "data:image/png" in (out / "report.html").read_text()
    (tmp_path / "bench").mkdir()
    for folder, text in ((tmp_path / "missing", "is not a folder"), (tmp_path / "bench", "not an `invkit train` run")):
        result = CliRunner().invoke(build_cli(), ["report", str(out), str(folder)])
        assert result.exit_code == 1 and text in result.output and "Traceback" not in result.output, result.output
        assert result.output.strip().count("\n") == 0  # one line, and nothing written for the good folder first


def test_existing_run_needs_resume(tmp_path):
    _run(tmp_path, steps=5)
    with pytest.raises(invkit.TrainingError, match="--resume"):
        _run(tmp_path, steps=10)


def test_cached_and_on_the_fly_logits_give_the_same_run(tmp_path):
    a = _run(tmp_path / "a", steps=4, cache_logits=True)
    b = _run(tmp_path / "b", steps=4, cache_logits=False)
    assert a.losses == pytest.approx(b.losses, rel=1e-5)


def test_precision_and_channels_last_reach_the_trainer(tmp_path):
    result = _run(tmp_path, steps=2, precision="bf16", channels_last=True, lr_g=0.05)
    doc = json.loads((tmp_path / "train_config.json").read_text())
    assert doc["trainer_options"] == {"bf16": True, "channels_last": True, "g_lr": 0.05}
    assert result.trainer.opt.param_groups[0]["lr"] == 0.05
    assert all(v == v for v in result.losses.values())  # not NaN


# ------------------------------------------------------------------------------------------------ data order
def test_data_order_is_seeded_resumable_and_sharded():
    full = BatchStream(n=10, batch_size=4, seed=3)
    batches = [full.next_indices()[0] for _ in range(6)]  # crosses epochs (24 samples of 10)
    first_epoch = torch.cat(batches)[:10]
    assert sorted(first_epoch.tolist()) == list(range(10))  # each epoch is a permutation
    resumed = BatchStream(n=10, batch_size=4, seed=3, position=3 * 4)
    assert all(torch.equal(resumed.next_indices()[0], b) for b in batches[3:])
    shards = [BatchStream(n=10, batch_size=4, seed=3, rank=r, world=2) for r in range(2)]
    for b in batches:
        assert torch.equal(torch.cat([s.next_indices()[0] for s in shards]), b)
    other = BatchStream(n=10, batch_size=4, seed=4)
    assert not torch.equal(torch.cat([other.next_indices()[0] for _ in range(3)]), torch.cat(batches[:3]))


# ------------------------------------------------------------------------------------------------ resume
def test_resume_in_process_is_exact(tmp_path):
    whole = _run(tmp_path / "whole", steps=10)
    _run(tmp_path / "split", steps=5)
    resumed = _run(tmp_path / "split", steps=10, resume=True)
    assert resumed.step == 10
    for name in ("model.safetensors",):
        _assert_identical(load_file(whole.checkpoint / name), load_file(resumed.checkpoint / name))
    _assert_identical(
        _tensors(load_train_state(whole.checkpoint / "train_state.safetensors")),
        _tensors(load_train_state(resumed.checkpoint / "train_state.safetensors")),
    )


@pytest.mark.slow  # three training subprocesses, about 10 s
def test_sigkill_mid_training_then_resume_is_bit_identical(tmp_path):
    """Point 4: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""
    steps = 30
    whole = subprocess.Popen(
        [sys.executable, str(TOY), "cli", *_toy_args(tmp_path / "whole", steps)],
        env=_subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed = subprocess.Popen(
        [sys.executable, str(TOY), "cli", *_toy_args(tmp_path / "killed", steps)],
        env=_subprocess_env(TOY_STEP_DELAY="0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = tmp_path / "killed" / "checkpoints" / "step_000010"
    deadline = time.time() + 600  # generous: process start-up alone can take a minute on a loaded machine
    while not first.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert first.exists(), killed.stderr.read().decode()[-2000:]
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert latest_checkpoint(tmp_path / "killed").name != f"step_{steps:06d}"  # really killed mid-run
    assert whole.wait() == 0, whole.stderr.read().decode()[-2000:]

    resumed = subprocess.run(
        [sys.executable, str(TOY), "cli", "train", "--out", str(tmp_path / "killed"), "--resume", "--device", "cpu"],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = tmp_path / "whole" / "checkpoints" / f"step_{steps:06d}"
    b = tmp_path / "killed" / "checkpoints" / f"step_{steps:06d}"
    _assert_identical(load_file(a / "model.safetensors"), load_file(b / "model.safetensors"))
    _assert_identical(
        _tensors(load_train_state(a / "train_state.safetensors")),
        _tensors(load_train_state(b / "train_state.safetensors")),
    )
    # every logged loss of the killed+resumed run equals the uninterrupted run's, step by step
    log, log2 = read_log(tmp_path / "whole" / "log.jsonl"), read_log(tmp_path / "killed" / "log.jsonl")
    assert [(x["step"], x["mse_loss"]) for x in log] == [(x["step"], x["mse_loss"]) for x in log2]
    events = [json.loads(ln) for ln in (tmp_path / "killed" / "log.jsonl").read_text().splitlines() if "event" in ln]
    assert [e["event"] for e in events] == ["started", "resumed"] and events[1]["step"] in (10, 15, 20, 25)


def _signal_at(step: int, signum: int):
    """A progress callback that sends this process ``signum`` while the loop is in ``step``."""

    def callback(event):
        if event.task == "train" and event.completed == step:
            os.kill(os.getpid(), signum)

    return callback


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_ends_the_step_saves_it_and_the_resumed_run_is_exact(tmp_path, signum):
    """Ctrl-C or SIGTERM between checkpoints (save_every 5) keeps the step it came in, and resuming from there ends
    bit-identical to an uninterrupted run; the handlers in place before the run are back afterwards."""
    before = signal.getsignal(signum)
    whole = _run(tmp_path / "whole", steps=10)
    with pytest.raises(invkit.TrainingInterrupted) as info:
        _run(tmp_path / "cut", steps=10, progress=_signal_at(3, signum))
    name = signal.Signals(signum).name
    assert info.value.signal_name == name and info.value.exit_status == 128 + signum
    assert info.value.checkpoint == tmp_path / "cut" / "checkpoints" / "step_000003"
    assert f"{name} at step 3: saved" in str(info.value) and "--resume" in str(info.value)
    assert latest_checkpoint(tmp_path / "cut").name == "step_000003"
    assert signal.getsignal(signum) is before
    log = [json.loads(ln) for ln in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {"step": 3, "event": "interrupted", "signal": name}
    resumed = _run(tmp_path / "cut", steps=10, resume=True)
    _assert_identical(
        load_file(whole.checkpoint / "model.safetensors"), load_file(resumed.checkpoint / "model.safetensors")
    )
    _assert_identical(
        _tensors(load_train_state(whole.checkpoint / "train_state.safetensors")),
        _tensors(load_train_state(resumed.checkpoint / "train_state.safetensors")),
    )


def test_a_signal_on_a_checkpoint_step_saves_it_once_and_a_second_signal_acts_at_once(tmp_path, monkeypatch):
    import invkit.training.loop

    writes = []
    real = invkit.training.loop.write_checkpoint
    monkeypatch.setattr(
        invkit.training.loop, "write_checkpoint", lambda out, step, *a: writes.append(step) or real(out, step, *a)
    )
    with pytest.raises(invkit.TrainingInterrupted) as info:
        _run(tmp_path / "a", steps=10, progress=_signal_at(5, signal.SIGINT))
    assert info.value.checkpoint.name == "step_000005" and writes == [5]

    def twice(event):
        if event.task == "train" and event.completed == 2:
            os.kill(os.getpid(), signal.SIGINT)  # asks for a stop
            os.kill(os.getpid(), signal.SIGINT)  # the default handler again: KeyboardInterrupt now

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", steps=10, progress=twice)
    assert latest_checkpoint(tmp_path / "b") is None  # stopped at once, before any save


def test_cli_exits_as_the_signal_would_after_saving(tmp_path):
    """SIGTERM to `invkit train` (a cluster's preemption, `kill`): one line naming the saved step, exit 143."""
    proc = subprocess.Popen(
        [sys.executable, str(TOY), "cli", *_toy_args(tmp_path / "run", 200)],
        env=_subprocess_env(TOY_STEP_DELAY="0.05"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = tmp_path / "run" / "checkpoints" / "step_000005"
    deadline = time.time() + 600
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert first.exists(), proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    err = proc.stderr.read()
    step = latest_checkpoint(tmp_path / "run").name
    assert f"interrupted: SIGTERM at step {int(step[5:])}: saved" in err and "Traceback" not in err, err[-2000:]


# ------------------------------------------------------------------------------------------------ atomicity
def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    _run(tmp_path, steps=10)
    real_save = invkit.io.files.save_file
    calls = []

    def crash_on_train_state(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:  # model.safetensors written, train_state.safetensors fails half way
            Path(path).write_bytes(b"partial")
            raise OSError("disk full")
        return real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(invkit.io.files, "save_file", crash_on_train_state)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, steps=15, resume=True)
    monkeypatch.setattr(invkit.io.files, "save_file", real_save)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000005", "step_000010"]
    assert (root / "latest").read_text().strip() == "step_000010"
    invkit.load_inverter(root / "step_000010")
    load_train_state(root / "step_000010" / "train_state.safetensors")

    # a SIGKILL during a write leaves a hidden temporary folder: never picked up, removed by the next run
    partial = root / ".tmp-step_000015-99999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == root / "step_000010"
    result = _run(tmp_path, steps=15, resume=True)
    assert result.step == 15 and not partial.exists()
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["step"] == 15


# ------------------------------------------------------------------------------------------------ stops
def test_nan_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(invkit.TrainingError) as info:
        _run(tmp_path, steps=20, options={"nan_at_step": 7})
    msg = str(info.value)
    assert "\n" not in msg and "step 8" in msg and "mse_loss is nan" in msg and "step_000005" in msg
    assert latest_checkpoint(tmp_path).name == "step_000005"
    assert not (tmp_path / "checkpoints" / "step_000010").exists()
    inv = invkit.load_inverter(latest_checkpoint(tmp_path))
    assert all(torch.isfinite(p).all() for p in inv.state_dict().values())
    last = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "stopped" and "nan" in last["reason"]
    page = (tmp_path / "report.html").read_text()  # redrawn at the stop: the curves up to it are there
    assert "step_000005" in page and "no step logged" not in page and (tmp_path / "curves.png").is_file()


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    with pytest.raises(invkit.TrainingError, match="not finite") as info:
        _run(tmp_path, steps=10, sample_every=0, options={"nan_weights_at_step": 7})
    assert "step 10" in str(info.value) and "step_000005" in str(info.value)
    assert latest_checkpoint(tmp_path).name == "step_000005"


def test_collapse_of_the_samples_stops_the_run(tmp_path):
    # samples of a freshly initialised MLP vary far less than 1.0 across logits: the check must fire
    with pytest.raises(invkit.TrainingError, match="collapse"):
        _run(tmp_path, steps=10, collapse_std=1.0)
    assert latest_checkpoint(tmp_path) is None  # stopped at the first sample grid, before a checkpoint


def test_stuck_loss_stops_the_run(tmp_path):
    # lr=0 and one fixed batch: the loss never changes
    with pytest.raises(invkit.TrainingError, match="stayed at"):
        _run(tmp_path, steps=10, stuck_steps=4, batch_size=2000, options={"lr": 0.0, "draws": 1, "noise": 0})


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_trains_and_resumes_with_stored_options(tmp_path):
    out = tmp_path / "run"
    r = _cli(_toy_args(out, 5)[1:])
    assert r.exit_code == 0, r.output
    assert "checkpoint:" in r.output and (out / "checkpoints" / "step_000005").is_dir()
    r = _cli(["--out", str(out), "--resume", "--steps", "10"])
    assert r.exit_code == 0, r.output
    assert latest_checkpoint(out).name == "step_000010"
    r = _cli(["--out", str(out), "--resume", "--steps", "12", "--batch-size", "4"])
    assert r.exit_code == 1 and "--batch-size 8" in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--classifier", "toyclf.base", "--inverter", "nope.base"], "unknown inverter 'nope.base'"),
        (["--classifier", "./no/such/checkpoint", "--inverter", "toyinv.base"], "does not exist"),
        (["--classifier", "toyclf.base", "--inverter", "toyfixed.base"], "has no training step"),
        (["--classifier", "toyclf.base", "--inverter", "toyinv.base", "-o", "bogus=1"], "unknown option"),
        (["--inverter", "toyinv.base"], "--classifier and --inverter are required"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, expected):
    r = _cli([*args, "--out", str(tmp_path / "o"), "--steps", "2", "--device", "cpu"])
    assert r.exit_code != 0
    assert expected in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 or "Usage:" in r.output, r.output


def test_cli_optim_has_no_training_step(tmp_path):
    if "optim" not in invkit.get_registry("inverter"):
        pytest.skip("the optim plugin is not installed yet")
    r = _cli(["--classifier", "toyclf.base", "--inverter", "optim", "--out", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 1 and "no training step" in r.output and len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ distributed
def _torchrun(tmp_path, args, nproc=2, timeout=120):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(TOY),
        "cli",
        *args,
    ]
    return subprocess.run(
        cmd, env=_subprocess_env(TOY_HASH_DIR=str(tmp_path)), capture_output=True, text=True, timeout=timeout
    )


def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    """Point 3: `torchrun --nproc_per_node=2` on CPU (gloo) trains; ranks hold identical weights."""
    out = tmp_path / "ddp"
    r = _torchrun(tmp_path, _toy_args(out, 6))
    assert r.returncode == 0, r.stderr[-3000:]
    hashes = [(tmp_path / f"hash_rank{i}.txt").read_text() for i in range(2)]
    assert hashes[0] == hashes[1]
    assert [ln["step"] for ln in read_log(out / "log.jsonl")] == list(range(1, 7))  # rank 0 alone writes
    assert json.loads((out / "train_config.json").read_text())["world_size"] == 2
    assert latest_checkpoint(out).name == "step_000006"


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known bug, not fixed yet: after 2 DDP steps the two ranks' biggan_proj trainer states differ "
    "(seen here: recent_logits, the logits each rank kept from its own shard for standing statistics; G, D and "
    "G_ema matched). "
    "strict: the day it passes, this marker must go",
)
def test_torchrun_biggan_tiny_ranks_identical(tmp_path):
    if "biggan_proj" not in invkit.get_registry("inverter"):
        pytest.skip("biggan_proj is not installed")
    out = tmp_path / "ddp"
    args = [
        "train",
        "--classifier",
        "toyclf.base",
        "--inverter",
        "biggan_proj.mnist32",
        "--ch",
        "4",
        "-o",
        "cbn_hidden=8",
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--save-every",
        "2",
        "--sample-every",
        "2",
        "--device",
        "cpu",
    ]
    r = _torchrun(tmp_path, args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "hash_rank0.txt").read_text() == (tmp_path / "hash_rank1.txt").read_text()
