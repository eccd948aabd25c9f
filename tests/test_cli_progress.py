"""Progress where stderr is not a terminal (a log file, CI, a pipe): plain lines, not a bar drawn only at the end."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from invkit.cli import build_cli
from invkit.cli._ui import plain_progress, progress_interval
from invkit.utils.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(console: Console) -> list[str]:
    return console.export_text().splitlines()


def test_plain_lines_come_every_interval_and_once_at_the_end():
    out, clock = Console(record=True, width=200, file=open("/dev/null", "w")), Clock()  # noqa: SIM115
    report = plain_progress(out, interval=30, clock=clock)
    for t, done in ((0, 0), (10, 10), (31, 31), (40, 40), (62, 62), (70, 100), (71, 100)):
        clock.now = t
        report(Progress("train", done, 100, {"g_loss": 0.4567}))
    assert _lines(out) == [
        "train  31/100 (31%)  elapsed 0:00:31  left 0:01:09  g_loss 0.4567",
        "train  62/100 (62%)  elapsed 0:01:02  left 0:00:38  g_loss 0.4567",
        "train  100/100 (100%)  elapsed 0:01:10  g_loss 0.4567",
    ]


def test_a_task_that_runs_again_is_timed_afresh_and_unknown_totals_count_up():
    out, clock = Console(record=True, width=200, file=open("/dev/null", "w")), Clock()  # noqa: SIM115
    report = plain_progress(out, interval=5, clock=clock)
    for t, task, done, total in ((0, "eval", 0, 8), (1, "eval", 8, 8), (100, "eval", 0, 8), (104, "eval", 8, 8),
                                 (100, "images", 3, None), (106, "images", 9, None)):  # fmt: skip
        clock.now = t
        report(Progress(task, done, total))
    assert _lines(out) == [
        "eval  8/8 (100%)  elapsed 0:00:01",
        "eval  8/8 (100%)  elapsed 0:00:04",
        "images  9  elapsed 0:00:06",
    ]


def test_final_lines_can_be_left_out_and_the_interval_comes_from_the_environment(monkeypatch):
    out, clock = Console(record=True, width=200, file=open("/dev/null", "w")), Clock()  # noqa: SIM115
    report = plain_progress(out, interval=30, final_lines=False, clock=clock)
    report(Progress("probes", 0, 2))
    clock.now = 3
    report(Progress("probes", 2, 2))
    assert _lines(out) == []
    for value, expected in (("5", 5.0), ("0", 0.0), ("abc", 30.0), ("-1", 30.0), ("nan", 30.0)):
        monkeypatch.setenv("INVKIT_PROGRESS_INTERVAL", value)
        assert progress_interval() == expected
    monkeypatch.delenv("INVKIT_PROGRESS_INTERVAL")
    assert progress_interval() == 30.0


def test_train_and_bench_write_progress_lines_into_a_log(tmp_path, monkeypatch):
    _toy_inverter.register()
    monkeypatch.setenv("INVKIT_PROGRESS_INTERVAL", "0")
    runner = CliRunner()
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--steps", "3", "--batch-size", "8"]
    result = runner.invoke(build_cli(), [*args, "--out", str(tmp_path / "run"), "--log-every", "1"])
    assert result.exit_code == 0, result.output
    steps = re.findall(r"^train\s+(\d)/3 \(\d+%\)\s+elapsed \d:\d\d:\d\d", result.output, flags=re.M)
    assert steps[-1] == "3" and len(steps) >= 2, result.output
    clf = str(DEMO / "classifier_standard")
    args = [
        "bench",
        "--classifier",
        clf,
        "--inverter",
        "optim",
        "-n",
        "2",
        "--option",
        "optim:steps=2",
        "--out",
        str(tmp_path / "b"),
    ]
    result = runner.invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    assert re.search(r"^bench\s+1/1 \(100%\)\s+elapsed", result.output, flags=re.M), result.output
