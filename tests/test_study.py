"""The human 2AFC study without a browser: the bench's kept reconstructions, `invkit study make` (a blind page and
its key) and `invkit study score` (preferences with Wilson intervals, metric agreement), and their bad inputs."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import cli, one_line_error
from PIL import Image
from test_bench import TinyPlugin, tiny, tiny_classifier, tiny_decoder  # noqa: F401 - tiny: a fixture

import invkit
import invkit.core.plugins
from invkit.errors import StudyError
from invkit.evaluation.bench import Bench
from invkit.evaluation.kept import load_kept, to_uint8
from invkit.evaluation.settings import BenchSettings
from invkit.evaluation.stats import wilson_interval
from invkit.evaluation.study import QUESTION, display_size, make_study
from invkit.evaluation.study_page import ANSWERS_FORMAT
from invkit.evaluation.study_score import score_study
from invkit.io.files import atomic_save_safetensors
from invkit.io.weights import load_safetensors

A, B = "clf_rob/tinydec", "clf_rob/tinyopt"  # tinydec reconstructs at 16 px, tinyopt at 28 px (MNIST's size)
N = 8


def run_bench(root: Path, **kw) -> Path:
    """A bench of one tiny classifier x two tiny inverters on 10 MNIST test images, into ``root/bench``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INVKIT_CACHE", str(root / "cache"))
        invkit.core.plugins.reset()
        invkit.register_plugin(TinyPlugin(), name="tiny")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            clf = tiny_classifier(seed=1)
            clf.save(root / "clf_rob")
            dec = tiny_decoder(classifier=clf)
            dec.save(root / "dec_rob", extra={"classifier": {"checkpoint": str(root / "clf_rob")}})
            s = BenchSettings(
                classifiers=[str(root / "clf_rob")],
                inverters=["tinydec", "tinyopt"],
                checkpoints=[str(root / "dec_rob")],
                n=10,
                id_k=5,
                **kw,
            )
            list(Bench(s, root / "bench").run())
        finally:
            torch.set_num_threads(threads)
            invkit.core.plugins.reset()
    return root / "bench"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """One bench for the whole module (it only reads it): 10 images, 8 kept per pair."""
    return run_bench(tmp_path_factory.mktemp("study"), keep_images=N)


@pytest.fixture
def study(bench_dir, tmp_path):
    return make_study(bench_dir, A, B, tmp_path / "study", n=N, seed=0)


def pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(s))) for s in re.findall(r"data:image/png;base64,([^\"]+)", page)]


def trials(page: str) -> list[dict]:
    data = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(data)["trials"]


def answers_doc(key: dict, chose_a: list[bool], subject: str = "s1", **over) -> dict:
    """What the page saves when a subject picks A's reconstruction in the trials ``chose_a`` marks."""
    answers = []
    for i, a in enumerate(chose_a):
        a_left = key["trials"][i]["left"] == "a"
        answers.append({"trial": i, "side": "left" if a == a_left else "right", "rt_ms": 900 + i})
    doc = {
        "format": ANSWERS_FORMAT,
        "version": 1,
        "study_id": key["study_id"],
        "trials_digest": key["trials_digest"],
        "n": key["n"],
        "subject": subject,
        "complete": len(answers) == key["n"],
        "saved_at": "2026-01-01T00:00:00Z",
        "answers": answers,
    }
    return doc | over


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# ------------------------------------------------------------------------------------------------ kept by bench
def test_bench_keeps_uint8_reconstructions_with_their_indices(bench_dir):
    doc = json.loads((bench_dir / "results.json").read_text())
    assert "keep_images" not in doc["settings"]["fingerprint"]  # kept for people, not measured
    for record in doc["results"]:
        kept = load_kept(bench_dir / "recon" / f"{record['slug']}.safetensors")
        assert kept["images"].dtype == kept["targets"].dtype == torch.uint8
        assert list(kept["images"].shape) == [N, *record["recon_shape"]]  # at the inverter's resolution
        assert list(kept["targets"].shape) == [N, *record["target_shape"]]
        assert kept["index"].tolist() == doc["settings"]["image_indices"][:N]
        # the same reconstructions and targets as the report's float images, as uint8
        shown = load_safetensors(bench_dir / "images" / f"{record['slug']}.safetensors")
        assert len(shown["images"]) == 10  # report images: 10 by default, more than the 8 kept
        assert torch.equal(kept["images"], to_uint8(shown["images"][:N]))
        assert torch.equal(kept["targets"], to_uint8(shown["targets"][:N]))


