"""`--tensorboard` (issue 24, point 4): the training logs as TensorBoard events in RUN/tensorboard/, read back with
tensorboard's own readers: scalars per step equal to log.jsonl, the sample grids as images, and after a run
that crashed past its last checkpoint and was resumed, each step exactly once. Without the tensorboard package
the flag is refused in one line naming the pip command.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")  # the optional extra: `pip install 'invkit[tensorboard]'`

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402

import invkit  # noqa: E402
from invkit.data import load_dataset  # noqa: E402
from invkit.training import TrainConfig, build_inverter, train_inverter  # noqa: E402
from invkit.training.classifier import TrainClassifierConfig, load_split, train_classifier  # noqa: E402
from invkit.training.report import read_log  # noqa: E402
from invkit.training.tensorboard_log import TENSORBOARD_DIR, trim_events  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error  # noqa: E402


@pytest.fixture(autouse=True)
def _toy_plugin():
    _toy_inverter.register()


class _Crash(Exception):
    """A process dying mid-run (after the events of the steps past its last checkpoint were written)."""


def _crash_at(step: int):
    def callback(event):
        if event.task == "train" and event.completed == step:
            raise _Crash

    return callback


def _train(out: Path, steps: int = 10, resume: bool = False, progress=None, **changes) -> None:
    config = TrainConfig(
        classifier="toyclf.base",
        inverter="toyinv.base",
        out=str(out),
        steps=steps,
        batch_size=8,
        save_every=5,
        sample_every=5,
        log_every=1,
        device="cpu",
        seed=0,
        tensorboard=True,
        **changes,
    )
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)
    kw = {"progress": progress} if progress is not None else {}
    train_inverter(
        config, clf, inverter, load_dataset("default", "train"), load_dataset("default", "test"),
        trainer_options=options, resume=resume, **kw,
    )  # fmt: skip


def _accumulate(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})  # 0: keep every event
    acc.Reload()
    return acc


def _raw_steps(folder: Path) -> dict[str, list[int]]:
    """Every scalar and image record of every event file, tag -> steps, read without any purge logic (as
    TensorBoard's Rust data server reads them): what is physically in the files."""
    steps: dict[str, list[int]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


def _scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _same_series(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """Steps equal, values equal up to float32 (what a TensorBoard scalar holds)."""
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def test_inverter_run_writes_its_log_lines_and_sample_grids_as_events(tmp_path):
    _train(tmp_path / "run")
    folder = tmp_path / "run" / TENSORBOARD_DIR
    acc = _accumulate(folder)
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 11))
    # the losses, img/s and the learning rate (the toy trainer's `opt` -> `lr`), each step once, as log.jsonl has them
    for tag in ("mse_loss", "img_per_s", "lr"):
        assert tag in acc.Tags()["scalars"], acc.Tags()
        got = _scalars(acc, tag)
        assert [s for s, _ in got] == list(range(1, 11)), tag
        _same_series(got, [(r["step"], r[tag]) for r in log])
    assert "epoch" not in acc.Tags()["scalars"] and "time" not in acc.Tags()["scalars"]  # as curves.png: not curves
    # the sample grids (originals above reconstructions), at the steps the PNGs were drawn, as the PNGs are
    images = acc.Images("samples")
    assert [e.step for e in images] == [5, 10]
    from PIL import Image

    png = Image.open(tmp_path / "run" / "samples" / "step_000010.png")
    assert (images[-1].width, images[-1].height) == png.size and images[-1].encoded_image_string[:4] == b"\x89PNG"
    # written beside log.jsonl, recorded as invkit's own (a rerun may rewrite it)
    assert (tmp_path / "run" / "log.jsonl").parent == folder.parent


def test_a_run_crashed_past_its_checkpoint_and_resumed_has_each_step_once(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(whole)
    with pytest.raises(_Crash):
        _train(cut, progress=_crash_at(8))  # checkpoint at 5; steps 6, 7, 8 logged and in the events
    folder = cut / TENSORBOARD_DIR
    assert max(_raw_steps(folder)["mse_loss"]) == 8
    # a kill mid-write leaves half a record at the end of the file
    first = sorted(folder.glob("events.out.tfevents.*"))[0]
    with open(first, "ab") as f:
        f.write(b"\x17\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    _train(cut, resume=True)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # one event file per start, in one run folder

    # TensorBoard's reader: each step once, with the values of an uninterrupted run (the resume is exact)
    acc, ref = _accumulate(folder), _accumulate(whole / TENSORBOARD_DIR)
    assert [s for s, _ in _scalars(acc, "mse_loss")] == list(range(1, 11))
    assert _scalars(acc, "mse_loss") == _scalars(ref, "mse_loss")
    assert [e.step for e in acc.Images("samples")] == [5, 10]
    # and in the files themselves, for a reader that does not purge (steps 6-8 of the crashed run were trimmed)
    raw = _raw_steps(folder)
    for tag in ("mse_loss", "img_per_s", "lr"):
        assert Counter(raw[tag]) == Counter(range(1, 11)), tag
    assert sorted(raw["samples"]) == [5, 10]
    # log.jsonl reads the same way
    assert [r["step"] for r in read_log(cut / "log.jsonl")] == list(range(1, 11))


def test_trim_events_keeps_the_records_up_to_the_step_byte_for_byte(tmp_path):
    _train(tmp_path / "run", steps=5)
    folder = tmp_path / "run" / TENSORBOARD_DIR
    (path,) = folder.glob("events.out.tfevents.*")
    before = path.read_bytes()
    assert trim_events(folder, 5) == []  # nothing past step 5: the file is not touched
    assert trim_events(folder, 3) == [path]
    after = path.read_bytes()
    assert len(after) < len(before) and before.startswith(after)  # only the tail went (records in step order)
    assert max(_raw_steps(folder)["mse_loss"]) == 3
    assert trim_events(tmp_path / "missing", 3) == []


def test_train_classifier_writes_events_and_a_resume_continues_them(tmp_path):
    train, test = load_split("default", "train"), load_split("default", "test")
    cfg = TrainClassifierConfig(
        steps=4, batch_size=16, eval_samples=4, eval_steps=1, checkpoint_every=2, log_every=1, tensorboard=True
    )
    with pytest.raises(_Crash):
        train_classifier(cfg, tmp_path / "c", train_data=train, test_data=test, progress=_crash_at(3))
    train_classifier(cfg, tmp_path / "c", resume=True, train_data=train, test_data=test)
    acc = _accumulate(tmp_path / "c" / TENSORBOARD_DIR)
    log = read_log(tmp_path / "c" / "log.jsonl")
    for tag in ("loss", "acc", "lr", "img_per_s"):
        _same_series(_scalars(acc, tag), [(r["step"], r[tag]) for r in log])
        assert Counter(_raw_steps(tmp_path / "c" / TENSORBOARD_DIR)[tag]) == Counter(range(1, 5)), tag


def test_cli_train_with_tensorboard_and_a_resume_that_keeps_it(tmp_path):
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8"]
    args += ["--save-every", "2", "--sample-every", "2", "--log-every", "1", "--device", "cpu"]
    result = cli([*args, "--out", str(tmp_path / "r"), "--steps", "2", "--tensorboard"])
    assert result.exit_code == 0, result.output
    assert f"tensorboard --logdir {tmp_path / 'r' / TENSORBOARD_DIR}" in result.output
    assert json.loads((tmp_path / "r" / "train_config.json").read_text())["train"]["tensorboard"] is True
    result = cli(["train", "--out", str(tmp_path / "r"), "--resume", "--steps", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    acc = _accumulate(tmp_path / "r" / TENSORBOARD_DIR)
    assert [s for s, _ in _scalars(acc, "mse_loss")] == [1, 2, 3, 4]  # the stored choice: events go on


def test_a_tensorboard_folder_invkit_did_not_write_is_refused(tmp_path):
    (tmp_path / "r" / TENSORBOARD_DIR).mkdir(parents=True)
    (tmp_path / "r" / TENSORBOARD_DIR / "mine.txt").write_text("my notes")
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8", "--steps", "1"]
    result = cli([*args, "--device", "cpu", "--out", str(tmp_path / "r"), "--tensorboard"])
    one_line_error(result, "tensorboard", "not written by invkit train")
    assert (tmp_path / "r" / TENSORBOARD_DIR / "mine.txt").read_text() == "my notes"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--steps", "1", "--tensorboard"],
        ["train-classifier", "--steps", "1", "--tensorboard"],
    ],
)
def test_without_the_tensorboard_package_the_flag_is_refused_in_one_line(tmp_path, monkeypatch, args):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, as where the package is not installed
    result = cli([*args, "--out", str(tmp_path / "r")])
    one_line_error(result, "--tensorboard needs the tensorboard package", "pip install 'invkit[tensorboard]'")
    assert not (tmp_path / "r").exists()  # refused before anything was written
    # the library refuses it the same way
    with pytest.raises(invkit.InvkitError, match="pip install"):
        train_classifier(TrainClassifierConfig(steps=1, tensorboard=True), tmp_path / "lib")
