"""The data layer: decoded-image cache, grey/colour folders, pixel decoding, class names, npz batches."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invkit.data as data
import invkit.data.datasets as data_sets
from invkit.data import (
    CacheWarning,
    decode_image,
    for_classifier,
    load_dataset,
    load_npz_folder,
    match_classes,
)
from invkit.data.classes import _Relabeled
from invkit.data.images import _to_uint8
from invkit.errors import DataError


def _write(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _folder(root: Path, classes=("cat", "dog"), per_class: int = 3, colour: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            shape = (8, 8, 3) if colour else (8, 8)
            _write(root / c / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return root


# ------------------------------------------------------------------------------------------------ the cache
def test_cache_is_a_memory_mapped_uint8_npy_with_the_decoded_pixels(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d"), "train")
    cached = ds.materialize()
    assert cached.images.dtype == torch.uint8 and tuple(cached.images.shape) == (6, 3, 8, 8)
    files = list((tmp_path / "cache" / "decoded").glob("*.npy"))
    assert len(files) == 1 and isinstance(np.load(files[0], mmap_mode="r"), np.memmap)
    for i in range(len(ds)):
        assert torch.equal(cached.images[i].float() / 255, ds[i][0])
    assert cached.labels() == [0, 0, 0, 1, 1, 1] and cached.classes == ["cat", "dog"]


def test_a_second_materialize_decodes_nothing(tmp_path, monkeypatch):
    root = _folder(tmp_path / "d")
    first = load_dataset(root, "train").materialize().images.clone()

    def no_decoding(*a, **k):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(data_sets, "decode_image", no_decoding)  # looked up in invkit.data.datasets
    assert torch.equal(load_dataset(root, "train").materialize().images, first)


@pytest.mark.parametrize("change", ["same size new pixels", "file added", "file removed", "file renamed"])
def test_any_changed_file_invalidates_the_cache(tmp_path, change):
    root = _folder(tmp_path / "d")
    old = load_dataset(root, "train").materialize()
    target = root / "cat" / "1.png"
    if change == "same size new pixels":  # PNG of constant size: only the pixels and the mtime change
        size = target.stat().st_size
        new = np.asarray(Image.open(target))[::-1].copy()
        _write(target, new)
        assert target.stat().st_size == size
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # coarse clocks: make the mtime differ
    elif change == "file added":
        _write(root / "cat" / "9.png", np.zeros((8, 8, 3), np.uint8))
    elif change == "file removed":
        target.unlink()
    else:
        target.rename(root / "cat" / "7.png")
    ds = load_dataset(root, "train")
    new = ds.materialize()
    expected = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(new.images.float() / 255, expected)
    if change == "file renamed":  # same pixels, other order: still a new cache, matching the new listing
        assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 2
    else:
        assert not torch.equal(new.images, old.images) or len(new) != len(old)


def test_unwritable_cache_warns_and_decodes_into_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("INVKIT_CACHE", str(blocker))
    ds = load_dataset(_folder(tmp_path / "d"), "train")
    with pytest.warns(CacheWarning, match="the invkit cache .* cannot be written"):
        cached = ds.materialize()
    assert torch.equal(cached.images[2].float() / 255, ds[2][0])
    assert blocker.read_text().startswith("a file")  # nothing overwritten


def test_materialize_resizes_to_the_asked_size(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d"), "train")
    assert tuple(ds.materialize(4).images.shape) == (6, 3, 4, 4)
    assert tuple(ds.materialize().images.shape) == (6, 3, 8, 8)  # another key: both caches kept


# ------------------------------------------------------------------------------------------- grey and colour
@pytest.mark.parametrize("colour_file", ["a/0.png", "b/2.png", "b/1.jpg"])
def test_a_split_with_any_colour_file_is_rgb_whatever_comes_first(tmp_path, colour_file):
    root = _folder(tmp_path / "d", classes=("a", "b"), colour=False)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    _write(root / colour_file, rgb)
    ds = load_dataset(root, "train")
    assert ds.mode == "RGB"
    cached = ds.materialize()
    assert cached.images.shape[1] == 3
    grey_index = next(i for i, (p, _) in enumerate(ds.samples) if p.name == "1.png" and p.parent.name == "a")
    x = cached.images[grey_index]
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # a grey file is replicated to RGB


def test_an_all_grey_split_is_one_channel(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d", colour=False), "train")
    assert ds.mode == "L" and ds[0][0].shape == (1, 8, 8) and ds.materialize().images.shape[1] == 1


# ----------------------------------------------------------------------------------------------- decoding
def _digit() -> np.ndarray:
    return (np.arange(28 * 28, dtype=np.uint32).reshape(28, 28) * 7 % 256).astype(np.uint8)


@pytest.mark.parametrize("kind", ["png I;16", "I (older Pillow's 16-bit PNG mode)", "tiff I;16", "png LA"])
def test_high_bit_depth_greyscale_reads_like_its_8_bit_copy(tmp_path, kind):
    a8 = _digit()
    _write(tmp_path / "a8.png", a8)
    if kind == "png I;16":
        path = _write(tmp_path / "a16.png", a8.astype(np.uint16) * 257)
    elif kind == "I (older Pillow's 16-bit PNG mode)":
        path = _write(tmp_path / "a16.png", a8.astype(np.uint16) * 257)
        with Image.open(path) as im:
            got = _to_uint8(im.convert("I"), "L")[..., 0].astype(int)
        assert np.abs(got - a8.astype(int)).max() <= 1
        return
    elif kind == "tiff I;16":
        path = _write(tmp_path / "a16.tif", a8.astype(np.uint16) * 257)
    else:
        path = tmp_path / "la.png"
        Image.fromarray(np.stack([a8, np.full_like(a8, 255)], -1), mode="LA").save(path)
    ref = decode_image(tmp_path / "a8.png", "L").astype(int)
    got = decode_image(path, "L").astype(int)
    assert got.shape == ref.shape == (1, 28, 28)
    assert np.abs(got - ref).max() <= 1  # within 1/255, not binarised
    assert len(np.unique(got)) > 100


def test_a_16_bit_digit_in_a_folder_is_not_binarised(tmp_path):
    a8 = _digit()
    _write(tmp_path / "d" / "3" / "x.png", a8.astype(np.uint16) * 257)
    x, _ = load_dataset(tmp_path / "d", "train")[0]
    assert torch.allclose(x[0], torch.from_numpy(a8).float() / 255, atol=1 / 255 + 1e-6)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg = _write(tmp_path / "ok.jpg", rgb)
    files = {
        "text named png": tmp_path / "notes.png",
        "truncated jpeg": tmp_path / "cut.jpg",
        "empty file": tmp_path / "empty.png",
        "png header only": tmp_path / "header.png",
    }
    files["text named png"].write_text("this is not an image\n")
    files["truncated jpeg"].write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    files["empty file"].write_bytes(b"")
    png = _write(tmp_path / "ok.png", rgb)
    files["png header only"].write_bytes(png.read_bytes()[:60])
    return files


@pytest.mark.parametrize("kind", ["text named png", "truncated jpeg", "empty file", "png header only"])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, kind):
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(DataError) as info:
        decode_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "delete or replace" in message


def test_a_decompression_bomb_is_refused_with_one_line(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.png", np.zeros((64, 64), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: a "bomb" (above the limit, below 2x)
    with pytest.raises(DataError, match="too large to decode safely") as info:
        decode_image(path)
    assert str(path) in str(info.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # above 2x the limit: Pillow's own error
    with pytest.raises(DataError, match="too large"):
        decode_image(path)


@pytest.mark.parametrize("kind", ["text named png", "truncated jpeg"])
def test_a_bad_file_in_a_folder_is_named_when_the_cache_is_built(tmp_path, kind):
    root = _folder(tmp_path / "d", classes=("a", "b"))
    bad = _bad_files(tmp_path)[kind]
    target = root / "b" / ("z" + bad.suffix)
    target.write_bytes(bad.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="z" + bad.suffix):
            load_dataset(root, "train").materialize()
    assert not list((tmp_path / "cache" / "decoded").glob("*.npy"))  # no half-written cache left behind


# -------------------------------------------------------------------------------------------- class names
def test_fewer_classes_are_mapped_by_name(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d", classes=("dog", "zebra")), "train")
    mapped = match_classes(ds, ["cat", "dog", "emu", "zebra"])
    assert mapped.labels() == [1, 1, 1, 3, 3, 3]
    assert [mapped[i][1] for i in range(len(mapped))] == mapped.labels()
    assert mapped.classes == ["cat", "dog", "emu", "zebra"]
    assert mapped.materialize().labels() == [1, 1, 1, 3, 3, 3]  # the cache keeps the mapped labels


def test_same_classes_in_another_order_are_mapped_not_taken_by_position(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=1), "train")
    mapped = match_classes(ds, ["c", "a", "b"])
    assert mapped.labels() == [1, 2, 0]
    assert match_classes(ds, ["a", "b", "c"]) is ds  # the same order: unchanged


def test_unknown_classes_are_refused_with_one_line(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d", classes=("cat", "gnu")), "train")
    with pytest.raises(DataError, match="1 of the 2 classes .*'gnu'.* never matched by folder order") as info:
        match_classes(ds, ["cat", "dog"], owner="classifier x")
    assert "\n" not in str(info.value)


def test_without_recorded_names_only_the_class_count_is_checked(tmp_path):
    ds = load_dataset(_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=1), "train")
    assert match_classes(ds, None, 3) is ds
    with pytest.raises(DataError, match="has 3 classes but .* 2 outputs and records no class names"):
        match_classes(ds, None, 2)


def test_tensor_and_other_data_sets_are_mapped_too():
    tensor_ds = data.TensorImageDataset(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]), ["y", "x"]
    )
    assert match_classes(tensor_ds, ["x", "y"]).labels() == [1, 0, 0, 1]
    wrapped = _Relabeled(tensor_ds, [0, 1], ["y", "x"])  # not a Tensor/Folder data set: wrapped
    assert match_classes(wrapped, ["w", "x", "y"]).labels() == [2, 1, 1, 2]


def test_for_classifier_uses_label_names_and_class_ids(tmp_path):
    import invkit

    ds = load_dataset(_folder(tmp_path / "d", classes=("n002", "n001"), per_class=1), "train")
    by_id = invkit.create_classifier(
        "smallcnn.base",
        pretrained=False,
        channels=3,
        num_classes=3,
        input_size=8,
        label_names=["goldfish", "tench", "shark"],
        extra={"class_ids": ["n000", "n001", "n002"]},
    )
    assert for_classifier(ds, by_id).labels() == [1, 2]  # n001 -> tench (1), n002 -> shark (2)
    by_name = invkit.create_classifier(
        "smallcnn.base", pretrained=False, channels=3, num_classes=2, input_size=8, label_names=["x", "y"]
    )
    with pytest.raises(DataError, match="classifier smallcnn.base"):
        for_classifier(ds, by_name)


@pytest.mark.parametrize("command", ["bench", "probe", "train"])
def test_commands_refuse_data_of_other_classes_with_one_line(tmp_path, command):
    from click.testing import CliRunner

    import invkit
    from invkit.cli import build_cli

    clf_dir = tmp_path / "clf"
    invkit.create_classifier(
        "smallcnn.base", pretrained=False, channels=3, num_classes=2, input_size=8, label_names=["cat", "dog"]
    ).save(clf_dir)
    for split in ("train", "test"):
        _folder(tmp_path / "d" / split, classes=("cat", "owl"))
    common = ["--classifier", str(clf_dir), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "out")]
    args = {
        "bench": ["bench", "--inverter", "optim", "-n", "2"],
        "probe": ["probe", "iterative-stability", "--inverter", "optim"],
        "train": ["train", "--inverter", "dosovitskiy_brox.mnist", "--steps", "1", "--device", "cpu"],
    }[command]
    result = CliRunner().invoke(build_cli(), args + common)
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert "'owl'" in lines[-1] and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------- npz batches
def _npz_batch(path: Path, n: int, side: int, first_label: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)  # HWC, as a reader would see them
    planar = images.transpose(0, 3, 1, 2).reshape(n, 3 * side * side)  # RRR..GGG..BBB rows
    labels = (np.arange(n) % 3 + first_label).astype(np.int64)
    np.savez(path, data=planar, labels=labels, mean=np.zeros(3 * side * side))
    return images, labels


def test_npz_batches_read_channel_planar_with_0_based_labels(tmp_path):
    root = tmp_path / "imagenet64"
    root.mkdir()
    imgs, labs = [], []
    for k in (1, 2, 10):  # batch 10 must come after batch 2
        i, lab = _npz_batch(root / f"train_data_batch_{k}.npz", 5, 8, 1, seed=k)
        imgs.append(i)
        labs.append(lab)
    _npz_batch(root / "val_data.npz", 4, 8, 1, seed=99)
    ds = load_dataset(root, "train")
    assert len(ds) == 15 and ds.classes == ["1", "2", "3"]
    expected = np.concatenate(imgs).transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images.numpy(), expected)
    assert ds.labels() == (np.concatenate(labs) - 1).tolist()
    x, y = ds[7]
    assert x.shape == (3, 8, 8) and torch.equal(x, torch.from_numpy(expected[7]).float() / 255)
    assert len(load_dataset(root, "val")) == 4 and len(load_dataset(root / "val_data.npz", "val")) == 4
    assert list((tmp_path / "cache" / "decoded").glob("*.npy"))  # copied once into the cache


def test_npz_class_names_come_from_map_clsloc_and_map_to_a_classifier(tmp_path):
    root = tmp_path / "in64"
    root.mkdir()
    _npz_batch(root / "val_data.npz", 6, 8, 1, seed=0)  # labels 1, 2, 3
    (root / "map_clsloc.txt").write_text("n03 1 owl\nn01 2 cat\nn02 3 dog\n")
    ds = load_npz_folder(root, "val")
    assert ds.classes == ["n03", "n01", "n02"]
    mapped = match_classes(ds, ["cat", "dog", "owl"], ids=["n01", "n02", "n03"])  # sorted-wnid classifier
    assert mapped.labels() == [2, 0, 1, 2, 0, 1]


@pytest.mark.parametrize("problem", ["pickled objects", "wrong width", "no labels", "zero label", "not a zip"])
def test_bad_npz_batches_give_one_line(tmp_path, problem):
    root = tmp_path / "bad"
    root.mkdir()
    path = root / "val_data.npz"
    data_ok = np.zeros((2, 3 * 8 * 8), np.uint8)
    if problem == "pickled objects":
        np.savez(path, data=np.array([{"x": 1}, None], dtype=object), labels=np.array([1, 2]))
    elif problem == "wrong width":
        np.savez(path, data=np.zeros((2, 100), np.uint8), labels=np.array([1, 2]))
    elif problem == "no labels":
        np.savez(path, data=data_ok)
    elif problem == "zero label":
        np.savez(path, data=data_ok, labels=np.array([0, 1]))
    else:
        path.write_text("not an npz")
    with pytest.raises(DataError) as info:
        load_dataset(root, "val")
    assert "val_data.npz" in str(info.value) and "\n" not in str(info.value)


def test_npz_folder_without_the_split_is_refused(tmp_path):
    root = tmp_path / "only_val"
    root.mkdir()
    _npz_batch(root / "val_data.npz", 2, 8, 1, seed=0)
    with pytest.raises(DataError, match="train_data_batch_"):
        load_dataset(root, "train")


def test_mnist_from_torchvision_uses_digit_class_names(tmp_path, monkeypatch):
    from torchvision import datasets

    class FakeMNIST:
        def __init__(self, root, train, download):
            self.data = torch.zeros(3, 28, 28, dtype=torch.uint8)
            self.targets = torch.tensor([0, 5, 9])
            self.classes = [f"{i} - x" for i in range(10)]

    monkeypatch.setattr(datasets, "MNIST", FakeMNIST)
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert ds.classes == [str(i) for i in range(10)] == load_dataset("default", "test").classes
