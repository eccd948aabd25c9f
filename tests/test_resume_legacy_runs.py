"""A run started before a preset changed resumes with the network it started with: the committed Tiny ImageNet
biggan_proj runs (benchmarks/checkpoints/tinyimagenet64/resume/) were started with biggan_proj.paper before it
followed compare_gan (issue 22: unpool, compare_gan's CBN path, D's shortcut and input range, init)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import invkit
from invkit.training.config import TrainConfig, build_inverter
from invkit.training.resume import read_run_config, read_run_doc

TIN = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "tinyimagenet64"


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("label", ["standard", "robust"])
def test_a_committed_run_rebuilds_the_network_of_its_checkpoint(label, tmp_path):
    run = TIN / "resume" / f"biggan_{label}"
    if not run.is_dir():
        pytest.skip("the committed resume state is not in this checkout")
    values = {k: v for k, v in read_run_config(run).items() if k in TrainConfig().to_dict()}
    config = TrainConfig(**(values | {"out": str(tmp_path), "device": "cpu"}))
    classifier = invkit.load_classifier(TIN / f"classifier_{label}")
    (checkpoint,) = sorted((run / "checkpoints").iterdir())
    saved = invkit.load_inverter(checkpoint, classifier=classifier)
    recorded = read_run_doc(run)["inverter"]["config"]
    resumed, _ = build_inverter(config, classifier, recorded=recorded)
    assert _shapes(resumed) == _shapes(saved)  # the weights of the checkpoint fit: resuming can load them
    resumed.load_state_dict(saved.state_dict())
    assert {k: resumed.config_dict()[k] for k in recorded} == recorded  # as the run recorded it at its start
    fresh, _ = build_inverter(config, classifier)  # what a new run of the same command builds today
    assert fresh.config_dict() != saved.config_dict()  # the preset did change: the record is what kept the net


@pytest.mark.parametrize("label", ["standard", "robust"])
def test_a_record_that_names_the_legacy_values_keeps_them(label, tmp_path):
    """A run started from a committed run (`invkit train --init-from`) records the variant fields explicitly
    (upsample=nearest, ...): resumed, it is built as recorded, not as the preset's current default."""
    run = TIN / "resume" / f"biggan_{label}"
    if not run.is_dir():
        pytest.skip("the committed resume state is not in this checkout")
    values = {k: v for k, v in read_run_config(run).items() if k in TrainConfig().to_dict()}
    config = TrainConfig(**(values | {"out": str(tmp_path), "device": "cpu"}))
    classifier = invkit.load_classifier(TIN / f"classifier_{label}")
    first, _ = build_inverter(config, classifier, recorded=read_run_doc(run)["inverter"]["config"])
    written = first.config_dict()  # what the new run's train_config.json records: every field, legacy ones named
    assert written["upsample"] == "nearest" and written["cbn"] == "mlp"
    again, _ = build_inverter(config, classifier, recorded=written)
    assert again.config_dict() == written and _shapes(again) == _shapes(first)
