"""Issue 25 point 3: `invkit leakage` (invkit.evaluation.leakage, leakage_page): one bench per channel of a family,
leakage.json/md/html/png from the benches' results, paired differences against the first channel, reuse on rerun,
learned inverters matched to channels by their checkpoints, and bad families refused in one line.

Tiny toy classifier (tests/_toy_inverter.py), optim with 2 steps, n = 10, one torch thread.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error  # noqa: E402

import invkit  # noqa: E402
from invkit.evaluation import stats  # noqa: E402
from invkit.evaluation.leakage import parse_channels, parse_family, slug_of  # noqa: E402
from invkit.evaluation.leakage_page import leakage_figure  # noqa: E402
from invkit.evaluation.per_image import load_per_image, per_image_path  # noqa: E402

BASE = ["leakage", "--classifier", "toyclf.base", "--option", "optim:steps=2", "-n", "10", "--id-k", "2"]
BASE += ["--device", "cpu"]
MAIN = ("id_accuracy", "top1_agreement", "psnr")


@pytest.fixture
def toy(one_thread):
    _toy_inverter.register()


def _leakage(out: Path, *args: str):
    result = cli([*BASE, "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads((out / "leakage.json").read_text()), result.output


def _bench_record(out: Path, slug: str) -> tuple[dict, dict]:
    doc = json.loads((out / slug / "results.json").read_text())
    (record,) = doc["results"]
    return doc, record


def test_a_family_writes_four_files_from_the_benches_and_a_rerun_reuses_them(toy, tmp_path, monkeypatch):
    out = tmp_path / "leak"
    doc, output = _leakage(out, "--family", "topk:1,5,all")
    assert {p.name for p in out.iterdir()} >= {"leakage.json", "leakage.md", "leakage.html", "leakage.png"}
    assert [c["spec"] for c in doc["channels"]] == ["topk:1", "topk:5", "topk:10"]  # all: K = the 10 classes
    assert [c["parameter"] for c in doc["channels"]] == [1, 5, 10] and doc["family"]["log_x"]
    indices = None
    for channel in doc["channels"]:
        bench, record = _bench_record(out, channel["folder"])
        assert bench["settings"]["channel"] == channel["spec"] and record["channel"] == channel["spec"]
        assert indices in (None, bench["settings"]["image_indices"])  # the same images in every channel
        indices = bench["settings"]["image_indices"]
        (row,) = channel["results"]
        for key in MAIN:  # the numbers are the bench's own, value and interval
            iv = record["intervals"][key]
            assert row["metrics"][key] == {"value": record[key], "low": iv["low"], "high": iv["high"], "n": iv["n"]}
    # paired differences against the first channel, from the per-image files, as stats.paired_difference gives them
    index = torch.tensor(indices)
    first = load_per_image(per_image_path(out / "topk_1", "toyclf.base__optim"), index)
    for channel in doc["channels"][1:]:
        (row,) = channel["results"]
        assert row["against"] == "topk:1"
        here = load_per_image(per_image_path(out / channel["folder"], "toyclf.base__optim"), index)
        for key in MAIN:
            want = stats.paired_difference(here[key], first[key], seed=0)
            got = row["differences"][key]
            assert got["difference"] == pytest.approx(want.estimate) and got["n"] == 10
            assert got["verdict"] == stats.verdict(want, stats.better_direction(key))
    assert "differences" not in doc["channels"][0]["results"][0]
    md = (out / "leakage.md").read_text()
    verdict = doc["channels"][1]["results"][0]["differences"]["psnr"]["verdict"]
    assert f"({verdict})" in md.splitlines()[md.splitlines().index("|---|---|---|---|---|---|") + 2]
    assert "Paired differences against topk:1" in md and "n = 10" in md and "toyclf.base" in md
    page = (out / "leakage.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page and "topk:10" in page
    with Image.open(out / "leakage.png") as png:
        assert png.format == "PNG" and png.width > 3 * png.height / 2  # three panels side by side
    fig = leakage_figure(doc)
    assert [ax.get_title() for ax in fig.axes] == ["instance ID (pixel)", "top-1 agreement", "PSNR dB"]
    assert fig.axes[0].get_xscale() == "log" and "chance (0.5)" in fig.axes[0].get_legend_handles_labels()[1]
    assert "toyclf.base" in fig._suptitle.get_text() and "n = 10" in fig._suptitle.get_text()

    # rerun: every pair is reused, nothing is inverted again, and the files say the same
    from invkit.evaluation import bench as bench_module

    def no_inversion(*args, **kwargs):
        raise AssertionError("a finished pair was inverted again")

    monkeypatch.setattr(bench_module, "invert_logits", no_inversion)
    again, output = _leakage(out, "--family", "topk:1,5,all")
    assert output.count("(1 reused)") == 3
    metrics = [c["results"][0]["metrics"] for c in doc["channels"]]
    assert [c["results"][0]["metrics"] for c in again["channels"]] == metrics

    # a bad rerun into the same folder (a K above the classes; other settings than the benches there) loses nothing
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    one_line_error(cli([*BASE, "--out", str(out), "--family", "topk:1,99"]), "topk:99")
    one_line_error(cli([*BASE, "--out", str(out), "--family", "topk:1,5", "--seed", "1"]), "other settings")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_mixed_list_with_an_evaluator_is_categorical_and_has_its_panels(toy, tmp_path):
    evaluator = tmp_path / "evaluator"
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        invkit.create_classifier("vgg11s.base", channels=1, input_size=28, width=2, num_classes=10).save(evaluator)
    out = tmp_path / "leak"
    doc, _ = _leakage(out, "--channels", "logits,label", "--evaluator", str(evaluator))
    assert doc["family"]["categorical"] and [c["folder"] for c in doc["channels"]] == ["logits", "label"]
    keys = [m["key"] for m in doc["metrics"]]
    assert keys == [*MAIN, "eval:evaluator:top1", "eval:evaluator:id_accuracy"]
    _, record = _bench_record(out, "label")
    row = doc["channels"][1]["results"][0]
    assert row["metrics"]["eval:evaluator:top1"]["value"] == record["evaluators"]["evaluator"]["top1"]
    assert row["metrics"]["eval:evaluator:top1"]["high"] == record["intervals"]["eval:evaluator:top1"]["high"]
    assert row["differences"]["eval:evaluator:id_accuracy"]["verdict"] in stats.VERDICTS
    chance = {m["key"]: m["chance"] for m in doc["metrics"]}
    assert chance["eval:evaluator:id_accuracy"] == 0.5 and chance["psnr"] is None
    fig = leakage_figure(doc)
    assert len(fig.axes) == 5 and fig.axes[3].get_title() == "evaluator top-1"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["logits", "label"]
    with Image.open(out / "leakage.png") as png:
        assert png.size[1] > png.size[0] / 2  # two rows of panels


def test_a_learned_inverter_runs_the_channels_it_has_a_checkpoint_for(toy, tmp_path):
    train = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8", "--steps", "2"]
    run = tmp_path / "run"
    result = cli([*train, "--save-every", "2", "--channel", "topk:5", "--out", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "leak"
    doc, output = _leakage(out, "--family", "topk:1,5", "--inverter", "optim,toyinv", "--checkpoint", str(run))
    assert "topk:1: toyinv skipped: no --checkpoint trained on channel 'topk:1'" in output
    assert [r["inverter"] for r in doc["channels"][0]["results"]] == ["optim"]
    assert [r["inverter"] for r in doc["channels"][1]["results"]] == ["optim", "toyinv"]
    toyinv = doc["channels"][1]["results"][1]
    assert "against" not in toyinv  # its first channel: nothing to compare with
    assert "skipped" in (out / "leakage.md").read_text()
    # a learned inverter alone, with no checkpoint for any channel: refused before anything is written
    lone = ["--family", "topk:1,5", "--inverter", "toyinv", "--out", str(tmp_path / "none")]
    one_line_error(cli([*BASE, *lone]), "no channel of 'topk:1,5' can be run", "invkit train --channel")
    assert not (tmp_path / "none").exists()
    # a checkpoint trained on a channel outside the family is refused, naming it
    other = ["--family", "topk:1,2", "--inverter", "toyinv", "--checkpoint", str(run), "--out", str(tmp_path / "x")]
    one_line_error(cli([*BASE, *other]), "topk:5", "topk:1,2")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--family", "topq:1,5"], "topk"),  # unknown name: the closest suggested
        (["--family", "topk:1,11"], "topk:11"),  # K above the 10 classes
        (["--family", "round:1,-1"], "must be 0 or more"),
        (["--family", "noise:0,nan"], "finite"),
        (["--family", "topk:"], "is empty"),
        (["--family", "topk:1,,5"], "empty value"),
        (["--family", "label:1"], "no parameter"),
        (["--family", "round:all"], "'all' is a value of topk only"),
        (["--family", "topk:5,5"], "twice"),
        (["--channels", "logits,,probs"], "empty spec"),
        (["--family", "topk:1", "--channels", "logits"], "exactly one"),
    ],
)
def test_bad_families_are_one_line_and_lose_nothing(toy, tmp_path, args, expected):
    out = tmp_path / "leak"
    out.mkdir()
    (out / "notes.txt").write_text("a user's notes")
    one_line_error(cli([*BASE, "--out", str(out), *args]), expected)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # refused before anything was written
    assert (out / "notes.txt").read_text() == "a user's notes"


def test_parse_family_and_channels_in_the_library(toy):
    family = parse_family("noise:0, 0.5,2", num_classes=10)
    assert [m.spec for m in family.members] == ["noise:0.0", "noise:0.5", "noise:2.0"]
    assert [m.parameter for m in family.members] == [0, 0.5, 2] and not family.log_x
    assert [m.slug for m in family.members] == ["noise_0.0", "noise_0.5", "noise_2.0"]
    mixed = parse_channels(["logits", "topk:all"], num_classes=7)
    assert [m.spec for m in mixed.members] == ["logits", "topk:7"] and mixed.categorical
    assert slug_of("topk:5") == "topk_5"
    with pytest.raises(invkit.InputError, match="noise:inf"):
        parse_family("noise:inf", num_classes=10)
    assert np.isfinite(family.members[1].parameter)
