"""In-house classifiers (smallcnn, resnet18s) and `invkit train-classifier`, on tiny runs of the embedded data."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

import invkit
from invkit.cli import build_cli
from invkit.training import TrainClassifierConfig, load_split, train_classifier


def _run(args: list[str]):
    return CliRunner().invoke(build_cli(), args, catch_exceptions=False)


def _one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# ----------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("smallcnn.base", {}, (2, 1, 28, 28)),
        ("smallcnn.base", {"channels": 3, "input_size": 32, "num_classes": 100}, (2, 3, 32, 32)),
        ("resnet18s.base", {"width": 8}, (2, 3, 32, 32)),
        ("resnet18s.base", {"width": 8, "input_size": 64, "num_classes": 200}, (2, 3, 64, 64)),
    ],
)
def test_forward_shapes(name, kwargs, shape):
    clf = invkit.create_classifier(name, pretrained=False, **kwargs)
    assert clf.config.input_size == (shape[1], shape[2], shape[3])
    out = clf.logits(torch.rand(shape))
    assert out.shape == (2, kwargs.get("num_classes", 10))
    # any size and channel count goes in through Classifier.preprocess
    assert clf.logits(torch.rand(1, 1, 40, 40)).shape == (1, kwargs.get("num_classes", 10))


def test_smallcnn_is_small():
    clf = invkit.create_classifier("smallcnn.base", pretrained=False)
    assert sum(p.numel() for p in clf.parameters()) < 300_000


@pytest.mark.parametrize("name", ["smallcnn.base", "resnet18s.base"])
def test_save_load_round_trip_gives_identical_logits(tmp_path, name):
    clf = invkit.create_classifier(
        name,
        pretrained=False,
        width=8,
        channels=3,
        input_size=32,
        mean=(0.4, 0.4, 0.4),
        std=(0.2, 0.2, 0.2),
        label_names=[str(i) for i in range(10)],
    )
    clf.save(tmp_path / "ckpt")
    loaded = invkit.load_classifier(tmp_path / "ckpt")
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(clf.logits(x), loaded.logits(x))
    assert loaded.config == clf.config
    assert loaded.init_kwargs == {"channels": 3, "num_classes": 10, "input_size": 32, "width": 8}


def test_weights_file_loads_and_checkpoint_folder_is_refused(tmp_path):
    clf = invkit.create_classifier("smallcnn.base", pretrained=False)
    save_file(clf.network.state_dict(), str(tmp_path / "w.safetensors"))
    again = invkit.create_classifier("smallcnn.base", weights=str(tmp_path / "w.safetensors"))
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(clf.logits(x), again.logits(x))
    with pytest.raises(invkit.InvkitError, match="checkpoint folder"):
        invkit.create_classifier("smallcnn.base", weights=str(tmp_path))
    with pytest.raises(invkit.WeightsNotFoundError, match="--weights"):
        invkit.create_classifier("smallcnn.base", weights=str(tmp_path / "missing.safetensors"))


def test_bad_model_arguments():
    with pytest.raises(invkit.InvkitError, match="channels must be 1 or 3"):
        invkit.create_classifier("smallcnn.base", channels=2)
    with pytest.raises(invkit.InvkitError, match="resnet18s.base: 'width' must be above 0, got 0"):  # check_options
        invkit.create_classifier("resnet18s.base", width=0)
    with pytest.raises(invkit.InputError, match="smallcnn.base has no option 'colour'"):
        invkit.create_classifier("smallcnn.base", colour=1)


# -------------------------------------------------------------------------------------------- train-classifier
def test_train_classifier_cli_writes_a_loadable_checkpoint_and_report(tmp_path):
    out = tmp_path / "run"
    result = _run(
        [
            "train-classifier",
            "--data",
            "default",
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "32",
            "--eval-samples",
            "16",
            "--eval-steps",
            "2",
            "--eps",
            "0.1",
            "--device",
            "cpu",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "clean" in result.output and "PGD-2 linf eps 0.1" in result.output
    clf = invkit.load_classifier(out)
    assert clf.name == "smallcnn.base" and not clf.config.robust
    assert clf.config.label_names == tuple(str(i) for i in range(10))
    assert clf.config.source == "trained with invkit train-classifier"
    report = json.loads((out / "report.json").read_text())
    assert report["test_images"] == 1000 and report["eval_samples"] == 16 and report["steps"] == 3
    assert 0 <= report["clean_accuracy"] <= 1
    assert report["pgd"][0]["attack"]["eps"] == 0.1 and report["pgd"][0]["attack"]["steps"] == 2
    doc = json.loads((out / "config.json").read_text())
    assert doc["metrics"]["clean_accuracy"] == report["clean_accuracy"]
    assert (out / "train_state.safetensors").exists()


def test_pgd_training_marks_the_classifier_robust(tmp_path):
    cfg = TrainClassifierConfig(
        steps=2,
        batch_size=16,
        adv="pgd",
        norm="l2",
        eps=1.0,
        adv_steps=2,
        eval_eps=(0.5, 1.0),
        eval_samples=8,
        eval_steps=2,
    )
    report = train_classifier(cfg, tmp_path / "r")
    assert report.robust and report.train_attack["norm"] == "l2"
    assert [r["attack"]["eps"] for r in report.pgd] == [0.5, 1.0]
    clf = invkit.load_classifier(tmp_path / "r")
    assert clf.config.robust
    assert clf.config.extra["adversarial_training"]["eps"] == 1.0


def test_resume_continues_to_the_same_weights(tmp_path):
    """A run interrupted after its step-2 checkpoint and resumed ends with the same weights as an unbroken run."""
    train, test = load_split("default", "train"), load_split("default", "test")
    cfg = TrainClassifierConfig(steps=4, batch_size=16, eval_samples=4, eval_steps=1, checkpoint_every=2)
    train_classifier(cfg, tmp_path / "full", train_data=train, test_data=test)

    def stop_at_3(event):
        if event.task == "train" and event.completed == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, tmp_path / "cut", train_data=train, test_data=test, progress=stop_at_3)
    train_classifier(cfg, tmp_path / "cut", resume=True, train_data=train, test_data=test)
    a, b = invkit.load_classifier(tmp_path / "full"), invkit.load_classifier(tmp_path / "cut")
    for (k, v), (_, w) in zip(a.network.state_dict().items(), b.network.state_dict().items()):
        torch.testing.assert_close(v, w, msg=k)


def test_a_signal_saves_the_step_it_came_in_and_resuming_ends_with_the_same_weights(tmp_path):
    """SIGTERM between checkpoints (every 4 steps) saves step 3; the resumed run equals an unbroken one."""
    import os
    import signal

    train, test = load_split("default", "train"), load_split("default", "test")
    cfg = TrainClassifierConfig(steps=5, batch_size=16, eval_samples=4, eval_steps=1, checkpoint_every=4, log_every=1)
    train_classifier(cfg, tmp_path / "full", train_data=train, test_data=test)

    def term_at_3(event):
        if event.task == "train" and event.completed == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(invkit.TrainingInterrupted, match="SIGTERM at step 3: saved the model") as info:
        train_classifier(cfg, tmp_path / "cut", train_data=train, test_data=test, progress=term_at_3)
    assert info.value.exit_status == 143 and info.value.checkpoint == tmp_path / "cut"
    log = [json.loads(ln) for ln in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert [(r["step"], r["event"]) for r in log if "event" in r] == [(0, "started"), (3, "interrupted")]
    assert log[0]["machine"]["cpu_count"] >= 1 and log[0]["machine"]["device"] == "cpu"
    train_classifier(cfg, tmp_path / "cut", resume=True, train_data=train, test_data=test)
    a, b = invkit.load_classifier(tmp_path / "full"), invkit.load_classifier(tmp_path / "cut")
    for (k, v), (_, w) in zip(a.network.state_dict().items(), b.network.state_dict().items()):
        torch.testing.assert_close(v, w, msg=k, rtol=0, atol=0)
    # the log reads as one run (the interruption noted), its losses those of the unbroken run; the page shows both
    full = [r for r in map(json.loads, (tmp_path / "full" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    resumed = [r for r in map(json.loads, (tmp_path / "cut" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert [(r["step"], r["loss"], r["acc"], r["lr"]) for r in full] == [
        (r["step"], r["loss"], r["acc"], r["lr"]) for r in resumed
    ]
    events = [r for r in map(json.loads, (tmp_path / "cut" / "log.jsonl").read_text().splitlines()) if "event" in r]
    assert [(r["step"], r["event"]) for r in events] == [(0, "started"), (3, "interrupted"), (3, "resumed")]
    assert json.loads((tmp_path / "cut" / "report.json").read_text())["machine"]["cpu"]
    page = (tmp_path / "cut" / "report.html").read_text()
    assert "Evaluation (report.json)" in page and "clean_accuracy" in page and "PGD-1 linf" in page
    assert (tmp_path / "cut" / "curves.png").is_file()


def _image_folder(root, corrupt: bool = False, rgb: bool = False, size: int = 28):
    for split in ("train", "test"):
        for label in ("a", "b"):
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(3):
                pixels = (torch.rand(size, size, 3) if rgb else torch.rand(size, size)) * 255
                Image.fromarray(pixels.byte().numpy()).save(d / f"{i}.png")
    if corrupt:
        (root / "train" / "b" / "2.png").write_bytes(b"not a png at all")
    return root


def test_trains_on_an_image_folder(tmp_path):
    data = _image_folder(tmp_path / "data")
    result = _run(
        [
            "train-classifier",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "1",
            "--batch-size",
            "6",  # the whole folder: a larger batch is refused
            "--eval-samples",
            "4",
            "--eval-steps",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert invkit.load_classifier(tmp_path / "o").config.label_names == ("a", "b")


def test_trains_resnet18s_on_rgb_images_with_sgd_and_augmentation(tmp_path):
    data = _image_folder(tmp_path / "rgb", rgb=True, size=40)
    cfg = TrainClassifierConfig(
        arch="resnet18s",
        width=4,
        data=str(data),
        input_size=32,
        steps=2,
        batch_size=4,
        optimizer="sgd",
        lr=0.05,
        weight_decay=5e-4,
        augment=True,
        adv="pgd",
        eps=0.03,
        adv_steps=1,
        eval_samples=2,
        eval_steps=1,
    )
    report = train_classifier(cfg, tmp_path / "o")
    clf = invkit.load_classifier(tmp_path / "o")
    assert clf.name == "resnet18s.base" and clf.config.input_size == (3, 32, 32) and clf.config.robust
    assert report.train_images == 6 and len(clf.config.mean) == 3


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--arch", "smallcn"], "Did you mean: smallcnn"),
        (["--adv", "pgd", "--adv-steps", "0"], "'--adv-steps': 0 is not in the range x>=1"),
        (["--steps", "0"], "'--steps': 0 is not in the range x>=1"),
        (["--resume"], "cannot resume"),
        (["--arch", "smallcnn.mnist"], "trains the in-house nets"),
    ],
)
def test_bad_options_give_one_line(tmp_path, args, expect):
    result = _run(["train-classifier", "--out", str(tmp_path / "o"), *args])
    assert expect in _one_line_error(result)


def test_untrainable_arch_is_refused(tmp_path):
    class Other:
        @invkit.hookimpl
        def register_classifiers(self, register):
            register("othernet.x", lambda pretrained=True, weights=None, **kw: None, description="test")

    invkit.register_plugin(Other(), name="other")
    result = _run(["train-classifier", "--arch", "othernet", "--out", str(tmp_path / "o"), "--steps", "1"])
    assert "trains the in-house nets" in _one_line_error(result)


def test_bad_data_gives_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    line = _one_line_error(_run(["train-classifier", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]))
    assert "is empty" in line
    data = _image_folder(tmp_path / "bad", corrupt=True)
    line = _one_line_error(_run(["train-classifier", "--data", str(data), "--out", str(tmp_path / "o2")]))
    assert "cannot read image" in line and "2.png" in line
    line = _one_line_error(_run(["train-classifier", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o3")]))
    assert "does not exist" in line


# ------------------------------------------------------------------------------------------ demo checkpoints
@pytest.mark.parametrize(("name", "robust"), [("smallcnn.mnist", False), ("smallcnn.mnist_robust", True)])
def test_demo_checkpoints_classify_mnist(name, robust, mnist_batch):
    """The shipped demo classifiers load by name and classify the embedded MNIST digits."""
    clf = invkit.create_classifier(name)
    assert clf.name == name and clf.config.robust is robust
    assert clf.config.mean != (0.5,)  # the stored MNIST statistics, not the factory default
    x, y = mnist_batch
    assert (clf.predict(x) == y).float().mean() >= 0.9
    with pytest.raises(invkit.InvkitError, match="takes no options"):
        invkit.create_classifier(name, width=8)


def test_demo_tag_round_trips_through_a_checkpoint(tmp_path):
    clf = invkit.create_classifier("smallcnn.mnist")
    clf.save(tmp_path / "c")
    again = invkit.load_classifier(tmp_path / "c")
    x = torch.rand(2, 1, 28, 28)
    assert again.name == "smallcnn.mnist" and torch.equal(clf.logits(x), again.logits(x))


def test_fgsm_with_random_start_is_one_step_of_1_25_eps_from_a_random_point():
    cfg = TrainClassifierConfig(adv="fgsm", eps=0.1, adv_steps=7)
    attack = cfg.train_attack()
    assert (attack.steps, attack.random_start) == (1, True) and attack.resolved_step_size == pytest.approx(0.125)
    assert TrainClassifierConfig(adv="fgsm", eps=0.1, step_size=0.05).train_attack().resolved_step_size == 0.05
    clf = invkit.create_classifier("smallcnn.base", pretrained=False)
    x = torch.rand(6, 1, 28, 28)
    y = torch.arange(6)
    a = attack.run(clf, x, y, generator=torch.Generator().manual_seed(0))
    b = attack.run(clf, x, y, generator=torch.Generator().manual_seed(1))
    assert (a - x).abs().max() <= 0.1 + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, b)  # the random start differs by seed


def test_fgsm_training_marks_the_classifier_robust(tmp_path):
    cfg = TrainClassifierConfig(steps=2, batch_size=16, adv="fgsm", eps=0.1, eval_samples=8, eval_steps=2)
    report = train_classifier(cfg, tmp_path / "f")
    assert report.robust and report.train_attack["steps"] == 1
    assert report.train_attack["step_size"] == pytest.approx(0.125)
    extra = invkit.load_classifier(tmp_path / "f").config.extra["adversarial_training"]
    assert extra["method"].startswith("FGSM with random start")


def test_a_test_split_with_fewer_classes_is_mapped_by_name(tmp_path, monkeypatch):
    import invkit.training.classifier as tc
    from invkit.data import TensorImageDataset
    from invkit.errors import DataError

    g = torch.Generator().manual_seed(0)
    train = TensorImageDataset(
        torch.randint(0, 256, (12, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(12) % 3, ["a", "b", "c"]
    )
    test = TensorImageDataset(train.images[:4], torch.tensor([0, 1, 0, 1]), ["b", "c"])
    cfg = TrainClassifierConfig(steps=1, batch_size=4, eval_samples=2, eval_steps=1)
    seen = {}

    def spy(clf, test_data, cfg, **kw):
        seen["labels"] = test_data.labels()
        return real_evaluate(clf, test_data, cfg, **kw)

    real_evaluate = tc.evaluate
    monkeypatch.setattr(tc, "evaluate", spy)
    train_classifier(cfg, tmp_path / "m", train_data=train, test_data=test)
    assert seen["labels"] == [1, 2, 1, 2]
    bad = TensorImageDataset(train.images[:2], torch.tensor([0, 1]), ["a", "zz"])
    with pytest.raises(DataError, match="'zz'"):
        train_classifier(cfg, tmp_path / "n", train_data=train, test_data=bad)


def test_bf16_channels_last_training_runs_and_saves_fp32_weights(tmp_path):
    from safetensors.torch import load_file

    cfg = TrainClassifierConfig(
        steps=2, batch_size=8, bf16=True, channels_last=True, adv="fgsm", eps=0.1, eval_samples=4, eval_steps=1
    )
    report = train_classifier(cfg, tmp_path / "b")
    assert 0 <= report.clean_accuracy <= 1
    weights = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in weights.values())
    assert json.loads((tmp_path / "b" / "train_config.json").read_text())["bf16"] is True


def _store_as_float16(folder):
    """Rewrite a checkpoint's model.safetensors with its float tensors stored as float16 (as the Tiny ImageNet
    folders in benchmarks/checkpoints are, to fit their size budget)."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    save_file({k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}, str(path))


