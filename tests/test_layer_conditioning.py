"""Issue 25 point 2: ``--layer NAME`` conditions a learned inverter on a classifier layer's globally pooled
activations (``Classifier.features(..., pooled=True)``), recorded and checked like the channel; optim inverts the
layer by feature matching; ``invkit list --layers`` lists a classifier's layer names. Tiny toy models
(tests/_toy_inverter.py: toyclf.base is Conv2d(1, 4) -> ReLU -> Flatten -> Linear(676, 10))."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error  # noqa: E402

import invkit  # noqa: E402
from invkit.core.observation import choose_observation, layer_width, observe  # noqa: E402
from invkit.data import load_dataset  # noqa: E402
from invkit.errors import CheckpointError, InputError  # noqa: E402

TRAIN = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8", "--steps", "2"]
TRAIN += ["--save-every", "2", "--sample-every", "2", "--device", "cpu"]


@pytest.fixture
def toy(one_thread):
    _toy_inverter.register()


def _train(out: Path, *extra: str) -> Path:
    result = cli([*TRAIN, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out / "checkpoints" / "step_000002"


def test_train_on_a_layer_records_it_with_the_layer_width(toy, tmp_path):
    ckpt = _train(tmp_path / "run", "--layer", "1")
    doc = json.loads((ckpt / "config.json").read_text())
    assert doc["layer"] == "1" and doc["config"]["num_classes"] == 4  # ReLU after Conv2d(1, 4): 4 channels pooled
    clf = invkit.create_classifier("toyclf.base")
    inv = invkit.resolve_inverter(None, clf, checkpoint=str(ckpt))  # its own layer by default; no logit-size check
    assert inv.layer == "1" and inv.num_classes == layer_width(clf, "1") == 4
    images = load_dataset("default", "test")[0][0][None].repeat(3, 1, 1, 1)
    target = observe(inv, clf, images)
    assert torch.allclose(target, clf.features(images, "1", pooled=False).mean(dim=(2, 3)))
    assert inv.invert(target).shape == (3, 1, 16, 16)
    with pytest.raises(InputError, match="trained on layer '1', not layer 'penultimate'"):
        invkit.resolve_inverter(None, clf, checkpoint=str(ckpt), layer="penultimate")
    with pytest.raises(InputError, match="trained on layer '1', not channel 'logits'"):
        invkit.resolve_inverter(None, clf, checkpoint=str(ckpt), channel="logits")


def test_bench_and_invert_reuse_a_layer_checkpoint(toy, tmp_path):
    ckpt = _train(tmp_path / "run", "--layer", "penultimate")
    bench = ["bench", "--classifier", "toyclf.base", "--inverter", "toyinv", "--checkpoint", str(ckpt), "-n", "10"]
    result = cli([*bench, "--id-k", "2", "--out", str(tmp_path / "b"), "--device", "cpu", "--keep-images", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "b" / "results.json").read_text())["results"][0]
    assert record["layer"] == "penultimate" and "layer penultimate" in record["inverter_label"]
    one_line_error(cli([*bench, "--out", str(tmp_path / "c"), "--layer", "1"]), "layer 'penultimate'", "layer '1'")


def test_a_layer_that_does_not_fit_or_does_not_exist_is_one_line(toy, tmp_path):
    ckpt = _train(tmp_path / "run", "--layer", "1")
    doc = json.loads((ckpt / "config.json").read_text())
    doc["layer"] = "3"  # the logits layer (10 wide): the 4-wide checkpoint does not fit it
    (ckpt / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="takes vectors of 4 values but layer '3'.*gives 10"):
        invkit.resolve_inverter(None, invkit.create_classifier("toyclf.base"), checkpoint=str(ckpt))
    out = tmp_path / "new"
    one_line_error(cli([*TRAIN, "--out", str(out), "--layer", "conv"]), "no layer 'conv'", "penultimate, 0, 1")
    assert not out.exists()
    one_line_error(cli([*TRAIN, "--out", str(out), "--layer", "1", "--channel", "probs"]), "exclusive")
    bench = ["bench", "--classifier", "toyclf.base", "--inverter", "optim.mv15", "-n", "4", "--out", str(out)]
    one_line_error(cli([*bench, "--layer", "1", "--channel", "probs"]), "exclusive")
    one_line_error(cli([*bench, "--layer", "fcc"]), "no layer 'fcc'")
    assert not (out / "results.json").exists()


def test_optim_inverts_a_layer_by_feature_matching(toy):
    clf = invkit.create_classifier("toyclf.base")
    inv = invkit.create_inverter("optim.mv15", classifier=clf, steps=40, jitter=0)
    choose_observation(inv, clf, layer="1")
    x = load_dataset("default", "test")[0][0][None]
    target = observe(inv, clf, x)
    assert target.shape == (1, 4)
    start = torch.full_like(x, 0.5)
    before = inv._match(inv.representation(start), target)
    recon = inv.invert(target, generator=torch.Generator().manual_seed(0), start=start)
    assert float(inv._match(inv.representation(recon), target)) < float(before)
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        inv.invert(torch.zeros(1, 10))


def test_the_learned_inverters_train_on_a_layer(toy, tmp_path):
    args = ["train", "--classifier", "toyclf.base", "--inverter", "dosovitskiy_brox.mnist", "--steps", "1"]
    result = cli([*args, "--batch-size", "4", "--layer", "1", "--out", str(tmp_path / "db"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "db" / "checkpoints" / "step_000001" / "config.json").read_text())
    assert doc["layer"] == "1" and doc["config"]["num_classes"] == 4


def test_list_layers_names_them_with_their_widths(toy):
    result = cli(["list", "--layers", "toyclf.base"])
    assert result.exit_code == 0, result.output
    for name, width in (("penultimate", "676"), ("0", "4"), ("3", "10")):
        assert any(line.split()[:1] == [name] and width in line for line in result.output.splitlines()), name
    one_line_error(cli(["list", "--layers", "nosuchclf"]), "nosuchclf")
