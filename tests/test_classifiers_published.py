"""Published classifier checkpoints: each layout, built here from random weights, loads to identical logits.

Layouts: torchvision state dicts (.pth), timm safetensors (file and Hugging Face cache), MadryLab robustness
``.ckpt`` dicts with ``module.model.`` / ``module.attacker.`` / ``module.normalizer.`` prefixes, and the
tensorpack ``R152.npz`` of ImageNet-Adversarial-Training. Nothing here touches the network: the caches point
into tmp and INVKIT_OFFLINE is set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from click.testing import CliRunner
from safetensors.torch import save_file

import invkit
from invkit.cli import build_cli
from invkit.errors import CheckpointError, InputError, InvkitError, UnsafeCheckpointError, WeightsNotFoundError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
R152_BLOCKS = (3, 8, 36, 3)


@pytest.fixture(autouse=True)
def _offline_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("INVKIT_OFFLINE", "1")


def _randomize_bn(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so a mix-up of them shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
            m.bias.data.copy_((torch.rand(n, generator=g) - 0.5) * 0.2)
    return net.eval()


def _random_fast(build, seed: int) -> torch.nn.Module:
    """A network with seeded N(0, 0.02) weights, skipping its own (slow) initialisation; norms stay at 1/0."""
    with torch.device("meta"):
        net = build()
    net = net.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return net.eval()


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float rounding (1e-5 of the largest logit): the same network, run through another path."""
    actual, expected = actual.detach(), expected.detach()
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.fixture(scope="module")
def resnet152_tv():
    torch.manual_seed(1)
    return _randomize_bn(torchvision.models.resnet152(), 1)


