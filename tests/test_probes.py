"""Probes: every registered probe runs on the embedded MNIST subset with tiny seeded models; measures have
known answers; ``invkit probe`` writes, prints, resumes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from invkit_plugins.probes import _common as C
from invkit_plugins.probes.class_spread import class_spread
from PIL import Image, ImageEnhance
from torch import nn

import invkit
from invkit import Classifier, ClassifierConfig, Inverter, ProbeContext
from invkit.core.probe import run_probe
from invkit.data import TensorImageDataset, load_dataset


# ------------------------------------------------------------------------------------------- tiny models
def tiny_classifier(pretrained: bool = True, weights=None, robust: bool = False) -> Classifier:
    net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    cfg = ClassifierConfig(
        name="tinyprobe.test", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,), robust=robust
    )
    return Classifier(net, cfg, init_kwargs={"robust": robust})


@dataclass
class TinyInverterConfig:
    num_classes: int = 10  # logit dimension
    channels: int = 1  # output channels
    resolution: int = 32  # output size (not the data's 28: probes must resize for comparisons)
    noise_dim: int = 4  # noise vector length


class TinyInverter(Inverter):
    """Linear map of (logits, noise) to a sigmoid image: stochastic, smooth and instant."""

    def __init__(self, config: TinyInverterConfig):
        super().__init__(config)
        c, r = config.channels, config.resolution
        self.net = nn.Linear(config.num_classes + config.noise_dim, c * r * r)

    def invert(self, logits, noise=None, generator=None):
        logits = self.check_logits(logits)
        z = self.check_noise(noise, len(logits), generator)
        h = logits if z is None else torch.cat([logits, z], 1)
        return torch.sigmoid(self.net(h)).view(len(logits), *self.image_shape)


def tiny_inverter(classifier=None, **fields) -> TinyInverter:
    if classifier is not None:
        fields.setdefault("num_classes", classifier.num_classes)
        fields.setdefault("channels", classifier.config.input_size[0])
    inv = TinyInverter(TinyInverterConfig(**fields))
    inv.registry_name = "tinyinv.test"
    return inv


class TinyPlugin:
    @invkit.hookimpl
    def register_classifiers(self, register):
        register("tinyprobe.test", tiny_classifier, description="tiny classifier for probe tests")

    @invkit.hookimpl
    def register_inverters(self, register):
        register("tinyinv.test", tiny_inverter, description="tiny stochastic inverter for probe tests")


@pytest.fixture
def models():
    invkit.register_plugin(TinyPlugin(), name="tinyprobe")
    clf = tiny_classifier()
    return clf, tiny_inverter(clf)


def ood_data() -> TensorImageDataset:
    """RGB 32x32 blobs: not digits, and a different shape, so the probe has to convert them."""
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(24, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    return TensorImageDataset(images, torch.zeros(24, dtype=torch.long), ["blob"], name="blobs")


def make_ctx(models, out: Path, **kw) -> ProbeContext:
    clf, inv = models
    return ProbeContext(
        classifier=clf,
        inverter=inv,
        data=load_dataset("default", "test"),
        out=out,
        generator=torch.Generator().manual_seed(0),
        num_images=16,
        extra_data={"ood": ood_data()},
        **kw,
    )


def all_numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from all_numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


# ------------------------------------------------------------------------------------------- every probe
@pytest.mark.parametrize("name", invkit.list_probes())
def test_every_probe_runs_with_finite_numbers_and_figures(name, models, tmp_path):
    events = []
    ctx = make_ctx(models, tmp_path, progress=events.append)
    result = run_probe(invkit.create_probe(name), ctx)  # the probe returns its result, invkit writes index.html
    assert result.probe == name
    numbers = list(all_numbers(result.numbers))
    assert numbers, f"{name} reported no numbers"
    assert all(math.isfinite(v) for v in numbers)
    json.loads(result.to_json())
    assert result.figures
    for rel in result.figures.values():
        path = tmp_path / rel
        assert path.is_file() and path.stat().st_size > 100, rel
    pngs = [p for p in result.figures.values() if p.endswith(".png")]
    assert pngs and all(Image.open(tmp_path / p).size[0] > 0 for p in pngs)
    html = (tmp_path / "index.html").read_text()
    assert "data:image/png;base64," in html
    assert events and events[-1].completed == events[-1].total


def test_probes_repeat_with_the_same_seed(models, tmp_path):
    a = invkit.create_probe("noise-resample").run(make_ctx(models, tmp_path / "a"))
    b = invkit.create_probe("noise-resample").run(make_ctx(models, tmp_path / "b"))
    assert a.numbers == b.numbers


def test_options_override_defaults_and_unknown_options_fail(models, tmp_path):
    result = invkit.create_probe("logit-scale").run(make_ctx(models, tmp_path, options={"levels": 3, "images": 4}))
    assert result.numbers["levels"] == pytest.approx([-0.3, 0.0, 0.3])
    with pytest.raises(invkit.InputError, match="no option 'nope'"):
        invkit.create_probe("logit-scale").run(make_ctx(models, tmp_path, options={"nope": 1}))


def test_logit_shift_range_depends_on_robustness(models, tmp_path):
    clf, inv = models
    standard = invkit.create_probe("logit-shift").run(make_ctx(models, tmp_path / "s", options={"images": 4}))
    robust = tiny_classifier(robust=True)
    ctx = make_ctx((robust, inv), tmp_path / "r", options={"images": 4})
    robust_result = invkit.create_probe("logit-shift").run(ctx)
    assert standard.numbers["levels"][0] == pytest.approx(-0.1)
    assert robust_result.numbers["levels"][-1] == pytest.approx(0.3)


def test_noise_interpolate_refuses_a_deterministic_inverter(models, tmp_path):
    clf, _ = models
    ctx = make_ctx((clf, tiny_inverter(clf, noise_dim=0)), tmp_path)
    with pytest.raises(invkit.InputError, match="stochastic"):
        invkit.create_probe("noise-interpolate").run(ctx)


def test_fgsm_probe_stays_within_eps(models, tmp_path):
    result = invkit.create_probe("fgsm").run(make_ctx(models, tmp_path, options={"eps": 0.05}))
    assert 0 < result.numbers["adv_rms_to_clean"] <= 0.05 + 1e-6
    assert 0 <= result.numbers["attack_success"] <= 1


# ------------------------------------------------------------------------------------------- known answers
def test_measures_of_constant_and_flat_images():
    x = torch.full((2, 1, 16, 16), 0.3)
    assert C.brightness(x).tolist() == pytest.approx([0.3, 0.3])
    assert C.contrast(x).tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    assert C.sharpness(x).tolist() == [0.0, 0.0]
    assert C.laplacian_variance(x).tolist() == pytest.approx([0.0, 0.0], abs=1e-12)


def test_sharpness_and_contrast_of_a_step_edge():
    x = torch.zeros(1, 1, 8, 10)
    x[..., 5:] = 1.0  # one vertical edge: gradient 1 on one of the 9 forward-difference columns
    assert float(C.sharpness(x)) == pytest.approx(1 / 9)
    assert float(C.contrast(x)) == pytest.approx(0.5)
    assert float(C.brightness(x)) == pytest.approx(0.5)


def test_class_spread_on_constructed_logits():
    logits = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 7.0], [3.0, 8.0], [-3.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    spread = class_spread(logits, labels)
    assert spread[0] == pytest.approx(1.0)  # mean (0, 0): both at distance 1
    assert spread[1] == pytest.approx(3.0)  # mean (0, 4): both at distance 3
    assert spread[2] == pytest.approx(5.0)  # mean (0, 4): both at distance 5 (3-4-5)


def test_enhancements_match_pil():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(12, 12), dtype=np.uint8)
    x = torch.from_numpy(arr).float().div(255).view(1, 1, 12, 12)
    for factor in (0.0, 0.5, 2.0):
        pil = np.asarray(ImageEnhance.Sharpness(Image.fromarray(arr)).enhance(factor), dtype=np.float32) / 255
        ours = C.enhance_sharpness(x, factor)[0, 0].numpy()
        assert np.abs(ours - pil).max() <= 1.01 / 255, factor
        pil = np.asarray(ImageEnhance.Brightness(Image.fromarray(arr)).enhance(factor), dtype=np.float32) / 255
        assert np.abs(C.enhance_brightness(x, factor)[0, 0].numpy() - pil).max() <= 1.01 / 255, factor


def test_path_smoothness_of_an_even_path():
    from invkit_plugins.probes.interpolate import _path_numbers

    path = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 1, 4, 4)
    numbers, _ = _path_numbers([path])
    assert numbers["max_step_ratio"] == pytest.approx(1.0)
    assert numbers["path_length_ratio"] == pytest.approx(1.0)
    jump = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]).view(5, 1, 1, 1).expand(5, 1, 4, 4)
    assert _path_numbers([jump])[0]["max_step_ratio"] == pytest.approx(4.0)


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def checkpoints(models, tmp_path):
    clf, inv = models
    return str(clf.save(tmp_path / "clf")), str(inv.save(tmp_path / "inv"))


def run_cli(args):
    from invkit.cli import build_cli

    return CliRunner().invoke(build_cli(), args, catch_exceptions=False)


def test_cli_probe_writes_results_prints_numbers_and_resumes(checkpoints, tmp_path):
    clf, inv = checkpoints
    out = tmp_path / "out"
    args = ["probe", "class-spread", "--classifier", clf, "--checkpoint", inv, "-n", "8", "--out", str(out)]
    first = run_cli(args)
    assert first.exit_code == 0, first.output
    doc = json.loads((out / "class-spread" / "results.json").read_text())
    assert doc["probe"] == "class-spread" and math.isfinite(doc["numbers"]["class_spread"])
    assert "class_spread" in first.output and "index.html" in first.output
    again = run_cli(args)
    assert again.exit_code == 0 and "skipped" in again.output
    forced = run_cli([*args, "--force", "--option", "classes=3"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "class-spread" / "results.json").read_text())["numbers"]["classes"] == 3


def test_cli_probe_passes_inverter_options_to_the_inverter(checkpoints, tmp_path):
    """Issue 14 point 3: --inverter-option reaches an inverter built from its name; --option stays the probe's."""
    clf, _ = checkpoints
    out = tmp_path / "out"
    base = ["probe", "noise-interpolate", "--classifier", clf, "--inverter", "tinyinv.test", "-n", "4"]
    ok = run_cli([*base, "--inverter-option", "resolution=16", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    run = json.loads((out / "noise-interpolate" / "results.json").read_text())["run"]
    assert run["inverter_options"] == {"resolution": 16}
    # noise_dim=0 makes the inverter deterministic, which this probe refuses: the option arrived
    from click.testing import CliRunner

    from invkit.cli import build_cli

    det = CliRunner().invoke(build_cli(), [*base, "--inverter-option", "noise_dim=0", "--out", str(tmp_path / "d")])
    assert det.exit_code != 0 and "stochastic" in det.output
    ckpt = run_cli([*base[:4], "--checkpoint", checkpoints[1], "--inverter-option", "x=1", "--out", str(out)])
    assert ckpt.exit_code != 0 and "checkpoint" in ckpt.output


def test_cli_probe_wildcard_with_per_probe_options(checkpoints, tmp_path):
    clf, inv = checkpoints
    out = tmp_path / "out"
    result = run_cli(
        [
            "probe",
            "logit-s*",
            "--classifier",
            clf,
            "--checkpoint",
            inv,
            "-n",
            "8",
            "--out",
            str(out),
            "--option",
            "logit-scale.levels=3",
            "--option",
            "images=4",
        ]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["logit-scale", "logit-shift"]
    assert (out / "index.html").is_file()  # one page across the probes of --out
    assert len(json.loads((out / "logit-scale" / "results.json").read_text())["numbers"]["levels"]) == 3
    assert len(json.loads((out / "logit-shift" / "results.json").read_text())["numbers"]["levels"]) == 7


def test_cli_probe_errors_are_one_line(checkpoints, tmp_path):
    clf, inv = checkpoints
    from invkit.cli import build_cli

    result = CliRunner().invoke(
        build_cli(), ["probe", "no-such-probe", "--classifier", clf, "--checkpoint", inv, "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unknown probe 'no-such-probe'" in result.output and "Traceback" not in result.output


def test_cli_probe_all_skips_what_cannot_run_and_goes_on(models, tmp_path):
    clf, _ = models
    inv = tiny_inverter(clf, noise_dim=0)
    out = tmp_path / "out"
    args = [
        "probe",
        "all",
        "--classifier",
        str(clf.save(tmp_path / "clf")),
        "--checkpoint",
        str(inv.save(tmp_path / "inv")),
        "-n",
        "8",
        "--out",
        str(out),
        "--option",
        "images=4",
        "--option",
        "grid=3",
        "--option",
        "scan=50",
    ]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert "noise-interpolate: not run" in result.output
    done = {p.parent.name for p in out.glob("*/results.json")}
    assert done == set(invkit.list_probes()) - {"noise-interpolate"}


# ------------------------------------------------------------------------------------------- demo checkpoints
DEMO = Path(invkit.__file__).parent / "assets" / "demo"
SMALL = {"images": 4, "grid": 3, "scan": 300, "samples": 4, "rows": 2, "rounds": 1, "per_class": 5, "levels": 3}


@pytest.mark.skipif(not (DEMO / "biggan_standard").is_dir(), reason="demo checkpoints not built yet")
@pytest.mark.parametrize("kind", ["standard", pytest.param("robust", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", invkit.list_probes())
def test_every_probe_runs_on_the_demo_checkpoints(name, kind, tmp_path):
    from invkit.cli.probe import declared_options

    clf = invkit.load_classifier(DEMO / f"classifier_{kind}")
    inv = invkit.load_inverter(DEMO / f"biggan_{kind}", classifier=clf)
    probe = invkit.create_probe(name)
    options = {k: v for k, v in SMALL.items() if k in (declared_options(probe) or ())}
    ctx = ProbeContext(
        classifier=clf,
        inverter=inv,
        data=load_dataset("default", "test"),
        out=tmp_path,
        generator=torch.Generator().manual_seed(0),
        num_images=8,
        options=options,
    )
    result = probe.run(ctx)
    assert all(math.isfinite(v) for v in all_numbers(result.numbers))
    assert all((tmp_path / p).is_file() for p in result.figures.values())


def test_option_values_are_parsed_strictly_never_silently_coerced():
    """--option values for yes/no and whole-number fields: accepted spellings convert, anything else is one
    InputError naming the option (before: 'abc' read as False and 2.7 as 2). Probes share invkit's one option check
    (``invkit.check_options``, tests/test_plugin_author.py)."""
    import dataclasses

    @dataclasses.dataclass
    class Options:
        flag: bool = False
        images: int = 8
        eps: float = 0.1

    def apply(defaults, values):
        return dataclasses.replace(defaults, **invkit.check_options(defaults, values, "p", signs=False))

    for text, expected in [("true", True), ("YES", True), ("on", True), ("1", True), (1, True), (True, True)]:
        assert apply(Options(), {"flag": text}).flag is expected
    for text in ("false", "No", "off", "0", 0, False):
        assert apply(Options(flag=True), {"flag": text}).flag is False
    assert apply(Options(), {"images": 4}).images == 4
    assert apply(Options(), {"images": 4.0}).images == 4
    for key, bad, said in [
        ("flag", "abc", "must be true or false"),
        ("flag", 2, "must be true or false"),
        ("images", 2.7, "must be a whole number"),
        ("images", "three", "must be a whole number"),
        ("images", True, "must be a whole number"),
        ("eps", "wide", "must be a finite number"),
    ]:
        with pytest.raises(invkit.InputError, match=f"p: '{key}' {said}"):
            apply(Options(), {key: bad})
