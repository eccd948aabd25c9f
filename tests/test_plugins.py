"""Plugin discovery through real entry-point metadata, with the example package from docs/example_plugin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import invkit
import invkit.plugins
from invkit.cli import build_cli

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "docs" / "example_plugin" / "src"


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    """Install the example plugin the way pip would expose it: a .dist-info with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    dist = site / "invkit_prototypes-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: invkit-prototypes\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[invkit]\nprototypes = invkit_prototypes.plugin\n")
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(site))
    invkit.plugins.reset()
    yield
    for mod in [m for m in sys.modules if m.startswith("invkit_prototypes")]:
        del sys.modules[mod]


def test_builtin_plugins_come_from_entry_points():
    infos = {i.name: i for i in invkit.plugins.plugin_infos()}
    for name in ("classifiers", "inhouse", "biggan_proj", "dosovitskiy_brox", "optim", "probes"):
        assert name in infos, name
        assert infos[name].distribution.startswith("invkit ")
        assert infos[name].module == f"invkit_plugins.{name}"


def test_example_plugin_found_through_entry_point_metadata(example_installed):
    infos = {i.name: i for i in invkit.plugins.plugin_infos()}
    assert infos["prototypes"].distribution == "invkit-prototypes 0.1.0"
    assert set(infos["prototypes"].hooks) == {
        "register_classifiers",
        "register_inverters",
        "register_probes",
        "register_commands",
    }
    assert invkit.list_classifiers("prototype*") == ["prototype.mnist"]
    assert invkit.list_inverters("prototype*") == ["prototype_mix.softmax"]
    assert invkit.list_probes("logit-norm") == ["logit-norm"]
    assert invkit.get_registry("probe").resolve("logit-norm").plugin == "prototypes"


def test_example_plugin_works(example_installed, tmp_path, mnist_batch):
    images, labels = mnist_batch
    clf = invkit.create_classifier("prototype.mnist")
    accuracy = (clf.predict(images) == labels).float().mean()
    assert accuracy > 0.6  # nearest class mean is a real, if weak, MNIST classifier
    inv = invkit.create_inverter("prototype_mix", classifier=clf)
    recon = inv.invert(clf.logits(images))
    assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1
    assert (clf.predict(recon) == clf.predict(images)).float().mean() > 0.8
    inv.save(tmp_path / "ck")
    again = invkit.load_inverter(tmp_path / "ck")
    assert torch.equal(again.invert(clf.logits(images)), recon)


def test_example_plugin_through_the_cli(example_installed, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["list", "all", "*proto*"])
    assert result.exit_code == 0, result.output
    assert "prototype.mnist" in result.output and "prototype_mix.softmax" in result.output
    result = runner.invoke(build_cli(), ["plugins"])
    assert "invkit-prototypes 0.1.0" in result.output
    out = tmp_path / "protos.png"
    result = runner.invoke(build_cli(), ["prototypes", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_example_probe_runs(example_installed, tmp_path):
    from invkit.data import load_dataset

    clf = invkit.create_classifier("prototype.mnist")
    ctx = invkit.ProbeContext(
        classifier=clf,
        inverter=invkit.create_inverter("prototype_mix", classifier=clf),
        data=load_dataset("default"),
        out=tmp_path,
        generator=torch.Generator().manual_seed(0),
        num_images=8,
    )
    result = invkit.create_probe("logit-norm").run(ctx)
    assert all(map(lambda v: v == v and abs(v) < 1e9, result.numbers.values()))
    assert {p.name for p in tmp_path.iterdir()} >= {"pairs.png", "norms.png", "index.html"}
    json.loads(result.to_json())


def test_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[invkit]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(site))
    invkit.plugins.reset()
    with pytest.warns(UserWarning, match="broken"):
        invkit.plugins.get_plugin_manager()
    assert "broken" in invkit.plugins.failed_plugins()
    assert "classifiers" in {i.name for i in invkit.plugins.plugin_infos()}  # the others still load


def test_run_time_registration():
    class Plugin:
        @invkit.hookimpl
        def register_classifiers(self, register):
            register("runtime.demo", lambda **kw: "built", description="registered at run time")

    invkit.register_plugin(Plugin(), name="runtime")
    assert invkit.create_classifier("runtime.demo") == "built"
    assert {i.name: i for i in invkit.plugins.plugin_infos()}["runtime"].distribution == "(registered at run time)"
    invkit.plugins.unregister_plugin("runtime")
    with pytest.raises(invkit.UnknownNameError):
        invkit.create_classifier("runtime.demo")


def test_unknown_name_in_cli_is_one_line(tmp_path):
    result = CliRunner().invoke(build_cli(), ["list", "classifiers", "no_such_thing*"])
    assert result.exit_code != 0
    assert result.output.strip().startswith("Error:") and len(result.output.strip().splitlines()) == 1


def test_example_probe_runs_through_invkit_probe(example_installed, tmp_path, monkeypatch):
    """Issue 7: a third-party probe written from docs/plugins.md alone runs through `invkit probe`."""
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "probes"
    args = [
        "probe",
        "logit-norm",
        "--classifier",
        "prototype.mnist",
        "--inverter",
        "prototype_mix.softmax",
        "-n",
        "8",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    numbers = json.loads((out / "logit-norm" / "results.json").read_text())["numbers"]
    assert numbers["mean_norm"] > 0 and 0 < numbers["ratio"] < 10
    assert (out / "logit-norm" / "index.html").exists() and (out / "logit-norm" / "pairs.png").exists()
