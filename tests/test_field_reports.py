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
import invkit.plugins
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
    allowed = {"invkit/data.py", "plugins/classifiers/weights.py"}  # cache_dir() and hf_hub_cache(), at call time
    for path in [*root.joinpath("invkit").rglob("*.py"), *root.joinpath("plugins").rglob("*.py")]:
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        if ("Path.home()" in text or "expanduser(\"~" in text or "'~/" in text) and rel not in allowed:
            offenders.append(rel)
    assert offenders == []


def test_ci_runs_the_tests_with_an_empty_home():
    script = (Path(invkit.__file__).parents[1] / ".ci" / "run").read_text()
    last = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")][-1]
    assert 'HOME="$ci_home"' in last and last.rstrip().endswith("pytest")
    assert "ci_home=$(mktemp -d)" in script


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
