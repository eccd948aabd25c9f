"""Issue 13, points 2-8: bad input, faults and field reports, grouped by kind.

Each kind is fixed where it is owned (``invkit.io.files`` atomic writes, ``invkit.cli._common`` option types,
``invkit.utils.config.check_fields``, ``invkit.io.outputs`` output folders and resumes, ``invkit.training`` checkpoint
health)
and tested here on several members, including every example of the issue.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import invkit
from invkit.data import load_dataset, take
from invkit.errors import CheckpointError, DataError, InputError, InvkitError, OutputError, TrainingError
from invkit.io import (
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    claim_output,
    save_checkpoint,
)

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error

DEMO = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"
CLF = str(DEMO / "classifier_standard")
BIGGAN = str(DEMO / "biggan_standard")
BENCH = ["bench", "--classifier", CLF, "--inverter", "optim"]
PROBE = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN]
TRAIN = ["train", "--classifier", CLF, "--inverter", "biggan_proj.mnist32", "--steps", "1"]


@pytest.fixture
def digits(tmp_path):
    """Two 28x28 grey digit PNGs from the embedded test split."""
    images, _ = take(load_dataset("default", "test"), 2, seed=0)
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / "in" / f"d{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((im[0] * 255).round().byte().numpy(), "L").save(p)
        paths.append(str(p))
    return paths


@pytest.fixture
def toy():
    _toy_inverter.register()


def _copy_checkpoint(src: str, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in Path(src).iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _refuse_writes_under(monkeypatch, root: Path, code: int = errno.EROFS) -> None:
    """Make every folder and file creation under ``root`` fail as on a read-only mount (works as root too)."""
    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(self, *a, **k):
        if str(self).startswith(str(root)):
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *a, **k)

    def os_open(path, flags, *a, **k):
        if str(path).startswith(str(root)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)


def _disk_full_after(monkeypatch, allowed: int) -> list[str]:
    """Let ``allowed`` atomic writes succeed, then fail every later one with ENOSPC (as a full disk does)."""
    import invkit.io.files as ck

    done: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(str(src)).name.endswith(ck.TEMP_SUFFIX) and len(done) >= allowed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        done.append(str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", replace)
    return done


# =========================================================================== point 2: outputs that cannot be written
@pytest.mark.parametrize(
    "args",
    [
        ["bench", "--classifier", CLF, "--inverter", "optim", "--option", "optim:steps=1", "-n", "10"],
        ["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN, "-n", "8"],
        ["train", "--classifier", CLF, "--inverter", "biggan_proj.mnist32", "--steps", "1"],
        ["train-classifier", "--steps", "1"],
    ],
    ids=["bench", "probe", "train", "train-classifier"],
)
def test_out_in_a_read_only_folder_is_one_line(args, tmp_path, monkeypatch):
    ro = tmp_path / "readonly"
    ro.mkdir()
    _refuse_writes_under(monkeypatch, ro)
    error = one_line_error(cli([*args, "--out", str(ro / "out"), "--device", "cpu"]), "cannot write")
    assert "not writable" in error


def test_invert_into_a_read_only_folder_is_one_line(digits, tmp_path, monkeypatch):
    ro = tmp_path / "readonly"
    ro.mkdir()
    _refuse_writes_under(monkeypatch, ro)
    args = ["invert", *digits, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", str(ro), "--device", "cpu"]
    one_line_error(cli(args), "cannot write", "not writable")


def test_disk_full_during_invert_keeps_what_was_written(digits, tmp_path, monkeypatch):
    out = tmp_path / "out"
    done = _disk_full_after(monkeypatch, allowed=1)
    args = ["invert", *digits, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", str(out), "--device", "cpu"]
    one_line_error(cli(args), "disk is full")
    assert len(done) == 1 and Path(done[0]).exists()  # the first PNG survives
    assert Image.open(done[0]).size == (32, 32)
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind


def test_disk_full_during_bench_keeps_the_finished_pairs(tmp_path, monkeypatch):
    out = tmp_path / "b"
    args = ["bench", "--classifier", CLF, "--inverter", "optim", "--option", "optim:steps=1", "-n", "10"]
    assert cli([*args, "--out", str(out), "--device", "cpu"]).exit_code == 0
    before = (out / "results.json").read_text()
    _disk_full_after(monkeypatch, allowed=0)
    args2 = ["bench", "--classifier", CLF, "--inverter", "optim,dosovitskiy_brox"]
    args2 += ["--checkpoint", str(DEMO / "dbrox_standard"), "--option", "optim:steps=1", "-n", "10"]
    one_line_error(cli([*args2, "--out", str(out), "--device", "cpu"]), "disk is full")
    assert (out / "results.json").read_text() == before


def test_disk_full_during_train_is_one_line_and_keeps_what_was_written(tmp_path, monkeypatch, toy):
    out = tmp_path / "run"
    done = _disk_full_after(monkeypatch, allowed=1)  # train_config.json, then nothing
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--steps", "2", "--batch-size", "8"]
    one_line_error(cli([*args, "--save-every", "1", "--out", str(out), "--device", "cpu"]), "disk is full")
    assert done == [str(out / "train_config.json")] and json.loads((out / "train_config.json").read_text())
    assert not list(out.rglob(".*.tmp")) and not list((out / "checkpoints").glob(".tmp-*"))


def test_disk_full_during_probe_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "p"
    _disk_full_after(monkeypatch, allowed=1)  # the first figure, then nothing
    one_line_error(cli([*PROBE, "-n", "8", "--out", str(out), "--device", "cpu"]), "disk is full")
    assert not (out / "class-spread" / "results.json").exists()  # not reported as done
    assert len(list(out.rglob("*.png"))) == 1 and not list(out.rglob(".*.tmp"))


def test_disk_full_while_appending_to_the_training_log_is_one_line(tmp_path, monkeypatch, toy):
    import builtins

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        if str(path).endswith("log.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    out = tmp_path / "run"
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--steps", "2", "--batch-size", "8"]
    one_line_error(cli([*args, "--out", str(out), "--device", "cpu"]), "log.jsonl", "disk is full")
    assert json.loads((out / "train_config.json").read_text())


def test_safetensors_write_error_becomes_output_error(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    import invkit.io.files as ck

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    atomic_save_safetensors(tmp_path / "w.safetensors", {"a": torch.ones(2)})
    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(OutputError, match="disk is full"):
        atomic_save_safetensors(tmp_path / "w.safetensors", {"a": torch.zeros(2)})
    assert torch.equal(load_file(str(tmp_path / "w.safetensors"))["a"], torch.ones(2))  # the old file is intact


@pytest.mark.parametrize("command", ["train-classifier", "train"])
def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(command, tmp_path, monkeypatch):
    # A file where the cache folder should be: every write into the cache fails, even for root.
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path / "cachefile"))
    data = tmp_path / "data"
    for split in ("train", "test"):
        for c in ("3", "7"):  # digit classes: the classifier's class names are checked against the folders'
            (data / split / c).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (28, 28), 30 * i + (100 if c == "7" else 0)).save(data / split / c / f"{i}.png")
    if command == "train-classifier":
        args = ["train-classifier", "--data", str(data), "--steps", "2", "--batch-size", "4", "--eval-samples", "2"]
    else:
        args = ["train", "--classifier", CLF, "--inverter", "dosovitskiy_brox.mnist", "--data", str(data)]
        args += ["--steps", "1", "--batch-size", "4", "-o", "fc_dim=16", "-o", "start_channels=8"]
    result = cli([*args, "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "warning: the invkit cache" in result.output and "cannot be written" in result.output


def test_a_tarball_is_unpacked_elsewhere_when_the_cache_is_read_only(tmp_path, monkeypatch):
    import tarfile

    src = tmp_path / "src" / "test"
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        Image.new("L", (28, 28), 50).save(src / c / "0.png")
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="d")
    (tmp_path / "cachefile").write_text("")
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path / "cachefile"))
    with pytest.warns(UserWarning, match="cannot be written"):
        ds = load_dataset(str(tmp_path / "d.tar.gz"), "test")
    assert len(ds) == 2


# ================================================================================================ point 3: file modes
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_every_atomic_write_follows_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.png", b"x")
        atomic_write_text(tmp_path / "b.md", "x")
        atomic_write_json(tmp_path / "c.json", {"a": 1})
        atomic_save_safetensors(tmp_path / "d.safetensors", {"a": torch.ones(1)})
        save_checkpoint(tmp_path / "ckpt", kind="inverter", name="x.y", config={}, state_dict={"a": torch.ones(1)})
        files = ["a.png", "b.md", "c.json", "d.safetensors", "ckpt/config.json", "ckpt/model.safetensors"]
        for name in files:
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    finally:
        os.umask(old)


def test_cli_outputs_follow_the_umask(digits, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        args = ["invert", *digits, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", str(out), "--device", "cpu"]
        assert cli(args).exit_code == 0
        for f in out.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    finally:
        os.umask(old)


# =========================================================================================== point 4: invalid values


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([*BENCH, "--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
        ([*BENCH, "-n", "0"], "'-n': 0 is not in the range x>=1"),
        ([*BENCH, "--id-k", "1"], "'--id-k'"),
        ([*BENCH, "--seed", "-1"], "'--seed'"),
        ([*BENCH, "-n", "1500"], "-n 1500 is more than the 1000 images"),
        ([*BENCH, "--option", "optim:steps=abc"], "'steps' must be a whole number, got 'abc'"),
        ([*BENCH, "--option", "optim:lr=nan"], "'lr' must be a finite number"),
        ([*BENCH, "--option", "optim:lr=-1"], "'lr' must be above 0"),
        ([*BENCH, "--option", "optim:normalize=3"], "'normalize' must be true or false"),
        ([*BENCH, "--device", "tpu"], "'tpu' is not a device"),
        ([*BENCH, "--device", "meta"], "'meta' is not a device"),
        ([*PROBE, "-n", "-4"], "'-n' / '--num-images': -4 is not in the range x>=1"),
        ([*PROBE, "-n", "0"], "is not in the range x>=1"),
        ([*PROBE, "--device", "mps"], "mps"),
        (
            ["probe", "fgsm", "--classifier", CLF, "--checkpoint", BIGGAN, "--option", "eps=nan"],
            "'eps' must be a finite",
        ),
        ([*TRAIN, "-o", "cbn_hidden=abc"], "'cbn_hidden' must be a whole number, got 'abc'"),
        ([*TRAIN, "-o", "ch=-8"], "'ch' must be above 0"),
        ([*TRAIN, "-o", "g_lr=inf"], "'g_lr' must be a finite number"),
        ([*TRAIN, "--ch", "0"], "'--ch': 0 is not in the range x>=1"),
        ([*TRAIN, "--lr-g", "-1"], "'--lr-g': -1 must be above 0"),
        ([*TRAIN, "--lr-d", "nan"], "'--lr-d': nan is not a finite number"),
        ([*TRAIN, "--device", "tpu"], "'tpu' is not a device"),
        (["train-classifier", "--input-size", "0"], "'--input-size': 0 is not in the range x>=8"),
        (["train-classifier", "--lr", "nan"], "'--lr': nan is not a finite number"),
        (["train-classifier", "--eps", "2"], "'--eps': 2 must be at most 1"),
        (["train-classifier", "--epochs", "-1"], "'--epochs'"),
        (["invert", CLF, "--classifier", CLF, "--inverter", "optim", "-n", "0"], "'-n': 0 is not in the range"),
    ],
)
def test_every_option_value_is_checked_where_it_enters(args, expected, tmp_path):
    out = tmp_path / "out"
    one_line_error(cli([*args, "--out", str(out)]), expected)
    assert not out.exists()  # a refused run writes nothing


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ch", "eight", "'ch' must be a whole number, got 'eight'"),
        ("ch", -8, "'ch' must be above 0"),
        ("g_lr", None, "'g_lr' must be a finite number"),
        ("num_classes", 10.5, "'num_classes' must be a whole number"),
    ],
)
def test_checkpoint_config_values_are_checked(field, value, expected, tmp_path, digits):
    ckpt = _copy_checkpoint(BIGGAN, tmp_path / "ckpt")
    doc = json.loads((ckpt / "config.json").read_text())
    doc["config"][field] = value
    (ckpt / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="config.json") as info:
        invkit.load_inverter(ckpt)
    assert expected in str(info.value)
    args = ["invert", *digits, "--classifier", CLF, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]
    one_line_error(cli(args), expected)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(bogus=1), "unknown classifier config field(s) 'bogus'"),
        (lambda c: c.pop("num_classes"), "lacks 'num_classes'"),
        (lambda c: c.update(num_classes="abc"), "'num_classes' must be a whole number, got 'abc'"),
        (lambda c: c.update(input_size=[1, 28]), "'input_size' must be 3 whole numbers"),
        (lambda c: c.update(input_size=[4, 28, 28]), "'input_size' must have 1 or 3 channels"),
        (lambda c: c.update(mean=[0.5, 0.5, 0.5]), "'mean' needs one finite number per input channel (1)"),
        (lambda c: c.update(std=[0.0]), "'std' values must be above 0"),
        (lambda c: c.update(interpolation="cubic"), "'interpolation' must be one of bilinear, bicubic, nearest"),
        (lambda c: c.update(channel_order="GBR"), "'channel_order' must be RGB or BGR"),
        (lambda c: c.update(label_names=["zero", "one"]), "'label_names' must be 10 strings"),
        (lambda c: c.update(num_classes=12, label_names=None), "has 12 classes and 1 input channels, but"),
        (lambda c: c.update(input_size=[3, 28, 28], mean=[0, 0, 0], std=[1, 1, 1]), "and 3 input channels, but"),
    ],
    ids=[
        "unknown field",
        "missing field",
        "wrong type",
        "2-d size",
        "4 channels",
        "mean per channel",
        "std 0",
        "interpolation",
        "channel order",
        "label names",
        "other class count",
        "other channels",
    ],
)
def test_classifier_config_values_are_checked(change, expected, tmp_path, digits):
    """A classifier folder's stored preprocessing config is checked as it loads, not used as it is (several kinds)."""
    ckpt = _copy_checkpoint(CLF, tmp_path / "clf")
    doc = json.loads((ckpt / "config.json").read_text())
    change(doc["config"]["classifier_config"])
    (ckpt / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="config.json") as info:
        invkit.load_classifier(ckpt)
    assert expected in str(info.value)
    args = ["invert", *digits, "--classifier", str(ckpt), "--checkpoint", BIGGAN, "--out", str(tmp_path / "o")]
    one_line_error(cli(args), expected)
    assert not (tmp_path / "o").exists()


