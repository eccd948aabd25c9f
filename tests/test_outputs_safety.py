"""Issue 23, kinds 1 and 2: invkit deletes and overwrites only what it provably wrote itself.

Owned by ``invkit.io.owned`` (used by ``invkit.io.outputs.claim_output``, the atomic writes of ``invkit.io.files``,
the checkpoint writers and the training log):

* kind 1, the sweep of an output folder deletes only invkit's temporary names (``.NAME.invkit-PID-XXXX.tmp``,
  ``.tmp-step_N-PID``) whose process is gone, never inside another run's locked folder or through a link;
* kind 2, a command writes over no file it was given as input and no file of its ``--out`` that it did not write
  (``.invkit-files`` lists what each command wrote; a folder from before that list is adopted by its record file).

Each test names the member of the kind it checks (listed in the issue, or a further one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from invkit.data import load_dataset, take
from invkit.errors import OutputError
from invkit.io import atomic_write_text, claim_output
from invkit.io.owned import MANIFEST_NAME, check_write, remove_stale_temps, temp_owner

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error

DEMO = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"
CLF = str(DEMO / "classifier_standard")
BIGGAN = str(DEMO / "biggan_standard")
DEAD = 999_999_999  # above any pid_max: no process has this id
TOY_TRAIN = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8"]
TOY_TRAIN += ["--save-every", "2", "--sample-every", "2", "--device", "cpu"]


def _digit(path: Path, index: int = 0) -> Path:
    images, _ = take(load_dataset("default", "test"), index + 1, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((images[index][0] * 255).round().byte().numpy(), "L").save(path)
    return path


def _invert(images: list[str], out: Path, *more: str):
    return cli(
        ["invert", *images, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", str(out), "--device", "cpu", *more]
    )


@pytest.fixture
def toy():
    _toy_inverter.register()


# ============================================================ kind 1: the sweep deletes only invkit's own leftovers
def test_invert_keeps_the_users_tmp_files_in_out_and_below(tmp_path):
    """Listed member: `invkit invert --out X` deleted the user's X/.backup.tmp and X/notes/.draft.tmp."""
    out = tmp_path / "X"
    (out / "notes").mkdir(parents=True)
    mine = {out / ".backup.tmp": "backup", out / "notes" / ".draft.tmp": "draft", out / ".a.b.tmp": "old-style"}
    for p, text in mine.items():
        p.write_text(text)
    assert _invert([str(_digit(tmp_path / "in" / "d.png"))], out).exit_code == 0
    assert {p: p.read_text() for p in mine} == mine
    assert (out / "d_recon.png").is_file()


def test_probe_into_a_parent_folder_keeps_a_live_training_runs_temporary_files(tmp_path):
    """Listed member: `invkit probe --out X` while `invkit train --out X/run` writes a checkpoint deleted train's
    temporary file. Here X/run is held (its lock) and its checkpoint is in progress; X also holds a temporary file
    of another live invkit process (no lock there): both are kept."""
    out = tmp_path / "X"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with claim_output(out / "run", "invkit train"):
            partial = out / "run" / "checkpoints" / f".tmp-step_000010-{live.pid}"
            partial.mkdir(parents=True)
            temp = partial / f".model.safetensors.invkit-{live.pid}-abcd1234.tmp"
            temp.write_bytes(b"half a checkpoint")
            other = out / f".grid.png.invkit-{live.pid}-zz99yy88.tmp"
            other.write_bytes(b"png being written")
            probe = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN, "-n", "8"]
            assert cli([*probe, "--out", str(out), "--device", "cpu"]).exit_code == 0
            assert temp.read_bytes() == b"half a checkpoint" and other.read_bytes() == b"png being written"
    finally:
        live.kill()
        live.wait()
    assert (out / "class-spread" / "results.json").is_file()