@pytest.fixture(scope="module")
def resnet152_pth(resnet152_tv, tmp_path_factory):
    """The torchvision state dict saved once, as torchvision publishes it."""
    path = tmp_path_factory.mktemp("r152") / "resnet152-f82ba261.pth"
    torch.save(resnet152_tv.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet50_tv():
    torch.manual_seed(2)
    return _randomize_bn(torchvision.models.resnet50(), 2)


@pytest.fixture(scope="module")
def image64():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------------------------------------------ registry
def test_every_family_is_registered_with_a_description():
    names = invkit.list_classifiers()
    for family in ("resnet152", "robust_resnet152", "robust_resnet50", "inception_v3", "vit_b16"):
        assert any(n.startswith(family + ".") for n in names), family
    entries = invkit.get_registry("classifier").entries()
    for e in entries:
        if e.plugin == "classifiers":
            assert e.description and "\n" not in e.description, e.name
    reg = invkit.get_registry("classifier")
    assert reg.resolve("resnet152").name == "resnet152.tv_in1k"
    assert reg.resolve("robust_resnet50").name == "robust_resnet50.l2_eps3"
    assert reg.resolve("vit_b16").name == "vit_b16.augreg2_in21k_ft_in1k"
    assert reg.resolve("robust_resnet152").name == "robust_resnet152.linf_eps16"
    assert {"robust_resnet50.linf_eps4", "inception_v3.tf_adv_in1k", "vit_b16.tv_in1k"} <= set(names)


def test_timm_and_torchvision_tags_exist_upstream():
    from invkit_plugins.classifiers import torchvision_timm as tt

    published = set(timm.list_pretrained())
    for arch, tags in tt.TIMM_FAMILIES.values():
        for tag in tags:
            assert f"{arch}.{tag}" in published
    for name in tt.TORCHVISION_TAGS:
        assert tt._torchvision_weights(name).url.startswith("https://download.pytorch.org/")


def test_preprocessing_is_derived_from_upstream_metadata():
    from invkit_plugins.classifiers.torchvision_timm import pretrained_config
    from timm.models import get_pretrained_cfg

    adv = pretrained_config("inception_v3.tf_adv_in1k")
    pc = get_pretrained_cfg("inception_v3.tf_adv_in1k")
    assert adv.input_size == tuple(pc.input_size) == (3, 299, 299)
    assert (adv.mean, adv.std, adv.interpolation) == (tuple(pc.mean), tuple(pc.std), pc.interpolation)
    assert adv.robust and adv.source == "https://huggingface.co/timm/inception_v3.tf_adv_in1k" and adv.license
    assert len(adv.label_names) == 1000

    w = torchvision.models.ResNet152_Weights.IMAGENET1K_V2
    tv2 = pretrained_config("resnet152.tv2_in1k")
    assert tv2.input_size[1:] == (w.transforms().crop_size[0],) * 2
    assert tv2.label_names == tuple(w.meta["categories"]) and tv2.source == w.url
    assert tv2.interpolation == "bilinear" and tv2.license == "bsd-3-clause"

    vit = pretrained_config("vit_b16.augreg2_in21k_ft_in1k")
    assert vit.input_size == (3, 224, 224) and vit.mean == (0.5, 0.5, 0.5) and vit.interpolation == "bicubic"


# -------------------------------------------------------------------------------------- torchvision / timm
def test_resnet152_torchvision_pth_and_timm_hf_cache_give_identical_logits(
    resnet152_tv, resnet152_pth, image64, tmp_path
):
    with torch.no_grad():
        expected = resnet152_tv((image64 - IMAGENET_MEAN) / IMAGENET_STD)

    clf = invkit.create_classifier("resnet152.tv_in1k", weights=str(resnet152_pth), input_size=64)
    _close(clf.logits(image64), expected)

    # timm's resnet152 uses torchvision's parameter names; put the weights where timm's hub download would
    repo = tmp_path / "hf" / "models--timm--resnet152.a1h_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(resnet152_tv.state_dict(), str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    timm_clf = invkit.create_classifier("resnet152.a1h_in1k", input_size=64)  # pretrained: from the cache
    assert "models--timm--resnet152.a1h_in1k" in timm_clf.config.extra["weights_file"]
    _close(timm_clf.logits(image64), expected)

    with pytest.raises(InputError, match="channels"):
        clf.logits(torch.rand(1, 4, 64, 64))


def test_resnet152_from_torch_hub_cache(resnet152_tv, resnet152_pth, image64, tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / resnet152_pth.name).symlink_to(resnet152_pth)  # the file name torchvision downloads for V2
    clf = invkit.create_classifier("resnet152.tv2_in1k", input_size=64)
    assert clf.config.extra["weights_file"].startswith(str(hub))
    with torch.no_grad():
        _close(clf.logits(image64), resnet152_tv((image64 - IMAGENET_MEAN) / IMAGENET_STD))


def test_inception_v3_torchvision_with_aux_head_and_timm_adv_safetensors(tmp_path):
    x = torch.rand(1, 3, 80, 80, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(4)
    tv = _randomize_bn(torchvision.models.inception_v3(aux_logits=True, transform_input=True, init_weights=False), 4)
    pth = tmp_path / "inception_v3_google.pth"
    torch.save(tv.state_dict(), pth)  # as published: includes the AuxLogits head
    clf = invkit.create_classifier("inception_v3.tv_in1k", weights=str(pth), input_size=80)
    _close(clf.logits(x), tv((x - IMAGENET_MEAN) / IMAGENET_STD))

    tm = _randomize_bn(timm.create_model("inception_v3"), 5)
    st = tmp_path / "adv.safetensors"
    save_file(tm.state_dict(), str(st))
    adv = invkit.create_classifier("inception_v3.tf_adv_in1k", weights=str(st), input_size=80)
    _close(adv.logits(x), tm((x - 0.5) / 0.5))


def test_vit_b16_timm_safetensors(tmp_path):
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    vit = _random_fast(lambda: timm.create_model("vit_base_patch16_224"), seed=5)
    st = tmp_path / "model.safetensors"
    save_file(vit.state_dict(), str(st))
    clf = invkit.create_classifier("vit_b16.augreg2_in21k_ft_in1k", weights=str(st))
    _close(clf.logits(x), vit((x - 0.5) / 0.5))
    with pytest.raises(InputError, match="fixed input size"):
        invkit.create_classifier("vit_b16.tv_in1k", pretrained=False, input_size=64)


@pytest.mark.slow
def test_vit_b16_torchvision_pth(tmp_path):
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    vit = _random_fast(torchvision.models.vit_b_16, seed=6)
    pth = tmp_path / "vit_b_16.pth"
    torch.save(vit.state_dict(), pth)
    clf = invkit.create_classifier("vit_b16.tv_in1k", weights=str(pth))
    _close(clf.logits(x), vit((x - IMAGENET_MEAN) / IMAGENET_STD))


# ------------------------------------------------------------------------------------------ robust ResNet-50
def _robustness_checkpoint(net: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor) -> dict:
    """What robustness/train.py saves for an AttackerModel in DataParallel (see the plugin docstring)."""
    model = {}
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        model[prefix + "new_mean"] = mean.view(3, 1, 1).clone()
        model[prefix + "new_std"] = std.view(3, 1, 1).clone()
    for k, v in net.state_dict().items():
        model["module.model." + k] = v
        model["module.attacker.model." + k] = v
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.1)
    return {"model": model, "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "epoch": 90, "amp": None}


def test_robust_resnet50_robustness_ckpt_convert_and_invkit_checkpoint(resnet50_tv, image64, tmp_path):
    mean, std = torch.tensor([0.45, 0.5, 0.55]), torch.tensor([0.2, 0.25, 0.3])
    ckpt = tmp_path / "resnet50_l2_eps3.ckpt"
    torch.save(_robustness_checkpoint(resnet50_tv, mean, std), ckpt)
    expected = resnet50_tv((image64 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))

    clf = invkit.create_classifier("robust_resnet50.l2_eps3", weights=str(ckpt), input_size=64)
    assert clf.config.robust and clf.config.mean == tuple(mean.tolist()) and clf.config.std == tuple(std.tolist())
    _close(clf.logits(image64), expected)

    # convert-weights keeps the 'model' dict; the result loads the same
    st = tmp_path / "robust.safetensors"
    result = CliRunner().invoke(build_cli(), ["convert-weights", str(ckpt), str(st)])
    assert result.exit_code == 0, result.output
    assert "'model'" in result.output
    again = invkit.create_classifier("robust_resnet50.l2_eps3", weights=str(st), input_size=64)
    _close(again.logits(image64), expected)

    # and the classifier round-trips through an invkit checkpoint folder with its normaliser
    clf.save(tmp_path / "ckpt")
    loaded = invkit.load_classifier(tmp_path / "ckpt")
    assert loaded.config.mean == clf.config.mean and loaded.config.input_size == (3, 64, 64)
    _close(loaded.logits(image64), expected)


class _NotATensor:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickles_with_code_are_refused_and_convert_weights_can_be_told_to_trust(resnet50_tv, image64, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"fc.weight": torch.zeros(1)}, "hook": _NotATensor()}, evil)
    with pytest.raises(UnsafeCheckpointError, match="convert-weights --trust-pickle"):
        invkit.create_classifier("robust_resnet50.l2_eps3", weights=str(evil))

    module_pickle = tmp_path / "whole_module.pth"
    torch.save(resnet50_tv, module_pickle)  # a pickled nn.Module: needs torchvision's classes to load
    with pytest.raises(UnsafeCheckpointError) as info:
        invkit.create_classifier("robust_resnet50.linf_eps4", weights=str(module_pickle))
    assert "\n" not in str(info.value) and "--weights" in str(info.value)

    runner = CliRunner()
    out = tmp_path / "trusted.safetensors"
    refused = runner.invoke(build_cli(), ["convert-weights", str(module_pickle), str(out)])
    assert refused.exit_code == 1 and "--trust-pickle" in refused.output and "Traceback" not in refused.output
    ok = runner.invoke(build_cli(), ["convert-weights", "--trust-pickle", str(module_pickle), str(out)])
    assert ok.exit_code == 0, ok.output
    clf = invkit.create_classifier("robust_resnet50.linf_eps4", weights=str(out), input_size=64)
    _close(clf.logits(image64), resnet50_tv((image64 - IMAGENET_MEAN) / IMAGENET_STD))


