"""Observation channels (invkit.core.channels, invkit_plugins.channels): what each built-in observes, specs refused
in one line, `invkit list channels`, and a channel added by an outside package through its entry point."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from _cli import cli, one_line_error

import invkit
import invkit.core.plugins
from invkit.errors import InputError, UnknownNameError

LOGITS = torch.tensor([[3.0, 1.0, 0.0, -1.0, 2.0], [0.0, 0.0, 5.0, 1.0, -2.0]])


def test_the_builtins_are_registered():
    assert invkit.list_channels() == ["label", "logits", "noise", "probs", "round", "topk"]


def test_logits_probs_label_and_round_observe_what_their_names_say():
    p = LOGITS.exp() / LOGITS.exp().sum(1, keepdim=True)
    assert torch.equal(invkit.create_channel("logits")(LOGITS), LOGITS)
    assert torch.allclose(invkit.create_channel("probs")(LOGITS), p)
    assert invkit.create_channel("label")(LOGITS).tolist() == [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    rounded = invkit.create_channel("round:1")(LOGITS)
    assert torch.allclose(rounded, torch.tensor([[round(v, 1) for v in row] for row in p.tolist()]))
    assert torch.equal(invkit.create_channel("round:0")(LOGITS), (p > 0.5).float())


def test_topk_keeps_the_k_largest_as_shifted_log_probabilities_and_fills_the_rest():
    logp = LOGITS.log_softmax(1)
    out = invkit.create_channel("topk:2", num_classes=5)(LOGITS)
    row = out[0].tolist()
    # known: classes 0 (p max) and 4, as log p - log p_max
    assert row[0] == 0.0 and math.isclose(row[4], float(logp[0, 4] - logp[0, 0]), rel_tol=1e-6)
    p = logp[0].exp()
    fill = math.log((1 - p[0] - p[4]) / 3) - float(logp[0, 0])
    assert all(math.isclose(v, fill, rel_tol=1e-5) for v in (row[1], row[2], row[3]))
    assert fill < row[4]  # below every known entry
    # the observation is the same for any logits that give the same top-2 probabilities: here a constant offset
    assert torch.allclose(invkit.create_channel("topk:2")(LOGITS + 7.0), out, atol=1e-5)
    full = invkit.create_channel("topk:5")(LOGITS)
    assert torch.allclose(full, logp - logp.max(1, keepdim=True).values)


def test_noise_is_gaussian_around_the_logits_and_repeats_with_a_generator():
    channel = invkit.create_channel("noise:0.5")
    many = LOGITS.repeat(2000, 1)
    a = channel(many, torch.Generator().manual_seed(1))
    assert torch.equal(a, channel(many, torch.Generator().manual_seed(1)))
    assert abs(float((a - many).std()) - 0.5) < 0.02 and abs(float((a - many).mean())) < 0.02
    assert torch.equal(invkit.create_channel("noise:0")(LOGITS), LOGITS)
    assert channel.logit_space and channel.random and not invkit.create_channel("probs").logit_space


def test_spec_round_trips():
    for spec in ("logits", "probs", "topk:5", "round:3", "label", "noise:0.25"):
        assert invkit.create_channel(spec).spec == spec


@pytest.mark.parametrize(
    ("spec", "num_classes", "error", "says"),
    [
        ("topks:5", None, UnknownNameError, "topk"),  # close match suggested
        ("logit", None, UnknownNameError, "logits"),
        ("topk:6", 5, InputError, "K <= 5"),
        ("topk:0", None, InputError, "at least 1"),
        ("topk:two", None, InputError, "must be a int"),
        ("round:-1", None, InputError, "round"),
        ("noise:inf", None, InputError, "finite"),
        ("noise:nan", None, InputError, "finite"),
        ("noise:-1", None, InputError, "noise"),
        ("label:3", None, InputError, "takes no value"),
        ("topk:", None, InputError, "NAME:VALUE"),
        ("", None, InputError, "empty"),
    ],
)
def test_bad_specs_are_refused_in_one_line(spec, num_classes, error, says):
    with pytest.raises(error) as info:
        invkit.create_channel(spec, num_classes=num_classes)
    message = str(info.value)
    assert says in message and "\n" not in message


def test_bad_logits_are_refused():
    channel = invkit.create_channel("probs")
    for bad in (torch.zeros(5), torch.zeros(2, 5, dtype=torch.long), torch.full((1, 5), float("nan"))):
        with pytest.raises(InputError):
            channel(bad)


def test_cli_lists_the_channels():
    out = cli(["list", "channels"])
    for name in ("logits", "probs", "topk", "round", "label", "noise"):
        assert name in out.output


def test_cli_unknown_channel_kind_pattern_is_one_line():
    result = cli(["list", "channels", "zzz*"])
    one_line_error(result, "no channels match")


OUTSIDE = """
import torch
import invkit
from dataclasses import dataclass
from invkit.core.channels import Channel


@dataclass(frozen=True)
class SignOptions:
    scale: float = 1.0  # multiplies the sign


class Sign(Channel):
    name = "sign"

    def observe(self, logits, generator=None):
        return self.options.scale * torch.sign(logits - logits.mean(dim=1, keepdim=True))


@invkit.hookimpl
def register_channels(register):
    register("sign", lambda scale=1.0: Sign(SignOptions(scale)), options=SignOptions, description="sign about the mean")
"""


@pytest.fixture
def outside_channel(tmp_path, monkeypatch):
    """An outside package with a channel, installed as pip would expose it: a .dist-info with entry_points.txt."""
    site = tmp_path / "site"
    dist = site / "sign_channel-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sign-channel\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[invkit]\nsign_channel = sign_channel_mod\n")
    (site / "sign_channel_mod.py").write_text(OUTSIDE)
    monkeypatch.syspath_prepend(str(site))
    invkit.core.plugins.reset()
    yield
    sys.modules.pop("sign_channel_mod", None)
    invkit.core.plugins.reset()


def test_an_outside_package_adds_a_channel(outside_channel):
    assert "sign" in invkit.list_channels()
    channel = invkit.create_channel("sign:2", num_classes=5)
    assert channel.spec == "sign:2.0"
    assert channel(LOGITS)[0].tolist() == [2.0, 0.0, -2.0, -2.0, 2.0]  # mean 1
    assert invkit.get_registry("channel").resolve("sign").plugin == "sign_channel"
    assert "sign" in cli(["list", "channels"]).output