def test_classifier_config_checks_values_built_in_code_too():
    from invkit.core.classifier import ClassifierConfig

    with pytest.raises(InputError, match="'std' values must be above 0"):
        ClassifierConfig(name="x", num_classes=3, std=(0.2, 0.0, 0.2))
    with pytest.raises(InputError, match="'label_names' must be 3 strings"):
        ClassifierConfig(name="x", num_classes=3, label_names=("a", "b"))
    config = ClassifierConfig(name="x", num_classes=2, label_names=("a", "b"))
    assert ClassifierConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda c: ((c / "config.json").unlink(), (c / "config.json").mkdir()),
        lambda c: (c / "config.json").write_text('{"name": 3, "invkit_kind": "inverter"}'),
        lambda c: (c / "config.json").write_text(
            '{"name": "biggan_proj.mnist32", "invkit_kind": "inverter", "config": [1, 2]}'
        ),
    ],
    ids=["config.json is a folder", "name is a number", "config is a list"],
)
def test_a_broken_config_json_is_one_line(corrupt, tmp_path, digits):
    ckpt = _copy_checkpoint(BIGGAN, tmp_path / "ckpt")
    corrupt(ckpt)
    with pytest.raises(CheckpointError):
        invkit.load_inverter(ckpt)
    args = ["invert", *digits, "--classifier", CLF, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]
    one_line_error(cli(args), "config.json")