def test_the_sweep_removes_only_invkits_naming_of_writers_that_are_gone(tmp_path):
    """Further member: what the sweep removes at all (unit): invkit's temporary names of a dead process, never a
    live process' (this one's), never a look-alike without the pid, never in another run's locked sub-folder."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "other_run").mkdir()
    (tmp_path / "other_run" / ".invkit.lock").write_text("invkit train pid 1\n")
    stale = [tmp_path / f".r.json.invkit-{DEAD}-abc.tmp", tmp_path / "sub" / f".x.png.invkit-{DEAD}-q1.tmp"]
    kept = [
        tmp_path / f".r.json.invkit-{os.getpid()}-abc.tmp",  # a live writer (this process)
        tmp_path / ".r.json.abc123.tmp",  # invkit's old naming: not provably invkit's
        tmp_path / f".r.json.invkit-{DEAD}-abc.tmp.bak",  # not the naming
        tmp_path / "other_run" / f".y.png.invkit-{DEAD}-zz.tmp",  # another run's folder: its own run sweeps it
    ]
    for p in stale + kept:
        p.write_text("x")
    stale_dir = tmp_path / f".tmp-step_000004-{DEAD}"
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([*stale, stale_dir]) and all(p.exists() for p in kept)
    assert temp_owner(f".a.invkit-{DEAD}-x.tmp") == DEAD and temp_owner(".backup.tmp") is None


def test_train_keeps_a_users_hidden_folder_in_checkpoints(tmp_path, toy):
    """Further member: `invkit train` removed every `checkpoints/.tmp-*` and `.old-*` entry, a user's
    `checkpoints/.tmp-notes/` or a live run's folder included; now only its own naming of a dead process."""
    out = tmp_path / "run"
    notes = out / "checkpoints" / ".tmp-notes"
    notes.mkdir(parents=True)
    (notes / "plan.txt").write_text("mine")
    dead = out / "checkpoints" / f".tmp-step_000002-{DEAD}"
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"cut short")
    assert cli([*TOY_TRAIN, "--steps", "2", "--out", str(out)]).exit_code == 0
    assert (notes / "plan.txt").read_text() == "mine" and not dead.exists()


def test_the_sweep_does_not_follow_a_link_out_of_the_folder(tmp_path):
    """Further member: a symbolic link in --out to another folder: the sweep does not enter it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = elsewhere / f".w.bin.invkit-{DEAD}-aa.tmp"
    theirs.write_text("not this run's")
    out = tmp_path / "X"
    out.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    assert _invert([str(_digit(tmp_path / "in" / "d.png"))], out).exit_code == 0
    assert theirs.read_text() == "not this run's"


# =================================================== kind 2: no write over an input or a file invkit did not write
def test_invert_of_a_folder_into_itself_keeps_the_users_recon_png(tmp_path):
    """Listed member: `invkit invert FOLDER --out FOLDER` replaced the user's own d_recon.png (itself an input)."""
    folder = tmp_path / "F"
    _digit(folder / "d.png")
    _digit(folder / "d_recon.png", 1)  # the user's file, which happens to have invert's output name
    before = (folder / "d_recon.png").read_bytes()
    result = _invert([str(folder)], folder)
    assert result.exit_code == 0, result.output
    assert (folder / "d_recon.png").read_bytes() == before
    doc = json.loads((folder / "invert.json").read_text())
    written = {e["image"]: e["written"] for e in doc["images"]}
    assert written[str(folder / "d.png")] != ["d_recon.png"] and all(
        (folder / w).is_file() for w in written[str(folder / "d.png")]
    )


def test_invert_keeps_a_users_file_with_the_output_name_that_is_no_input(tmp_path):
    """Further member: --out holds the user's x_recon.png (not an input, not written by invkit): another name."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_recon.png").write_bytes(b"the user's picture")
    assert _invert([str(_digit(tmp_path / "x.png"))], out).exit_code == 0
    assert (out / "x_recon.png").read_bytes() == b"the user's picture"
    doc = json.loads((out / "invert.json").read_text())
    assert doc["images"][0]["written"] == ["x_2_recon.png"]
    assert _invert([str(tmp_path / "x.png")], out).exit_code == 0  # a rerun replaces its own file, keeps the user's
    assert json.loads((out / "invert.json").read_text())["images"][0]["written"] == ["x_2_recon.png"]
    assert (out / "x_recon.png").read_bytes() == b"the user's picture"


def test_train_into_the_classifier_folder_it_trains_against_is_refused(tmp_path, toy):
    """Further member: `invkit train --classifier C --out C` (C made by train-classifier) would replace C's
    train_config.json and append to its log.jsonl: refused in one line before training, C unchanged."""
    clf = tmp_path / "C"
    args = ["train-classifier", "--steps", "1", "--batch-size", "8", "--eval-samples", "2", "--eval-steps", "1"]
    assert cli([*args, "--out", str(clf), "--device", "cpu"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in clf.iterdir() if p.is_file()}
    train = ["train", "--classifier", str(clf), "--inverter", "toyinv.base", "--steps", "1", "--batch-size", "8"]
    one_line_error(cli([*train, "--out", str(clf), "--device", "cpu"]), "train_config.json", "invkit train")
    assert {p.name: p.read_bytes() for p in clf.iterdir() if p.is_file()} == before


def test_bench_refuses_a_users_report_html_in_out_before_it_runs(tmp_path):
    """Further member: a report.html of the user's in --out: refused up front, nothing written, file unchanged."""
    out = tmp_path / "b"
    out.mkdir()
    (out / "report.html").write_text("<p>my notes</p>")
    args = ["bench", "--classifier", CLF, "--inverter", "optim", "--option", "optim:steps=1", "-n", "10"]
    one_line_error(cli([*args, "--out", str(out), "--device", "cpu"]), "report.html", "was not written by invkit bench")
    assert (out / "report.html").read_text() == "<p>my notes</p>" and not (out / "results.json").exists()


