"""Faults reported from the field (issue 13, points 9-15), one section per kind; each example is a test and
each kind is tested on several members. Bad input of other kinds is in test_bad_input.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_probes import TinyPlugin, tiny_classifier, tiny_inverter

import invkit
import invkit.core.plugins
from invkit import ProbeContext
from invkit.cli import build_cli
from invkit.data import load_dataset, load_embedded


def invoke(args: list[str]):
    """Run the CLI as a user would: errors must be one line, never a traceback. ``result.text`` is the output
    with rich's line wrapping undone."""
    result = CliRunner().invoke(build_cli(), args)
    assert "Traceback" not in result.output, result.output
    result.text = " ".join(result.output.split())
    return result


@pytest.fixture
def tiny_models():
    invkit.register_plugin(TinyPlugin(), name="tinyprobe")
    clf = tiny_classifier()
    return clf, tiny_inverter(clf)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """HOME (and the caches that default to it) pointing at an empty folder, as on a fresh machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return home


# ------------------------------------------------------------- 14. defaults that depend on the developer's machine
def test_ood_default_for_grey_inverters_is_shipped_mnist_negatives(tiny_models, empty_home, tmp_path):
    from invkit_plugins.probes.ood import default_ood_data

    clf, inv = tiny_models
    ctx = ProbeContext(
        classifier=clf, inverter=inv, data=load_dataset("default"), out=tmp_path, generator=torch.Generator()
    )
    ood = default_ood_data(ctx)
    assert ood.name == "default:train:negative"
    assert torch.equal(ood.images, 255 - load_embedded("train").images)
    result = invkit.create_probe("ood").run(ctx)
    assert result.numbers["ood_data"] == "default:train:negative"
    assert result.numbers["ood"]["images"] == result.numbers["in_distribution"]["images"] > 0


def test_ood_default_for_rgb_inverters_is_the_shipped_mnist_subset(empty_home, tmp_path):
    from invkit_plugins.probes.ood import default_ood_data

    clf = tiny_classifier()
    ctx = ProbeContext(
        classifier=clf,
        inverter=tiny_inverter(clf, channels=3),
        data=load_dataset("default"),
        out=tmp_path,
        generator=torch.Generator(),
    )
    assert default_ood_data(ctx).name == "default:test"


def test_no_default_reads_the_home_folder():
    """Source-level check of the kind: no module of invkit or its plugins builds a path from the home folder at
    import time or as a default (caches are resolved at call time, from the environment, in one place each)."""
    root = Path(invkit.__file__).parents[1]
    offenders = []
    allowed = {
        "invkit/data/cache.py",
        "plugins/classifiers/weights.py",
    }  # cache_dir() and hf_hub_cache(), at call time
    for path in [*root.joinpath("invkit").rglob("*.py"), *root.joinpath("plugins").rglob("*.py")]:
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        if ("Path.home()" in text or 'expanduser("~' in text or "'~/" in text) and rel not in allowed:
            offenders.append(rel)
    assert offenders == []


def test_ci_runs_the_tests_with_an_empty_home():
    script = (Path(invkit.__file__).parents[1] / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    home = lines.index('export HOME="$ci_home"')  # every test command comes after it
    assert "pytest" in lines[home:] and not any(ln.startswith("pytest") for ln in lines[:home])
    assert "ci_home=$(mktemp -d)" in script and "INVKIT_CACHE" in lines[home - 1]


# ------------------------------------------------------------------------ 15. probe reruns and name suggestions
def test_probe_rerun_after_a_finished_run_exits_0(tiny_models, tmp_path):
    clf, _ = tiny_models
    inv = tiny_inverter(clf, noise_dim=0)  # deterministic: noise-interpolate cannot run on it
    args = ["probe", "*-interpolate", "--classifier", str(clf.save(tmp_path / "clf"))]
    args += ["--checkpoint", str(inv.save(tmp_path / "inv")), "-n", "4", "--out", str(tmp_path / "out")]
    args += ["--option", "logit-interpolate.pairs=2", "--option", "logit-interpolate.steps=3"]
    first = invoke(args)
    assert first.exit_code == 0, first.output
    assert "noise-interpolate: not run" in first.text
    again = invoke(args)  # only noise-interpolate is left to do: still one of several asked for
    assert again.exit_code == 0, again.output
    assert "logit-interpolate: results.json exists" in again.text and "noise-interpolate: not run" in again.text
    alone = invoke([*args[:1], "noise-interpolate", *args[2:10]])  # asked for alone, its error is the command's
    assert alone.exit_code == 1 and "Error: noise-interpolate needs a stochastic inverter" in alone.text


@pytest.mark.parametrize(
    ("kind", "typo"),
    [("probe", "logit-shfit"), ("probe", "ood2"), ("inverter", "biggan_proj.mnist23"), ("classifier", "resnet15")],
)
def test_a_misspelt_name_suggests_each_name_once(kind, typo):
    with pytest.raises(invkit.UnknownNameError) as info:
        invkit.get_registry(kind).resolve(typo)
    suggestions = info.value.suggestions
    assert suggestions and len(suggestions) == len(set(suggestions)), suggestions
    message = str(info.value)
    assert all(message.count(f" {s},") + message.count(f" {s}?") == 1 for s in suggestions), message


# ------------------------------------------------------------------------------------------- 13. plugins that fail
class RaisingPlugin:
    """Registers one good name in each hook, then raises in the hook named by ``broken``."""

    def __init__(self, broken: str):
        self.broken = broken

    def _maybe_raise(self, hook: str) -> None:
        if hook == self.broken:
            raise RuntimeError(f"boom in {hook}")

    @invkit.hookimpl
    def register_classifiers(self, register):
        register("raising_clf.x", tiny_classifier)
        self._maybe_raise("register_classifiers")

    @invkit.hookimpl
    def register_inverters(self, register):
        register("raising_inv.x", tiny_inverter)
        self._maybe_raise("register_inverters")

    @invkit.hookimpl
    def register_probes(self, register):
        register("raising-probe", lambda **kw: None)
        self._maybe_raise("register_probes")


@pytest.mark.parametrize(
    ("hook", "kind", "own"),
    [
        ("register_classifiers", "classifier", "raising_clf.x"),
        ("register_inverters", "inverter", "raising_inv.x"),
        ("register_probes", "probe", "raising-probe"),
    ],
)
def test_a_register_hook_that_raises_skips_that_plugin_with_a_warning(hook, kind, own):
    invkit.register_plugin(RaisingPlugin(hook), name="raiser")
    with pytest.warns(UserWarning, match=f"invkit plugin 'raiser' failed in its {hook} hook.*boom"):
        names = invkit.get_registry(kind).names()
    assert own not in names  # none of a failing hook's names, not half of them
    assert {"smallcnn.base", "biggan_proj.mnist32", "ood"} & set(names)  # the built-in ones are all there
    assert "boom" in invkit.core.plugins.failed_plugins()["raiser"]
    # the plugin's other hooks still work
    other = {"classifier": "raising_clf.x", "inverter": "raising_inv.x", "probe": "raising-probe"}
    assert all(n in invkit.get_registry(k) for k, n in other.items() if k != kind)


def test_a_broken_plugin_does_not_break_list_or_invert(tmp_path):
    invkit.register_plugin(RaisingPlugin("register_inverters"), name="raiser")
    listed = invoke(["list", "inverters"])
    assert listed.exit_code == 0 and "biggan_proj.mnist32" in listed.text
    # the command prints the warning as one line naming the plugin
    assert "warning: invkit plugin 'raiser' failed in its register_inverters hook" in listed.text
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray((load_embedded("test").images[0, 0]).numpy()).save(image)
    inverted = invoke(
        ["invert", str(image), "--classifier", "smallcnn.base", "--inverter", "optim", "--option", "steps=2"]
        + ["--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert inverted.exit_code == 0, inverted.output
    assert (tmp_path / "out" / "digit_recon.png").is_file()


def test_a_register_commands_hook_that_raises_leaves_the_other_commands(monkeypatch):
    class BadCommands:
        @invkit.hookimpl
        def register_commands(self, cli):
            raise ImportError("no module named 'something_optional'")

    invkit.register_plugin(BadCommands(), name="badcommands")
    with pytest.warns(UserWarning, match="'badcommands' failed in its register_commands hook"):
        cli = build_cli()
    result = CliRunner().invoke(cli, ["list", "probes"])
    assert result.exit_code == 0 and "ood" in result.output


@pytest.mark.parametrize("bad_name", ["has space.x", "a.b.c", "wild*", ""])
def test_a_plugin_registering_an_invalid_name_is_skipped_whole(bad_name):
    class BadName:
        @invkit.hookimpl
        def register_classifiers(self, register):
            register("fine_name.x", tiny_classifier)
            register(bad_name, tiny_classifier)

    invkit.register_plugin(BadName(), name="badname")
    with pytest.warns(UserWarning, match="'badname' failed in its register_classifiers hook.*invalid classifier"):
        names = invkit.list_classifiers()
    assert "fine_name.x" not in names and "smallcnn.base" in names


def _install_entry_point(tmp_path, monkeypatch, name: str, module_source: str) -> None:
    site = tmp_path / f"site_{name}"
    dist = site / f"{name}_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[invkit]\n{name} = {name}_mod\n")
    (site / f"{name}_mod.py").write_text(module_source)
    monkeypatch.syspath_prepend(str(site))
    invkit.core.plugins.reset()


def test_an_installed_plugin_whose_hook_has_the_wrong_signature_is_skipped(tmp_path, monkeypatch):
    _install_entry_point(
        tmp_path,
        monkeypatch,
        "wrongsig",
        "import invkit\n\n@invkit.hookimpl\ndef register_classifiers(register, extra):\n    pass\n",
    )
    with pytest.warns(UserWarning, match="'wrongsig' could not be registered"):
        names = invkit.list_classifiers()
    assert "smallcnn.base" in names and "wrongsig" in invkit.core.plugins.failed_plugins()


def test_an_installed_plugin_whose_hook_raises_is_skipped_and_named_by_invkit_plugins(tmp_path, monkeypatch):
    _install_entry_point(
        tmp_path,
        monkeypatch,
        "hookraise",
        "import invkit\n\n@invkit.hookimpl\ndef register_probes(register):\n    raise KeyError('oops')\n",
    )
    result = invoke(["plugins"])
    assert result.exit_code == 0
    assert "warning: invkit plugin 'hookraise' failed in its register_probes hook" in result.text
    assert "plugin 'hookraise' is skipped: failed in its register_probes hook: KeyError" in result.text


class DupA:
    @invkit.hookimpl
    def register_classifiers(self, register):
        register("dup.x", tiny_classifier)
        register("only_a.x", tiny_classifier)

    @invkit.hookimpl
    def register_probes(self, register):
        register("dup-probe", lambda **kw: None)


class DupB:
    @invkit.hookimpl
    def register_classifiers(self, register):
        register("dup.x", tiny_classifier)

    @invkit.hookimpl
    def register_probes(self, register):
        register("dup-probe", lambda **kw: None)


def test_two_plugins_with_one_name_block_only_that_name():
    invkit.register_plugin(DupA(), name="plugin_a")
    invkit.register_plugin(DupB(), name="plugin_b")
    assert invkit.create_classifier("only_a.x").name == "tinyprobe.test"  # other names work
    assert invkit.create_classifier("smallcnn.base").num_classes == 10
    for kind, name in (("classifier", "dup.x"), ("classifier", "dup"), ("probe", "dup-probe")):
        with pytest.raises(invkit.errors.AmbiguousNameError) as info:
            invkit.get_registry(kind).resolve(name)
        assert "plugin_a" in str(info.value) and "plugin_b" in str(info.value)
    assert invkit.get_registry("classifier").conflicts() == {"dup.x": ["plugin_b", "plugin_a"]} or invkit.get_registry(
        "classifier"
    ).conflicts() == {"dup.x": ["plugin_a", "plugin_b"]}


def test_two_plugins_with_one_name_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    invkit.register_plugin(DupA(), name="plugin_a")
    invkit.register_plugin(DupB(), name="plugin_b")
    listed = invoke(["list", "classifiers"])
    assert listed.exit_code == 0 and "smallcnn.base" in listed.text and "(conflict)" in listed.text
    used = invoke(
        ["probe", "dup-probe", "--classifier", "smallcnn.base", "--inverter", "optim", "--out", str(tmp_path)]
    )
    assert used.exit_code == 1
    assert "probe 'dup-probe' is registered by several plugins" in used.text and "plugin_a" in used.text
    shown = invoke(["plugins"])
    assert "classifier 'dup.x' is registered by" in shown.text


# ----------------------------------------------------------------------------------------------- 9. silent defaults
DEMO = Path(invkit.__file__).parent / "assets" / "demo"


@pytest.fixture
def digit(tmp_path) -> str:
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.fromarray(load_embedded("test").images[0, 0].numpy()).save(path)
    return str(path)


def invert_args(digit: str, *more: str) -> list[str]:
    return ["invert", digit, "--classifier", str(DEMO / "classifier_standard"), *more]


@pytest.mark.parametrize("inverter", ["biggan_proj.mnist32", "biggan_proj", "dosovitskiy_brox.mnist"])
def test_invert_refuses_a_learned_inverter_without_checkpoint(inverter, digit, tmp_path):
    out = tmp_path / "out"
    result = invoke(invert_args(digit, "--inverter", inverter, "--out", str(out)))
    assert result.exit_code == 1
    assert "learned inverter and has only random weights without --checkpoint" in result.text
    assert not out.exists()


def test_probe_refuses_a_learned_inverter_without_checkpoint(tmp_path):
    result = invoke(
        ["probe", "ood", "--classifier", str(DEMO / "classifier_standard"), "--inverter", "biggan_proj.mnist32"]
        + ["--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1 and "only random weights without --checkpoint" in result.text


@pytest.mark.parametrize("how", ["--checkpoint", "--inverter"])
def test_invert_refuses_options_that_a_checkpoint_would_ignore(how, digit, tmp_path):
    args = invert_args(digit, how, str(DEMO / "biggan_standard"), "--option", "cbn_hidden=4", "--option", "ch=2")
    result = invoke([*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "--option cbn_hidden, ch is for an inverter built fresh" in result.text and "config.json" in result.text
    assert not (tmp_path / "out").exists()


def test_bench_refuses_options_that_a_checkpoint_would_ignore(tmp_path):
    out = tmp_path / "out"
    result = invoke(
        ["bench", "--classifier", str(DEMO / "classifier_standard"), "--checkpoint", str(DEMO / "biggan_standard")]
        + ["--inverter", "biggan_proj", "--option", "biggan_proj:ch=4", "-n", "10", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "--option biggan_proj:ch is for an inverter built fresh" in result.text
    assert not out.exists() or not any(out.rglob("results.json"))


def test_a_checkpoint_alone_and_optim_with_options_still_invert(digit, tmp_path):
    result = invoke(invert_args(digit, "--checkpoint", str(DEMO / "biggan_standard"), "--out", str(tmp_path / "a")))
    assert result.exit_code == 0, result.output
    result = invoke(invert_args(digit, "--inverter", "optim", "--option", "steps=2", "--out", str(tmp_path / "b")))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "digit_recon.png").is_file() and (tmp_path / "b" / "digit_recon.png").is_file()


def test_a_plugin_inverter_is_known_as_learned_from_its_class_without_building_weights(tiny_models):
    from test_probes import TinyInverter, TinyInverterConfig

    from invkit.cli._common import inverter_from_spec

    class Learned(TinyInverter):
        trainable = True

    built = []

    def factory(classifier=None, **config):
        inv = Learned(TinyInverterConfig(**config))
        built.append(inv.net.weight.device.type)
        return inv

    class Plugin:
        @invkit.hookimpl
        def register_inverters(self, register):
            register("learned_tiny.x", factory)

    invkit.register_plugin(Plugin(), name="learned_tiny")
    clf, _ = tiny_models
    with pytest.raises(invkit.InvkitError, match="learned_tiny.x is a learned inverter"):
        inverter_from_spec("learned_tiny.x", clf)
    assert built == ["meta"]  # found out on the meta device: no weights were initialised
    assert inverter_from_spec("learned_tiny.x", clf, untrained=True).trainable  # what invkit train asks for


# ---------------------------------------------------------------------------- 10. weights from common training scripts
@pytest.fixture(scope="module")
def resnet152_state():
    import torchvision

    torch.manual_seed(5)
    return torchvision.models.resnet152().eval().state_dict()


def _same_network(clf, state) -> bool:
    mine = clf.network.state_dict()
    return set(mine) == set(state) and all(torch.equal(mine[k], state[k].float()) for k in state)


@pytest.mark.parametrize("wrapper", [pytest.param("bare", marks=pytest.mark.slow), "state_dict"])
def test_resnet152_saved_from_dataparallel_loads(resnet152_state, wrapper, tmp_path, monkeypatch):
    monkeypatch.setenv("INVKIT_OFFLINE", "1")
    prefixed = {f"module.{k}": v for k, v in resnet152_state.items()}
    saved = prefixed if wrapper == "bare" else {wrapper: prefixed, "epoch": 90, "best_acc1": torch.tensor(77.1)}
    torch.save(saved, tmp_path / "checkpoint.pth.tar")
    clf = invkit.create_classifier("resnet152.tv_in1k", weights=str(tmp_path / "checkpoint.pth.tar"))
    assert _same_network(clf, resnet152_state)


@pytest.mark.parametrize("arch", ["smallcnn.base", "resnet18s.base"])
def test_weights_that_do_not_fit_say_what_is_missing_and_unexpected_briefly(arch, tmp_path):
    state = {f"module.{k}": v for k, v in invkit.create_classifier(arch).network.state_dict().items()}
    last = sorted(k for k in state if k.endswith(".weight"))[-1]
    del state[last]
    state["module.head.weight"] = torch.zeros(3)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "bad.pth")
    with pytest.raises(invkit.errors.CheckpointError) as info:
        invkit.create_classifier(arch, weights=str(tmp_path / "bad.pth"))
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert "after stripping the prefix 'module.'" in message
    assert f"missing {last[len('module.') :]}" in message and "unexpected head.weight" in message


@pytest.mark.parametrize(
    "prefix",
    ["module.", "_orig_mod.", "module._orig_mod.", "model.", "net."],  # DataParallel, compile, Lightning
)
@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "model_state_dict", "net"])
def test_smallcnn_weights_from_training_scripts_load(prefix, wrapper, tmp_path):
    source = invkit.create_classifier("smallcnn.base")
    state = {prefix + k: v for k, v in source.network.state_dict().items()}
    obj = state if wrapper is None else {wrapper: state, "epoch": 7, "optimizer": {"lr": 0.1}}
    torch.save(obj, tmp_path / "w.pt")
    torch.manual_seed(123)  # a different random initialisation: only loading makes the networks equal
    clf = invkit.create_classifier("smallcnn.base", weights=str(tmp_path / "w.pt"))
    assert _same_network(clf, source.network.state_dict())


def test_a_mismatched_inverter_checkpoint_names_keys_briefly(tmp_path):
    from safetensors.torch import load_file, save_file

    clf = invkit.load_classifier(DEMO / "classifier_standard")
    inv = invkit.load_inverter(DEMO / "biggan_standard", classifier=clf)
    folder = inv.save(tmp_path / "ck")
    state = load_file(str(Path(folder) / "model.safetensors"))
    dropped = sorted(state)[:5]
    for k in dropped:
        del state[k]
    save_file(state, str(Path(folder) / "model.safetensors"))
    with pytest.raises(invkit.errors.CheckpointError) as info:
        invkit.load_inverter(folder, classifier=clf)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and "(5 in all)" in message and dropped[0] in message


@pytest.mark.parametrize("wrapper", [None, "state_dict"])
def test_convert_weights_unwraps_and_strips_the_dataparallel_prefix(wrapper, tmp_path):
    from safetensors.torch import load_file

    net = invkit.create_classifier("smallcnn.base").network
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 1}, tmp_path / "in.pth")
    result = invoke(["convert-weights", str(tmp_path / "in.pth"), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 0, result.output
    assert "stripped the prefix 'module.'" in result.text
    assert set(load_file(str(tmp_path / "out.safetensors"))) == set(net.state_dict())
    kept = invoke(["convert-weights", str(tmp_path / "in.pth"), str(tmp_path / "k.safetensors"), "--keep-prefix"])
    assert kept.exit_code == 0 and set(load_file(str(tmp_path / "k.safetensors"))) == set(state)


def test_strip_prefix_picks_the_prefix_that_makes_keys_fit():
    from invkit.io import shared_prefix, strip_prefix

    expected = {"conv1.weight", "fc.weight", "fc.bias"}
    state = {"module.model.conv1.weight": 1, "module.model.fc.weight": 2, "module.model.fc.bias": 3}
    assert shared_prefix(state) == "module.model."
    assert strip_prefix(state, expected) == ({"conv1.weight": 1, "fc.weight": 2, "fc.bias": 3}, "module.model.")
    assert strip_prefix({k[7:]: v for k, v in state.items()}, expected)[1] == "model."
    assert strip_prefix({"fc.weight": 1, "fc.bias": 2}, expected) == ({"fc.weight": 1, "fc.bias": 2}, "")  # fits
    assert strip_prefix({"fc.weight": 1, "fc.bias": 2}, {"head.weight"})[1] == ""  # stripping would not help
    assert strip_prefix(state)[1] == "module."  # without a target: only wrapper prefixes


# ---------------------------------------------------------------------------------------- 11. paths in checkpoints
def _demo_doc(name: str) -> dict:
    return json.loads((DEMO / name / "config.json").read_text())


def test_demo_checkpoint_with_a_relative_classifier_path_fits_from_another_folder(tmp_path, monkeypatch):
    from invkit.core.provenance import _identity_matches, recorded_classifier

    doc = _demo_doc("biggan_robust")
    assert doc["train_config"]["classifier"] == "invkit/assets/demo/classifier_robust"  # relative, as recorded
    monkeypatch.chdir(tmp_path)  # not the folder the run was started from
    recorded = recorded_classifier(doc)
    assert recorded.get("relpath") == "invkit/assets/demo/classifier_robust" and "path" not in recorded
    robust, standard = str(DEMO / "classifier_robust"), str(DEMO / "classifier_standard")
    assert _identity_matches(recorded, robust, invkit.load_classifier(robust))
    assert not _identity_matches(recorded, standard, invkit.load_classifier(standard))


def test_bench_from_another_folder_finds_the_demo_checkpoints(tmp_path, monkeypatch):
    from invkit.evaluation.bench import Bench
    from invkit.evaluation.settings import BenchSettings

    monkeypatch.chdir(tmp_path)
    kinds = ("standard", "robust")
    settings = BenchSettings(
        classifiers=[str(DEMO / f"classifier_{k}") for k in kinds],
        inverters=["biggan_proj"],
        checkpoints=[str(DEMO / f"biggan_{k}") for k in kinds],
        n=10,
        device="cpu",
    )
    plan = {p.classifier_label: p.checkpoint for p in Bench(settings).pairs}
    assert plan == {f"classifier_{k}": str(DEMO / f"biggan_{k}") for k in kinds}


@pytest.mark.parametrize(
    ("relpath", "folder", "fits"),
    [
        ("runs/clf", "/data/me/runs/clf", True),
        ("./runs/clf", "/data/me/runs/clf", True),
        ("../me/runs/clf", "/data/me/runs/clf", True),
        ("runs/clf", "/data/me/other/clf", False),
        ("runs/clf", "/data/me/runs/clf2", False),
    ],
)
def test_a_relative_path_matches_only_folders_that_end_with_it(relpath, folder, fits):
    from invkit.core.provenance import _relpath_matches

    assert _relpath_matches(relpath, folder) is fits


def test_train_records_the_classifier_folder_absolutely(tmp_path, monkeypatch):
    import _toy_inverter

    from invkit.core.provenance import _identity_matches, recorded_classifier
    from invkit.training import TrainConfig, build_inverter, train_inverter

    _toy_inverter.register()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    clf = invkit.create_classifier("toyclf.base")
    clf.save(work / "clf")
    config = TrainConfig(
        classifier="clf", inverter="toyinv.base", out="run", steps=2, batch_size=4, save_every=2, device="cpu"
    )
    inverter, options = build_inverter(config, clf)
    data = load_dataset("default", "train")
    result = train_inverter(config, clf, inverter, data, load_dataset("default"), trainer_options=options)
    doc = json.loads((result.checkpoint / "config.json").read_text())
    assert doc["classifier_identity"]["path"] == str((work / "clf").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recorded = recorded_classifier(doc)
    assert _identity_matches(recorded, str(work / "clf"), clf)
    other = invkit.create_classifier("toyclf.base")
    torch.nn.init.zeros_(next(other.network.parameters()))
    other.save(tmp_path / "other" / "clf")  # same folder name, other weights: the digest tells them apart
    assert not _identity_matches(recorded, str(tmp_path / "other" / "clf"), other)


# ------------------------------------------------------------------------------------------------------ 12. memory
def _toy_train(out, **changes):
    import _toy_inverter

    from invkit.training import TrainConfig, build_inverter, train_inverter

    _toy_inverter.register()
    fields = dict(classifier="toyclf.base", inverter="toyinv.base", out=str(out), steps=2, batch_size=8)
    fields.update(save_every=2, sample_every=2, device="cpu")
    config = TrainConfig(**(fields | changes))
    clf = invkit.create_classifier("toyclf.base")
    inverter, options = build_inverter(config, clf)
    data = load_dataset("default", "train")
    return train_inverter(config, clf, inverter, data, load_dataset("default"), trainer_options=options)


def test_train_refuses_a_batch_larger_than_the_data_set(tmp_path):
    with pytest.raises(invkit.TrainingError, match="--batch-size 100000 is larger than the 2000 training images"):
        _toy_train(tmp_path / "run", batch_size=100000)
    assert not (tmp_path / "run").exists()


def test_cli_train_and_train_classifier_refuse_a_batch_larger_than_the_data_set(tmp_path):
    clf = str(DEMO / "classifier_standard")
    result = invoke(
        ["train", "--classifier", clf, "--inverter", "biggan_proj.mnist32", "--batch-size", "100000"]
        + ["--steps", "1", "--device", "cpu", "--out", str(tmp_path / "inv")]
    )
    assert result.exit_code == 1 and "larger than the 2000 training images; use at most 2000" in result.text
    assert not (tmp_path / "inv").exists()
    result = invoke(["train-classifier", "--batch-size", "2001", "--steps", "1", "--out", str(tmp_path / "clf")])
    assert result.exit_code == 1 and "--batch-size 2001 is larger than the 2000 training images" in result.text
    assert not (tmp_path / "clf").exists()


def test_train_stops_early_when_the_batch_cannot_fit_and_says_what_would(tmp_path, monkeypatch):
    import invkit.utils.memory

    free = {"bytes": 0}
    monkeypatch.setattr(invkit.utils.memory, "available_bytes", lambda device: free["bytes"])
    free["bytes"] = 64 * 1024  # 64 KiB: not even the weights fit
    with pytest.raises(invkit.TrainingError, match="even one image does not fit") as info:
        _toy_train(tmp_path / "a")
    assert "\n" not in str(info.value) and not (tmp_path / "a").exists()
    for free["bytes"] in (2 * 2**20, 3 * 2**20):  # a few MiB: some batches fit, 1000 does not
        with pytest.raises(invkit.TrainingError, match=r"use --batch-size (\d+) or less") as info:
            _toy_train(tmp_path / "b", batch_size=1000)
        import re

        fits = int(re.search(r"use --batch-size (\d+) or less", str(info.value)).group(1))
        assert 1 <= fits < 1000
        with pytest.raises(invkit.TrainingError, match="or less"):  # one more than it says does not fit
            _toy_train(tmp_path / f"c{fits}", batch_size=fits + 1)
        assert _toy_train(tmp_path / f"d{fits}", batch_size=fits).step == 2  # what it says fits


def test_the_estimate_grows_with_the_batch_and_the_model():
    from invkit.utils.memory import activation_bytes, parameter_bytes

    clf = invkit.load_classifier(DEMO / "classifier_standard")
    per = [activation_bytes([clf.network], lambda n=n: clf.logits(torch.zeros(n, 1, 28, 28))) for n in (1, 2, 8)]
    assert per[0] > 0 and per[1] == 2 * per[0] and per[2] == 8 * per[0]
    small = invkit.create_inverter("biggan_proj.mnist32", classifier=clf)
    logits = clf.logits(torch.zeros(2, 1, 28, 28)).detach()
    g = torch.Generator().manual_seed(0)
    assert activation_bytes([small], lambda: small.eval().invert(logits, generator=g)) > per[1]
    assert parameter_bytes([small]) == sum(
        t.numel() * t.element_size() for t in [*small.parameters(), *small.buffers()]
    )


def test_train_classifier_stops_early_when_the_batch_cannot_fit(tmp_path, monkeypatch):
    import invkit.utils.memory

    monkeypatch.setattr(invkit.utils.memory, "available_bytes", lambda device: 2**20)
    result = invoke(["train-classifier", "--batch-size", "2000", "--steps", "1", "--out", str(tmp_path / "clf")])
    assert result.exit_code == 1 and "needs at least" in result.text and "GiB is free" in result.text
    assert not (tmp_path / "clf").exists()


def test_the_invkit_command_prints_a_plugin_warning_as_one_line(capsys, monkeypatch):
    import warnings

    from invkit.cli import main

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() installs its own; restore after
    invkit.register_plugin(RaisingPlugin("register_probes"), name="raiser")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as info:
            main(["list", "probes"])
    assert info.value.code == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "raiser" in ln]
    expected = "warning: invkit plugin 'raiser' failed in its register_probes hook and is skipped: RuntimeError: "
    assert lines == [expected + "boom in register_probes"]
