"""Issue 23, kinds 7-11 and 13: every file invkit reads back is checked as it is read, damaged artefacts are
not reused, weights that are no weights and files that are no files are refused in one line, numbers say what they
claim, and errors carry no torch internals.

Each kind is fixed where it is owned (``invkit.io.read`` for every JSON file read back and for file types,
``invkit.io.weights`` and ``invkit.io.state_dict.load_strict`` for weights, ``Bench._images_reusable`` for reused
reconstructions, ``Inverter.check_output``, ``run_probe``'s ``images_used`` and ``resolve_classifier``'s
``RandomWeightsWarning`` for numbers, ``invkit.errors.short_message`` for torch's messages) and tested here on every
member the issue lists and at least one further member of each kind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file

import invkit
from invkit.cli import build_cli
from invkit.data import load_dataset, take
from invkit.errors import CheckpointError, DataError, InputError, TrainingError, short_message

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from test_bench import TinyPlugin as BenchPlugin  # noqa: E402
from test_bench import tiny_classifier as bench_classifier  # noqa: E402
from test_bench import tiny_decoder  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"
CLF = str(DEMO / "classifier_standard")
BIGGAN = str(DEMO / "biggan_standard")
DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested 100,000 deep: json.loads raises RecursionError


@pytest.fixture(autouse=True)
def _one_thread_and_no_hang():
    """One torch thread (the machine is shared), and a test that would hang (a FIFO read) fails instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def hung(signum, frame):
        raise TimeoutError("the command hung (read a FIFO?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
    torch.set_num_threads(threads)


def invoke(args: list[str]):
    """The CLI as a user runs it; never a traceback. ``result.text`` is the output without rich's line wrapping."""
    result = CliRunner().invoke(build_cli(), [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    result.text = " ".join(result.output.split())
    return result


def one_line(result, *expected: str) -> str:
    """The command failed with a non-zero exit status and one 'Error:' line holding every ``expected`` text."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    output = "\n" + result.output
    error = output[output.rindex("\nError:") :].strip()  # after any table or warning lines
    assert "\n" not in error, result.output
    for text in expected:
        assert text in error, error
    return error


@pytest.fixture
def digit(tmp_path) -> str:
    images, _ = take(load_dataset("default", "test"), 1, seed=0)
    path = tmp_path / "in" / "d0.png"
    path.parent.mkdir()
    Image.fromarray((images[0, 0] * 255).round().byte().numpy(), "L").save(path)
    return str(path)


def copy_checkpoint(src: str, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(folder: Path, change) -> Path:
    doc = json.loads((folder / "config.json").read_text())
    change(doc)
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


# ======================================================================== kind 8: files read back, shape checked
BENCH = ["bench", "--classifier", CLF, "--inverter", "optim", "--option", "optim:steps=1", "-n", "4", "--id-k", "2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "the document must be a JSON object, not an array"),
        ('{"results": [1]}', "item 0 of 'results' must be a JSON object, not a number (1)"),
        ('{"settings": "x"}', "'settings' must be a JSON object, not a string ('x')"),
        (DEEP, "nested deeper than invkit ever writes"),
        # further members
        ('{"results": [{"key": 1, "slug": "s", "classifier": "c", "inverter": "i"}]}', "'key' must be a string"),
        ('{"results": [{"key": "k", "slug": "s", "classifier": "c", "inverter": "i", "psnr": "high"}]}',
         "'psnr' must be a number or null, not a string ('high') (at results[0].psnr)"),
        ('{"settings": {"fingerprint": [1]}}', "'fingerprint' must be a JSON object, not an array"),
        ('{"results": [{"key": "k"}]}', "item 0 of 'results' lacks 'slug'"),
    ],
    ids=["a list", "results [1]", "settings a string", "nested 100000 deep", "key a number", "psnr a string",
         "fingerprint a list", "a record without slug"],
)  # fmt: skip
def test_bench_results_json_of_another_shape_is_one_line(text, expected, tmp_path):
    """Listed: results.json that is [], {"results": [1]}, has "settings": "x", or nests 100,000 deep; and
    further fields of another type. Each was an AttributeError/TypeError/RecursionError traceback."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text(text)
    error = one_line(invoke([*BENCH, "--out", out, "--device", "cpu"]), expected)
    assert "results.json" in error and "move it away or use another --out" in error
    assert (out / "results.json").read_text() == text  # nothing lost


def test_bench_results_json_that_is_not_utf8_is_one_line(tmp_path):
    """Further member: bytes that are not UTF-8 (a UnicodeDecodeError before)."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_bytes(b'{"results": "\xff\xfe"}')
    one_line(invoke([*BENCH, "--out", out, "--device", "cpu"]), "results.json' is not UTF-8 text")


@pytest.mark.parametrize(("text", "expected"), [
    ('{"run": "x"}', "'run' must be a JSON object, not a string ('x')"),
    ("[]", "the document must be a JSON object, not an array"),  # further member
    ('{"run": [1, 2]}', "'run' must be a JSON object, not an array"),  # further member
], ids=["run a string", "a list", "run a list"])  # fmt: skip
def test_probe_results_json_of_another_shape_is_one_line(text, expected, tmp_path):
    """Listed: a probe results.json whose "run" is a string (a TypeError traceback before)."""
    done = tmp_path / "o" / "class-spread" / "results.json"
    done.parent.mkdir(parents=True)
    done.write_text(text)
    result = invoke(["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN, "--out", tmp_path / "o"])
    error = one_line(result, expected, "pass --force")
    assert str(done) in error and done.read_text() == text


@pytest.mark.parametrize(("doc", "expected"), [
    ({"train": [1, 2]}, "'train' must be a JSON object, not an array"),
    ({"inverter": {}}, "the document lacks 'train'"),  # further member
    ({"train": {}, "data_fingerprint": 5}, "'data_fingerprint' must be a string or null"),  # further member
], ids=["train a list", "no train", "fingerprint a number"])  # fmt: skip
def test_train_config_json_of_another_shape_is_one_line(doc, expected, tmp_path):
    """Listed: train_config.json whose "train" is a list, read by `invkit train --resume` (AttributeError before)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps(doc))
    error = one_line(invoke(["train", "--resume", "--out", out]), expected, "remove it or use another --out")
    assert "train_config.json" in error


@pytest.mark.parametrize("value", ["ten", None], ids=["ten", "null"])
def test_checkpoint_num_classes_of_another_type_is_one_line(value, tmp_path, digit):
    """Listed: "num_classes": "ten" or null in a checkpoint's config.json; bench matched checkpoints with
    int(num_classes) (ValueError/TypeError tracebacks). Checked where config.json is read, for every command."""
    ckpt = edit_config(copy_checkpoint(BIGGAN, tmp_path / "ckpt"), lambda d: d["config"].update(num_classes=value))
    expected = ("config.json", "'num_classes' must be a whole number", "(at config.num_classes)")
    args = ["bench", "--classifier", CLF, "--inverter", "biggan_proj", "--checkpoint", ckpt, "-n", "4", "--id-k", "2"]
    one_line(invoke([*args, "--out", tmp_path / "b", "--device", "cpu"]), *expected)
    one_line(invoke(["invert", digit, "--classifier", CLF, "--checkpoint", ckpt, "--out", tmp_path / "i"]), *expected)
    with pytest.raises(CheckpointError, match="num_classes"):
        invkit.load_inverter(ckpt)


def test_classifier_checkpoint_num_classes_of_another_type_names_the_file(tmp_path):
    """Further member: a classifier checkpoint whose init_kwargs hold "num_classes": "ten" (the factory's own
    check said so without naming the file)."""
    ckpt = edit_config(
        copy_checkpoint(CLF, tmp_path / "clf"), lambda d: d["config"]["init_kwargs"].update(num_classes="ten")
    )
    with pytest.raises(CheckpointError, match=r"config\.json' holds a value smallcnn.base cannot use.*'ten'"):
        invkit.load_classifier(ckpt)


def _probe_results(out: Path) -> Path:
    return out / "class-spread" / "results.json"


@pytest.mark.parametrize(
    "where",
    ["bench results.json", "probe results.json", "invert.json", "train_config.json", "checkpoint config.json"],
)
def test_json_nested_100000_deep_is_one_line_in_every_file_read_back(where, tmp_path, digit):
    """Listed: JSON nested 100,000 deep (a RecursionError traceback), in each file invkit reads back."""
    out = tmp_path / "o"
    if where == "bench results.json":
        path, args = out / "results.json", [*BENCH, "--out", out, "--device", "cpu"]
    elif where == "probe results.json":
        path = _probe_results(out)
        args = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN, "--out", out]
    elif where == "invert.json":
        path, args = out / "invert.json", ["invert", digit, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", out]
    elif where == "train_config.json":
        path, args = out / "train_config.json", ["train", "--resume", "--out", out]
    else:
        ckpt = copy_checkpoint(BIGGAN, tmp_path / "ckpt")
        path, args = ckpt / "config.json", ["invert", digit, "--classifier", CLF, "--checkpoint", ckpt, "--out", out]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEEP)
    one_line(invoke(args), str(path), "nested deeper than invkit ever writes")
    assert path.read_text() == DEEP


@pytest.mark.parametrize(("doc", "expected"), [
    ({"images": [1]}, "item 0 of 'images' must be a JSON object"),
    ({"images": [{"image": "a.png", "written": "a_recon.png"}]}, "'written' must be an array, not a string"),
    ({"seed": 0}, "the document lacks 'images'"),
], ids=["images [1]", "written a string", "no images"])  # fmt: skip
def test_invert_json_of_another_shape_is_one_line(doc, expected, tmp_path, digit):
    """Further member: invert.json, read back by a rerun of `invkit invert` into the same --out."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "invert.json").write_text(json.dumps(doc))
    result = invoke(["invert", digit, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", out])
    one_line(result, "invert.json", expected, "use another --out or delete it")
    assert json.loads((out / "invert.json").read_text()) == doc


def test_a_training_log_with_lines_of_another_shape_still_gives_a_report(tmp_path):
    """Further member: log.jsonl lines invkit did not write (a step that is a string, a line nested 100,000
    deep, a non-UTF-8 byte) are left out of `invkit report`; they ended in tracebacks before."""
    run = tmp_path / "run"
    run.mkdir()
    good = [{"step": s, "time": s * 0.1, "img_per_s": 10.0, "loss": 1.0 / s} for s in (1, 2, 3)]
    lines = [json.dumps(good[0]), '{"step": "two", "loss": 1}', DEEP, '{"step": 2, "img_per_s": "fast"}', "[1]"]
    lines += [json.dumps(r) for r in good[1:]]
    (run / "log.jsonl").write_bytes("\n".join(lines).encode() + b"\n\xff\xfe\n")
    (run / "train_config.json").write_text(DEEP)
    result = invoke(["report", run])
    assert result.exit_code == 0, result.output
    from invkit.training.report import read_log

    assert read_log(run / "log.jsonl") == good
    assert "train_config.json is not a JSON object invkit wrote" in (run / "report.html").read_text()


def _toy_run(out: Path, resume: bool = False, steps: int = 4):
    from invkit.training import TrainConfig, build_inverter, train_inverter

    fields = dict(classifier="toyclf.base", inverter="toyinv.base", out=str(out), steps=steps, batch_size=8)
    config = TrainConfig(**fields, save_every=2, sample_every=0, log_every=1, device="cpu", seed=0)
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)
    train, test = load_dataset("default", "train"), load_dataset("default", "test")
    return train_inverter(config, clf, inverter, train, test, trainer_options=options, resume=resume)


def test_a_training_state_of_another_shape_is_skipped_naming_the_field(tmp_path):
    """Further member: a checkpoint's train_state.safetensors whose tree lacks "rng" and whose "step" is a
    string (a KeyError/ValueError in _restore before): the checkpoint is skipped, naming the field."""
    from invkit.io import load_train_state, save_train_state
    from invkit.training import find_checkpoints

    _toy_inverter.register()
    _toy_run(tmp_path, steps=4)
    (_, first), (_, newest) = find_checkpoints(tmp_path)
    state = load_train_state(newest / "train_state.safetensors")
    save_train_state(newest / "train_state.safetensors", {k: v for k, v in state.items() if k != "rng"})
    with pytest.warns(UserWarning, match=r"step_000004.*lacks 'rng'.*resuming from step_000002"):
        assert _toy_run(tmp_path, resume=True, steps=6).step == 6
    state = load_train_state(first / "train_state.safetensors")
    save_train_state(first / "train_state.safetensors", state | {"step": "2"})
    for folder in find_checkpoints(tmp_path)[1:]:
        shutil.rmtree(folder[1])
    with pytest.raises(TrainingError, match=r"'step' must be a whole number, not a string \('2'\)"):
        _toy_run(tmp_path, resume=True, steps=8)


def test_a_train_state_tree_nested_too_deep_is_one_line(tmp_path):
    """Further member: JSON nested 100,000 deep inside a safetensors file's metadata (the training state's tree)."""
    from invkit.io import load_train_state, save_train_state

    path = tmp_path / "train_state.safetensors"
    save_train_state(path, {"step": 1, "w": torch.ones(2)})
    save_file(load_file(str(path)), str(path), metadata={"invkit_tree": DEEP})
    with pytest.raises(CheckpointError, match="invkit_tree metadata is corrupt \\(nested too deep\\)"):
        load_train_state(path)


# =========================================================================== kind 9: damaged artefacts reused
@pytest.fixture
def bench_pair(tmp_path):
    """One (classifier, learned inverter) pair of tiny seeded stand-ins with its checkpoint."""
    invkit.register_plugin(BenchPlugin(), name="tiny")
    clf = bench_classifier()
    clf.save(tmp_path / "clf")
    tiny_decoder(classifier=clf).save(tmp_path / "dec", extra={"classifier": {"checkpoint": str(tmp_path / "clf")}})
    return str(tmp_path / "clf"), str(tmp_path / "dec")


def _bench(bench_pair, out: Path):
    from invkit.evaluation.bench import Bench
    from invkit.evaluation.settings import BenchSettings

    clf, dec = bench_pair
    settings = BenchSettings(classifiers=[clf], inverters=["tinydec"], checkpoints=[dec], n=10, id_k=5)
    return list(Bench(settings, out).run())


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        lambda p: save_file({"images": torch.zeros(2, 1, 4, 4)}, str(p)),
        lambda p: save_file({"other": torch.zeros(1)}, str(p)),
        lambda p: save_file({"images": torch.full((8, 1, 16, 16), float("nan"))}, str(p)),
    ],
    ids=["truncated", "another shape", "no images", "nan pixels"],
)
def test_a_damaged_pair_image_file_is_computed_again(damage, bench_pair, tmp_path):
    """Listed: a truncated images/<pair>.safetensors of a finished pair was reused on every rerun and failed with
    a traceback naming no file. Further members: a file of another shape, without 'images', with NaN pixels.
    Now it is named in a warning and the pair is computed again."""
    out = tmp_path / "o"
    first = _bench(bench_pair, out)
    path = out / "images" / f"{first[0].pair.slug}.safetensors"
    whole = load_file(str(path))["images"].clone()  # load_file maps the file: keep a copy before damaging it
    damage(path)
    with pytest.warns(UserWarning, match=rf"'{path}'.*computing .* again"):
        second = _bench(bench_pair, out)
    assert not second[0].reused and second[0].record["psnr"] == first[0].record["psnr"]
    assert torch.equal(load_file(str(path))["images"], whole)
    third = _bench(bench_pair, out)  # whole again: reused
    assert third[0].reused


def test_a_damaged_pair_image_file_through_the_cli_is_a_warning_not_a_traceback(bench_pair, tmp_path):
    """Listed member through `invkit bench`: exit 0, one warning line naming the file."""
    clf, dec = bench_pair
    out = tmp_path / "o"
    args = ["bench", "--classifier", clf, "--inverter", "tinydec", "--checkpoint", dec, "-n", "10", "--id-k", "5"]
    assert invoke([*args, "--out", out, "--device", "cpu"]).exit_code == 0
    (image,) = [p for p in (out / "images").glob("*.safetensors") if p.name != "originals.safetensors"]
    image.write_bytes(image.read_bytes()[:100])
    result = invoke([*args, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"warning: '{image}' is not a readable safetensors file" in result.text and "again" in result.text
    assert "(reused)" not in result.text


def test_a_damaged_earlier_image_file_is_left_out_of_the_report(bench_pair, tmp_path):
    """Further member: the report figures of an earlier pair this run does not redo read its images file; a
    damaged one is named and left out (a SafetensorError traceback before)."""
    from invkit.evaluation.report import write_reports

    out = tmp_path / "o"
    first = _bench(bench_pair, out)
    doc = json.loads((out / "results.json").read_text())
    (out / "images" / f"{first[0].pair.slug}.safetensors").write_bytes(b"\0" * 12)
    with pytest.warns(UserWarning, match="left out of the report's figures"):
        paths = write_reports(out, doc)
    assert paths["html"].is_file()


def test_a_truncated_probe_results_json_is_named_not_reused(tmp_path):
    """Further member (probe outputs): a finished probe's results.json cut short is named, with what to do; it is
    neither reused as finished nor overwritten."""
    out = tmp_path / "o"
    args = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", BIGGAN, "-n", "8", "--out", out]
    assert invoke(args).exit_code == 0
    done = _probe_results(out)
    cut = done.read_text()[:40]
    done.write_text(cut)
    one_line(invoke(args), str(done), "is not valid JSON", "pass --force")
    assert done.read_text() == cut
    assert invoke([*args, "--force"]).exit_code == 0 and "run" in json.loads(done.read_text())


@pytest.mark.parametrize(
    "replace",
    [lambda a: a[:2], lambda a: np.zeros((len(a), a.shape[1], 5, 5), np.uint8)],
    ids=["fewer images", "another size"],
)
def test_a_decoded_cache_of_other_images_is_decoded_again(replace, tmp_path):
    """Further member (decoded caches): a cache array of the right key but other images (replaced, or a copy cut
    short that still loads) was reused: labels for 6 images against 2 cached ones, or 5x5 images for 12x12 ones."""
    for c in "ab":
        for i in range(3):
            path = tmp_path / "data" / "test" / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((12, 12), 40 * i + (c == "b") * 100, np.uint8)).save(path)
    whole = load_dataset(str(tmp_path / "data"), "test").materialize().images.clone()
    (cached,) = (tmp_path / "cache" / "decoded").glob("*.npy")
    np.save(cached, replace(np.load(cached)))
    again = load_dataset(str(tmp_path / "data"), "test").materialize()
    assert torch.equal(again.images, whole)


def test_a_decoded_npz_cache_whose_labels_do_not_fit_is_decoded_again(tmp_path):
    """Further member (decoded caches): the cached labels of Downsampled ImageNet batches, replaced by a shorter
    array, were paired with the cached images (a misleading 'labels must be ... one per image')."""
    from invkit.data.npz import load_npz_folder

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "val_data.npz", data=rng.integers(0, 255, (6, 3 * 8 * 8), np.uint8), labels=[1, 2, 3, 1, 2, 3])
    first = load_npz_folder(tmp_path, "test")
    images, targets = first.images.clone(), first.targets.clone()
    (labels,) = (tmp_path / "cache" / "decoded").glob("*.labels.npy")
    np.save(labels, np.array([0, 1]))
    again = load_npz_folder(tmp_path, "test")
    assert torch.equal(again.images, images) and torch.equal(again.targets, targets)


# ===================================================================== kind 10: weights that are not weights
def _float8_checkpoint(tmp_path: Path) -> Path:
    ckpt = copy_checkpoint(BIGGAN, tmp_path / "ckpt")
    state = load_file(str(ckpt / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key].to(torch.float8_e4m3fn)
    save_file(state, str(ckpt / "model.safetensors"))
    return ckpt


def test_float8_weights_in_a_checkpoint_are_one_line(tmp_path, digit):
    """Listed: a valid safetensors file of float8 tensors (a traceback from the finite-weights check before)."""
    ckpt = _float8_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="holds float8_e4m3fn, not numbers invkit can load as weights"):
        invkit.load_inverter(ckpt)
    result = invoke(["invert", digit, "--classifier", CLF, "--checkpoint", ckpt, "--out", tmp_path / "o"])
    one_line(result, "model.safetensors", "float8_e4m3fn")


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array(["a", "b"]), "holds strings (<U1)"),
        (np.array(["2024-01-01"], dtype="datetime64[D]"), "holds dates (datetime64[D])"),
        # further members
        (np.zeros((16, 1, 3, 3), dtype=np.complex64), "holds complex numbers (complex64)"),
        (np.array([1, 2], dtype="timedelta64[s]"), "holds time spans"),
        (np.zeros((16, 1, 3, 3), dtype=bool), "is stored as torch.bool but must be floating point"),
        (np.zeros((16, 1, 3, 3), dtype=np.int32), "is stored as torch.int32 but must be floating point"),
    ],
    ids=["strings", "datetimes", "complex", "timedeltas", "bool", "int32"],
)
def test_npz_arrays_that_are_not_weights_are_one_line(array, expected, tmp_path, digit):
    """Listed: an .npz of strings or datetimes (a TypeError from torch.from_numpy before). Further: complex
    numbers, time spans, and bool or integer arrays, which load_state_dict copied into float parameters silently
    (exit 0 with nonsense weights)."""
    state = {k: v.numpy() for k, v in invkit.create_classifier("smallcnn.base").network.state_dict().items()}
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = array
    np.savez(tmp_path / "w.npz", **state)
    args = ["invert", digit, "--classifier", "smallcnn.base", "--weights", tmp_path / "w.npz", "--inverter", "optim"]
    error = one_line(invoke([*args, "--option", "steps=1", "--out", tmp_path / "o"]), expected)
    assert "w.npz" in error
    assert not (tmp_path / "o").exists()


def test_object_arrays_and_float8_torch_files_are_one_line(tmp_path):
    """Further members: an .npz of Python objects, and a torch state dict (``torch.save``) of float8 tensors."""
    from invkit.errors import UnsafeCheckpointError
    from invkit.io import load_weights_file

    np.savez(tmp_path / "o.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafeCheckpointError, match="pickled Python objects"):
        load_weights_file(tmp_path / "o.npz")
    torch.save({"w": torch.zeros(3).to(torch.float8_e5m2)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="'w' holds float8_e5m2"):
        load_weights_file(tmp_path / "w.pt")


# ================================================================ kind 11: a FIFO or device where a file is expected
@pytest.fixture
def fifo_checkpoint(tmp_path) -> Path:
    ckpt = copy_checkpoint(BIGGAN, tmp_path / "ckpt")
    (ckpt / "model.safetensors").unlink()
    os.mkfifo(ckpt / "model.safetensors")
    return ckpt


def test_a_fifo_named_model_safetensors_is_one_line_for_invert_and_bench(fifo_checkpoint, tmp_path, digit):
    """Listed: a FIFO named model.safetensors hung invert and bench forever."""
    expected = ("model.safetensors' is a FIFO (named pipe), not a file",)
    args = ["invert", digit, "--classifier", CLF, "--checkpoint", fifo_checkpoint, "--out", tmp_path / "i"]
    one_line(invoke(args), *expected)
    args = ["bench", "--classifier", CLF, "--inverter", "biggan_proj", "--checkpoint", fifo_checkpoint, "-n", "4"]
    one_line(invoke([*args, "--id-k", "2", "--out", tmp_path / "b", "--device", "cpu"]), *expected)


def test_a_fifo_checkpoint_is_one_line_for_probe(fifo_checkpoint, tmp_path):
    """Further member: probe hashes the checkpoint's weights to record them; it must not open the FIFO either."""
    args = ["probe", "class-spread", "--classifier", CLF, "--checkpoint", fifo_checkpoint, "--out", tmp_path / "o"]
    one_line(invoke(args), "is a FIFO (named pipe), not a file")


