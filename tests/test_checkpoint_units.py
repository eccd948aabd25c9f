"""Issue 23, kinds 3, 4 and 14, and of kind 12 the launcher environment and ``--seed`` at its maximum.

* Kind 3: a checkpoint is one unit (``invkit.io.staged.write_staged``, used by ``invkit.io.checkpoint.save_checkpoint``
  and so by ``Classifier.save``, ``Inverter.save``, ``invkit train``, ``invkit train-classifier`` and any plugin
  trainer that saves through them): after a kill at any moment it is the old checkpoint or the new one.
* Kind 4: ``--resume`` compares the classifier it trains against by content (``invkit.core.provenance``:
  ``classifier_identity``, ``identity_mismatch``; ``invkit.training.resume._check_resumed_classifier``) and
  ``invkit train`` stores a classifier folder and a ``--weights`` file by absolute path.
* Kind 14: repeated SIGTERMs are one stop request, a second Ctrl-C stops at once (``invkit.training.interrupt``);
  every rank names the checkpoint rank 0 saved.
* Kind 12 (part): ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` checked in one place
  (``invkit.training.distributed.launch_env``); ``--seed`` up to its maximum in train-classifier and standing-stats.

**The SIGKILL helper (test-only).** Run as a script, this file runs one ``invkit`` command in this process with a
kill point wrapped around one function, then ``SIGKILL``s itself there::

    python tests/test_checkpoint_units.py KILL_AT N invkit-arguments...

``KILL_AT`` is ``none`` (run normally), ``model`` (right after the ``N``-th ``model.safetensors`` of a checkpoint is
written: it is in the checkpoint's hidden staging folder, the training state and config of that checkpoint are not
written yet) or ``install`` (right after the first file of the ``N``-th committed checkpoint was moved into place,
the others not yet). Nothing of invkit reads an environment variable or a flag for this: the wrapping is done here.
The toy plugin of ``tests/_toy_inverter.py`` is registered, and torch uses one thread, so runs are bit-comparable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error

import invkit  # noqa: E402
from invkit.errors import InputError, OutputError, TrainingInterrupted  # noqa: E402
from invkit.io import load_train_state  # noqa: E402
from invkit.io.staged import complete_staged  # noqa: E402
from invkit.training import latest_checkpoint  # noqa: E402
from invkit.training.interrupt import interrupted_error, stop_requests  # noqa: E402

THIS = Path(__file__).resolve()
REPO = THIS.parents[1]
DEMO = REPO / "invkit" / "assets" / "demo"
MAX_SEED = 2**63 - 1
TC = ["train-classifier", "--steps", "6", "--batch-size", "16", "--checkpoint-every", "2", "--eval-samples", "2"]
TC += ["--eval-steps", "1", "--log-every", "1", "--device", "cpu"]
TOY = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--batch-size", "8", "--save-every", "5"]
TOY += ["--sample-every", "5", "--log-every", "1", "--device", "cpu"]


@pytest.fixture
def toy():
    _toy_inverter.register()


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}.{k}"))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}.{i}"))
    elif not isinstance(tree, float):  # seconds and other timings differ between runs
        out[prefix] = tree
    return out


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    """Bit-identical weights and training state (tensors, step, positions, RNG states) in two checkpoint folders."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = (
        _tensors(load_train_state(a / "train_state.safetensors")),
        _tensors(load_train_state(b / "train_state.safetensors")),
    )
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]) if isinstance(sa[k], torch.Tensor) else sa[k] == sb[k], k