def test_library_values_are_checked_too():
    with pytest.raises(DataError, match="unknown split 'tset'"):
        load_dataset("default", "tset")
    ds = load_dataset("default", "test")
    for bad in (-3, 0, 2.5):
        with pytest.raises(InputError, match="take: n must be"):
            take(ds, bad)
    with pytest.raises(InputError, match="'steps' must be a whole number"):
        invkit.create_inverter("optim.mv15", steps="abc")
    with pytest.raises(InputError, match="'ch' must be above 0"):
        invkit.create_inverter("biggan_proj.mnist32", ch=0)
    with pytest.raises(InputError, match="'leak' must be a finite number"):
        invkit.create_inverter("dosovitskiy_brox.mnist", leak=float("nan"))
    from invkit.evaluation.bench import Bench
    from invkit.evaluation.settings import BenchSettings
    from invkit.training import TrainClassifierConfig, TrainConfig, train_classifier, train_inverter

    with pytest.raises(InputError, match="'batch_size' must be above 0"):
        Bench(BenchSettings(classifiers=[CLF], inverters=["optim"], batch_size=0))
    with pytest.raises(InvkitError, match="--id-k must be at least 2"):
        Bench(BenchSettings(classifiers=[CLF], inverters=["optim"], id_k=1))
    clf = invkit.load_classifier(CLF)
    for bad, text in [({"lr_g": float("nan")}, "'lr_g' must be a finite number"), ({"ch": -8}, "'ch' must be above 0")]:
        with pytest.raises(InputError, match=text):
            train_inverter(TrainConfig(**bad), clf, None, None, None)

    with pytest.raises(InputError, match="'lr' must be a finite number"):
        train_classifier(TrainClassifierConfig(lr=float("nan")), "unused")


