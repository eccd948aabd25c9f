"""The bench runner and `invkit bench`/`invkit invert` on tiny seeded stand-ins (no demo checkpoints needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import invkit
from invkit.evaluation.bench import Bench
from invkit.evaluation.sampling import pick_indices
from invkit.evaluation.settings import BenchSettings


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------- tiny plugins
def tiny_classifier(pretrained: bool = True, weights: str | None = None, seed: int = 0) -> invkit.Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    cfg = invkit.ClassifierConfig(name="tinyclf.base", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,))
    return invkit.Classifier(net, cfg, init_kwargs={"seed": seed})


@dataclass
class TinyConfig:
    num_classes: int = 10  # logits in
    channels: int = 1  # image channels out
    resolution: int = 16  # image side out
    noise_dim: int = 0  # deterministic


class TinyDecoder(invkit.Inverter):
    """A learned (trainable) linear decoder: stands in for biggan_proj / dosovitskiy_brox."""

    trainable = True

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        self.fc = nn.Linear(config.num_classes, config.channels * config.resolution**2)

    def invert(self, logits, noise=None, generator=None):
        self.check_logits(logits)
        return torch.sigmoid(self.fc(logits)).view(len(logits), *self.image_shape)


class TinyOptim(invkit.Inverter):
    """An optimisation inverter (needs autograd through the classifier): stands in for optim."""

    def __init__(self, config: TinyConfig, classifier):
        super().__init__(config)
        self.classifier = [classifier]
        self.steps = config.steps

    def invert(self, logits, noise=None, generator=None):
        clf = self.classifier[0]
        x = torch.rand(len(logits), 1, 28, 28, generator=generator).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.05)
        for _ in range(self.steps):
            opt.zero_grad()
            shift = int(torch.randint(-1, 2, ()))  # jitter from the global RNG, as optim does
            (clf.logits(x.clamp(0, 1).roll(shift, -1)) - logits).pow(2).sum().backward()
            opt.step()
        return x.detach().clamp(0, 1)


@dataclass
class TinyOptimConfig(TinyConfig):
    resolution: int = 28  # image side out
    steps: int = 3  # optimisation steps


def tiny_decoder(classifier=None, **kw):
    if classifier is not None:
        kw.setdefault("num_classes", classifier.num_classes)
    inv = TinyDecoder(TinyConfig(**kw))
    inv.registry_name = "tinydec.base"
    return inv


def tiny_optim(classifier=None, **kw):
    inv = TinyOptim(TinyOptimConfig(**kw), classifier)
    inv.registry_name = "tinyopt.base"
    return inv


class TinyPlugin:
    @invkit.hookimpl
    def register_classifiers(self, register):
        register("tinyclf.base", tiny_classifier, description="test classifier")

    @invkit.hookimpl
    def register_inverters(self, register):
        register("tinydec.base", tiny_decoder, description="test learned inverter")
        register("tinyopt.base", tiny_optim, description="test optimisation inverter")


@pytest.fixture
def tiny(tmp_path):
    """Registers the tiny plugin; returns folders of two classifiers and a decoder checkpoint for each."""
    invkit.register_plugin(TinyPlugin(), name="tiny")
    folders = {}
    for label, seed in (("std", 0), ("rob", 1)):
        clf = tiny_classifier(seed=seed)
        clf.save(tmp_path / f"clf_{label}")
        dec = tiny_decoder(classifier=clf)
        dec.save(tmp_path / f"dec_{label}", extra={"classifier": {"checkpoint": str(tmp_path / f"clf_{label}")}})
        folders[label] = (str(tmp_path / f"clf_{label}"), str(tmp_path / f"dec_{label}"))
    return folders


def settings(tiny, **kw):
    base = dict(
        classifiers=[tiny["std"][0], tiny["rob"][0]],
        inverters=["tinydec", "tinyopt"],
        checkpoints=[tiny["std"][1], tiny["rob"][1]],
        n=10,
        id_k=5,
    )
    return BenchSettings(**(base | kw))


# ---------------------------------------------------------------------------------------------------- runner
def test_pick_indices_interleaves_classes():
    labels = torch.arange(10).repeat(5)
    idx = pick_indices(labels, 23, seed=0)
    assert labels[idx[:10]].tolist() == list(range(10))
    assert len(set(idx.tolist())) == 23
    assert torch.equal(idx, pick_indices(labels, 23, seed=0))


def test_bench_runs_every_pair_and_matches_checkpoints_by_recorded_classifier(tiny, tmp_path):
    events = []
    bench = Bench(settings(tiny), tmp_path / "out", progress=events.append)
    plan = {(p.classifier_label, p.inverter): p.checkpoint for p in bench.pairs}
    assert plan == {
        ("clf_std", "tinydec"): tiny["std"][1],
        ("clf_std", "tinyopt"): None,
        ("clf_rob", "tinydec"): tiny["rob"][1],
        ("clf_rob", "tinyopt"): None,
    }
    results = list(bench.run())
    assert len(results) == 4 and not any(r.reused for r in results)
    for r in results:
        rec = r.record
        assert 0 <= rec["top1_agreement"] <= 1 and -1 <= rec["logit_cosine"] <= 1
        assert rec["n_correct"] + rec["n_incorrect"] == 10
        assert 0 <= rec["id_accuracy"] <= 1 and rec["id_chance"] == pytest.approx(0.2)
        assert rec["psnr"] > 0 and -1 <= rec["ssim"] <= 1
        assert rec["time_per_image_s"] > 0
        assert rec["lpips"] is None and rec["lpips_status"].startswith("unavailable")
    assert any(e.task == "bench" and e.completed == 4 for e in events)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(doc["results"]) == 4 and doc["settings"]["n"] == 10
    for name in ("results.csv", "report.md", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert len((tmp_path / "out" / "results.csv").read_text().strip().splitlines()) == 5


def test_report_grid_rows_share_one_size_when_originals_are_larger(tiny, tmp_path):
    """Originals kept at the data's resolution, reconstructions at the inverter's (Tiny ImageNet: 64 vs 32 px): every
    row of report.html's grid and of the grid PNG is drawn at the same size, so the columns line up."""
    import base64
    import io
    import re

    from PIL import Image
    from safetensors.torch import load_file, save_file

    from invkit.evaluation.report import write_reports

    out = tmp_path / "out"
    list(Bench(settings(tiny), out).run())
    originals = out / "images" / "originals.safetensors"
    small = load_file(str(originals))["images"]
    save_file({"images": small.repeat_interleave(2, -1).repeat_interleave(2, -2).contiguous()}, str(originals))
    doc = json.loads((out / "results.json").read_text())
    paths = write_reports(out, doc)

    html = paths["html"].read_text()
    strips = re.findall(r"<td class='grid-row'><img src='data:image/png;base64,([^']+)'", html)
    # two classifiers: each inverter below the originals at its resolution (tinydec 16x16, tinyopt 28x28)
    assert len(strips) == 2 * 4
    sizes = {Image.open(io.BytesIO(base64.b64decode(s))).size for s in strips}
    assert len(sizes) == 1, sizes
    ((width, _),) = sizes
    grid = Image.open(next((out / "images").glob("grid_*.png")))
    assert grid.size[0] > width  # the same columns, after a column of row labels
    assert ".grid td{text-align:left}" in html