# ------------------------------------------------------------------------------------------- the SIGKILL helper
def _helper(kill_at: str, n: int, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, str(THIS), kill_at, str(n), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _install_kill_point(kill_at: str, n: int) -> None:
    """Wrap the function named by ``kill_at`` so that its ``n``-th call SIGKILLs this process (see the docstring)."""
    import invkit.io.checkpoint
    import invkit.io.staged

    calls = [0]

    def kill_after(real, counts):
        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            if counts(*args):
                calls[0] += 1
                if calls[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapper

    if kill_at == "model":  # save_checkpoint writes model.safetensors through this name, first of the files
        real = invkit.io.checkpoint.atomic_save_safetensors
        invkit.io.checkpoint.atomic_save_safetensors = kill_after(real, lambda path, *a: True)
    elif kill_at == "install":  # the files of a committed checkpoint move in sorted order: config.json first
        real = invkit.io.staged._install_file
        invkit.io.staged._install_file = kill_after(real, lambda src, dst: Path(dst).name == "config.json")
    elif kill_at != "none":
        raise SystemExit(f"unknown kill point {kill_at}")


def _helper_main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    _toy_inverter.register()
    _install_kill_point(argv[0], int(argv[1]))
    import invkit.cli

    try:
        invkit.cli.main(argv[2:])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


# =================================================================================== kind 3: one checkpoint, one unit
@pytest.mark.parametrize(
    ("trainer", "kill_at"),
    [  # one kill point in the default run; the others (about 8 s each) with `pytest -m slow`
        ("train-classifier", "model"),
        pytest.param("train-classifier", "install", marks=pytest.mark.slow),
        pytest.param("train", "model", marks=pytest.mark.slow),
    ],
    ids=["train-classifier-between-files", "train-classifier-while-moving-in", "train-between-files"],
)
def test_sigkill_between_the_files_of_a_checkpoint_then_resume_is_bit_identical(tmp_path, trainer, kill_at):
    """Listed member: train-classifier killed after model.safetensors of step 4 and before train_state (still step
    2) resumed to other weights with exit 0. Each trainer is SIGKILLed between the files of its second checkpoint
    (and train-classifier also while that checkpoint's files move in), resumed, and ends bit-identical to an
    uninterrupted run of the same steps."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = TC if trainer == "train-classifier" else [*TOY, "--steps", "15"]
    p_whole = _helper("none", 0, [*args, "--out", str(whole)])
    p_cut = _helper(kill_at, 2, [*args, "--out", str(cut)])
    assert p_cut.wait(timeout=600) == -signal.SIGKILL, p_cut.stderr.read().decode()[-2000:]
    assert p_whole.wait(timeout=600) == 0, p_whole.stderr.read().decode()[-2000:]
    if trainer == "train-classifier":
        staged = [p.name for p in cut.iterdir() if p.name.startswith(".checkpoint.")]
        assert len(staged) == 1 and staged[0].endswith(".tmp" if kill_at == "model" else ".ready")
        steps = (
            json.loads((cut / "config.json").read_text())["train"]["step"],
            load_train_state(cut / "train_state.safetensors")["step"],
        )
        assert steps == ((2, 2) if kill_at == "model" else (4, 2))  # killed mid-way: config.json already of step 4
        resume = [*TC, "--out", str(cut), "--resume"]
    else:
        assert latest_checkpoint(cut).name == "step_000005"  # the second checkpoint never became one
        assert [p.name for p in (cut / "checkpoints").iterdir() if p.name.startswith(".tmp-step_000010-")]
        resume = ["train", "--out", str(cut), "--resume", "--device", "cpu"]
    p_resume = _helper("none", 0, resume)
    assert p_resume.wait(timeout=600) == 0, p_resume.stderr.read().decode()[-2000:]
    if trainer == "train-classifier":
        _assert_same_checkpoint(whole, cut)
        assert not [p for p in cut.iterdir() if p.name.startswith(".checkpoint.")]
        log = [json.loads(ln) for ln in (cut / "log.jsonl").read_text().splitlines()]
        resumed = [r["step"] for r in log if r.get("event") == "resumed"]
        assert resumed == ([2] if kill_at == "model" else [4])  # the committed step 4 was moved in, not lost
    else:
        _assert_same_checkpoint(whole / "checkpoints" / "step_000015", cut / "checkpoints" / "step_000015")
        assert not [p for p in (cut / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_plugin_trainers_checkpoint_is_never_half_replaced(tmp_path, toy):
    """Further member: a plugin trainer saving through ``Inverter.save(dir, train_state=...)`` into its checkpoint
    folder with a state that cannot be stored: before, the new weights were already in place beside the old config
    and state; now the folder holds the old checkpoint byte for byte and nothing hidden is left."""
    inv = invkit.create_inverter("toyinv.base", classifier=invkit.create_classifier("toyclf.base"))
    folder = tmp_path / "ck"
    inv.save(folder, train_state={"step": 1, "w": torch.ones(2)}, extra={"step": 1})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    torch.nn.init.zeros_(inv.net[0].weight)
    with pytest.raises(TypeError, match="cannot save object"):
        inv.save(folder, train_state={"step": 2, "bad": object()}, extra={"step": 2})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    inv.save(folder, extra={"step": 3})  # a checkpoint without a training state: the old state does not stay behind
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_a_committed_checkpoint_cut_short_while_moving_in_is_completed(tmp_path, monkeypatch, toy):
    """Further member (the owner, in process): killed after the commit and after one file moved in, the folder's
    files are of two steps; ``complete_staged`` (called by the next save and by resumes) finishes the move."""
    import invkit.io.staged as staged

    inv = invkit.create_inverter("toyinv.base", classifier=invkit.create_classifier("toyclf.base"))
    folder = tmp_path / "ck"
    inv.save(folder, train_state={"step": 1}, extra={"step": 1})
    real = staged._install_file

    class Killed(BaseException):
        pass

    def first_then_die(src, dst):
        real(src, dst)
        raise Killed

    monkeypatch.setattr(staged, "_install_file", first_then_die)
    with pytest.raises(Killed):
        inv.save(folder, train_state={"step": 2}, extra={"step": 2})
    monkeypatch.setattr(staged, "_install_file", real)
    assert json.loads((folder / "config.json").read_text())["step"] == 2  # moved in
    assert load_train_state(folder / "train_state.safetensors")["step"] == 1  # not yet
    assert complete_staged(folder)
    assert load_train_state(folder / "train_state.safetensors")["step"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "train_state.safetensors"]


@pytest.mark.parametrize(
    "damage", ['{"a": 1}', '["../../outside.txt"]', '["sub/x"]', "[1]", "[" * 100_000, "not json"], ids=repr
)
def test_a_damaged_delete_list_of_a_committed_checkpoint_deletes_nothing(tmp_path, damage):
    """Further member (a file invkit reads back, kind 8): the list of old files a committed checkpoint deletes on
    install was read without a check, so a damaged one could delete outside the folder or end in a traceback. Now
    one line, and no file is deleted."""
    folder = tmp_path / "ck"
    folder.mkdir()
    (tmp_path / "outside.txt").write_text("keep")
    (folder / "config.json").write_text("{}")
    ready = folder / ".checkpoint.invkit-1-abc.ready"
    ready.mkdir()
    (ready / "model.safetensors").write_bytes(b"new")
    (ready / ".invkit-remove.json").write_text(damage)
    with pytest.raises(OutputError, match="is damaged .*delete the folder"):
        complete_staged(folder)
    assert (tmp_path / "outside.txt").read_text() == "keep" and (folder / "config.json").exists()


def test_train_classifier_refuses_weights_and_state_of_two_steps(tmp_path):
    """Listed member, on a folder an older invkit left: weights (and config.json) of step 4 beside a training state
    of step 2. ``--resume`` exited 0 with other weights; now one line, and nothing changes."""
    args = ["train-classifier", "--batch-size", "16", "--eval-samples", "2", "--eval-steps", "1", "--device", "cpu"]
    assert cli([*args, "--steps", "2", "--out", str(tmp_path / "a")]).exit_code == 0
    assert cli([*args, "--steps", "4", "--out", str(tmp_path / "b")]).exit_code == 0
    mixed = tmp_path / "b"
    (mixed / "train_state.safetensors").write_bytes((tmp_path / "a" / "train_state.safetensors").read_bytes())
    before = (mixed / "model.safetensors").read_bytes()
    one_line_error(cli([*args, "--steps", "6", "--out", str(mixed), "--resume"]), "weights are of step 4", "of step 2")
    assert (mixed / "model.safetensors").read_bytes() == before


# ============================================================= kind 4: resume against the classifier of the run
def _retrain(path: Path) -> None:
    """Other weights in the same file (a classifier folder retrained in place, a --weights file replaced)."""
    state = load_file(str(path))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.01
    save_file(state, str(path))


def _toy_classifier_folder(path: Path, seed: int = 0) -> Path:
    clf = invkit.create_classifier("toyclf.base")
    if seed:
        torch.manual_seed(seed)
        torch.nn.init.normal_(clf.network[0].weight)
    clf.save(path)
    return path


def test_resume_refuses_a_classifier_folder_retrained_in_place(tmp_path, toy):
    """Listed member: the classifier folder retrained in place, then `invkit train --resume` exited 0."""
    clf = _toy_classifier_folder(tmp_path / "clf")
    out = tmp_path / "run"
    args = ["train", "--classifier", str(clf), "--inverter", "toyinv.base", "--batch-size", "8", "--save-every", "2"]
    assert cli([*args, "--steps", "2", "--out", str(out), "--device", "cpu"]).exit_code == 0
    _retrain(clf / "model.safetensors")
    log = (out / "log.jsonl").read_text()
    resume = ["train", "--out", str(out), "--resume", "--steps", "4", "--device", "cpu"]
    one_line_error(cli(resume), "is not the one the run", "its weights differ")
    assert latest_checkpoint(out).name == "step_000002" and (out / "log.jsonl").read_text() == log


def test_resume_refuses_a_replaced_weights_file_and_stores_it_absolutely(tmp_path, monkeypatch, toy):
    """Listed members: `--weights` stored as a relative string, and its file replaced, then --resume exited 0.
    The run records the absolute path and its digest; a resume from another working folder finds it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    clf = invkit.create_classifier("smallcnn.base", pretrained=False)
    save_file({k: v.contiguous() for k, v in clf.network.state_dict().items()}, "w.safetensors")
    args = ["train", "--classifier", "smallcnn.base", "--weights", "w.safetensors", "--inverter", "toyinv.base"]
    args += ["--batch-size", "8", "--save-every", "2", "--device", "cpu"]
    assert cli([*args, "--steps", "2", "--out", "run"]).exit_code == 0
    doc = json.loads((work / "run" / "train_config.json").read_text())
    assert doc["train"]["weights"] == str(work / "w.safetensors")
    assert doc["classifier_identity"]["weights_file"] == str(work / "w.safetensors")
    monkeypatch.chdir(tmp_path)  # elsewhere: the absolute path still names the file
    resumed = cli(["train", "--out", str(work / "run"), "--resume", "--steps", "4", "--device", "cpu"])
    assert resumed.exit_code == 0, resumed.output
    _retrain(work / "w.safetensors")
    resume = ["train", "--out", str(work / "run"), "--resume", "--steps", "6", "--device", "cpu"]
    one_line_error(cli(resume), "smallcnn.base", "is not the one the run", "differ")
    assert latest_checkpoint(work / "run").name == "step_000004"


def test_resume_refuses_another_classifier_path_written_into_train_config(tmp_path, toy):
    """Listed member: `train_config.json`'s classifier path edited to another folder, then --resume exited 0."""
    first, other = _toy_classifier_folder(tmp_path / "a"), _toy_classifier_folder(tmp_path / "b", seed=7)
    out = tmp_path / "run"
    args = ["train", "--classifier", str(first), "--inverter", "toyinv.base", "--batch-size", "8", "--save-every", "2"]
    assert cli([*args, "--steps", "2", "--out", str(out), "--device", "cpu"]).exit_code == 0
    path = out / "train_config.json"
    doc = json.loads(path.read_text())
    doc["train"]["classifier"] = str(other)
    path.write_text(json.dumps(doc))
    one_line_error(cli(["train", "--out", str(out), "--resume", "--steps", "4", "--device", "cpu"]), str(other))


def test_a_relative_classifier_folder_is_stored_absolutely_and_the_same_content_resumes(tmp_path, monkeypatch, toy):
    """Further member: a classifier folder given relatively is stored absolutely; given again by another path to
    the same weights (moved), the resume goes on, since the content decides, not the spelling of the path."""
    monkeypatch.chdir(tmp_path)
    _toy_classifier_folder(tmp_path / "clf")
    args = ["train", "--classifier", "clf", "--inverter", "toyinv.base", "--batch-size", "8", "--save-every", "2"]
    assert cli([*args, "--steps", "2", "--out", "run", "--device", "cpu"]).exit_code == 0
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["train"]["classifier"] == str(
        tmp_path / "clf"
    )
    (tmp_path / "clf").rename(tmp_path / "moved")
    resume = ["train", "--classifier", "moved", "--out", "run", "--resume", "--steps", "4", "--device", "cpu"]
    assert cli(resume).exit_code == 0
    assert latest_checkpoint(tmp_path / "run").name == "step_000004"


def test_a_checkpoint_from_before_network_digests_is_checked_by_its_folder_digest(tmp_path, toy):
    """Further member: a run whose checkpoints recorded only the classifier folder and its weights digest (before
    network digests were stored) is still refused after the folder is retrained in place."""
    clf = _toy_classifier_folder(tmp_path / "clf")
    out = tmp_path / "run"
    args = ["train", "--classifier", str(clf), "--inverter", "toyinv.base", "--batch-size", "8", "--save-every", "2"]
    assert cli([*args, "--steps", "2", "--out", str(out), "--device", "cpu"]).exit_code == 0
    for path in (out / "checkpoints" / "step_000002" / "config.json", out / "train_config.json"):
        doc = json.loads(path.read_text())
        ident = doc.pop("classifier_identity")
        if path.name == "config.json":
            doc["classifier_identity"] = {k: ident[k] for k in ("path", "weights_sha256")}
        path.write_text(json.dumps(doc))
    _retrain(clf / "model.safetensors")
    resume = ["train", "--out", str(out), "--resume", "--steps", "4", "--device", "cpu"]
    one_line_error(cli(resume), "the weights in its folder differ")


# ================================================================================= kind 14: signals under launchers
def test_repeated_sigterms_soon_after_the_first_are_one_request_later_ones_act(monkeypatch):
    """Listed member: torchrun passes the scheduler's SIGTERM on ~50 ms after it arrived; that second SIGTERM
    stopped the worker at once. Now SIGTERMs within the window count as the same request; one after it acts."""
    seen: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with stop_requests(repeat_s=60.0) as request:
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGTERM)
            assert request and request.signal_name == "SIGTERM" and request.repeats == 2 and seen == []
        with stop_requests(repeat_s=0.0) as request:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)  # after the window: acts as it would have (the handler before)
            assert request.signal_name == "SIGTERM" and seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)
    assert signal.getsignal(signal.SIGTERM) is old