# ------------------------------------------------------------------------------------ tensorpack ResNet-152
def _export_tensorpack(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """torchvision resnet152 -> the variable names and layouts of ImageNet-Adversarial-Training's R152.npz."""
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    out: dict[str, np.ndarray] = {"global_step": np.array(123, dtype=np.int64)}  # training-only, ignored

    def conv(tp: str, tv: str) -> None:
        out[tp + "/W"] = sd[tv + ".weight"].transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)

    def bn(tp: str, tv: str) -> None:
        for tp_name, tv_name in (
            ("gamma", "weight"),
            ("beta", "bias"),
            ("mean/EMA", "running_mean"),
            ("variance/EMA", "running_var"),
        ):
            out[f"{tp}/bn/{tp_name}"] = sd[f"{tv}.{tv_name}"]

    conv("conv0", "conv1")
    bn("conv0", "bn1")
    for g, n in enumerate(R152_BLOCKS):
        for b in range(n):
            tp, tv = f"group{g}/block{b}", f"layer{g + 1}.{b}"
            for i in (1, 2, 3):
                conv(f"{tp}/conv{i}", f"{tv}.conv{i}")
                bn(f"{tp}/conv{i}", f"{tv}.bn{i}")
            if b == 0:
                conv(f"{tp}/convshortcut", f"{tv}.downsample.0")
                bn(f"{tp}/convshortcut", f"{tv}.downsample.1")
    out["linear/W"] = sd["fc.weight"].T.copy()  # (out, in) -> (in, out)
    out["linear/b"] = sd["fc.bias"]
    return out