def test_convert_weights_never_writes_over_its_source(tmp_path):
    """Further member: `invkit convert-weights W.safetensors W.safetensors` rewrote its input in place."""
    src = tmp_path / "w.safetensors"
    save_file({"module.a": torch.ones(2)}, str(src), metadata={"mine": "yes"})
    before = src.read_bytes()
    one_line_error(cli(["convert-weights", str(src), str(src)]), "is an input of this invkit convert-weights run")
    assert src.read_bytes() == before
    assert cli(["convert-weights", str(src), str(tmp_path / "new.safetensors")]).exit_code == 0
    assert list(load_file(str(tmp_path / "new.safetensors"))) == ["a"]


def test_check_write_refuses_inputs_and_foreign_files_and_records_new_ones(tmp_path):
    """Further member (unit, the owner itself): an input is refused even inside its own folder; a file the command
    did not write is refused; a new file is recorded before it is written, so a rerun may replace it."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "user.txt").write_text("user")
    given = out / "input.png"
    given.write_bytes(b"in")
    with claim_output(out, "invkit x", inputs=[given]):
        with pytest.raises(OutputError, match="is an input of this invkit x run"):
            atomic_write_text(given, "replaced")
        with pytest.raises(OutputError, match="was not written by invkit x"):
            check_write(out / "user.txt")
        atomic_write_text(out / "new.txt", "mine")
    lines = [json.loads(ln) for ln in (out / MANIFEST_NAME).read_text().splitlines()]
    assert lines == [{"by": "invkit x", "path": "new.txt"}]
    with claim_output(out, "invkit x"):
        atomic_write_text(out / "new.txt", "mine again")  # its own file: replaced
    with claim_output(out, "invkit y"), pytest.raises(OutputError, match="written by invkit x, not by invkit y"):
        atomic_write_text(out / "new.txt", "another command's")
    assert (given.read_bytes(), (out / "user.txt").read_text(), (out / "new.txt").read_text()) == (
        b"in",
        "user",
        "mine again",
    )


def test_a_run_folder_from_before_the_list_is_adopted_and_resumes(tmp_path, toy):
    """Further member (compatibility): a run written before invkit listed its files (no .invkit-files) is known by
    its train_config.json, its files are adopted (the folders whole), and --resume replaces them and prunes the old
    checkpoints as before."""
    out = tmp_path / "run"
    assert cli([*TOY_TRAIN, "--steps", "2", "--out", str(out)]).exit_code == 0
    (out / MANIFEST_NAME).unlink()  # as an older invkit left it
    (out / "notes.txt").write_text("mine")
    resume = ["train", "--out", str(out), "--resume", "--steps", "4", "--keep-checkpoints", "1", "--device", "cpu"]
    result = cli(resume)
    assert result.exit_code == 0, result.output
    owned = {json.loads(ln)["path"] for ln in (out / MANIFEST_NAME).read_text().splitlines()}
    assert {"train_config.json", "log.jsonl", "checkpoints", "notes.txt"} <= owned  # adopted, the folders whole
    assert (out / "notes.txt").read_text() == "mine"  # adopted, yet nothing writes it
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_000004"]


def test_a_folder_without_the_commands_record_is_not_adopted(tmp_path):
    """Further member: a folder without a list and without the command's record (the user's own files) adopts
    nothing, so bench's results.json there, not written by bench, is refused up front."""
    out = tmp_path / "b"
    out.mkdir()
    (out / "results.json").write_text("[1, 2, 3]")
    (out / "report.md").write_text("# mine")
    args = ["bench", "--classifier", CLF, "--inverter", "optim", "--option", "optim:steps=1", "-n", "10"]
    with claim_output(out, "invkit bench", records=("train_config.json",)):
        pass  # not bench's record: nothing adopted, no list written
    assert not (out / MANIFEST_NAME).exists()
    with claim_output(out, "invkit bench", records=("results.json",)):
        pass  # bench's record: everything there is bench's from now on
    assert {json.loads(ln)["path"] for ln in (out / MANIFEST_NAME).read_text().splitlines()} == {
        "results.json",
        "report.md",
    }
    (out / MANIFEST_NAME).unlink()
    (out / "results.json").unlink()
    one_line_error(cli([*args, "--out", str(out), "--device", "cpu"]), "report.md", "was not written by invkit bench")
    assert (out / "report.md").read_text() == "# mine"
