"""Plugin discovery through real entry-point metadata, with the example package from docs/example_plugin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import invkit
import invkit.core.plugins
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
    invkit.core.plugins.reset()
    yield
    for mod in [m for m in sys.modules if m.startswith("invkit_prototypes")]:
        del sys.modules[mod]


def test_builtin_plugins_come_from_entry_points():
    infos = {i.name: i for i in invkit.core.plugins.plugin_infos()}
    for name in ("classifiers", "inhouse", "biggan_proj", "dosovitskiy_brox", "optim", "probes"):
        assert name in infos, name
        assert infos[name].distribution.startswith("invkit ")
        assert infos[name].module == f"invkit_plugins.{name}"


def test_example_plugin_found_through_entry_point_metadata(example_installed):
    infos = {i.name: i for i in invkit.core.plugins.plugin_infos()}
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
    result = invkit.core.probe.run_probe(invkit.create_probe("logit-norm"), ctx)  # the probe returns, invkit renders
    assert all(map(lambda v: v == v and abs(v) < 1e9, result.numbers.values()))
    assert {p.name for p in tmp_path.iterdir()} >= {"pairs.png", "norms.png", "index.html", "results.json"}
    json.loads(result.to_json())


def test_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[invkit]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(site))
    invkit.core.plugins.reset()
    with pytest.warns(UserWarning, match="broken"):
        invkit.core.plugins.get_plugin_manager()
    assert "broken" in invkit.core.plugins.failed_plugins()
    assert "classifiers" in {i.name for i in invkit.core.plugins.plugin_infos()}  # the others still load


def test_run_time_registration():
    class Plugin:
        @invkit.hookimpl
        def register_classifiers(self, register):
            register("runtime.demo", lambda **kw: "built", description="registered at run time")

    invkit.register_plugin(Plugin(), name="runtime")
    assert invkit.create_classifier("runtime.demo") == "built"
    assert {i.name: i for i in invkit.core.plugins.plugin_infos()}["runtime"].distribution == "(registered at run time)"
    invkit.core.plugins.unregister_plugin("runtime")
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


# ------------------------------------------------------------------------ issue 14 point 1: names in checkpoints
def test_outside_inverter_saved_without_the_registry_benches_from_its_folder(example_installed, tmp_path):
    """An outside author builds the inverter with the plugin's own factory, saves it and benches the folder."""
    from invkit_prototypes.plugin import make_classifier, make_inverter

    inv = make_inverter(classifier=make_classifier())
    assert inv.registry_name == ""  # built without invkit.create_inverter
    ck = tmp_path / "ck"
    inv.save(ck)
    assert json.loads((ck / "config.json").read_text())["name"] == "prototype_mix.softmax"
    assert invkit.load_inverter(ck).registry_name == "prototype_mix.softmax"
    out = tmp_path / "bench"
    args = ["bench", "--classifier", "prototype.mnist", "--inverter", "prototype_mix", "--checkpoint", str(ck)]
    result = CliRunner().invoke(build_cli(), [*args, "-n", "10", "--id-k", "5", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "results.json").read_text())["results"]
    assert record["inverter_name"] == "prototype_mix.softmax" and record["checkpoint"] == str(ck)
    assert record["top1_agreement"] > 0.5  # the prototype mixture keeps the class: a real inversion was benched


def test_load_restores_the_registry_name_of_registry_built_objects(example_installed, tmp_path):
    clf = invkit.create_classifier("prototype")  # a bare name: the full name.tag is recorded
    assert clf.registry_name == "prototype.mnist"
    clf.save(tmp_path / "clf")
    assert invkit.load_classifier(tmp_path / "clf").registry_name == "prototype.mnist"
    inv = invkit.create_inverter("prototype_mix", classifier=clf)
    inv.save(tmp_path / "inv")
    loaded = invkit.resolve_inverter(
        "prototype_mix", invkit.resolve_classifier(str(tmp_path / "clf")), str(tmp_path / "inv")
    )
    assert loaded.registry_name == "prototype_mix.softmax"


def test_classifier_whose_config_name_is_not_registered_saves_under_its_registry_name(example_installed, tmp_path):
    from invkit_prototypes.plugin import make_classifier

    clf = make_classifier()
    object.__setattr__(clf, "config", clf.config.with_(name="my-prototypes"))  # a display name, not a registry one
    clf.save(tmp_path / "clf")
    assert json.loads((tmp_path / "clf" / "config.json").read_text())["name"] == "prototype.mnist"
    assert invkit.load_classifier(tmp_path / "clf").registry_name == "prototype.mnist"


def test_unnamed_old_checkpoints_load_when_the_name_can_be_inferred(example_installed, tmp_path):
    clf = invkit.create_classifier("prototype.mnist")
    inv = invkit.create_inverter("prototype_mix", classifier=clf)
    # an inverter checkpoint of an `invkit train` run, written before names were stored: the run's config says
    run_ck = tmp_path / "run" / "checkpoints" / "step_000010"
    inv.save(run_ck)
    _blank_name(run_ck)
    (tmp_path / "run" / "train_config.json").write_text(json.dumps({"train": {"inverter": "prototype_mix"}}))
    assert invkit.load_inverter(run_ck).registry_name == "prototype_mix.softmax"
    # the same, recorded in the checkpoint's own train_config
    own = tmp_path / "own"
    inv.save(own, extra={"train_config": {"inverter": "prototype_mix.softmax"}})
    _blank_name(own, drop=True)
    assert invkit.load_inverter(own).registry_name == "prototype_mix.softmax"
    # a classifier: its stored ClassifierConfig names it
    clf.save(tmp_path / "clf")
    _blank_name(tmp_path / "clf")
    assert invkit.load_classifier(tmp_path / "clf").registry_name == "prototype.mnist"