def test_keep_images_zero_keeps_none_and_more_recomputes(tmp_path):
    bench = run_bench(tmp_path, keep_images=0)
    assert not (bench / "recon").exists()
    # --keep-images is not in the fingerprint: the same folder takes a rerun that keeps more, which computes the
    # pairs again (to the same numbers) because nothing was kept
    before = json.loads((bench / "results.json").read_text())["results"]
    run_bench(tmp_path, keep_images=3)
    after = json.loads((bench / "results.json").read_text())["results"]
    assert [r["psnr"] for r in after] == [r["psnr"] for r in before]
    assert all(len(load_kept(p)["index"]) == 3 for p in (bench / "recon").iterdir())


def test_bench_cli_keep_images(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = ["bench", "--classifier", tiny["rob"][0], "--inverter", "tinydec", "--checkpoint", tiny["rob"][1]]
    result = cli([*args, "-n", "4", "--id-k", "2", "--keep-images", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [len(load_kept(p)["index"]) for p in (out / "recon").iterdir()] == [3]
    one_line_error(cli([*args, "--keep-images", "-1", "--out", str(tmp_path / "o2")]), "--keep-images")


# ------------------------------------------------------------------------------------------------ study make
def test_make_writes_a_blind_page_and_its_key(bench_dir, study):
    page = study.page.read_text()
    key = json.loads(study.key.read_text())
    # blind: neither pair's classifier, inverter or file name, nor the key, appear anywhere in the page
    for word in ("clf_rob", "tinydec", "tinyopt", "study_key"):
        assert word not in page
    data = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(data)
    assert set(data) == {"study_id", "trials_digest", "n", "trials"}
    assert {frozenset(t) for t in data["trials"]} == {frozenset({"left", "original", "right"})}
    assert "http://" not in page and "https://" not in page  # loads nothing
    assert QUESTION in page and key["question"] == QUESTION
    assert key["a"]["name"] == A and key["b"]["name"] == B and key["n"] == N
    # A on the left in exactly half of the trials
    assert sorted(t["left"] for t in key["trials"]) == ["a"] * (N // 2) + ["b"] * (N // 2)

    kept = {s: load_kept(bench_dir / "recon" / f"{key[s]['slug']}.safetensors") for s in ("a", "b")}
    assert [t["index"] for t in key["trials"]] == kept["a"]["index"].tolist()
    shown = trials(page)
    assert len(shown) == N and set(shown[0]) == {"left", "original", "right"}
    size = display_size((28, 28), 256)
    assert size == (280, 280)
    for i, (trial, t) in enumerate(zip(shown, key["trials"], strict=True)):
        imgs = {side: pngs(f'"{trial[side]}"')[0] for side in ("left", "original", "right")}
        assert {im.size for im in imgs.values()} == {size}  # every image upscaled to the same size
        # the original is the 28 px target upscaled 10x nearest-neighbour: every 10th pixel gives it back
        assert np.array_equal(np.asarray(imgs["original"])[::10, ::10], kept["b"]["targets"][i, 0].numpy())
        # each side holds the reconstruction the key says, upscaled nearest-neighbour (no blur: no new grey values)
        for side in ("left", "right"):
            arm = t["left"] if side == "left" else ("b" if t["left"] == "a" else "a")
            want = kept[arm]["images"][i, 0].numpy()
            expected = Image.fromarray(want, "L").resize(size, Image.NEAREST)
            assert np.array_equal(np.asarray(imgs[side]), np.asarray(expected))
            assert set(np.unique(np.asarray(imgs[side]))) == set(np.unique(want))
    assert "image-rendering:pixelated" in page


def test_make_is_reproducible_and_seeded(bench_dir, study, tmp_path):
    again = make_study(bench_dir, A, B, tmp_path / "again", n=N, seed=0)
    assert again.page.read_bytes() == study.page.read_bytes() and again.study_id == study.study_id
    other = make_study(bench_dir, A, B, tmp_path / "other", n=N, seed=1)
    sides = [[t["left"] for t in json.loads(f.key.read_text())["trials"]] for f in (study, other)]
    assert sides[0] != sides[1] and other.study_id != study.study_id


def test_make_cli(bench_dir, tmp_path):
    out = tmp_path / "cli"
    result = cli(["study", "make", str(bench_dir), "--a", A, "--b", B, "-n", "4", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "study.html" in result.output and sorted(p.name for p in out.iterdir() if p.name[0] != ".") == [
        "study.html",
        "study_key.json",
    ]
    assert json.loads((out / "study_key.json").read_text())["n"] == 4


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--a", "clf_rob/nope", "--b", B], ["not a pair", "clf_rob/tinydec, clf_rob/tinyopt"]),
        (["--a", A, "--b", A], ["both name"]),
        (["--a", A, "--b", B, "-n", "9"], ["-n 9", "--keep-images 9"]),
    ],
)
def test_make_bad_input_is_one_line_and_writes_nothing(bench_dir, tmp_path, args, expected):
    out = tmp_path / "s"
    one_line_error(cli(["study", "make", str(bench_dir), *args, "--out", str(out)]), *expected)
    assert not out.exists()


def test_make_refuses_a_folder_that_is_no_bench_or_kept_nothing(tmp_path):
    one_line_error(cli(["study", "make", str(tmp_path), "--a", A, "--b", B, "--out", str(tmp_path / "s")]), "results")
    bench = run_bench(tmp_path, keep_images=0)
    one_line_error(
        cli(["study", "make", str(bench), "--a", A, "--b", B, "--out", str(tmp_path / "s")]), "--keep-images 64"
    )


# ------------------------------------------------------------------------------------------------ study score
def per_image(folder: Path, key: dict, values: dict[str, dict[str, list[float]]]) -> Path:
    """Per-image metric files of both pairs, as the bench writes them, with the given values per study image."""
    index = torch.tensor([t["index"] for t in key["trials"]][::-1])  # another order than the trials': looked up
    for arm in ("a", "b"):
        tensors = {m: torch.tensor(v[arm][::-1], dtype=torch.float32) for m, v in values.items()}
        atomic_save_safetensors(folder / "per_image" / f"{key[arm]['slug']}.safetensors", tensors | {"index": index})
    return folder


def test_score_preference_and_metric_agreement(study, tmp_path):
    key = json.loads(study.key.read_text())
    s1 = [True, True, True, True, True, True, False, False]  # 6 of 8 for A
    s2 = [True, False, True, False, True, True, True, False]  # 5 of 8 for A
    files = [
        write(tmp_path / "s1.json", answers_doc(key, s1, "s1")),
        write(tmp_path / "s2.json", answers_doc(key, s2[:6], "s2")),  # saved before the end: 6 answers, 4 for A
    ]
    # psnr (higher better) is higher for A exactly where s1 chose A; lpips (lower better) says the opposite, and
    # ties on the last two images; time_per_image (lower better) is NaN for A everywhere.
    psnr = {"a": [20.0 if c else 10.0 for c in s1], "b": [15.0] * N}
    lpips = {"a": [0.1 if c else 0.5 for c in s1[:6]] + [0.3, 0.3], "b": [0.3] * N}
    nan = {"a": [float("nan")] * N, "b": [1.0] * N}
    bench = per_image(tmp_path / "bench", key, {"psnr": psnr, "lpips": lpips, "time_per_image": nan})
    result = score_study(files, study.key, bench=bench)

    assert [(s["subject"], s["prefer_a"], s["n"], s["complete"]) for s in result["subjects"]] == [
        ("s1", 6, 8, True),
        ("s2", 4, 6, False),
    ]
    pooled = result["pooled"]
    assert (pooled["prefer_a"], pooled["n"]) == (10, 14)
    ci = wilson_interval(10, 14)
    assert pooled["share_a"] == pytest.approx(10 / 14) and pooled["ci95"] == pytest.approx([ci.low, ci.high])
    metrics = {m["metric"]: m for m in result["metrics"]}
    # psnr prefers A on s1's A images: agrees with all 8 of s1, and with s2 where s2 == s1 (trials 0,2,4,5 of 6)
    agree_s2 = sum(a == b for a, b in zip(s1[:6], s2[:6], strict=True))
    assert (metrics["psnr"]["agree"], metrics["psnr"]["n"], metrics["psnr"]["ties"]) == (8 + agree_s2, 14, 0)
    assert metrics["psnr"]["higher_is_better"] and not metrics["lpips"]["higher_is_better"]
    # lpips: lower is better, so it prefers A where A's value is 0.1: the same as psnr on the first 6 images, ties after
    assert (metrics["lpips"]["agree"], metrics["lpips"]["ties"]) == (6 + agree_s2, 2)
    assert metrics["time_per_image"]["n"] == 0 and metrics["time_per_image"]["share"] is None


def test_score_cli_writes_json_and_prints_the_table(bench_dir, study):
    key = json.loads(study.key.read_text())
    chose_a = [True] * 7 + [False]
    answers = write(study.page.parent / "alice.json", answers_doc(key, chose_a, "alice"))
    result = cli(["study", "score", str(answers)])  # the key beside the answers file, the bench the key names
    assert result.exit_code == 0, result.output
    assert "pooled" in result.output and "87.5%" in result.output  # 7 of 8, the paper's Table 1 split
    doc = json.loads((study.page.parent / "study_score.json").read_text())
    assert doc["pooled"]["prefer_a"] == 7 and doc["a"] == A and doc["metrics_note"] is None
    # the bench's own per-image PSNR: A preferred where its PSNR is higher; agreement counted against alice's choices
    psnr = {
        arm: load_safetensors(bench_dir / "per_image" / f"{key[arm]['slug']}.safetensors")["psnr"][:N].tolist()
        for arm in ("a", "b")
    }
    agree = sum((pa > pb) == c for pa, pb, c in zip(psnr["a"], psnr["b"], chose_a, strict=True))
    row = next(m for m in doc["metrics"] if m["metric"] == "psnr")
    assert (row["agree"], row["n"], row["ties"]) == (agree, N, 0)
    assert "psnr" in result.output and "metrics vs. people" in result.output


def _edited(key: dict, tmp_path: Path, change) -> Path:
    doc = answers_doc(key, [True] * N)
    change(doc)
    return write(tmp_path / "edited.json", doc)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d.update(study_id="0123456789abcdef"), "not to study"),
        (lambda d: d.update(trials_digest="0" * 64), "digest"),
        (lambda d: d["answers"].__setitem__(3, d["answers"][2]), "a second time"),
        (lambda d: d["answers"][-1].update(trial=N), "outside the study"),
        (lambda d: d["answers"].reverse(), "in order"),
        (lambda d: d["answers"][0].update(side="middle"), "'left' or 'right'"),
        (lambda d: d["answers"][0].update(rt_ms=-5), "response time"),
        (lambda d: d.update(subject=" "), "subject"),
        (lambda d: d.update(answers=[]), "no answers"),
        (lambda d: d.pop("answers"), "answers"),
        (lambda d: d.update(format="something else"), "not an invkit study answers file"),
    ],
)
def test_score_refuses_answers_from_another_study_or_edited(study, tmp_path, change, expected):
    key = json.loads(study.key.read_text())
    path = _edited(key, tmp_path, change)
    with pytest.raises(StudyError, match=re.escape(expected)):
        score_study([path], study.key)
    one_line_error(cli(["study", "score", str(path), "--key", str(study.key.parent)]), expected)
    assert not (study.key.parent / "study_score.json").exists()  # nothing written


def test_score_refuses_two_files_of_one_subject_a_missing_key_and_non_json(study, tmp_path):
    key = json.loads(study.key.read_text())
    one = write(tmp_path / "1.json", answers_doc(key, [True] * N, "bob"))
    two = write(tmp_path / "2.json", answers_doc(key, [False] * N, "bob"))
    one_line_error(cli(["study", "score", str(one), str(two), "--key", str(study.key)]), "both answers of subject")
    one_line_error(cli(["study", "score", str(one)]), "--key")  # no key beside it
    bad = write(tmp_path / "bad.json", "{not json")
    one_line_error(cli(["study", "score", str(bad), "--key", str(study.key)]), "not valid JSON")


def test_study_commands_are_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for sub, options in (
        ("make", ["--a", "--b", "-n", "--seed", "--display", "--out"]),
        ("score", ["--key", "--bench", "--out"]),
    ):
        section = re.search(rf"^## invkit study {sub}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert section, f"docs/cli.md has no section for `invkit study {sub}`; run python docs/gen_cli_reference.py"
        for opt in options:
            assert opt in section.group(1)