def test_a_second_ctrl_c_still_stops_at_once_after_a_sigterm():
    """Further member: Ctrl-C after a SIGTERM request (or after a first Ctrl-C) acts at once: KeyboardInterrupt."""
    with pytest.raises(KeyboardInterrupt):
        with stop_requests() as request:
            os.kill(os.getpid(), signal.SIGTERM)
            assert request
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # not reached: the KeyboardInterrupt comes first
    with pytest.raises(KeyboardInterrupt):
        with stop_requests():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)


def test_two_sigterms_in_one_step_save_that_step(tmp_path, toy):
    """Listed member, in the training loop: two SIGTERMs in step 3 (the scheduler's, then torchrun's) end the step,
    save it and stop with TrainingInterrupted, instead of killing the run before the save."""
    from invkit.data import load_dataset
    from invkit.training import TrainConfig, build_inverter, train_inverter

    config = TrainConfig(
        classifier="toyclf.base", inverter="toyinv.base", out=str(tmp_path / "run"), steps=10, batch_size=8,
        save_every=5, sample_every=5, device="cpu",
    )  # fmt: skip
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)

    def twice(event):
        if event.task == "train" and event.completed == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    data = load_dataset("default", "train")
    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 3: saved") as info:
        train_inverter(config, clf, inverter, data, data, trainer_options=options, progress=twice)
    assert info.value.checkpoint == tmp_path / "run" / "checkpoints" / "step_000003"
    assert latest_checkpoint(tmp_path / "run").name == "step_000003"


