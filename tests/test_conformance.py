"""The same checks for every registered name, through the public ``invkit.testing`` module.

Parametrised over the registries, so a name added by a built-in plugin is covered without a new test (after
timm's tests/test_models.py); plugin authors call the same functions from their own tests (docs/plugins.md).
Large presets are built at a reduced width (``ch``/``width_mult``) so the suite stays fast; their
architecture is checked in their own tests. The checker is tested too: a broken plugin must fail it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import invkit
import invkit.testing
from invkit.core.probe import declared_options
from invkit.testing import ConformanceError

# Reduced widths for the big presets, and few optimisation steps for optim: config fields of each method.
SMALL = {"biggan_proj": {"ch": 4}, "dosovitskiy_brox": {"width_mult": 0.125}, "optim": {"steps": 3}}
# One training step for one preset of each learned method; the larger presets share its code.
TRAIN_STEPS = {"biggan_proj.mnist32": 1, "dosovitskiy_brox.mnist": 1}
# Probe options that keep every probe to a few small images.
SMALL_PROBE = {"images": 4, "grid": 3, "scan": 300, "samples": 4, "rows": 2, "rounds": 1, "per_class": 5, "levels": 3}
# Classifiers: the default tag of each small architecture (the big ones are checked in test_classifiers_published).
SMALL_CLASSIFIERS = ["smallcnn", "resnet18s"]


@pytest.mark.parametrize("name", invkit.list_inverters())
def test_inverter_conformance(name, tmp_path):
    options = SMALL.get(name.split(".")[0], {})
    invkit.testing.check_inverter(name, tmp_path, options=options, train_steps=TRAIN_STEPS.get(name, 0))


@pytest.mark.parametrize("name", invkit.list_probes())
def test_probe_conformance(name, tmp_path):
    options = {k: v for k, v in SMALL_PROBE.items() if k in (declared_options(invkit.create_probe(name)) or ())}
    invkit.testing.check_probe(name, tmp_path, options=options)


@pytest.mark.parametrize("name", SMALL_CLASSIFIERS)
def test_classifier_conformance(name, tmp_path):
    invkit.testing.check_classifier(name, tmp_path)


# ------------------------------------------------------------------------------------- the checker itself
@dataclass
class _Cfg:
    num_classes: int = 10
    channels: int = 1
    resolution: int = 16
    noise_dim: int = 0


class _Broken(invkit.Inverter):
    """An inverter that breaks one rule at a time, chosen by ``fault``."""

    fault = ""

    def __init__(self, config):
        super().__init__(config)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def invert(self, logits, noise=None, generator=None):
        if self.fault != "no_check":
            logits = self.check_logits(logits)
        n, r = len(logits), self.config.resolution
        if self.fault == "range":
            return torch.full((n, 1, r, r), 2.0)
        if self.fault == "unseeded":
            return torch.rand(n, 1, r, r)  # ignores the generator
        return torch.rand(n, 1, r, r, generator=generator)


@pytest.fixture
def broken_plugin():
    class Plugin:
        @invkit.hookimpl
        def register_inverters(self, register):
            for fault in ("ok", "range", "unseeded", "no_check"):
                cls = type(f"Broken_{fault}", (_Broken,), {"fault": fault})
                register(f"broken.{fault}", lambda classifier=None, _cls=cls, **kw: _cls(_Cfg(**kw)))

    invkit.register_plugin(Plugin(), name="broken")
    yield
    invkit.core.plugins.unregister_plugin("broken")


@pytest.mark.parametrize(
    "fault,message",
    [("range", r"outside \[0, 1\]"), ("unseeded", "same generator seed"), ("no_check", "wrong size")],
)
def test_check_inverter_catches_broken_inverters(broken_plugin, tmp_path, fault, message):
    invkit.testing.check_inverter("broken.ok", tmp_path / "ok")  # the unbroken one passes
    with pytest.raises(ConformanceError, match=message):
        invkit.testing.check_inverter(f"broken.{fault}", tmp_path / fault)


def test_check_probe_catches_an_unseeded_probe(tmp_path):
    class Unseeded(invkit.Probe):
        def run(self, ctx):
            return invkit.ProbeResult(probe=self.name, numbers={"draw": float(torch.rand(1))})

    class Plugin:
        @invkit.hookimpl
        def register_probes(self, register):
            register("unseeded-probe", Unseeded)

    invkit.register_plugin(Plugin(), name="unseeded")
    try:
        with pytest.raises(ConformanceError, match="ctx.generator"):
            invkit.testing.check_probe("unseeded-probe", tmp_path)
    finally:
        invkit.core.plugins.unregister_plugin("unseeded")