def _corrupt_train_state(path: Path, tree: str) -> Path:
    from invkit.io import save_train_state

    save_train_state(path, {"step": 3, "w": torch.ones(2)})
    save_file(load_file(str(path)), str(path), metadata={"invkit_tree": tree})
    return path


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda t: invkit.data.TensorImageDataset(torch.rand(2, 1, 8, 8), torch.zeros(2), ["a"]), InputError,
         "images must be a uint8 tensor (N, C, H, W)"),
        (lambda t: invkit.data.TensorImageDataset(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(3), ["a"]),
         InputError, "labels must be a tensor of shape (2,)"),
        (lambda t: invkit.evaluation.inversion.invert_logits(invkit.load_inverter(BIGGAN), torch.zeros(0, 10), seed=0,
                                                             batch_size=4),
         InputError, "non-empty (N, num_classes) batch"),
        (lambda t: invkit.io.load_safetensors(t), CheckpointError, "is a folder"),
        (lambda t: invkit.io.load_train_state(_corrupt_train_state(t / "s", "{not json")),
         CheckpointError, "invkit_tree metadata is corrupt"),
        (lambda t: invkit.io.load_train_state(_corrupt_train_state(t / "s", '{"__tensor__": "x"}')),
         CheckpointError, "names a tensor the file lacks"),
        (lambda t: invkit.load_inverter(BIGGAN).invert(torch.zeros(2, 10), noise=[[0.0] * 120] * 2), InputError,
         "expected noise as a torch.Tensor"),
        (lambda t: invkit.load_inverter(BIGGAN).invert(torch.zeros(2, 10), noise=torch.zeros(2, 120, dtype=torch.long)),
         InputError, "expected float noise"),
        (lambda t: invkit.load_inverter(BIGGAN).invert(torch.zeros(2, 10), noise=torch.full((2, 120), float("nan"))),
         InputError, "noise holds NaN or inf"),
    ],
    ids=["float images", "labels per image", "empty logits", "weights folder", "tree not json", "tree names a tensor",
         "noise a list", "integer noise", "nan noise"],
)  # fmt: skip
def test_library_entry_points_refuse_bad_values_with_one_line(call, error, text, tmp_path):
    """Raw errors (ValueError, RuntimeError from torch.cat, IsADirectoryError, JSONDecodeError, AttributeError,
    NaN images) that library calls gave for these inputs, each now an invkit error saying what is wrong."""
    import invkit.data  # noqa: F401  (the lambdas reach it as invkit.data)

    with pytest.raises(error) as info:
        call(tmp_path)
    assert text in str(info.value) and "\n" not in str(info.value)