@pytest.mark.parametrize("what", ["weights FIFO", "weights device", "image FIFO", "results.json FIFO"])
def test_other_files_that_are_not_files_are_one_line(what, tmp_path, digit):
    """Further members: a FIFO or a device (/dev/zero: read forever) given as --weights, a FIFO given as an
    image, a FIFO standing where bench reads its earlier results.json."""
    out = tmp_path / "o"
    if what == "results.json FIFO":
        out.mkdir()
        os.mkfifo(out / "results.json")
        one_line(invoke([*BENCH, "--out", out, "--device", "cpu"]), "results.json' is a FIFO")
        return
    if what == "image FIFO":
        os.mkfifo(tmp_path / "x.png")
        args = ["invert", tmp_path / "x.png", "--classifier", CLF, "--checkpoint", BIGGAN, "--out", out]
        one_line(invoke(args), "image", "x.png' is a FIFO (named pipe), not a file")
        return
    weights = tmp_path / "w.pt"
    if what == "weights FIFO":
        os.mkfifo(weights)
    else:
        weights = Path("/dev/zero")
        assert weights.exists()
    args = ["invert", digit, "--classifier", "smallcnn.base", "--weights", weights, "--inverter", "optim"]
    one_line(invoke([*args, "--out", out]), str(weights), "not a file", "give --weights the weights file itself")