def test_bench_perfect_inverter_scores_one(tiny, tmp_path, monkeypatch):
    """An 'inverter' that returns the originals themselves: SSIM 1, identification 1, agreement 1."""
    bench = Bench(settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[]))
    originals = bench.originals

    class Oracle(invkit.Inverter):
        def invert(self, logits, noise=None, generator=None):
            return originals

    from invkit.evaluation import bench as bench_mod

    monkeypatch.setattr(bench_mod.Bench, "_inverter", lambda self, pair, clf: (Oracle(TinyOptimConfig()), {}))
    bench.settings.batch_size = 100
    (result,) = list(bench.run())
    rec = result.record
    assert rec["ssim"] == pytest.approx(1.0) and rec["psnr"] == pytest.approx(100.0)
    assert rec["id_accuracy"] == 1.0 and rec["top1_agreement"] == 1.0 and rec["logit_cosine"] == pytest.approx(1)


def test_bench_resumes_and_keeps_finished_pairs(tiny, tmp_path):
    out = tmp_path / "out"
    s = settings(tiny)
    first = list(Bench(s, out).run())
    again = list(Bench(settings(tiny), out).run())
    assert all(r.reused for r in again)
    assert [r.record["psnr"] for r in again] == [r.record["psnr"] for r in first]
    # different settings into the same folder: refused, nothing touched
    before = (out / "results.json").read_text()
    with pytest.raises(invkit.InvkitError, match="other settings"):
        Bench(settings(tiny, n=5), out)
    assert (out / "results.json").read_text() == before