def _tf_same(x: torch.Tensor, k: int, s: int, value: float = 0.0) -> torch.Tensor:
    def split(n: int) -> tuple[int, int]:
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = split(x.shape[-2]), split(x.shape[-1])
    return F.pad(x, (left, right, top, bottom), value=value)


def _tensorpack_forward(arrays: dict[str, np.ndarray], image: torch.Tensor) -> torch.Tensor:
    """The tensorpack graph of resnet_model.py written out op by op (NCHW, TF SAME padding, BN eps 1e-5)."""
    a = {k: torch.from_numpy(np.asarray(v)).float() for k, v in arrays.items()}

    def conv(x, name, stride):
        w = a[name + "/W"].permute(3, 2, 0, 1)
        return F.conv2d(_tf_same(x, w.shape[-1], stride), w, stride=stride)

    def bn(x, name, relu):
        p = {q: a[f"{name}/bn/{q}"].view(1, -1, 1, 1) for q in ("gamma", "beta", "mean/EMA", "variance/EMA")}
        y = (x - p["mean/EMA"]) / torch.sqrt(p["variance/EMA"] + 1e-5) * p["gamma"] + p["beta"]
        return y.relu() if relu else y

    x = bn(conv(image, "conv0", 2), "conv0", True)
    x = F.max_pool2d(_tf_same(x, 3, 2, -math.inf), 3, 2)
    for g, (n, stride) in enumerate(zip(R152_BLOCKS, (1, 2, 2, 2))):
        for b in range(n):
            s, p = (stride if b == 0 else 1), f"group{g}/block{b}"
            y = bn(conv(x, p + "/conv1", 1), p + "/conv1", True)
            y = bn(conv(y, p + "/conv2", s), p + "/conv2", True)
            y = bn(conv(y, p + "/conv3", 1), p + "/conv3", False)
            shortcut = bn(conv(x, p + "/convshortcut", s), p + "/convshortcut", False) if b == 0 else x
            x = (y + shortcut).relu()
    return x.mean(dim=(2, 3)) @ a["linear/W"] + a["linear/b"]