def test_unnamed_old_checkpoint_that_cannot_be_inferred_says_what_to_do(example_installed, tmp_path):
    inv = invkit.create_inverter("prototype_mix", classifier=invkit.create_classifier("prototype.mnist"))
    inv.save(tmp_path / "ck")
    _blank_name(tmp_path / "ck")
    with pytest.raises(invkit.CheckpointError, match=r'does not say which inverter.*"name": "NAME.TAG"'):
        invkit.load_inverter(tmp_path / "ck")
    args = ["bench", "--classifier", "prototype.mnist", "--inverter", "prototype_mix", "--checkpoint"]
    result = CliRunner().invoke(build_cli(), [*args, str(tmp_path / "ck"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "does not say which inverter" in result.output


def test_inverter_without_any_known_name_refuses_to_save(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        num_classes: int = 10
        channels: int = 1
        resolution: int = 8

    class Nameless(invkit.Inverter):  # no plugin registered a factory for it, so no name can be inferred
        def invert(self, logits, noise=None, generator=None):
            return torch.zeros(len(logits), 1, 8, 8)

    inv = Nameless(Cfg())
    with pytest.raises(invkit.CheckpointError, match="no registry name"):
        inv.save(tmp_path / "ck")
    assert not (tmp_path / "ck" / "config.json").exists()


def _blank_name(folder: Path, drop: bool = False) -> None:
    doc = json.loads((folder / "config.json").read_text())
    if drop:
        del doc["name"]
    else:
        doc["name"] = ""
    (folder / "config.json").write_text(json.dumps(doc))


def test_list_takes_a_pattern_alone(example_installed, monkeypatch):
    """Issue 14 point 2: `invkit list '*proto*'`, as plugins.md writes it, searches every kind."""
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["list", "*proto*"])
    assert result.exit_code == 0, result.output
    assert "prototype.mnist" in result.output and "prototype_mix.softmax" in result.output
    assert "biggan_proj" not in result.output
    result = runner.invoke(build_cli(), ["list", "inverter", "proto*"])  # singular kinds work too
    assert (
        result.exit_code == 0 and "prototype_mix.softmax" in result.output and "prototype.mnist " not in result.output
    )
    result = runner.invoke(build_cli(), ["list", "logit-norm"])  # a plain name is a pattern as well
    assert result.exit_code == 0 and "logit-norm" in result.output
    for args in (["list", "nothing*like*this"], ["list", "robots", "x*"]):
        result = runner.invoke(build_cli(), args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error:")


@pytest.mark.parametrize("columns", ["80", "60"])
def test_plugins_command_shows_module_names_whole(example_installed, monkeypatch, columns):
    """Issue 14 point 7: module names were cut with an ellipsis at 80 columns."""
    monkeypatch.setenv("COLUMNS", columns)
    result = CliRunner().invoke(build_cli(), ["plugins"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    if columns == "80":  # wide enough to show each module on one line
        for info in invkit.core.plugins.plugin_infos():
            assert info.module in result.output
    else:  # narrower: folded, but every character is there
        flat = "".join(line.split("│")[1].strip() for line in result.output.splitlines() if line.count("│") >= 3)
        assert "invkit_plugins.dosovitskiy_brox" in flat and "invkit_prototypes.plugin" in flat


def test_example_plugin_own_tests_pass(example_installed, tmp_path):
    """Issue 14 point 5: the example's own test suite uses invkit.testing, and passes."""
    import importlib.util

    path = EXAMPLE_SRC.parent / "tests" / "test_prototypes.py"
    spec = importlib.util.spec_from_file_location("example_plugin_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = {n: f for n, f in vars(module).items() if n.startswith("test_") and callable(f)}
    assert len(tests) == 5 and "invkit.testing" in path.read_text()
    for name, test in tests.items():
        test(tmp_path / name)


def test_plugin_cache_dir_follows_invkit_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path / "c"))
    folder = invkit.plugin_cache_dir("prototypes")
    assert folder == tmp_path / "c" / "plugins" / "prototypes" and folder.is_dir()
    assert not invkit.plugin_cache_dir("other", create=False).exists()
    for bad in ("", "..", "a/b", "../x"):
        with pytest.raises(invkit.InvkitError, match="not a plain name"):
            invkit.plugin_cache_dir(bad)


def test_example_probe_refuses_an_undeclared_option(example_installed, tmp_path):
    args = ["probe", "logit-norm", "--classifier", "prototype.mnist", "--inverter", "prototype_mix", "-n", "4"]
    result = CliRunner().invoke(build_cli(), [*args, "--option", "q=3", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "has no option 'q'; its options are: p" in result.output
    assert not (tmp_path / "logit-norm" / "results.json").exists()
    result = CliRunner().invoke(build_cli(), [*args, "--option", "p=1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "logit-norm" / "results.json").read_text())["numbers"]["p"] == 1


def test_plugins_md_shows_the_example_tests_as_they_are():
    import re

    doc = (EXAMPLE_SRC.parents[1] / "plugins.md").read_text()
    shown = re.search(r"```python\nimport invkit\nimport invkit.testing\n(.*?)```", doc, re.S)
    assert shown and shown.group(1).strip() in (EXAMPLE_SRC.parent / "tests" / "test_prototypes.py").read_text()


@pytest.mark.parametrize("kind", ["classifiers", "robot", "", None])
def test_get_registry_refuses_an_unknown_kind_naming_the_kinds(kind):
    with pytest.raises(invkit.InputError, match=r"unknown registry kind .*'classifier', 'inverter', 'probe'") as info:
        invkit.get_registry(kind)
    assert len(str(info.value).splitlines()) == 1