def test_check_file_names_each_kind_of_non_file(tmp_path):
    from invkit.io.read import check_file

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for path, kind in [("fifo", "a FIFO"), ("dir", "a folder"), ("/dev/null", "a device"), ("missing", "does not")]:
        with pytest.raises(DataError, match=kind):
            check_file(tmp_path / path, "input", DataError)
    assert check_file(Path(CLF) / "config.json", "input") == Path(CLF) / "config.json"


# ================================================================== kind 7: numbers that do not say what they claim
@pytest.mark.parametrize("scale", [1e30, 1e7], ids=["1e30", "1e7"])
def test_biggan_proj_refuses_logits_that_overflow_instead_of_a_nan_image(scale):
    """Listed: biggan_proj on finite logits of 1e30 returned an all-NaN image with exit 0 (its conditional
    batch-norm gains grow with the logits and compound). Further: 1e7 already overflows the demo checkpoint."""
    inv = invkit.load_inverter(BIGGAN)
    logits = torch.zeros(3, 10)
    logits[1, 4] = scale
    with pytest.raises(InputError, match=r"logits as large as .* overflow.*row\(s\) 1 is NaN/inf"):
        inv.invert(logits, generator=torch.Generator().manual_seed(0))
    ok = inv.invert(logits * 0 + 5.0, generator=torch.Generator().manual_seed(0))  # ordinary logits still invert
    assert bool(torch.isfinite(ok).all())