def test_the_interrupted_message_never_says_saved_none():
    """Listed member (unit): a rank that saved nothing itself was told 'saved None'."""
    message = str(interrupted_error(None, 7, None, "resume it."))
    assert "None" not in message and "step 7" in message and message.startswith("SIGTERM at step 7: saved")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.slow  # two torchrun runs, about 6 s
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find torchrun's workers")
def test_under_torchrun_a_scheduler_sigterm_saves_the_step_and_every_rank_names_it(tmp_path):
    """Listed members: under torchrun the scheduler's SIGTERM reaches the workers and torchrun forwards another one;
    the second one killed the workers and the interrupted step's checkpoint was lost, and rank 1 printed 'saved
    None'. Both ranks now save the step (rank 0 writes it) and name it."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TOY_STEP_DELAY="0.05")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(REPO / "tests" / "_toy_inverter.py"), "cli", *TOY, "--steps", "400", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = out / "checkpoints" / "step_000005"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert first.exists(), proc.communicate()[0][-3000:]
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    for pid in [*workers, proc.pid]:  # as a scheduler does: every process of the job; torchrun passes it on again
        os.kill(pid, signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    lines = [ln for ln in output.splitlines() if "interrupted: SIGTERM at step" in ln]
    assert len(lines) == 2 and "saved None" not in output, output[-3000:]
    step = int(lines[0].split("at step ")[1].split(":")[0])
    saved = out / "checkpoints" / f"step_{step:06d}"
    assert all(f"saved {saved}" in ln for ln in lines), lines
    assert (saved / "train_state.safetensors").is_file() and latest_checkpoint(out) == saved


# ================================================================= kind 12 (part): launcher environment and seeds
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 asks for 2 processes, but RANK and MASTER_ADDR and MASTER_PORT are"),
        ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK=5 but WORLD_SIZE=2"),
        ({"LOCAL_RANK": "-1"}, "LOCAL_RANK='-1' is not a whole number >= 0"),
        ({"RANK": "zero"}, "RANK='zero' is not a whole number"),
    ],
    ids=["world-size-abc", "world-size-2-outside-torchrun", "rank-past-world-size", "local-rank-negative", "rank-abc"],
)
def test_a_launcher_environment_that_is_wrong_is_one_line(tmp_path, monkeypatch, toy, env, expected):
    """Listed members: WORLD_SIZE=abc and WORLD_SIZE=2 outside torchrun ended in tracebacks; further members: a RANK
    past WORLD_SIZE, a negative LOCAL_RANK, a RANK that is no number. Refused before anything is written."""
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    one_line_error(cli([*TOY, "--steps", "1", "--out", str(tmp_path / "run")]), expected)
    assert not (tmp_path / "run").exists()


def test_the_library_refuses_a_wrong_world_size_too(tmp_path, monkeypatch, toy):
    """Further member: ``train_inverter`` called from Python (and bench's training through it) with WORLD_SIZE=abc."""
    from invkit.data import load_dataset
    from invkit.training import TrainConfig, build_inverter, train_inverter

    monkeypatch.setenv("WORLD_SIZE", "abc")
    config = TrainConfig(
        classifier="toyclf.base", inverter="toyinv.base", out=str(tmp_path / "r"), steps=1, batch_size=8
    )
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)
    data = load_dataset("default", "train")
    with pytest.raises(InputError, match="WORLD_SIZE='abc'"):
        train_inverter(config, clf, inverter, data, data, trainer_options=options)