# ======================================================================================== point 5: non-finite numbers
def _with_weights(src: str, dst: Path, change) -> Path:
    ckpt = _copy_checkpoint(src, dst)
    state = load_file(str(ckpt / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = change(state[key])
    save_file(state, str(ckpt / "model.safetensors"))
    return ckpt


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.clone().fill_(float("nan")), "NaN/inf"),
        (lambda t: torch.where(torch.arange(t.numel()).view(t.shape) == 0, float("inf"), t), "NaN/inf"),
        (lambda t: t.to(torch.int32), "int32"),
    ],
    ids=["nan", "inf", "int32"],
)
@pytest.mark.parametrize("src", [BIGGAN, str(DEMO / "dbrox_standard"), CLF], ids=["biggan", "dbrox", "classifier"])
def test_non_finite_or_integer_weights_are_refused_at_load(change, expected, src, tmp_path, digits):
    ckpt = _with_weights(src, tmp_path / "ckpt", change)
    with pytest.raises(CheckpointError, match=expected):
        invkit.load_classifier(ckpt) if src == CLF else invkit.load_inverter(ckpt)
    if src == BIGGAN:
        out = tmp_path / "o"
        args = ["invert", *digits, "--classifier", CLF, "--checkpoint", str(ckpt), "--out", str(out)]
        one_line_error(cli(args), expected)
        assert not out.exists()


@pytest.mark.parametrize("name", ["biggan_proj.mnist32", "dosovitskiy_brox.mnist", "optim.mv15"])
def test_bad_logits_raise_input_error(name):
    clf = invkit.load_classifier(CLF)
    inv = invkit.create_inverter(name, classifier=clf)
    good = torch.randn(2, 10)
    for bad, text in [
        (good.clone().index_fill_(1, torch.tensor([3]), float("nan")), "NaN/inf"),
        (good.clone().index_fill_(0, torch.tensor([1]), float("inf")), "row(s) 1"),
        (torch.empty(0, 10), "empty"),
    ]:
        with pytest.raises(InputError, match=text.replace("(", r"\(").replace(")", r"\)")):
            inv.invert(bad)


