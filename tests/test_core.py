"""The spine: registry, checkpoint I/O, data layer and the Classifier base."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

import invkit
from invkit.core.classifier import Classifier, ClassifierConfig
from invkit.core.registry import Registry
from invkit.data import load_dataset, take
from invkit.errors import (
    CheckpointError,
    DataError,
    InputError,
    InvkitError,
    UnknownNameError,
    UnsafeCheckpointError,
    WeightsNotFoundError,
)
from invkit.io import (
    load_safetensors,
    load_train_state,
    load_weights_file,
    read_checkpoint_config,
    save_checkpoint,
    save_train_state,
)


# ---------------------------------------------------------------------------------------------------- registry
def _registry() -> Registry:
    r = Registry("classifier")
    for name in ("resnet152.tv_in1k", "resnet152.tv2_in1k", "robust_resnet50.l2_eps3", "vit_b16.augreg"):
        r.register(name, lambda name=name, **kw: (name, kw), plugin="p")
    return r


def test_registry_bare_name_resolves_to_first_tag():
    r = _registry()
    assert r.resolve("resnet152").name == "resnet152.tv_in1k"
    assert r.create("resnet152.tv2_in1k", x=1) == ("resnet152.tv2_in1k", {"x": 1})


def test_registry_wildcards():
    r = _registry()
    assert r.names("resnet*") == ["resnet152.tv2_in1k", "resnet152.tv_in1k"]
    assert r.names("*.tv_in1k") == ["resnet152.tv_in1k"]
    assert r.names("robust_resnet50") == ["robust_resnet50.l2_eps3"]
    assert r.names("nothing*") == []


def test_registry_unknown_name_suggests_close_matches():
    r = _registry()
    with pytest.raises(UnknownNameError) as e:
        r.resolve("resnet15.tv_in1k")
    msg = str(e.value)
    assert "resnet152.tv_in1k" in msg and "invkit list classifiers" in msg and "\n" not in msg
    with pytest.raises(UnknownNameError, match="robust_resnet50"):
        r.resolve("robust_resnet5")


def test_registry_rejects_bad_names_and_cross_plugin_duplicates():
    r = _registry()
    for bad in ("a.b.c", "res*", "", " x"):
        with pytest.raises(InvkitError):
            r.register(bad, lambda: None, plugin="p")
    r.register("resnet152.tv_in1k", lambda: None, plugin="other")  # a conflict, an error only when used
    with pytest.raises(InvkitError, match="registered by several plugins"):
        r.resolve("resnet152.tv_in1k")


# ------------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_folder_round_trip(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "ck", kind="inverter", name="x.y", config={"a": 1}, state_dict=state, extra={"step": 7})
    doc = read_checkpoint_config(tmp_path / "ck", kind="inverter")
    assert doc["config"] == {"a": 1} and doc["step"] == 7 and doc["name"] == "x.y"
    loaded = load_safetensors(tmp_path / "ck" / "model.safetensors")
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not [p for p in (tmp_path / "ck").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(CheckpointError, match="not a classifier"):
        read_checkpoint_config(tmp_path / "ck", kind="classifier")


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint_config(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_checkpoint_config(tmp_path / "bad")
    torch.save({"w": torch.zeros(2)}, tmp_path / "pickled.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_safetensors(tmp_path / "pickled.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(CheckpointError, match="corrupt"):
        load_safetensors(tmp_path / "trunc.safetensors")


class _Evil:
    def __reduce__(self):
        return (print, ("this would have run code",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(UnsafeCheckpointError, match="refuses"):
        load_weights_file(path)
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pth")
    assert torch.equal(load_weights_file(tmp_path / "ok.pth")["w"], torch.ones(2))
    with pytest.raises(WeightsNotFoundError, match="--weights"):
        load_weights_file(tmp_path / "nope.pth")


def test_train_state_round_trip_keeps_optimizer_state(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.0, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"opt": opt.state_dict(), "step": 3, "rng": torch.get_rng_state(), "names": ["a", None, 1.5]}
    save_train_state(tmp_path / "ts.safetensors", state)
    back = load_train_state(tmp_path / "ts.safetensors")
    assert back["step"] == 3 and back["names"] == ["a", None, 1.5] and torch.equal(back["rng"], state["rng"])
    opt2 = torch.optim.Adam(model.parameters())
    opt2.load_state_dict(back["opt"])
    assert opt2.state_dict()["param_groups"][0]["betas"] == (0.0, 0.999)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


# ---------------------------------------------------------------------------------------------------- data
def test_embedded_default_data():
    test, train = load_dataset("default", "test"), load_dataset("default", "train")
    assert len(test) == 1000 and len(train) == 2000 and test.num_classes == 10
    x, y = test[0]
    assert x.shape == (1, 28, 28) and 0 <= x.min() and x.max() <= 1 and isinstance(y, int)
    images, labels = take(test, 20, seed=1, per_class=True)
    assert images.shape == (20, 1, 28, 28) and labels.bincount().tolist() == [2] * 10
    assert torch.equal(take(test, 5, seed=3)[0], take(test, 5, seed=3)[0])


def _write_folder(root, n=2, corrupt=False):
    from PIL import Image

    for c in ("cat", "dog"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 40, 10, 200)).save(root / "train" / c / f"{i}.png")
    if corrupt:
        (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")


def test_image_folder_and_tarball(tmp_path):
    import tarfile

    _write_folder(tmp_path / "set")
    ds = load_dataset(tmp_path / "set", "train")
    assert ds.classes == ["cat", "dog"] and len(ds) == 4 and ds[0][0].shape == (3, 8, 8)
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "set", arcname="set")
    ds2 = load_dataset(tmp_path / "set.tar.gz", "train")
    assert len(ds2) == 4 and torch.equal(ds2[3][0], ds[3][0])
    assert load_dataset(tmp_path / "set.tar.gz", "train").root == ds2.root  # unpacked once, reused


def test_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_dataset(tmp_path / "noimg")
    _write_folder(tmp_path / "bad", corrupt=True)
    ds = load_dataset(tmp_path / "bad", "train")
    with pytest.raises(DataError, match="broken.png"):
        [ds[i] for i in range(len(ds))]
    with pytest.raises(DataError, match="no 'test' split"):
        load_dataset(tmp_path / "bad", "test")


# ----------------------------------------------------------------------------------------------- classifier
def _tiny_classifier(channels=1, size=28, order="RGB"):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    net(torch.zeros(1, channels, size, size))
    cfg = ClassifierConfig(
        name="tiny.test",
        num_classes=10,
        input_size=(channels, size, size),
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        channel_order=order,
    )
    return Classifier(net, cfg)


def test_classifier_resizes_and_normalizes_itself():
    clf = _tiny_classifier()
    x = torch.rand(2, 1, 64, 64)
    expected = clf.network(
        (torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False) - 0.5)
        / 0.25
    )
    assert torch.allclose(clf.logits(x), expected, atol=1e-6)
    assert clf.logits(torch.rand(3, 3, 28, 28)).shape == (3, 10)  # RGB input to a gray network
    assert not any(p.requires_grad for p in clf.parameters())
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    clf.logits(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_classifier_bgr_flips_channels():
    clf = _tiny_classifier(channels=3, order="BGR")
    x = torch.rand(1, 3, 28, 28)
    assert torch.allclose(clf.preprocess(x), (x.flip(1) - 0.5) / 0.25)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(1, 28, 28), "add a batch"),
        (torch.rand(1, 4, 28, 28), "1 or 3 channels"),
        (torch.randint(0, 255, (1, 1, 28, 28), dtype=torch.uint8), "divide uint8"),
        (torch.rand(1, 1, 4, 4), "too small"),
        (torch.rand(2, 28, 28, 3), "channels"),
    ],
)
def test_classifier_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        _tiny_classifier().logits(bad)


def test_classifier_config_json_round_trip():
    cfg = _tiny_classifier().config.with_(label_names=tuple("abcdefghij"), extra={"eps": 0.3})
    back = ClassifierConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.extra == {"eps": 0.3}


def test_public_api_names_resolve():
    for name in invkit.__all__:
        assert hasattr(invkit, name), name