def test_robust_resnet152_from_tensorpack_npz(resnet152_tv, image64, tmp_path):
    arrays = _export_tensorpack(resnet152_tv)
    npz = tmp_path / "R152.npz"
    np.savez(npz, **arrays)

    clf = invkit.create_classifier("robust_resnet152", weights=str(npz), input_size=64)
    assert clf.config.channel_order == "BGR" and clf.config.robust and "CC-BY-NC" in clf.config.license
    got = clf.logits(image64)
    # tensorpack's input: BGR, image / 127.5 - 1 (inference-example.py), here from [0, 1] images
    expected = _tensorpack_forward(arrays, image64.flip(1) * 2 - 1)
    _close(got, expected)
    # torchvision's symmetric padding would not give the same network
    plain = resnet152_tv(image64.flip(1) * 2 - 1)
    assert not torch.allclose(plain, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))

    # an odd size exercises the other padding split (the network itself takes any size)
    x = torch.rand(1, 3, 71, 71, generator=torch.Generator().manual_seed(7)).flip(1) * 2 - 1
    _close(clf.network(x), _tensorpack_forward(arrays, x))


def test_tensorpack_denoise_and_foreign_npz_are_refused(tmp_path):
    npz = tmp_path / "R152-Denoise.npz"
    np.savez(
        npz,
        **{
            "conv0/W": np.zeros((7, 7, 3, 64), np.float32),
            "group0_denoise/embedding_theta/W": np.zeros((1, 1, 256, 128), np.float32),
        },
    )
    with pytest.raises(CheckpointError, match="Denoise"):
        invkit.create_classifier("robust_resnet152", weights=str(npz))
    other = tmp_path / "other.npz"
    np.savez(other, **{"dense/kernel": np.zeros((4, 4), np.float32)})
    with pytest.raises(CheckpointError, match="unexpected parameter 'dense/kernel'"):
        invkit.create_classifier("robust_resnet152", weights=str(other))


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "name",
    [
        "resnet152.tv_in1k",
        "resnet152.a1h_in1k",
        "inception_v3.tf_adv_in1k",
        "vit_b16.augreg2_in21k_ft_in1k",
        "robust_resnet50.linf_eps4",
        "robust_resnet152.linf_eps16",
    ],
)
def test_missing_pretrained_weights_name_the_file_and_the_flag(name, tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        invkit.create_classifier(name)
    msg = str(info.value)
    assert "\n" not in msg and "--weights PATH" in msg and name in msg
    if name.startswith(("resnet152.tv", "robust")):
        assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg


def test_missing_and_corrupt_weights_files(tmp_path):
    from invkit.cli._common import classifier_from_spec

    with pytest.raises(WeightsNotFoundError, match="--weights"):
        classifier_from_spec("resnet152.tv_in1k", weights=str(tmp_path / "nope.pth"))
    for suffix, data in (
        (".pth", b"PK\x03\x04 not really a zip"),
        (".safetensors", b"\x10\x00\x00\x00\x00\x00\x00"),
        (".npz", b"PK\x03\x04garbage"),
        (".ckpt", b"\x80\x02garbage"),
    ):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            invkit.create_classifier("robust_resnet50.l2_eps3", weights=str(bad))
        assert "\n" not in str(info.value)


def test_wrong_architecture_and_options_fail_in_one_line(resnet50_tv, tmp_path):
    pth = tmp_path / "r50.pth"
    torch.save(resnet50_tv.state_dict(), pth)
    with pytest.raises(CheckpointError, match="does not fit resnet152.tv_in1k") as info:
        invkit.create_classifier("resnet152.tv_in1k", weights=str(pth))
    assert "\n" not in str(info.value)
    with pytest.raises(InvkitError, match="resnet152.tv_in1k has no option 'colour'; its options are: input_size"):
        invkit.create_classifier("resnet152.tv_in1k", pretrained=False, colour=True)


def test_cli_lists_the_published_families():
    result = CliRunner().invoke(build_cli(), ["list", "classifiers"])
    assert result.exit_code == 0, result.output
    for family in ("resnet152", "robust_resnet152", "robust_resnet50", "inception_v3", "vit_b16"):
        assert family + "." in result.output