def test_json_outputs_never_hold_nan(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -math.inf}})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


# =========================================================================== point 6: results overwritten or mixed
def test_two_runs_never_share_an_out_folder(tmp_path):
    out = tmp_path / "b"
    with claim_output(out, "invkit bench"):  # another bench still running there
        args = [*BENCH, "--option", "optim:steps=1", "-n", "10", "--out", str(out), "--device", "cpu"]
        one_line_error(cli(args), "is in use by another invkit run", "invkit bench pid")
        assert not (out / "results.json").exists()
    with claim_output(out, "x"):
        pass  # released when the first run ends
    assert cli(args).exit_code == 0
    assert (out / "results.json").exists() and not (out / ".invkit.lock").exists()  # no lock left behind


def test_bench_rerun_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "b"
    args = [*BENCH, "--option", "optim:steps=1", "--out", str(out), "--device", "cpu"]
    assert cli([*args, "-n", "10"]).exit_code == 0
    before = (out / "results.json").read_text()
    one_line_error(cli([*args, "-n", "12"]), "other settings", "n 10 -> 12")
    assert (out / "results.json").read_text() == before


def test_probe_rerun_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "p"
    args = [*PROBE, "--out", str(out), "--device", "cpu"]
    assert cli([*args, "-n", "8"]).exit_code == 0
    before = (out / "class-spread" / "results.json").read_text()
    rerun = cli([*args, "-n", "8"])  # same settings: skipped, as before
    assert rerun.exit_code == 0 and "skipped" in rerun.output
    one_line_error(cli([*args, "-n", "10"]), "other settings", "num_images 8 -> 10")
    one_line_error(cli([*args, "-n", "8", "--seed", "1"]), "seed 0 -> 1")
    other = ["probe", "class-spread", "--classifier", str(DEMO / "classifier_robust")]
    other += ["--checkpoint", str(DEMO / "biggan_robust"), "-n", "8", "--out", str(out), "--device", "cpu"]
    one_line_error(cli(other), "classifier_robust")
    assert (out / "class-spread" / "results.json").read_text() == before
    assert cli([*args, "-n", "10", "--force"]).exit_code == 0  # --force replaces them
    assert json.loads((out / "class-spread" / "results.json").read_text())["run"]["num_images"] == 10