def test_dosovitskiy_brox_refuses_logits_that_overflow(tmp_path):
    """Further member: dosovitskiy_brox turned finite logits of 1e38 into an all-NaN image with exit 0."""
    inv = invkit.load_inverter(DEMO / "dbrox_standard")
    with pytest.raises(InputError, match="overflow its float32 arithmetic"):
        inv.invert(torch.full((2, 10), 1e38))


def test_invert_of_logits_that_overflow_through_the_cli_is_one_line(tmp_path, digit, monkeypatch):
    """The listed member end to end: `invkit invert` with a classifier giving logits of 1e30 exits non-zero."""
    from invkit.core.classifier import Classifier

    real = Classifier.logits
    monkeypatch.setattr(Classifier, "logits", lambda self, x: real(self, x) * 1e30)
    result = invoke(["invert", digit, "--classifier", CLF, "--checkpoint", BIGGAN, "--out", tmp_path / "o"])
    one_line(result, "biggan_proj.mnist32: logits as large as", "overflow")
    assert not (tmp_path / "o" / "d0_recon.png").exists()


def test_probe_fgsm_records_the_images_it_used_not_the_n_asked_for(tmp_path):
    """Listed: `probe fgsm -n 5000` recorded 5000 images where the 1000 of the data were used. Now -n beyond the
    data is a warning and results.json records images_used (every probe, through run_probe)."""
    out = tmp_path / "o"
    args = ["probe", "fgsm", "--classifier", CLF, "--checkpoint", BIGGAN, "-n", "5000", "--out", out]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "warning: -n 5000 is more than the 1000 images" in result.text
    run = json.loads((out / "fgsm" / "results.json").read_text())["run"]
    assert run["num_images"] == 5000 and run["images_used"] == 1000


