"""`invkit train --init-from RUN`: a new run starts from another run's newest checkpoint (weights, optimiser state,
step, data position, RNG states), as issue 25's biggan_proj topk:5/label runs start from the logits run.

With the same observation it is exactly that run resumed (bit-identical weights); with another channel it trains the
same network on, records where it started (train_config.json, checkpoints, the log's "initialised" line), and resumes
as its own run. Bad sources are one line each, and nothing is written. Tiny toy models (tests/_toy_inverter.py).
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
from test_channel_wiring import _config, _train  # noqa: E402

import invkit  # noqa: E402


@pytest.fixture
def toy(one_thread):
    _toy_inverter.register()


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_init_from_with_the_same_channel_is_the_run_resumed(toy, tmp_path):
    straight = _train(tmp_path / "straight", steps=4)
    _train(tmp_path / "first", steps=2)
    result = cli(["train", "--init-from", str(tmp_path / "first"), "--out", str(tmp_path / "fork"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    forked = tmp_path / "fork" / "checkpoints" / "step_000004"
    a, b = _weights(straight), _weights(forked)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the source run is untouched: still at step 2
    assert sorted(p.name for p in (tmp_path / "first" / "checkpoints").glob("step_*")) == ["step_000002"]
    events = _log(tmp_path / "fork")
    assert events[0]["event"] == "initialised" and events[0]["step"] == 2
    assert events[0]["init_from"] == str((tmp_path / "first" / "checkpoints" / "step_000002").resolve())
    recorded = json.loads((tmp_path / "fork" / "train_config.json").read_text())["train"]
    assert recorded["init_from"] == str((tmp_path / "first").resolve()) and recorded["steps"] == 4


@pytest.mark.parametrize("channel", ["topk:3", "label"])
def test_init_from_trains_on_for_another_channel_and_resumes_as_its_own_run(toy, tmp_path, channel):
    _train(tmp_path / "logits", steps=2)
    args = ["train", "--init-from", str(tmp_path / "logits"), "--channel", channel, "--save-every", "2"]
    result = cli([*args, "--out", str(tmp_path / "fork"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    ckpt = tmp_path / "fork" / "checkpoints" / "step_000004"
    assert _config(ckpt)["channel"] == channel
    assert _config(ckpt)["train_config"]["init_from"] == str((tmp_path / "logits").resolve())
    # it started from the logits run's weights and went on with the other channel: not the logits run continued
    logits_on = cli(["train", "--init-from", str(tmp_path / "logits"), "--out", str(tmp_path / "same"), "--steps", "4"])
    assert logits_on.exit_code == 0, logits_on.output
    a, b = _weights(ckpt), _weights(tmp_path / "same" / "checkpoints" / "step_000004")
    assert not all(torch.equal(a[k], b[k]) for k in a)
    # resumed, it continues itself (its own checkpoints), not the source again, with its channel
    again = cli(["train", "--out", str(tmp_path / "fork"), "--resume", "--steps", "6"])
    assert again.exit_code == 0, again.output
    assert _config(tmp_path / "fork" / "checkpoints" / "step_000006")["channel"] == channel
    events = [e["event"] for e in _log(tmp_path / "fork") if "event" in e]
    assert events == ["initialised", "resumed"]


def test_bad_init_from_is_one_line_and_writes_nothing(toy, tmp_path):
    _train(tmp_path / "logits", steps=2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "nocheckpoint").mkdir()
    record = (tmp_path / "logits" / "train_config.json").read_text()
    (tmp_path / "nocheckpoint" / "train_config.json").write_text(record)
    cases = [
        (["--init-from", str(tmp_path / "missing")], "not a run folder"),
        (["--init-from", str(tmp_path / "empty")], "not a run folder"),
        (["--init-from", str(tmp_path / "nocheckpoint")], "holds no checkpoint"),
        (["--init-from", str(tmp_path / "logits"), "--steps", "1"], "past --steps 1"),
    ]
    for i, (args, says) in enumerate(cases):
        out = tmp_path / f"out{i}"
        one_line_error(cli(["train", "--out", str(out), *args]), says)
        assert not (out / "checkpoints").exists()
    one_line_error(cli(["train", "--out", str(tmp_path / "logits"), "--init-from", str(tmp_path / "logits")]), "itself")
    # another classifier than the source run's (other weights in a folder): refused before any step
    clf = invkit.create_classifier("toyclf.base")
    with torch.no_grad():
        next(clf.network.parameters()).add_(0.1)
    clf.save(tmp_path / "other_clf")
    args = ["--classifier", str(tmp_path / "other_clf"), "--init-from", str(tmp_path / "logits"), "--steps", "4"]
    one_line_error(cli(["train", "--out", str(tmp_path / "x"), *args]), "--init-from: the classifier")
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_init_from_a_run_of_another_observation_size_is_refused(toy, tmp_path):
    """A layer run (pooled activations, another vector size) cannot start from a logits run: one line."""
    _train(tmp_path / "logits", steps=2)
    layers = cli(["list", "--layers", "toyclf.base"])
    assert layers.exit_code == 0, layers.output
    result = cli(["train", "--init-from", str(tmp_path / "logits"), "--layer", "penultimate", "--out",
                  str(tmp_path / "fork"), "--steps", "4"])  # fmt: skip
    one_line_error(result, "--init-from", "do not fit")
    assert not (tmp_path / "fork" / "checkpoints").exists()