def test_train_classifier_with_the_largest_seed_trains(tmp_path):
    """Listed member: --seed at its advertised maximum (2**63-1) overflowed in train-classifier's data order."""
    args = ["train-classifier", "--steps", "2", "--batch-size", "8", "--eval-samples", "2", "--eval-steps", "1"]
    result = cli([*args, "--seed", str(MAX_SEED), "--out", str(tmp_path / "c"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c" / "train_config.json").read_text())["seed"] == MAX_SEED


def test_standing_stats_with_the_largest_seed_and_above_it(tmp_path):
    """Listed member: standing-stats --seed at or near its maximum overflowed; further member: a seed above the
    maximum is refused by the option itself (one usage line), not by torch."""
    args = ["standing-stats", str(DEMO / "biggan_standard"), "--classifier", str(DEMO / "classifier_standard")]
    args += ["--batches", "1", "--batch-size", "2", "--device", "cpu"]
    result = cli([*args, "--seed", str(MAX_SEED), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s" / "config.json").read_text())["standing_stats"]["seed"] == MAX_SEED
    above = cli([*args, "--seed", str(MAX_SEED + 1), "--out", str(tmp_path / "t")])
    one_line_error(above, "--seed", "is not in the range")
    assert not (tmp_path / "t").exists()


def test_train_with_the_largest_seed_trains(tmp_path, toy):
    """Further member: `invkit train --seed 2**63-1` (every seed of the run is derived from it)."""
    result = cli([*TOY, "--steps", "1", "--seed", str(MAX_SEED), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output


if __name__ == "__main__":
    sys.exit(_helper_main(sys.argv[1:]))