def test_bench_failure_midway_keeps_written_pairs(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = {"n": 0}
    original = Bench._run_pair

    def flaky(self, pair):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return original(self, pair)

    monkeypatch.setattr(Bench, "_run_pair", flaky)
    with pytest.raises(RuntimeError):
        list(Bench(settings(tiny), out).run())
    assert len(json.loads((out / "results.json").read_text())["results"]) == 2
    monkeypatch.setattr(Bench, "_run_pair", original)
    rerun = list(Bench(settings(tiny), out).run())
    assert [r.reused for r in rerun] == [True, True, False, False]


@pytest.mark.parametrize("changed", ["inverter checkpoint", "classifier"])
def test_weights_retrained_into_the_same_folder_are_benched_again(tiny, tmp_path, changed):
    """A finished pair is reused only for the same weights: new weights saved into a folder the earlier run used
    (an inverter trained longer, a classifier retrained) make its pairs run again; the other pairs are reused."""
    out = tmp_path / "out"
    first = {(r.pair.classifier_label, r.pair.inverter): r.record for r in Bench(settings(tiny), out).run()}
    if changed == "inverter checkpoint":
        dec = tiny_decoder(classifier=tiny_classifier(seed=0))
        with torch.no_grad():
            for p in dec.parameters():
                p.add_(0.5)
        dec.save(tiny["std"][1], extra={"classifier": {"checkpoint": tiny["std"][0]}})
        redone = {("clf_std", "tinydec")}
    else:
        tiny_classifier(seed=7).save(tiny["std"][0])
        redone = {("clf_std", "tinydec"), ("clf_std", "tinyopt")}
    rerun = {(r.pair.classifier_label, r.pair.inverter): r for r in Bench(settings(tiny), out).run()}
    assert {k for k, r in rerun.items() if not r.reused} == redone
    for k in redone:
        assert rerun[k].record["key"] != first[k]["key"]
        assert rerun[k].record["logit_cosine"] != first[k]["logit_cosine"]  # computed with the new weights
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["results"]) == 4  # the records of the old weights are replaced, the others kept
    assert {r["key"] for r in doc["results"]} == {r.record["key"] for r in rerun.values()}


def test_learned_inverter_without_checkpoint_says_what_to_pass(tiny, tmp_path):
    with pytest.raises(invkit.CheckpointError, match="--checkpoint DIR.*--train-steps"):
        Bench(settings(tiny, checkpoints=[]))


