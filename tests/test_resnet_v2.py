"""``resnet152v2.tf_in1k``: TF-slim's ``resnet_v2`` variables, written here with random values, load to the logits of
an independent op-by-op forward pass.

The reference (``_slim_forward``) reads the raw arrays as TF-slim lays them out (HWIO kernels, a 1x1 logits conv with
1001 outputs) and follows tensorflow/models ``research/slim/nets/resnet_v2.py`` and ``resnet_utils.py`` with plain
``torch.nn.functional`` ops: ``conv2d_same`` (explicit padding for strided convs, TF ``SAME`` arithmetic for the
others), the ``SAME`` stem max-pool, stride in each block's last unit with a 1x1-max-pool shortcut, pre-activation
BN + ReLU, post-norm, mean pooling, logits 1.. of 1001. The fast tests use a tiny depth and width; the full
ResNet-152-V2 is checked for its parameter count on the meta device (arithmetic in the test) and, marked slow,
end to end through the registry. Nothing here touches the network.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _cli import cli, one_line_error
from invkit_plugins.classifiers import tfslim_resnet_v2 as rv2
from invkit_plugins.classifiers.weights import load_network
from PIL import Image

import invkit
from invkit.errors import CheckpointError, WeightsNotFoundError
from invkit.io import load_weights_file

TINY_UNITS = (1, 2, 1, 2)  # a block of one unit is its own last unit (stride and projection in one unit)
TINY_DEPTHS = (4, 8, 8, 16)
SCOPE = "resnet_v2_152"


@pytest.fixture(autouse=True)
def _offline_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("INVKIT_OFFLINE", "1")


# --------------------------------------------------------------------------------------- a TF-slim checkpoint
def _slim_arrays(units, depths, seed: int, scope: str = SCOPE, residual: float = 1.0) -> dict[str, np.ndarray]:
    """Random variables with the names and layouts of a TF-slim ``resnet_v2`` checkpoint.

    ``residual`` scales each unit's last conv, so that 50 units keep the activations near 1 (in float32 the logits
    of a network whose activations grow to 1e7 differ from the float64 reference's in their 4th digit).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}

    def conv(name, k, cin, cout, bias, scale=1.0):
        std = scale * math.sqrt(2.0 / (k * k * cin))
        out[f"{name}/weights"] = (rng.standard_normal((k, k, cin, cout)) * std).astype(np.float32)
        if bias:
            out[f"{name}/biases"] = (rng.standard_normal(cout) * 0.1).astype(np.float32)

    def bn(name, c):
        out[f"{name}/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        out[f"{name}/beta"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        out[f"{name}/moving_mean"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        out[f"{name}/moving_variance"] = rng.uniform(0.5, 1.5, c).astype(np.float32)

    conv(f"{scope}/conv1", 7, 3, depths[0], bias=True)
    depth_in = depths[0]
    for b, (n, width) in enumerate(zip(units, depths)):
        for u in range(n):
            p = f"{scope}/block{b + 1}/unit_{u + 1}/bottleneck_v2"
            bn(f"{p}/preact", depth_in)
            if depth_in != 4 * width:
                conv(f"{p}/shortcut", 1, depth_in, 4 * width, bias=True)
            conv(f"{p}/conv1", 1, depth_in, width, bias=False)
            bn(f"{p}/conv1/BatchNorm", width)
            conv(f"{p}/conv2", 3, width, width, bias=False)
            bn(f"{p}/conv2/BatchNorm", width)
            conv(f"{p}/conv3", 1, width, 4 * width, bias=True, scale=residual)
            depth_in = 4 * width
    bn(f"{scope}/postnorm", depth_in)
    conv(f"{scope}/logits", 1, depth_in, 1001, bias=True)
    return out


# ------------------------------------------------------------------------------------ the reference forward
def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: total max((ceil(n / s) - 1) * s + k - n, 0), the extra one after."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _slim_forward(
    a: dict[str, np.ndarray], x: torch.Tensor, units, scope: str = SCOPE, symmetric_pool: bool = False
) -> torch.Tensor:
    """TF-slim ``resnet_v2(num_classes=1001, is_training=False)`` on ``x`` (N, 3, H, W) already in [-1, 1].

    ``symmetric_pool`` pads the stem max-pool by 1 on every side instead (torch's way), to show the test can tell.
    """
    t = {k: torch.from_numpy(v).double() for k, v in a.items()}

    def conv(h, name, stride=1, bias=True):
        w = t[f"{name}/weights"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        k = w.shape[-1]
        if stride == 1:  # slim.conv2d(padding='SAME')
            (top, bottom), (left, right) = _same_pad(h.shape[2], k, 1), _same_pad(h.shape[3], k, 1)
        else:  # resnet_utils.conv2d_same: explicit pad k - 1 split floor/ceil, then VALID
            top = left = (k - 1) // 2
            bottom = right = k - 1 - top
        h = F.conv2d(F.pad(h, (left, right, top, bottom)), w, stride=stride)
        return h + t[f"{name}/biases"].view(1, -1, 1, 1) if bias else h

    def bn_relu(h, name):
        mean, var = t[f"{name}/moving_mean"].view(1, -1, 1, 1), t[f"{name}/moving_variance"].view(1, -1, 1, 1)
        gamma, beta = t[f"{name}/gamma"].view(1, -1, 1, 1), t[f"{name}/beta"].view(1, -1, 1, 1)
        return torch.relu((h - mean) / torch.sqrt(var + 1e-5) * gamma + beta)

    h = conv(x.double(), f"{scope}/conv1", stride=2)
    (top, bottom), (left, right) = _same_pad(h.shape[2], 3, 2), _same_pad(h.shape[3], 3, 2)
    if symmetric_pool:
        top = bottom = left = right = 1
    h = F.max_pool2d(F.pad(h, (left, right, top, bottom), value=-math.inf), 3, 2)  # pool1, padding='SAME'
    for b, n in enumerate(units):
        for u in range(n):
            p = f"{scope}/block{b + 1}/unit_{u + 1}/bottleneck_v2"
            stride = 2 if (u == n - 1 and b < 3) else 1
            preact = bn_relu(h, f"{p}/preact")
            if f"{p}/shortcut/weights" in t:
                shortcut = conv(preact, f"{p}/shortcut", stride=stride)  # 1x1: no padding either way
            else:
                shortcut = F.max_pool2d(h, 1, stride)  # resnet_utils.subsample
            r = bn_relu(conv(preact, f"{p}/conv1", bias=False), f"{p}/conv1/BatchNorm")
            r = bn_relu(conv(r, f"{p}/conv2", stride=stride, bias=False), f"{p}/conv2/BatchNorm")
            h = shortcut + conv(r, f"{p}/conv3")
    h = bn_relu(h, f"{scope}/postnorm").mean(dim=(2, 3), keepdim=True)
    logits = conv(h, f"{scope}/logits")[:, :, 0, 0]
    return logits[:, 1:]  # slim's logit 0 is the background class


def _tiny_classifier(path, size: int) -> invkit.Classifier:
    """The tiny variant loaded from ``path`` the way ``resnet152v2.tf_in1k`` loads its file."""
    raw = load_weights_file(path)
    state = rv2.tfslim_to_torch(raw, str(path), TINY_UNITS, TINY_DEPTHS)
    net = load_network(lambda: rv2.build_network(TINY_UNITS, TINY_DEPTHS), state, str(path), "tiny")
    return invkit.Classifier(net, rv2.config(size))


# ------------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("size", [64, 67])
def test_tiny_slim_checkpoint_gives_the_reference_logits(tmp_path, suffix, size):
    arrays = _slim_arrays(TINY_UNITS, TINY_DEPTHS, seed=size)
    path = tmp_path / f"resnet_v2_tiny{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        from safetensors.numpy import save_file

        save_file(arrays, str(path))
    clf = _tiny_classifier(path, size)
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        got = clf.logits(images)  # at input_size == image size: preprocessing is x * 2 - 1 only
    want = _slim_forward(arrays, (images.double() - 0.5) * 2.0, TINY_UNITS)
    assert got.shape == (2, 1000)
    assert want.abs().max() > 1.0  # the random network is far from constant
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
    if size % 2 == 0:  # the SAME max-pool pads bottom/right only here: torch's symmetric padding would differ
        symmetric = _slim_forward(arrays, (images.double() - 0.5) * 2.0, TINY_UNITS, symmetric_pool=True)
        assert (symmetric - want).abs().max() > 1e-3


def test_stride_is_in_the_last_unit_with_a_subsampled_identity_shortcut():
    net = rv2.build_network(TINY_UNITS, (4, 8, 16, 32))  # every block widens, as in ResNet-152-V2
    for b, block in enumerate(net.blocks):
        strides = [unit.stride for unit in block]
        assert strides == [1] * (len(block) - 1) + [2 if b < 3 else 1]
        assert block[0].shortcut is not None  # the width changes in the first unit: a 1x1 projection
        assert all(unit.shortcut is None for unit in block[1:])
        assert block[-1].conv2.stride == ((2, 2) if b < 3 else (1, 1))


def test_resnet152v2_parameter_count_and_registry_entry():
    # ResNet-152-V2 by arithmetic: stem conv + bias, per unit preact BN (2 params per channel), 1x1 -> 3x3 -> 1x1
    # (BN after the first two, bias on the last), a 1x1 projection with bias in each block's first unit,
    # post-norm BN and a 2048 -> 1001 logits layer with bias.
    count, depth_in = 7 * 7 * 3 * 64 + 64, 64
    for n, w in zip((3, 8, 36, 3), (64, 128, 256, 512)):
        for _ in range(n):
            count += 2 * depth_in + depth_in * w + 2 * w + 9 * w * w + 2 * w + w * 4 * w + 4 * w
            if depth_in != 4 * w:
                count += depth_in * 4 * w + 4 * w
            depth_in = 4 * w
    count += 2 * 2048 + 2048 * 1001 + 1001
    assert rv2.parameter_count() == count == 60_238_953
    entry = invkit.get_registry("classifier").resolve("resnet152v2")
    assert entry.name == "resnet152v2.tf_in1k" and "ResNet-152-V2" in entry.description
    cfg = rv2.config()
    assert cfg.input_size == (3, 299, 299) and cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.num_classes == 1000
    assert cfg.interpolation == "bilinear" and cfg.channel_order == "RGB" and not cfg.robust
    assert cfg.extra["class_ids"][0] == "n01440764"  # logit 1 of slim's 1001 is the first sorted WordNet id


def _write(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_bad_files_fail_in_one_line(tmp_path):
    full = {f"{SCOPE}/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)}
    with pytest.raises(CheckpointError, match=r"variables are missing .*blocks\.0\.0") as info:
        invkit.create_classifier("resnet152v2", weights=_write(tmp_path, full))
    assert "\n" not in str(info.value)
    wrong = {f"{SCOPE}/conv1/weights": np.zeros((3, 3, 3, 64), np.float32)}
    with pytest.raises(CheckpointError, match=r"has shape \(3, 3, 3, 64\).*expected \(7, 7, 3, 64\)") as info:
        invkit.create_classifier("resnet152v2", weights=_write(tmp_path, wrong))
    assert "\n" not in str(info.value)
    v1 = {"resnet_v1_152/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)}
    with pytest.raises(CheckpointError, match="not resnet_v2_152's TF-slim ResNet-V2") as info:
        invkit.create_classifier("resnet152v2", weights=_write(tmp_path, v1))
    assert "\n" not in str(info.value)
    too_deep = _slim_arrays(TINY_UNITS, TINY_DEPTHS, seed=0)  # unit_2 of block 1 does not exist in the tiny net
    too_deep[f"{SCOPE}/block1/unit_2/bottleneck_v2/conv3/biases"] = np.zeros(16, np.float32)
    with pytest.raises(CheckpointError, match="unit_2"):
        rv2.tfslim_to_torch(too_deep, "x.npz", TINY_UNITS, TINY_DEPTHS)


def test_missing_export_says_how_to_make_it_and_the_cli_prints_one_line(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"tf\.train\.load_checkpoint.*--weights") as info:
        invkit.create_classifier("resnet152v2")
    assert "\n" not in str(info.value)
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    bad = _write(tmp_path, {"dense/kernel": np.zeros((4, 4), np.float32)})
    args = ["invert", "--classifier", "resnet152v2", "--weights", bad, "--inverter", "optim", str(tmp_path / "x.png")]
    one_line_error(cli([*args, "--out", str(tmp_path / "out")]), "dense/kernel", "resnet_v2_152")


def test_list_shows_the_new_name():
    result = cli(["list", "classifiers"])
    assert result.exit_code == 0, result.output
    assert "resnet152v2.tf_in1k" in result.output


@pytest.mark.slow
def test_full_resnet152v2_file_through_the_registry(tmp_path):
    arrays = _slim_arrays((3, 8, 36, 3), (64, 128, 256, 512), seed=1, residual=0.2)
    path = _write(tmp_path, arrays, "resnet_v2_152.npz")
    clf = invkit.create_classifier("resnet152v2", weights=path, input_size=64)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = clf.logits(images)
    want = _slim_forward(arrays, (images.double() - 0.5) * 2.0, (3, 8, 36, 3))
    assert got.shape == (1, 1000) and want.abs().max() > 1.0
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