@pytest.mark.parametrize(
    ("name", "options", "used"),
    [("class-spread", {}, None), ("logit-shift", {"images": 6, "levels": 2}, 6), ("mirror", {"images": 5}, 5)],
)
def test_every_probe_records_the_images_it_read(name, options, used, tmp_path):
    """Further members: probes whose counts come from their own options (logit-shift images=6) or from their
    classes (class-spread) record what they read, not -n."""
    from invkit.core.probe import ProbeContext, run_probe

    data = load_dataset("default", "test")
    clf = invkit.load_classifier(CLF)
    ctx = ProbeContext(
        classifier=clf,
        inverter=invkit.load_inverter(BIGGAN, classifier=clf),
        data=data,
        out=tmp_path,
        generator=torch.Generator().manual_seed(0),
        num_images=64,
        options=options,
    )
    run_probe(invkit.create_probe(name), ctx, {"num_images": 64})
    run = json.loads((tmp_path / "results.json").read_text())["run"]
    assert run["num_images"] == 64 and 0 < run["images_used"] <= len(data)
    if used is not None:
        assert run["images_used"] == used


@pytest.mark.parametrize("command", ["invert", "bench", "probe", "train"])
def test_a_registry_classifier_without_trained_weights_is_named_on_stderr(command, tmp_path, digit):
    """Listed: `invert` with a registry classifier that has no trained weights ran on random weights without a
    word. Further: bench, probe and train do the same; each now warns in one line."""
    out = tmp_path / "o"
    clf = ["--classifier", "smallcnn.base"]
    args = {
        "invert": ["invert", digit, *clf, "--inverter", "optim", "--option", "steps=1", "--out", out],
        "bench": ["bench", *clf, "--inverter", "optim", "--option", "optim:steps=1", "-n", "2", "--id-k", "2",
                  "--out", out, "--device", "cpu"],
        "probe": ["probe", "class-spread", *clf, "--inverter", "optim", "--inverter-option", "steps=1", "--out", out],
        "train": ["train", *clf, "--inverter", "biggan_proj.mnist32", "--steps", "0", "--out", out],
    }[command]  # fmt: skip
    result = invoke(args)
    warning = "warning: smallcnn.base has no trained weights here: it runs on random weights"
    assert warning in result.text, result.output
    assert result.text.count(warning) == 1