def test_ambiguous_unrecorded_checkpoints_are_refused(tiny, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        tiny_decoder(classifier=tiny_classifier()).save(d)
    with pytest.raises(invkit.CheckpointError, match="cannot tell"):
        Bench(settings(tiny, checkpoints=[str(a), str(b)]))
    # one classifier and one unrecorded checkpoint: unambiguous
    bench = Bench(settings(tiny, classifiers=[tiny["std"][0]], checkpoints=[str(a)]))
    assert bench.pairs[0].checkpoint == str(a)


# ------------------------------------------------------------------------------------------------------ CLI
def _cli(args):
    from invkit.cli import build_cli

    return CliRunner().invoke(build_cli(), args, catch_exceptions=False)


def test_cli_bench_writes_reports(tiny, tmp_path):
    out = tmp_path / "o"
    args = [
        "bench",
        "--classifier",
        f"{tiny['std'][0]},{tiny['rob'][0]}",
        "--inverter",
        "tinydec,tinyopt",
        "--checkpoint",
        tiny["std"][1],
        "--checkpoint",
        tiny["rob"][1],
        "-n",
        "10",
        "--id-k",
        "5",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    r = _cli(args)
    assert r.exit_code == 0, r.output
    assert "tinyopt" in r.output and "report.html" in r.output
    assert len(json.loads((out / "results.json").read_text())["results"]) == 4
    r2 = _cli(args)
    assert r2.exit_code == 0 and "(reused)" in r2.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--inverter", "tinydek"], "unknown inverter 'tinydek'. Did you mean: tinydec"),
        (["--classifier", "tinyclff"], "unknown classifier 'tinyclff'"),
        (["--checkpoint", "/nonexistent/ckpt"], "does not exist"),
        (["--data", "/nonexistent/data"], "data path '/nonexistent/data' does not exist"),
    ],
)
def test_cli_bench_bad_input_is_one_line(tiny, tmp_path, extra, message):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = {"--classifier": tiny["std"][0], "--inverter": "tinyopt", "--out": str(out)}
    for i in range(0, len(extra), 2):
        args[extra[i]] = extra[i + 1]
    flat = [x for kv in args.items() for x in kv]
    r = _cli(["bench", *flat])
    assert r.exit_code != 0
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_cli_bench_rejects_non_safetensors_checkpoint(tiny, tmp_path):
    bad = tmp_path / "bad"
    tiny_decoder(classifier=tiny_classifier()).save(bad)
    torch.save({"fc.weight": torch.zeros(1)}, bad / "model.safetensors")  # a pickle under the right name
    r = _cli(
        [
            "bench",
            "--classifier",
            tiny["std"][0],
            "--inverter",
            "tinydec",
            "--checkpoint",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert r.exit_code != 0 and "pickle" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_bench_without_demo_checkpoints_says_how_to_make_them(tmp_path, monkeypatch):
    from invkit import demo

    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "nodemo")
    r = _cli(["bench", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "make_demo.sh" in r.output and len(r.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------- invert
def test_cli_invert_writes_pngs_and_grid(tiny, tmp_path):
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(imgs / f"d{i}.png")
    out = tmp_path / "inv"
    r = _cli(["invert", "--classifier", tiny["std"][0], "--checkpoint", tiny["std"][1], str(imgs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert "grid.png" in names and "d0_recon.png" in names and len([n for n in names if "_recon" in n]) == 3
    assert Image.open(out / "d0_recon.png").size == (16, 16)


def test_cli_invert_corrupt_image_is_one_line(tiny, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = _cli(
        ["invert", "--classifier", tiny["std"][0], "--inverter", "tinyopt", str(bad), "--out", str(tmp_path / "inv")]
    )
    assert r.exit_code != 0 and "cannot read image" in r.output and len(r.output.strip().splitlines()) == 1


def test_results_paths_are_relative_in_markdown(tiny, tmp_path):
    out = tmp_path / "out"
    list(Bench(settings(tiny), out).run())
    md = (out / "report.md").read_text()
    assert "](images/grid_clf_std.png)" in md and Path(out / "images" / "grid_clf_std.png").exists()


def test_bench_trains_a_learned_inverter_within_train_steps(tmp_path):
    import _toy_inverter  # the training loop's test inverter (tests/_toy_inverter.py)

    _toy_inverter.register()
    s = BenchSettings(classifiers=["toyclf.base"], inverters=["toyinv"], n=10, id_k=5, train_steps=3)
    (result,) = list(Bench(s, tmp_path / "out").run())
    assert result.record["trained_steps"] == 3 and 0 <= result.record["ssim"] <= 1
    assert (tmp_path / "out" / "trained" / result.pair.slug / "train_config.json").exists()
    (again,) = list(Bench(s, tmp_path / "out").run())
    assert again.reused


def test_cli_bench_missing_published_weights_says_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    r = _cli(["bench", "--classifier", "robust_resnet152", "--inverter", "biggan_proj", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1
    assert "R152.npz" in r.output and "--weights" in r.output
    assert not (tmp_path / "o").exists()


def test_a_training_run_folder_stands_for_its_newest_checkpoint(tiny, tmp_path):
    run = tmp_path / "run"
    for step in (1, 5):
        tiny_decoder(classifier=tiny_classifier()).save(run / "checkpoints" / f"step_{step:06d}", train_state={})
    bench = Bench(settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinydec"], checkpoints=[str(run)]))
    assert bench.pairs[0].checkpoint == str(run / "checkpoints" / "step_000005")


def test_bench_is_reproducible(tiny, tmp_path):
    s = dict(classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[])
    a = [r.record for r in Bench(settings(tiny, **s)).run()]
    torch.manual_seed(123)  # the global RNG state before the run does not matter
    b = [r.record for r in Bench(settings(tiny, **s)).run()]
    keys = ("psnr", "ssim", "top1_agreement", "logit_cosine", "id_accuracy")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


def test_markdown_table_has_one_cell_per_column(tiny, tmp_path):
    out = tmp_path / "out"
    list(Bench(settings(tiny), out).run())
    text = (out / "report.md").read_text().split("## ")[0]  # the results table (the comparisons have their own)
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    widths = {len(ln.replace("\\|", "").split("|")) for ln in rows}
    assert len(rows) == 2 + 4 and len(widths) == 1


def test_classifiers_with_the_same_folder_name_get_distinct_labels(tiny, tmp_path):
    other = tmp_path / "elsewhere" / "clf_std"
    tiny_classifier(seed=2).save(other)
    bench = Bench(settings(tiny, classifiers=[tiny["std"][0], str(other)], inverters=["tinyopt"], checkpoints=[]))
    assert [p.classifier_label for p in bench.pairs] == ["clf_std", "clf_std#2"]
    assert len({p.slug for p in bench.pairs}) == 2


def test_default_bench_wiring_with_a_stand_in_demo_folder(tmp_path, monkeypatch):
    """`invkit bench` with no --classifier/--inverter: both demo classifiers x the three built-in inverters,
    each learned inverter from its own demo folder. Untrained stand-ins of the demo architectures."""
    demo = tmp_path / "demo"
    for label in ("standard", "robust"):
        clf = invkit.create_classifier("smallcnn.base")
        clf.save(demo / f"classifier_{label}")
        invkit.create_inverter("biggan_proj.mnist32", classifier=clf).save(demo / f"biggan_{label}")
        invkit.create_inverter("dosovitskiy_brox.mnist", classifier=clf).save(demo / f"dbrox_{label}")
    invkit.create_classifier("vgg11s.base", channels=1, input_size=28, width=4).save(demo / "evaluator")
    monkeypatch.setenv("INVKIT_DEMO_DIR", str(demo))
    out = tmp_path / "o"
    r = _cli(["bench", "-n", "10", "--id-k", "3", "--option", "optim:steps=2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "results.json").read_text())
    got = {
        (x["classifier"], x["inverter"], Path(x["checkpoint"]).name if x["checkpoint"] else None)
        for x in doc["results"]
    }
    assert got == {
        (c, i, f"{p}_{c}" if p else None)
        for c in ("standard", "robust")
        for i, p in (("biggan_proj", "biggan"), ("dosovitskiy_brox", "dbrox"), ("optim", None))
    }
    assert doc["settings"]["inverter_options"] == {"optim": {"steps": 2}}
    assert doc["settings"]["evaluators"] == [str(demo / "evaluator")]
    assert all(set(x["evaluators"]) == {"evaluator"} for x in doc["results"])


def test_demo_bench_refuses_checkpoints_without_pairs(tmp_path):
    r = _cli(["bench", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "--checkpoint needs --classifier" in r.output
