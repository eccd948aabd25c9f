"""Output meant to be read and copied (issue 24, point 7).

* Reconstruction grids carry row labels and show the originals at the resolution the metrics used; report pages
  show more images on request (``invkit bench --report-images``).
* Printed paths and table rows stay whole when the output goes to a file or a pipe (rich would wrap at 80 columns).
* Models are named by what their weights are (``smallcnn.base @ FOLDER``, ``biggan_proj.paper @ RUN/step_N (32x32,
  ch 16)``), and ``invert`` prints the classifier's class names.
* ``invkit probe`` says, one line per probe, when a probe read another number of images than ``-n``, and why.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.table import Table
from test_bench import _one_thread, settings, tiny  # noqa: F401 - the tiny bench plugin and its fixtures

import invkit
from invkit.cli._ui import LogConsole
from invkit.core.naming import checkpoint_label, classifier_label, inverter_label
from invkit.evaluation.bench import Bench
from invkit.io.figures import save_labelled_rows
from invkit.io.weights import load_safetensors

sys.path.insert(0, str(Path(__file__).parent))
from _cli import cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "invkit" / "assets" / "demo"
LONG = "a_folder_name_long_enough_that_any_path_in_it_runs_past_eighty_columns_of_a_log_file"


# ----------------------------------------------------------------------------------------- consoles
def test_log_console_never_wraps_a_path_or_a_table_row_off_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what a CI runner may set; a log line must not be cut there either
    path = "/data/" + "/".join([LONG] * 3) + "/report.html"
    buf = io.StringIO()
    console = LogConsole(file=buf, highlight=False)
    assert not console.is_terminal
    console.print(f"report: {path}")
    table = Table(show_edge=False)
    for column in ("image", "class", "written"):
        table.add_column(column)
    table.add_row(path, "seven", path.replace("report.html", "grid.png"))
    console.print(table)
    lines = buf.getvalue().splitlines()
    assert f"report: {path}" in lines
    row = [ln for ln in lines if "seven" in ln]
    assert len(row) == 1 and path in row[0] and path.replace("report.html", "grid.png") in row[0]

    # on a terminal it is rich's console as before: it wraps at the terminal's width
    term = io.StringIO()
    LogConsole(file=term, force_terminal=True, highlight=False).print(f"report: {path}")
    assert max(len(ln) for ln in term.getvalue().splitlines()) <= 80


def _digit_png(folder: Path, index: int = 0) -> Path:
    from invkit.data import load_dataset

    x, _ = load_dataset("default", "test")[index]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"digit{index}.png"
    Image.fromarray((x[0].numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def test_invert_output_in_a_file_keeps_paths_and_rows_whole(tmp_path):
    """A real process writing into a file (sbatch, `> log`, `| tee`): no line is cut at 80 columns."""
    image = _digit_png(tmp_path / LONG)
    out = tmp_path / LONG / "reconstructions"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"OMP_NUM_THREADS": "1"}
    invkit_cli = "import sys; from invkit.cli import main; sys.argv[0] = 'invkit'; main()"
    cmd = [sys.executable, "-c", invkit_cli, "invert", str(image), "--classifier", str(DEMO / "classifier_standard")]
    cmd += ["--checkpoint", str(DEMO / "dbrox_standard"), "--out", str(out), "--device", "cpu"]
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert f"wrote 1 reconstructions and {out / 'grid.png'}" in lines
    (row,) = [ln for ln in lines if str(image) in ln]  # the table row: the whole path and what was written
    assert "digit0_recon.png" in row


# ----------------------------------------------------------------------------------------- names
def test_names_say_what_the_weights_are(tmp_path):
    assert checkpoint_label(tmp_path / "mnist_run" / "checkpoints" / "step_004000") == "mnist_run/step_004000"
    snapshot = tmp_path / "hub" / "models--alice--biggan-mnist" / "snapshots" / ("0123456789abcdef" * 2)
    assert checkpoint_label(snapshot) == "alice/biggan-mnist@0123456"
    assert checkpoint_label(tmp_path / "my_classifier") == "my_classifier"

    clf = invkit.load_classifier(DEMO / "classifier_standard")
    assert clf.name == "smallcnn.base"  # the registry entry: untrained weights have this name too
    assert classifier_label(clf) == "smallcnn.base @ classifier_standard"
    assert classifier_label(invkit.create_classifier("smallcnn.base")) == "smallcnn.base (random weights)"
    inv = invkit.load_inverter(DEMO / "biggan_standard", clf)
    assert inv.registry_name == "biggan_proj.mnist32"
    assert inverter_label(inv) == "biggan_proj.mnist32 @ biggan_standard (32x32, ch 8)"
    fresh = invkit.create_inverter("optim", classifier=clf)
    assert inverter_label(fresh) == fresh.registry_name  # built from its registry entry: the name says it all


def test_invert_prints_class_names_and_what_the_weights_are(tmp_path):
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    clf = invkit.load_classifier(DEMO / "classifier_standard")
    object.__setattr__(clf, "config", clf.config.with_(label_names=words))
    clf.save(tmp_path / "digits_clf")
    images = [_digit_png(tmp_path / "in", i) for i in range(2)]
    out = tmp_path / "out"
    result = cli(["invert", *map(str, images), "--classifier", str(tmp_path / "digits_clf")]
                 + ["--checkpoint", str(DEMO / "dbrox_standard"), "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "smallcnn.base @ digits_clf -> dosovitskiy_brox.mnist @ dbrox_standard (32x32)" in result.output
    doc = json.loads((out / "invert.json").read_text())
    assert doc["classifier_label"] == "smallcnn.base @ digits_clf"
    for entry in doc["images"]:
        assert entry["class_name"] == words[entry["class"]]
        assert entry["recon_class_names"] == [words[c] for c in entry["recon_classes"]]
        row = next(ln for ln in result.output.splitlines() if entry["image"] in ln)
        assert f" {entry['class_name']} " in row  # the name, not the index, in the printed table
    # grid.png: a label column left of the originals (at the inverter's 32x32) and the reconstructions
    grid = np.asarray(Image.open(out / "grid.png").convert("L"))
    assert grid.shape[0] == 2 * (96 + 2) + 2 and grid.shape[1] > 2 * (96 + 2) + 2
    assert (grid[:, : grid.shape[1] - 2 * 98 - 2] < 128).any()  # the labels' text


# ----------------------------------------------------------------------------------------- grids
def test_labelled_rows_keep_each_row_at_its_own_resolution(tmp_path):
    checker = ((torch.arange(32)[:, None] // 4 + torch.arange(32)[None, :] // 4) % 2).float()
    rows = [("original 32x32", checker.expand(3, 1, 32, 32)), ("original 28x28", torch.zeros(3, 1, 28, 28))]
    path = save_labelled_rows(rows, tmp_path / "grid.png")
    img = np.asarray(Image.open(path).convert("L"))
    cell, pad = 96, 2
    label_w = img.shape[1] - 3 * (cell + pad) - pad
    assert label_w > 20 and img.shape[0] == 2 * (cell + pad) + pad
    first = img[pad : pad + cell, label_w + pad : label_w + pad + cell]
    assert np.array_equal(first, np.kron(checker.numpy() * 255, np.ones((3, 3))).astype(np.uint8))  # 3x, exact
    second = img[cell + 2 * pad : 2 * cell + 2 * pad, label_w + pad : label_w + pad + cell]
    assert (second[6:90, 6:90] == 0).all() and (second[:6] == 255).all()  # 28x28 x 3 = 84, centred in 96
    assert (img[:, :label_w] < 128).any()  # the labels
    # no labels, no label column: the strips of report.html
    strip = np.asarray(Image.open(save_labelled_rows([("", checker.expand(2, 1, 32, 32))], tmp_path / "s.png")))
    assert strip.shape[1] == 2 * (cell + pad) + pad
    # more images than per_line go on in further blocks of the same rows
    wide = save_labelled_rows([("a", torch.rand(25, 1, 8, 8)), ("b", torch.rand(25, 1, 8, 8))], tmp_path / "w.png")
    w, h = Image.open(wide).size
    assert h > 3 * 2 * 96 and w < 11 * 98 + 100


def _strip_widths(html: str) -> list[int]:
    strips = re.findall(r"<td class='grid-row'><img src='data:image/png;base64,([^']+)'", html)
    return [Image.open(io.BytesIO(base64.b64decode(s))).size[0] for s in strips]


def test_bench_report_labels_rows_uses_the_scored_originals_and_shows_more_images(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    results = list(Bench(settings(tiny, n=12), out).run())
    doc = json.loads((out / "results.json").read_text())
    by_inv = {r["inverter"]: r for r in doc["results"] if r["classifier"] == "clf_std"}
    assert by_inv["tinydec"]["inverter_label"] == "tinydec.base @ dec_std (16x16)"
    assert by_inv["tinydec"]["classifier_weights"] == "tinyclf.base @ clf_std"
    assert by_inv["tinyopt"]["inverter_label"] == "tinyopt.base"  # built fresh
    # each pair keeps the originals its metrics compared against: at the inverter's resolution
    saved = load_safetensors(out / "images" / "clf_std__tinydec.safetensors")
    assert saved["targets"].shape == (10, 1, 16, 16) and saved["images"].shape == (10, 1, 16, 16)
    assert load_safetensors(out / "images" / "clf_std__tinyopt.safetensors")["targets"].shape == (10, 1, 28, 28)

    html = (out / "report.html").read_text()
    heads = re.findall(r"<tr><th>([^<]*)</th><td class='grid-row'>", html)
    assert heads[:4] == ["original 16x16", "tinydec.base @ dec_std (16x16)", "original 28x28", "tinyopt.base"]
    assert "<td>tinydec.base @ dec_std (16x16)</td>" in html  # the comparison table names the weights too
    assert set(_strip_widths(html)) == {10 * (84 + 2) + 2}  # 10 images a row by default (cell: 28 px x 3)
    assert "tinydec.base @ dec_std (16x16)" in (out / "report.md").read_text()
    one_block = Image.open(out / "images" / "grid_clf_std.png").size[1]
    assert one_block == 4 * 86 + 2

    # the same settings again: every pair reused; more report images: computed again, to the same numbers
    assert all(r.reused for r in Bench(settings(tiny, n=12), out).run())
    more = list(Bench(settings(tiny, n=12, grid_images=12), out).run())
    assert not any(r.reused for r in more)
    numbers = ("psnr", "ssim", "top1_agreement", "logit_cosine", "id_accuracy")
    for a, b in zip(results, more):
        assert [a.record[k] for k in numbers] == [b.record[k] for k in numbers]
    assert set(_strip_widths((out / "report.html").read_text())) == {12 * (84 + 2) + 2}
    assert Image.open(out / "images" / "grid_clf_std.png").size[1] > 2 * one_block  # 12 > 10 a line: two blocks


def test_cli_bench_report_images_option(tiny, tmp_path):  # noqa: F811
    clf, dec = tiny["std"]
    out = tmp_path / "out"
    args = ["bench", "--classifier", clf, "--inverter", "tinydec", "--checkpoint", dec, "-n", "15", "--id-k", "3"]
    result = cli([*args, "--report-images", "13", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "results.json").read_text())["settings"]["grid_images"] == 13
    assert load_safetensors(out / "images" / "clf_std__tinydec.safetensors")["images"].shape[0] == 13
    assert set(_strip_widths((out / "report.html").read_text())) == {13 * (96 + 2) + 2}  # 16 px x 6
    row = next(ln for ln in result.output.splitlines() if "clf_std" in ln and "│" in ln)
    assert "tinydec.base @ dec_std (16x16)" in row


# ----------------------------------------------------------------------------------------- probe -n
def test_probe_says_which_probes_read_another_number_of_images_and_why(tmp_path):
    args = ["probe", "*-fit", "--classifier", str(DEMO / "classifier_standard")]
    args += ["--checkpoint", str(DEMO / "dbrox_standard"), "-n", "8", "--device", "cpu"]
    result = cli([*args, "--out", str(tmp_path / "p"), "--option", "sharpness-fit.images=8"])
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.output.splitlines() if "not -n" in ln]
    assert notes == [
        "brightness-fit: used 32 images, not -n 8: its own options set how many (images=32; change with --option "
        "brightness-fit.KEY=N)."
    ]  # sharpness-fit was given images=8: it used 8, and says nothing
    for probe, used in (("brightness-fit", 32), ("sharpness-fit", 8)):
        run = json.loads((tmp_path / "p" / probe / "results.json").read_text())["run"]
        assert run["images_used"] == used and run["num_images"] == 8
        assert run["classifier"] == "smallcnn.base @ classifier_standard"
        assert run["inverter"] == "dosovitskiy_brox.mnist @ dbrox_standard (32x32)"
    page = (tmp_path / "p" / "brightness-fit" / "index.html").read_text()
    assert "smallcnn.base @ classifier_standard" in page
    assert "brightness-fit: smallcnn.base @ classifier_standard -> dosovitskiy_brox.mnist" in result.output