def test_trained_weights_give_no_random_weights_warning(tmp_path, digit):
    """The same classifier with --weights, or as a checkpoint folder, warns of nothing."""
    from safetensors.torch import save_file as save

    save(invkit.load_classifier(CLF).network.state_dict(), str(tmp_path / "w.safetensors"))
    for clf in (["--classifier", "smallcnn.base", "--weights", tmp_path / "w.safetensors"], ["--classifier", CLF]):
        result = invoke(["invert", digit, *clf, "--inverter", "optim", "--option", "steps=1", "--out", tmp_path / "o"])
        assert result.exit_code == 0 and "random weights" not in result.output, result.output
        shutil.rmtree(tmp_path / "o")
    assert invkit.create_classifier("smallcnn.base").random_weights
    assert not invkit.load_classifier(CLF).random_weights


# ========================================================= kind 13: torch's C++ internals in a one-line error
ALLOC = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 8444249301319680 bytes. Error code 12 (Cannot allocate memory)"
)
TRACE = (
    "shape '[2, 2]' is invalid for input of size 3\nException raised from infer_size_impl at "
    "/__w/pytorch/pytorch/aten/src/ATen/InferSize.h:99 (most recent call first):\nC++ CapturedTraceback:\n"
    "#4 std::_Function_handler<...> from Logging.cpp:0\n#5 c10::Error::Error(c10::SourceLocation) from ??:0"
)