@pytest.mark.parametrize("kind", ["classifier", "biggan_proj", "dosovitskiy_brox"])
def test_float16_stored_weights_load_into_a_float32_model(tmp_path, kind, one_thread):
    """Weights stored in half precision are cast on load: the model stays float32 and computes with the
    rounded weights (no dtype error, no half-precision arithmetic)."""
    clf = invkit.create_classifier("smallcnn.base", pretrained=False)
    if kind == "classifier":
        model = clf
    elif kind == "biggan_proj":
        model = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch=4, cbn_hidden=8)
    else:
        model = invkit.create_inverter("dosovitskiy_brox.mnist", classifier=clf, fc_dim=16, start_channels=8)
    model.save(tmp_path / "ckpt")
    _store_as_float16(tmp_path / "ckpt")
    loaded = (invkit.load_classifier if kind == "classifier" else invkit.load_inverter)(tmp_path / "ckpt")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    # the reference: the original model with every float weight rounded to float16 and back
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    if kind == "classifier":
        x = torch.rand(4, 1, 28, 28)
        out, ref = loaded.logits(x), model.logits(x)
    else:
        z = torch.randn(4, clf.num_classes)
        model.eval()
        out = loaded.invert(z, generator=torch.Generator().manual_seed(0))
        ref = model.invert(z, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
