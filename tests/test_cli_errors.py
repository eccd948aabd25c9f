"""Issue 3, point 5: bad input to the CLI gets one line and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from invkit.cli import build_cli

DEMO = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"


def _fails_with_one_line(args: list[str], *expected: str) -> str:
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("Error:") and "Traceback" not in result.output, result.output
    error = lines[-1]
    for text in expected:
        assert text in error, error
    return error


@pytest.fixture
def folder(tmp_path):
    """An ImageFolder with two classes of 28x28 grey digits (named like the demo classifier's classes)."""
    for c in ("3", "7"):
        (tmp_path / "data" / "test" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (28, 28), 40 * i).save(tmp_path / "data" / "test" / c / f"{i}.png")
    return tmp_path / "data"


def test_unknown_names_suggest_close_matches(tmp_path):
    _fails_with_one_line(
        ["bench", "--classifier", "resnet15", "--inverter", "optim", "--out", str(tmp_path)], "resnet152"
    )
    _fails_with_one_line(
        [
            "bench",
            "--classifier",
            str(DEMO / "classifier_standard"),
            "--inverter",
            "bigan_proj",
            "--out",
            str(tmp_path),
        ],
        "biggan_proj",
    )
    _fails_with_one_line(
        [
            "probe",
            "fgsn",
            "--classifier",
            str(DEMO / "classifier_standard"),
            "--inverter",
            "optim",
            "--out",
            str(tmp_path),
        ],
        "fgsm",
    )


def test_missing_weights_file_names_the_flag(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    _fails_with_one_line(
        [
            "invert",
            "--classifier",
            "resnet152.tv_in1k",
            "--weights",
            str(tmp_path / "nope.pth"),
            "--inverter",
            "optim",
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "out"),
        ],
        "nope.pth",
        "--weights",
    )


def test_missing_checkpoint_folder(tmp_path):
    _fails_with_one_line(
        [
            "bench",
            "--classifier",
            str(DEMO / "classifier_standard"),
            "--inverter",
            "biggan_proj",
            "--checkpoint",
            str(tmp_path / "no_such_run"),
            "--out",
            str(tmp_path / "o"),
        ],
        "no_such_run",
    )


def test_image_too_small_or_corrupt(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "tiny.png")
    args = [
        "invert",
        "--classifier",
        str(DEMO / "classifier_standard"),
        "--checkpoint",
        str(DEMO / "dbrox_standard"),
        "--out",
        str(tmp_path / "out"),
    ]
    _fails_with_one_line([*args, str(tmp_path / "tiny.png")], "too small")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _fails_with_one_line([*args, str(tmp_path / "bad.png")], "bad.png")


def test_corrupt_image_inside_a_data_folder_and_empty_folder(tmp_path, folder):
    (folder / "test" / "7" / "broken.png").write_bytes(b"not a png at all")
    clf = str(DEMO / "classifier_standard")
    _fails_with_one_line(
        [
            "bench",
            "--classifier",
            clf,
            "--inverter",
            "optim",
            "--data",
            str(folder),
            "-n",
            "4",
            "--out",
            str(tmp_path / "o"),
        ],
        "broken.png",
    )
    (tmp_path / "empty").mkdir()
    _fails_with_one_line(
        [
            "bench",
            "--classifier",
            clf,
            "--inverter",
            "optim",
            "--data",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "o2"),
        ],
        "empty",
    )


def test_wrong_logit_size_for_a_checkpoint(tmp_path):
    """An inverter trained for 10 logits, asked to invert the logits of a 5-class classifier."""
    import invkit

    invkit.create_classifier("smallcnn.base", pretrained=False, num_classes=5).save(tmp_path / "clf5")
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    _fails_with_one_line(
        [
            "invert",
            "--classifier",
            str(tmp_path / "clf5"),
            "--checkpoint",
            str(DEMO / "dbrox_standard"),
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "out"),
        ],
        "10 logits",
        "5",
    )