@pytest.mark.parametrize(
    ("message", "first"),
    [
        (ALLOC, "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8444249301319680 bytes."),
        (TRACE, "shape '[2, 2]' is invalid for input of size 3"),
        ("Error(s) in loading state_dict for Linear:\n\tsize mismatch for weight: copying a param", "size mismatch"),
        ("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other API call",
         "CUDA error: out of memory"),
    ],
    ids=["enforce fail", "c++ stack", "state_dict header", "cuda advice"],
)  # fmt: skip
def test_short_message_keeps_the_first_meaningful_line(message, first):
    assert short_message(RuntimeError(message)) == first or short_message(RuntimeError(message)).startswith(first)


def test_a_checkpoint_config_that_torch_cannot_build_is_one_line_without_cpp_internals(tmp_path, digit):
    """Listed: errors carried torch's C++ internals ("[enforce fail at alloc_cpu.cpp:127] err == 0.", and with
    TORCH_SHOW_CPP_STACKTRACES the C++ stack on further lines). A config.json asking for a network of 8 PB."""
    ckpt = edit_config(copy_checkpoint(BIGGAN, tmp_path / "ckpt"), lambda d: d["config"].update(ch=2**40))
    result = invoke(["invert", digit, "--classifier", CLF, "--checkpoint", ckpt, "--out", tmp_path / "o"])
    error = one_line(result, "config.json' cannot build biggan_proj.mnist32", "DefaultCPUAllocator")
    assert "enforce fail" not in error and "alloc_cpu.cpp" not in error