def _retrain_into(folder: Path) -> None:
    """New weights saved into the same checkpoint folder (as an inverter trained further would be)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.01
    save_file(state, str(folder / "model.safetensors"))


def test_probe_and_invert_reruns_with_new_weights_in_the_same_folder_are_refused(tmp_path):
    """Outputs identify a checkpoint by path and weights: after weights are retrained into the same folder, a
    probe is not skipped as finished and invert does not add to the old reconstructions; --force redoes a probe."""
    biggan = tmp_path / "biggan"
    shutil.copytree(BIGGAN, biggan)
    probe = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", str(biggan), "-n", "8", "--device", "cpu"]
    probe += ["--out", str(tmp_path / "p")]
    Image.new("L", (28, 28), 90).save(tmp_path / "x.png")
    invert = ["invert", "--classifier", CLF, "--checkpoint", str(biggan), "--out", str(tmp_path / "i")]
    invert += ["--device", "cpu", str(tmp_path / "x.png")]
    assert cli(probe).exit_code == 0 and cli(invert).exit_code == 0
    results = tmp_path / "p" / "class-spread" / "results.json"
    before = results.read_text(), (tmp_path / "i" / "invert.json").read_text()
    _retrain_into(biggan)
    one_line_error(cli(probe), "other settings", "checkpoint")
    one_line_error(cli(invert), "other settings", "checkpoint")
    assert (results.read_text(), (tmp_path / "i" / "invert.json").read_text()) == before  # nothing changed
    assert cli([*probe, "--force"]).exit_code == 0
    assert json.loads(results.read_text())["run"]["checkpoint"] != json.loads(before[0])["run"]["checkpoint"]


def test_invert_of_two_files_with_one_name_writes_two_files(tmp_path):
    for sub, value in (("a", 60), ("b", 200)):
        (tmp_path / sub).mkdir()
        Image.new("L", (28, 28), value).save(tmp_path / sub / "x.png")
    out = tmp_path / "out"
    base = ["invert", "--classifier", CLF, "--checkpoint", BIGGAN, "--out", str(out), "--device", "cpu"]
    result = cli([*base, str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "invert.json").read_text())
    written = [w for e in doc["images"] for w in e["written"]]
    assert sorted(written) == ["a_x_recon.png", "b_x_recon.png"] and all((out / w).exists() for w in written)
    # a third x.png from another folder, same settings: added under a name of its own, nothing replaced
    (tmp_path / "c" / "a").mkdir(parents=True)
    Image.new("L", (28, 28), 120).save(tmp_path / "c" / "a" / "x.png")
    assert cli([*base, str(tmp_path / "c" / "a" / "x.png")]).exit_code == 0
    doc = json.loads((out / "invert.json").read_text())
    assert len(doc["images"]) == 3 and len({w for e in doc["images"] for w in e["written"]}) == 3
    assert cli([*base, str(tmp_path / "a" / "x.png")]).exit_code == 0  # inverted again: keeps its own name
    doc = json.loads((out / "invert.json").read_text())
    assert len(doc["images"]) == 3 and sorted(p.name for p in out.glob("*_recon.png")) == sorted(
        w for e in doc["images"] for w in e["written"]
    )
    one_line_error(cli([*base, "--seed", "5", str(tmp_path / "a" / "x.png")]), "other settings", "seed 0 -> 5")


def test_train_classifier_never_overwrites_a_model_without_resume(tmp_path):
    args = ["train-classifier", "--steps", "2", "--batch-size", "8", "--eval-samples", "2", "--device", "cpu"]
    out = tmp_path / "c"
    assert cli([*args, "--out", str(out)]).exit_code == 0
    weights = (out / "model.safetensors").read_bytes()
    one_line_error(cli([*args, "--out", str(out)]), "already holds a trained classifier", "--resume")
    assert (out / "model.safetensors").read_bytes() == weights


def test_a_killed_writer_leaves_no_temporary_files(tmp_path, toy):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    # invkit's temporary naming (.NAME.invkit-PID-XXXXXXXX.tmp) of a writer that is gone (no such pid)
    stale = [
        out / "checkpoints" / ".latest.invkit-999999999-abc123.tmp",
        out / ".train_config.json.invkit-999999999-x1y2.tmp",
    ]
    for p in stale:
        p.write_text("half")
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--steps", "2", "--batch-size", "8"]
    assert cli([*args, "--out", str(out), "--device", "cpu"]).exit_code == 0
    assert not any(p.exists() for p in stale) and not list(out.rglob("*.tmp"))


# ============================================================================= point 7: resume with other settings
TOY_TRAIN = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8"]
TOY_TRAIN += ["--save-every", "5", "--sample-every", "5", "--device", "cpu"]


def test_train_resume_with_fewer_steps_is_refused(tmp_path, toy):
    out = tmp_path / "run"
    assert cli([*TOY_TRAIN, "--steps", "10", "--out", str(out)]).exit_code == 0
    config = (out / "train_config.json").read_text()
    one_line_error(cli(["train", "--out", str(out), "--resume", "--steps", "5"]), "at step 10", "--steps 5")
    assert (out / "train_config.json").read_text() == config  # not rewritten


def test_train_resume_from_another_folder_with_a_relative_data_path(tmp_path, monkeypatch, toy):
    for where, value in (("one", 0), ("two", 255)):
        for split in ("train", "test"):
            for c in ("a", "b"):
                (tmp_path / where / "d" / split / c).mkdir(parents=True)
                for i in range(4):
                    Image.new("L", (28, 28), abs(value - 20 * i)).save(tmp_path / where / "d" / split / c / f"{i}.png")
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "one")
    assert cli([*TOY_TRAIN, "--steps", "5", "--data", "d", "--out", str(out)]).exit_code == 0
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["train"]["data"] == str(tmp_path / "one" / "d") and recorded["data_fingerprint"]
    monkeypatch.chdir(tmp_path / "two")
    one_line_error(cli(["train", "--out", str(out), "--resume", "--steps", "10", "--data", "d"]), "not the data")
    assert cli(["train", "--out", str(out), "--resume", "--steps", "10"]).exit_code == 0  # the recorded path


TC_ARGS = ["train-classifier", "--batch-size", "8", "--eval-samples", "2", "--device", "cpu", "--out"]


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory):
    """A train-classifier run of 2 steps, trained once for the resume tests (each test works on a copy)."""
    invkit.core.plugins.reset()
    out = tmp_path_factory.mktemp("tc") / "c"
    result = cli([*TC_ARGS, str(out), "--steps", "2"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--lr", "0.01"], "--lr 0.001"),
        (["--batch-size", "4"], "--batch-size 8"),
        (["--optimizer", "sgd"], "--optimizer 'adam'"),
        (["--weight-decay", "0.1"], "--weight-decay 0.0"),
        (["--seed", "3"], "--seed 0"),
        (["--steps", "1"], "past the 1 steps"),
    ],
)
def test_train_classifier_resume_refuses_changed_settings(change, expected, trained_classifier, tmp_path):
    import shutil

    out = Path(shutil.copytree(trained_classifier, tmp_path / "c"))
    weights = (out / "model.safetensors").read_bytes()
    base = [a for a in TC_ARGS if a not in ("--batch-size", "8")] if "--batch-size" in change else TC_ARGS
    one_line_error(cli([*base, str(out), "--resume", "--steps", "4", *change]), expected)
    assert (out / "model.safetensors").read_bytes() == weights


def test_train_classifier_resume_may_change_steps_and_evaluation(trained_classifier, tmp_path):
    import shutil

    out = Path(shutil.copytree(trained_classifier, tmp_path / "c"))
    ok = cli([*TC_ARGS, str(out), "--resume", "--steps", "3", "--eval-samples", "3"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((out / "report.json").read_text())["steps"] == 3


# ================================================================================== point 8: which checkpoint is good
def _toy_run(out, resume=False, **changes):
    from invkit.training import TrainConfig, build_inverter, train_inverter

    fields = dict(classifier="toyclf.base", inverter="toyinv.base", out=str(out), steps=10, batch_size=8)
    fields.update(save_every=5, sample_every=5, log_every=1, device="cpu", seed=0, keep_checkpoints=0)
    fields.update(changes)
    config = TrainConfig(**fields)
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)
    train, test = load_dataset("default", "train"), load_dataset("default", "test")
    return train_inverter(config, clf, inverter, train, test, trainer_options=options, resume=resume)


@pytest.mark.parametrize("broken", ["model.safetensors", "train_state.safetensors"])
def test_resume_skips_a_truncated_newest_checkpoint(broken, tmp_path, toy):
    from invkit.training import latest_checkpoint

    _toy_run(tmp_path, steps=10)
    newest = latest_checkpoint(tmp_path)
    data = (newest / broken).read_bytes()
    (newest / broken).write_bytes(data[: len(data) // 2])  # cut short, as by a full disk or a killed copy
    with pytest.warns(UserWarning, match="step_000010.*resuming from step_000005"):
        result = _toy_run(tmp_path, resume=True, steps=15)
    assert result.step == 15 and latest_checkpoint(tmp_path).name == "step_000015"
    invkit.load_inverter(tmp_path / "checkpoints" / "step_000010")  # rewritten whole on the way


def test_resume_with_every_checkpoint_broken_names_them(tmp_path, toy):
    _toy_run(tmp_path, steps=5)
    (tmp_path / "checkpoints" / "step_000005" / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(TrainingError, match="no checkpoint .* can be read.*step_000005"):
        _toy_run(tmp_path, resume=True, steps=10)


def test_the_last_good_checkpoint_passed_the_health_check(tmp_path, toy):
    from invkit.training import find_checkpoints

    # checkpoints every 4 steps, sample grids every 10: the collapse at step 21 happens between grids
    with pytest.raises(TrainingError, match="collapse") as info:
        _toy_run(tmp_path, steps=30, save_every=4, sample_every=10, options={"collapse_at_step": 20})
    msg = str(info.value)
    assert "step 24" in msg and "step_000020" in msg
    steps = [s for s, _ in find_checkpoints(tmp_path)]
    assert steps == [4, 8, 12, 16, 20]  # nothing collapsed was written
    clf = invkit.create_classifier("toyclf.base")
    good = invkit.load_inverter(tmp_path / "checkpoints" / "step_000020")
    images, _ = take(load_dataset("default", "test"), 8, seed=0)
    out = good.invert(clf.logits(images), generator=torch.Generator().manual_seed(0))
    assert float(out.std(0).mean()) > 1e-4
    health = json.loads((tmp_path / "checkpoints" / "step_000020" / "config.json").read_text())["health"]
    assert health["sample_std"] > health["collapse_std"]


def test_a_stuck_loss_names_no_checkpoint_written_after_it_stalled(tmp_path, toy):
    # lr=0 and one fixed batch: the loss never moves, so checkpoints 2 and 4 were written after it stalled
    with pytest.raises(TrainingError, match="stayed at") as info:
        _toy_run(
            tmp_path,
            steps=20,
            stuck_steps=6,
            save_every=2,
            batch_size=2000,
            sample_every=0,
            options={"lr": 0.0, "draws": 1, "noise": 0},
        )
    assert "no checkpoint from before it is kept" in str(info.value) and "step_000004" not in str(info.value)