def test_a_multi_line_torch_error_while_building_is_cut_to_its_first_line(tmp_path):
    """Further member: build_from_config passes a factory's torch RuntimeError on; with C++ stack lines (as
    TORCH_SHOW_CPP_STACKTRACES=1 gives them) only the first line is kept."""
    from invkit.io.checkpoint import build_from_config

    def factory(**kwargs):
        raise RuntimeError(TRACE)

    with pytest.raises(CheckpointError) as info:
        build_from_config(factory, {"name": "x.y"}, tmp_path)
    assert "\n" not in str(info.value) and "invalid for input of size 3" in str(info.value)
    assert "Exception raised from" not in str(info.value)


def test_a_multi_line_load_state_dict_error_is_cut_to_its_first_meaningful_line():
    """Further member: load_strict passed load_state_dict's "Error(s) in loading state_dict for ...:" header and
    the lines under it on, joined."""
    from invkit.io.state_dict import load_strict

    class Picky(torch.nn.Linear):
        def load_state_dict(self, state, strict=True, **kw):
            raise RuntimeError(f"Error(s) in loading state_dict for Picky:\n\t{TRACE}")

    with pytest.raises(CheckpointError) as info:
        load_strict(Picky(2, 2), torch.nn.Linear(2, 2).state_dict(), "weights 'w'", "picky")
    assert str(info.value) == "weights 'w' does not fit picky: shape '[2, 2]' is invalid for input of size 3."


def test_an_option_value_nested_100000_deep_is_one_line(digit, tmp_path):
    """Further member (kind 8, a value read back as JSON): ``--option`` values are parsed as JSON, and one nested
    100,000 deep ended in a RecursionError."""
    result = CliRunner().invoke(
        build_cli(),
        [
            "invert",
            digit,
            "--classifier",
            CLF,
            "--inverter",
            "optim",
            "--out",
            str(tmp_path / "o"),
            "--option",
            "steps=" + "[" * 100_000,
        ],
    )
    one_line(result, "nested too deeply", "--option")
