"""Issue 23: user data read right or refused, whoever reads it first, in bounded memory.

Kinds, each fixed where it is owned and tested on the issue's members and further ones:

* 5 — concurrent first use of a cache (``invkit.data.cache``: ``cache_lock``, ``_build_cached``; ``archives``):
  two processes on one new archive, two threads on one new folder's decoded cache, on one new npz folder.
* 6 — images read wrong with exit 0 (``invkit.data.images.decode_image``, the one place; ``datasets``: class
  folders, links, per-image sizes; ``classes.match_classes``: names of two classes).
* 15 — memory that grows with the number of files (``invkit invert``'s decode loop, ``stack_images`` for bench's
  originals and distractors, ``materialize``).
* 13 (part) — a full disk while unpacking is not a corrupt archive (``archives._unpack_error``).
* 11 (npz part) — npz headers and labels are checked before invkit allocates what they claim (``data.npz``).
* 12 (part) — an empty ``INVKIT_CACHE`` (``cache.cache_dir``); class folders whose names are not UTF-8.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import weakref
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invkit.cli.invert as invert_cmd
import invkit.data.datasets as data_sets
import invkit.data.npz as npz_mod
from invkit.data import (
    MAX_CLASSES,
    TensorImageDataset,
    cache_dir,
    decode_image,
    image_size,
    load_dataset,
    load_image,
    load_npz_folder,
    match_classes,
    take,
)
from invkit.errors import DataError, InputError, OutputError

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "invkit" / "assets" / "demo"
CLF = str(DEMO / "classifier_standard")  # 28x28 grey digits, classes "0" ... "9"
DBROX = str(DEMO / "dbrox_standard")  # deterministic inverter at 28x28... (its own resolution)
BIGGAN = str(DEMO / "biggan_standard")  # 32x32


def _png(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _folder(root: Path, classes=("a", "b"), per_class: int = 3, side: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            _png(root / c / f"{i}.png", rng.integers(0, 256, (side, side), dtype=np.uint8))
    return root


def _mixed_digits(root: Path, per_class: int = 2) -> Path:
    """Digit folders "0" ... "9" of the embedded test split, alternately 28x28 and 40x40 (upscaled)."""
    images, labels = take(load_dataset("default", "test"), 10 * per_class, seed=0, per_class=True)
    for k, (x, y) in enumerate(zip(images, labels)):
        im = Image.fromarray((x[0] * 255).round().byte().numpy(), "L")
        if k % 2:
            im = im.resize((40, 40), Image.BILINEAR)
        path = root / str(int(y)) / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path)
    return root


def _leftovers(folder: Path) -> list[str]:
    """Temporary names a build or an unpack leaves when it goes wrong."""
    return [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".tmp.npy", ".partial"))]


# ============================================================================ kind 5: concurrent first use
_RACER = """
import sys, time, hashlib
from pathlib import Path
from invkit.data import load_dataset
ready, go, archive = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready.touch()
while not go.exists():
    time.sleep(0.002)
ds = load_dataset(archive, "train")
images = ds.materialize().images.numpy()
print(ds.root, len(ds), hashlib.sha256(images.tobytes()).hexdigest())
"""


def test_two_processes_on_the_same_new_tarball_unpack_and_decode_it_once(tmp_path):
    """Members: a shared unpack of a new .tar.gz (listed) and the same new folder's decoded cache (listed), raced
    by two real processes started at the same moment. Both get the complete folder and the same pixels."""
    src = _folder(tmp_path / "src" / "d", classes=[f"c{k}" for k in range(4)], per_class=100, side=4)
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="d")
    env = {**os.environ, "INVKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path / f"ready{k}"), str(go), str(archive)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{k}").exists() for k in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    lines = {out.strip() for out, _ in outs}
    assert len(lines) == 1, lines  # the same folder, size and pixels in both
    folder, count, _ = lines.pop().split()
    assert int(count) == 400
    unpacked = tmp_path / "cache" / "unpacked"
    complete = [d for d in unpacked.iterdir() if d.is_dir() and (d / ".complete").exists()]
    assert len(complete) == 1 and sum(1 for _ in complete[0].rglob("*.png")) == 400
    assert Path(folder).is_relative_to(complete[0])
    assert not _leftovers(tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 1


def test_two_threads_building_the_same_new_decoded_cache_decode_it_once(tmp_path, monkeypatch):
    """Member: the decoded-image cache of one new folder (listed), first used by two threads at once. The second
    waits for the first, then opens what it built: every image is decoded once, both see the same pixels."""
    root = _folder(tmp_path / "d", per_class=10)
    real = data_sets.decode_image
    decoded: list[Path] = []

    def slow_decode(path, *args, **kwargs):
        decoded.append(path)
        time.sleep(0.005)  # keeps the first builder busy while the second arrives
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_sets, "decode_image", slow_decode)
    barrier, results, errors = threading.Barrier(2), [None, None], []

    def build(k: int) -> None:
        ds = load_dataset(root, "train")
        barrier.wait()
        try:
            results[k] = ds.materialize().images.clone()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ds = load_dataset(root, "train")
    expected = torch.stack([torch.from_numpy(real(p, "L")) for p, _ in ds.samples])
    assert torch.equal(results[0], expected) and torch.equal(results[1], expected)
    assert len(decoded) == len(ds) == 20  # once, not once per thread
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 1 and not _leftovers(tmp_path / "cache")


def test_two_threads_on_the_same_new_npz_folder_get_complete_images_and_labels(tmp_path, monkeypatch):
    """Member (not listed): the npz cache is two files, images and labels; a thread that finds the images must
    find their labels, and the batches are copied once."""
    root = tmp_path / "in8"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (30, 3 * 8 * 8), dtype=np.uint8)
    np.savez(root / "val_data.npz", data=data, labels=np.arange(30) % 5 + 1)
    real, copies = npz_mod._copy_data, []

    def slow_copy(path, out):
        copies.append(path)
        time.sleep(0.2)
        real(path, out)

    monkeypatch.setattr(npz_mod, "_copy_data", slow_copy)
    barrier, results, errors = threading.Barrier(2), [None, None], []

    def load(k: int) -> None:
        barrier.wait()
        try:
            ds = load_npz_folder(root, "val")
            results[k] = (ds.images.clone(), ds.labels())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    expected = torch.from_numpy(data.reshape(30, 3, 8, 8))
    for images, labels in results:
        assert torch.equal(images, expected) and labels == (np.arange(30) % 5).tolist()
    assert len(copies) == 1


def test_a_half_unpacked_folder_of_a_killed_run_is_replaced_not_used(tmp_path):
    """Member (not listed): what a killed unpack leaves (a temporary folder, a folder without the completion
    mark as invkit 0.1 left it) is never taken for the finished folder."""
    src = _folder(tmp_path / "src" / "d", per_class=5)
    archive = tmp_path / "d.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="d")
    first = load_dataset(archive, "train").root.parent  # <cache>/unpacked/d-<key>
    (first / ".complete").unlink()
    for f in list((first / "d" / "b").iterdir())[:3]:  # an interrupted extraction: files missing
        f.unlink()
    stale = first.with_name(first.name + ".x1y2.partial")
    stale.mkdir()
    ds = load_dataset(archive, "train")
    assert len(ds) == 10 and (first / ".complete").exists() and not stale.exists()


def test_a_cache_file_half_written_by_a_killed_build_is_removed_not_used(tmp_path):
    """Member (not listed): a decoded-cache build killed midway leaves its temporary file; the next build of the
    same entry removes it and writes the array whole."""
    root = _folder(tmp_path / "d")
    ds = load_dataset(root, "train")
    path = ds._cache_path(ds.fingerprint(), None)
    path.parent.mkdir(parents=True)
    stale = path.parent / f".{path.stem}.k1ll.tmp.npy"
    stale.write_bytes(b"\x93NUMPY half")
    images = ds.materialize().images
    assert not stale.exists() and path.exists() and images.shape == (6, 1, 8, 8)


# ============================================================================ kind 6: images read wrong, exit 0
def _float_tiff(path: Path, array: np.ndarray) -> Path:
    return _png(path, array.astype(np.float32))


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_float_tiff_with_a_nan_or_inf_pixel_is_refused_naming_the_file(tmp_path, bad):
    """Members: one NaN pixel (listed), one infinite pixel (not listed). Both used to read as an all-black image."""
    a = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    a[3, 4] = float(bad)
    path = _float_tiff(tmp_path / "x.tif", a)
    with pytest.raises(DataError, match="1 NaN or infinite pixel") as info:
        decode_image(path, "L")
    assert str(path) in str(info.value)
    root = tmp_path / "d"
    _float_tiff(root / "a" / "x.tif", a)
    _png(root / "b" / "y.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="x.tif"):  # the same refusal when a folder is decoded into the cache
        load_dataset(root, "train").materialize()


def test_a_float_tiff_with_a_pixel_at_1_0001_reads_as_its_0_1_image(tmp_path):
    """Member (listed): a [0, 1] float image with one pixel at 1.0001 (rounding) used to read as all black."""
    a = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    a[0, 0] = 1.0001
    got = decode_image(_float_tiff(tmp_path / "x.tif", a), "L")[0]
    assert np.array_equal(got, np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8))
    assert got.max() == 255 and got.mean() > 100


@pytest.mark.parametrize(
    "values, text",
    [((0.0, 3.7), "from 0 to 3.7"), ((-0.5, 0.5), "from -0.5 to 0.5"), ((0.0, 300.5), "from 0 to 300.5")],
    ids=["between ranges", "negative", "above 255"],
)
def test_a_float_tiff_of_neither_range_is_refused(tmp_path, values, text):
    """Members (not listed): float images whose range is neither [0, 1] nor whole numbers 0-255 are refused with
    the range found, instead of being clipped or scaled by a guess."""
    a = np.linspace(*values, 64, dtype=np.float32).reshape(8, 8)
    path = _float_tiff(tmp_path / "x.tif", a)
    with pytest.raises(DataError, match=text) as info:
        decode_image(path, "L")
    assert str(path) in str(info.value) and "scale it to [0, 1]" in str(info.value)


def test_a_float_tiff_of_whole_numbers_0_255_reads_as_8_bit(tmp_path):
    """Member (not listed, what stays): float images holding 8-bit values read as those values."""
    a = (np.arange(64).reshape(8, 8) * 4).astype(np.float32)
    assert np.array_equal(decode_image(_float_tiff(tmp_path / "x.tif", a), "L")[0], a.astype(np.uint8))


def test_a_32_bit_integer_tiff_beyond_16_bits_is_refused(tmp_path):
    """Member (not listed): 32-bit integer pixels above 65535 used to be clipped to white without a word."""
    path = _png(tmp_path / "x.tif", (np.arange(64, dtype=np.int32).reshape(8, 8) * 5000))
    with pytest.raises(DataError, match="beyond 16 bits") as info:
        decode_image(path, "L")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied_by_every_reader(tmp_path, orientation, turn):
    """Member (listed): a phone photo with an EXIF orientation used to be read lying on its side. Applied in
    decode_image, so folders, their cache and invkit invert see the photo upright; image_size says so too."""
    a = (np.arange(4 * 6).reshape(4, 6) * 10).astype(np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    root = tmp_path / "d"
    path = root / "a" / "photo.png"
    path.parent.mkdir(parents=True)
    im.save(path, exif=exif)
    upright = np.rot90(a, turn)
    assert np.array_equal(decode_image(path, "L")[0], upright)
    assert image_size(path) == upright.shape
    ds = load_dataset(root, "train")
    assert torch.equal(ds[0][0][0], torch.from_numpy(upright.copy()).float() / 255)
    assert np.array_equal(ds.materialize().images[0, 0].numpy(), upright)


def test_train_classifier_on_mixed_sizes_refuses_without_input_size_and_resizes_each_with_it(tmp_path):
    """Member (listed): train-classifier squeezed every image of a folder of mixed sizes through the first file's
    size. Without --input-size it now names two files of different sizes; with it, each image is resized on its
    own (not through the first one's size)."""
    root = _mixed_digits(tmp_path / "mixed", per_class=1)
    base = ["train-classifier", "--data", str(root), "--steps", "1", "--batch-size", "4", "--eval-samples", "2"]
    error = one_line_error(cli([*base, "--out", str(tmp_path / "a")]), "mixes image sizes", "--input-size")
    assert "is 28x28" in error and "is 40x40" in error and str(root) in error
    assert cli([*base, "--input-size", "16", "--out", str(tmp_path / "b")]).exit_code == 0
    ds = load_dataset(root, "train")
    cached = ds.materialize(16).images
    for i, (p, _) in enumerate(ds.samples):
        assert torch.equal(cached[i], torch.from_numpy(decode_image(p, "L", 16)))


def test_train_on_mixed_sizes_trains_on_each_image_resized(tmp_path):
    """Member (listed): invkit train on a folder of mixed sizes ended in a traceback (stacking held-out images)."""
    _toy_inverter.register()
    root = _mixed_digits(tmp_path / "mixed")
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--data", str(root)]
    result = cli([*args, "--steps", "1", "--batch-size", "4", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoints" / "step_000001").is_dir()


@pytest.mark.parametrize("probe", ["logit-shift", "ood", "class-spread", "iterative-stability"])
def test_probes_on_mixed_sizes_resize_each_image(tmp_path, probe):
    """Member (listed): invkit probe on a folder of mixed sizes ended in a traceback. Each probe's way of drawing
    images (load_images, take, stack_images; the OOD data too) resizes each to the inverter's resolution."""
    root = _mixed_digits(tmp_path / "mixed", per_class=3)
    args = ["probe", probe, "--classifier", CLF, "--checkpoint", DBROX, "--data", str(root), "-n", "10"]
    extra = {"ood": ["--ood-data", str(root)], "iterative-stability": ["--option", "images=10"]}
    result = cli([*args, *extra.get(probe, []), "--out", str(tmp_path / "p"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / probe / "results.json").exists()


def test_take_resizes_each_image_or_refuses_mixed_sizes_naming_two_files(tmp_path):
    """Member (not listed): the library's take squeezed nothing but stacked mixed sizes into a RuntimeError."""
    root = _mixed_digits(tmp_path / "mixed", per_class=1)
    ds = load_dataset(root, "train")
    with pytest.raises(DataError, match="mixes image sizes") as info:
        take(ds, None)
    assert str(root) in str(info.value) and "28x28" in str(info.value) and "40x40" in str(info.value)
    images, labels = take(ds, None, size=16)
    assert images.shape == (10, 1, 16, 16) and labels.tolist() == ds.labels()
    for i, (p, _) in enumerate(ds.samples):  # each one resized from its own pixels
        assert torch.allclose(images[i], data_sets.resize(load_image(p, "L")[None], 16)[0])


def test_bench_on_mixed_sizes_is_refused_naming_two_files(tmp_path):
    """Member (not listed): bench squeezed a folder of mixed sizes through the first image's size; it compares
    pixels at the data's own size, which such a folder does not have, so it refuses."""
    root = _mixed_digits(tmp_path / "mixed")
    args = ["bench", "--classifier", CLF, "--inverter", "optim", "--data", str(root), "-n", "10", "--id-k", "2"]
    one_line_error(cli([*args, "--out", str(tmp_path / "b"), "--device", "cpu"]), "mixes image sizes", str(root))


def _two_classes(root: Path) -> Path:
    return _folder(root, classes=("a", "b"), per_class=3)


def test_a_symlink_loop_in_a_data_folder_is_refused_naming_the_link(tmp_path):
    """Members: a class folder linking back to the data folder (listed) or to a folder above it (not listed) used
    to become an extra class holding a second copy of every image."""
    root = _two_classes(tmp_path / "d")
    (root / "all").symlink_to(root)
    with pytest.raises(DataError, match="holds the data folder itself") as info:
        load_dataset(root, "train")
    assert str(root / "all") in str(info.value)
    (root / "all").unlink()
    (root / "up").symlink_to(tmp_path)
    with pytest.raises(DataError, match=r"'.*/d/up' is a link"):
        load_dataset(root, "train")


def test_a_class_folder_linking_to_another_is_refused(tmp_path):
    """Member (not listed): two class folders that are one folder: every image under two labels."""
    root = _two_classes(tmp_path / "d")
    (root / "b2").symlink_to(root / "b")
    with pytest.raises(DataError, match="are the same folder") as info:
        load_dataset(root, "train")
    assert str(root / "b") in str(info.value) and str(root / "b2") in str(info.value)


def test_an_image_linked_into_two_classes_is_refused(tmp_path):
    """Member (not listed): a file link puts one image in two classes."""
    root = _two_classes(tmp_path / "d")
    (root / "b" / "9.png").symlink_to(root / "a" / "0.png")
    with pytest.raises(DataError, match="same file") as info:
        load_dataset(root, "train")
    assert str(root / "b" / "9.png") in str(info.value) and str(root / "a" / "0.png") in str(info.value)


def test_links_that_are_not_ambiguous_still_work(tmp_path):
    """What stays: a class folder linked from elsewhere is read; a loop inside a class folder is not followed
    (no hang, no second copy); a second link to an image of the same class (oversampling) is kept."""
    root = _two_classes(tmp_path / "d")
    elsewhere = _folder(tmp_path / "elsewhere", classes=("c",), per_class=2)
    (root / "c").symlink_to(elsewhere / "c")
    (root / "a" / "loop").symlink_to(root / "a")
    (root / "a" / "again.png").symlink_to(root / "a" / "0.png")
    ds = load_dataset(root, "train")
    assert ds.classes == ["a", "b", "c"] and len(ds) == 3 + 1 + 3 + 2


def _imagenet_names() -> tuple[tuple[str, ...], list[str]]:
    from invkit_plugins.classifiers.torchvision_timm import imagenet_class_ids, imagenet_label_names

    return imagenet_label_names(1000), imagenet_class_ids(1000)


def test_a_crane_folder_matching_two_imagenet_classes_is_refused(tmp_path):
    """Member (listed): timm names ImageNet classes 134 (the bird) and 517 (the machine) both 'crane'; a folder
    called crane used to map silently to 517. It is refused with the WordNet ids that tell them apart, and a
    folder named by one of them maps to its class."""
    names, ids = _imagenet_names()
    assert [i for i, n in enumerate(names) if n == "crane"] == [134, 517]
    root = tmp_path / "d"
    _png(root / "crane" / "0.png", np.zeros((8, 8, 3), np.uint8))
    _png(root / "n01440764" / "0.png", np.zeros((8, 8, 3), np.uint8))  # tench, by WordNet id
    with pytest.raises(DataError, match="class 'crane'") as info:
        match_classes(load_dataset(root, "test"), names, ids=ids, owner="classifier resnet")
    message = str(info.value)
    assert "134 (n02012849)" in message and "517 (n03126707)" in message and "n02012849 or n03126707" in message
    (root / "crane").rename(root / "n02012849")
    assert match_classes(load_dataset(root, "test"), names, ids=ids).labels() == [0, 134]


def test_a_class_name_a_classifier_records_twice_is_refused(tmp_path):
    """Member (not listed): a classifier without ids that records one name for two classes."""
    ds = TensorImageDataset(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), ["cat", "dog"], "x")
    with pytest.raises(DataError, match="names 2 classes .* cannot tell them apart"):
        match_classes(ds, ["cat", "dog", "cat"])


# ============================================================================ kind 15: memory and batching
def _alive_peak(monkeypatch, module, name: str) -> list[int]:
    """Wrap ``module.name`` (a decoder) to record the most of its results alive at once."""
    real, refs, peak = getattr(module, name), [], [0]

    def tracked(*args, **kwargs):
        out = real(*args, **kwargs)
        refs.append(weakref.ref(out))
        peak[0] = max(peak[0], sum(r() is not None for r in refs))
        return out

    monkeypatch.setattr(module, name, tracked)
    return peak


def _photos(folder: Path, n: int, side: int = 48) -> list[str]:
    rng = np.random.default_rng(0)
    return [str(_png(folder / f"p{i}.png", rng.integers(0, 256, (side, side), dtype=np.uint8))) for i in range(n)]


def test_invert_decodes_one_file_at_a_time(tmp_path, monkeypatch):
    """Member (listed): invkit invert decoded every file at full size as float32 before resizing any."""
    files = _photos(tmp_path / "in", 6)
    peak = _alive_peak(monkeypatch, invert_cmd, "load_image")
    args = ["invert", *files, "--classifier", CLF, "--checkpoint", DBROX, "--out", str(tmp_path / "o")]
    result = cli([*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert peak[0] == 1 and len(list((tmp_path / "o").glob("*_recon.png"))) == 6


def test_invert_in_batches_writes_what_one_batch_writes(tmp_path, monkeypatch):
    """Member (not listed): classification and inversion go a batch at a time; the reconstructions and
    invert.json are those of a single batch."""
    files = _photos(tmp_path / "in", 5)
    outs = {}
    for batch in (64, 2):
        monkeypatch.setattr(invert_cmd, "BATCH", batch)
        out = tmp_path / f"o{batch}"
        args = ["invert", *files, "--classifier", CLF, "--checkpoint", DBROX, "--out", str(out), "--device", "cpu"]
        assert cli(args).exit_code == 0
        outs[batch] = out
    for f in sorted(outs[64].glob("*_recon.png")):
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(outs[2] / f.name)))
    import json

    first, second = (json.loads((outs[b] / "invert.json").read_text())["images"] for b in (64, 2))
    assert [e["class"] for e in first] == [e["class"] for e in second]
    assert [e["logit_cosine"] for e in first] == pytest.approx([e["logit_cosine"] for e in second], abs=1e-5)


def test_bench_reads_distractors_one_at_a_time_and_keeps_them_as_uint8(tmp_path, monkeypatch):
    """Member (listed): bench's distractors (id_k - 1 per image) were all decoded as float32, then resized. Now
    read one at a time into uint8 (lossless for 8-bit files), scored in batches, with the same scores."""
    from invkit.evaluation.bench import Bench, BenchSettings

    root = tmp_path / "digits"
    images, labels = take(load_dataset("default", "test"), 40, seed=0, per_class=True)
    for k, (x, y) in enumerate(zip(images, labels)):
        _png(root / str(int(y)) / f"{k}.png", (x[0] * 255).round().byte().numpy())
    peak = _alive_peak(monkeypatch, data_sets, "load_image")
    scores = {}
    for batch in (64, 3):
        settings = BenchSettings(
            classifiers=[CLF], inverters=["dosovitskiy_brox"], checkpoints=[DBROX], data=str(root), n=10,
            id_k=4, batch_size=batch, device="cpu",
        )  # fmt: skip
        bench = Bench(settings)
        assert bench.distractors.dtype == torch.uint8 and tuple(bench.distractors.shape) == (10, 3, 1, 28, 28)
        ds = bench.dataset
        flat = bench.distractor_idx.flatten().tolist()
        reference = torch.stack([torch.from_numpy(decode_image(ds.samples[i][0], "L")) for i in flat])
        assert torch.equal(bench.distractors.flatten(0, 1), reference)
        scores[batch] = next(iter(bench.run())).record
    assert peak[0] == 1
    assert scores[3]["id_accuracy"] == scores[64]["id_accuracy"]
    assert scores[3]["psnr"] == pytest.approx(scores[64]["psnr"], rel=1e-5)  # inverted in other batches: float noise
    # Scored 3 originals at a time: each with its own distractors. Reconstructions that are other images (some
    # of them distractors) miss sometimes; the score is the one of all distractors at once.
    from invkit.evaluation import metrics

    class Identity:
        def target_images(self, x):
            return x

    orig = bench.originals
    recon = torch.stack([bench.distractors[i, i % 3].float() / 255 if i % 2 else orig[i] for i in range(10)])
    logits = torch.randn(10, 10)
    bench.lpips_ok = False
    got = bench._score(Identity(), orig, recon, logits, logits)["id_accuracy"]
    want = metrics.identification_hits(recon, orig, bench.distractors.float() / 255).mean().item()
    assert got == pytest.approx(want) and 0 < want < 1


def test_take_holds_one_full_size_image_at_a_time(tmp_path, monkeypatch):
    """Member (not listed): the probes draw their images with take, which read every drawn image at full size as
    float32 into a list before stacking; it now reads, resizes and copies one at a time."""
    root = tmp_path / "d"
    _photos(root / "a", 3, side=64)
    _photos(root / "b", 3, side=80)
    peak = _alive_peak(monkeypatch, data_sets, "load_image")
    assert tuple(take(load_dataset(root, "train"), None, size=16)[0].shape) == (6, 1, 16, 16)
    assert peak[0] == 1


# ====================================================================== kind 13 (part): full disk while unpacking
def _tarball(tmp_path: Path) -> Path:
    src = _folder(tmp_path / "src" / "d", per_class=4)
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="d")
    return archive


@pytest.mark.parametrize(
    "code, text", [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk quota is used up")],
    ids=["disk full", "quota"],
)  # fmt: skip
def test_a_full_disk_while_unpacking_says_so_not_that_the_archive_is_corrupt(tmp_path, monkeypatch, code, text):
    """Members: a full disk (listed) and a used-up quota (not listed) while unpacking used to say 'the archive is
    corrupt'. They name the cache folder, say what to do, and leave no half-unpacked folder."""
    archive = _tarball(tmp_path)
    real, written = tarfile.TarFile.makefile, []

    def fill_up(self, tarinfo, targetpath):
        if written:
            raise OSError(code, os.strerror(code))
        written.append(targetpath)
        real(self, tarinfo, targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", fill_up)
    with pytest.raises(OutputError) as info:
        load_dataset(archive, "train")
    message = str(info.value)
    assert text in message and "corrupt" not in message and "INVKIT_CACHE" in message and str(archive) in message
    unpacked = tmp_path / "cache" / "unpacked"
    assert not _leftovers(unpacked) and not [d for d in unpacked.iterdir() if d.is_dir()]
    monkeypatch.setattr(tarfile.TarFile, "makefile", real)
    assert len(load_dataset(archive, "train")) == 8  # room again: unpacked in full


def test_a_full_disk_while_unpacking_is_one_line_from_thecli(tmp_path, monkeypatch):
    """The same member through a command: one line, exit status 1."""
    archive = _tarball(tmp_path)

    def full(self, tarinfo, targetpath):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tarfile.TarFile, "makefile", full)
    args = ["train-classifier", "--data", str(archive), "--steps", "1", "--out", str(tmp_path / "c")]
    one_line_error(cli(args), "the disk is full")


@pytest.mark.parametrize("damage", ["truncated gzip", "not a tar"])
def test_a_corrupt_archive_is_still_called_corrupt(tmp_path, damage):
    """What stays: an archive whose data is bad is named corrupt (no errno), one line."""
    archive = _tarball(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    if damage == "truncated gzip":
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    else:
        bad.write_bytes(b"\x1f\x8b" + b"not gzip data at all" * 10)
    with pytest.raises(DataError, match="the archive is corrupt") as info:
        load_dataset(bad, "train")
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


# =========================================================================== kind 11 (npz part): bounded reads
def _peak_bytes(call) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        call()
        raised = None
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, peak


def test_an_npz_that_expands_a_thousandfold_is_refused_before_it_is_loaded(tmp_path):
    """Member (listed): a small npz expanding to gigabytes was loaded whole. Here 80 KB claiming 74 MB of zeros:
    refused from the zip directory, without decompressing it."""
    root = tmp_path / "bomb"
    root.mkdir()
    np.savez_compressed(root / "val_data.npz", data=np.zeros((6000, 3 * 64 * 64), np.uint8), labels=np.ones(6000))
    assert (root / "val_data.npz").stat().st_size < 1 << 20
    raised, peak = _peak_bytes(lambda: load_npz_folder(root, "val"))
    assert isinstance(raised, DataError) and "more than 100 times" in str(raised) and "val_data.npz" in str(raised)
    assert peak < 8 << 20


def test_an_npz_header_claiming_more_than_the_file_holds_is_refused(tmp_path):
    """Member (not listed): a header may claim any shape; what invkit allocates is checked against the file."""
    root = tmp_path / "liar"
    root.mkdir()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2**33, 12288)})
    labels = io.BytesIO()
    np.save(labels, np.array([1, 2]))
    with zipfile.ZipFile(root / "val_data.npz", "w") as z:
        z.writestr("data.npy", header.getvalue() + bytes(100))
        z.writestr("labels.npy", labels.getvalue())
    raised, peak = _peak_bytes(lambda: load_npz_folder(root, "val"))
    assert isinstance(raised, DataError) and "the file is corrupt" in str(raised), raised
    assert peak < 8 << 20


def test_an_npz_label_of_2_31_is_refused_without_a_class_list(tmp_path):
    """Member (listed): one label of 2^31 allocated a 2-billion-entry list of class names."""
    root = tmp_path / "big"
    root.mkdir()
    np.savez(root / "val_data.npz", data=np.zeros((2, 3 * 8 * 8), np.uint8), labels=np.array([1, 2**31]))
    raised, peak = _peak_bytes(lambda: load_npz_folder(root, "val"))
    assert isinstance(raised, DataError) and f"at most {MAX_CLASSES}" in str(raised) and "2147483648" in str(raised)
    assert peak < 8 << 20
    assert not list((tmp_path / "cache").rglob("*.npy"))  # refused before the copy into the cache


def test_an_npz_label_beyond_map_clsloc_is_refused_before_the_copy(tmp_path):
    """Member (not listed): with map_clsloc.txt the bound is the map's length, checked before any copy."""
    root = tmp_path / "in"
    root.mkdir()
    np.savez(root / "val_data.npz", data=np.zeros((2, 3 * 8 * 8), np.uint8), labels=np.array([1, 3]))
    (root / "map_clsloc.txt").write_text("n01 1 a\nn02 2 b\n")
    with pytest.raises(DataError, match="has label 3 but map_clsloc.txt lists 2"):
        load_npz_folder(root, "val")
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_a_compressed_npz_batch_still_reads(tmp_path):
    """What stays: compressed batches of real-looking data are read, in chunks, exactly."""
    root = tmp_path / "ok"
    root.mkdir()
    data = np.random.default_rng(0).integers(0, 256, (9000, 3 * 4 * 4), dtype=np.uint8)  # > one 4096-row chunk
    np.savez_compressed(root / "val_data.npz", data=data, labels=np.arange(9000) % 7 + 1)
    ds = load_npz_folder(root, "val")
    assert np.array_equal(ds.images.numpy(), data.reshape(9000, 3, 4, 4)) and ds.labels()[:8] == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        0,
    ]


# ================================================================== kind 12 (part): cache root, non-UTF-8 names
@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
def test_an_empty_invkit_cache_is_the_default_cache_not_the_working_folder(tmp_path, monkeypatch, value):
    """Members: INVKIT_CACHE= (listed) and INVKIT_CACHE set to blanks (not listed) wrote the cache into the
    working folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    root = _two_classes(tmp_path / "d")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("INVKIT_CACHE", value)
    monkeypatch.chdir(work)
    assert cache_dir() == home / ".cache" / "invkit"
    load_dataset(root, "train").materialize()
    assert list(work.iterdir()) == [] and len(list((home / ".cache" / "invkit" / "decoded").glob("*.npy"))) == 1


def test_no_home_folder_and_no_invkit_cache_is_one_line(monkeypatch):
    """Member (not listed): without HOME (and no passwd entry) Path.home() raised a RuntimeError."""

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("INVKIT_CACHE")
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    with pytest.raises(InputError, match="set INVKIT_CACHE to a writable folder"):
        cache_dir()


def test_a_class_folder_whose_name_is_not_utf8_is_refused_in_one_printable_line(tmp_path):
    """Member (listed): a class folder named with bytes that are not UTF-8 raised UnicodeEncodeError."""
    root = _two_classes(tmp_path / "d")
    os.mkdir(os.path.join(os.fsencode(root), b"caf\xe9"))
    _png(Path(os.fsdecode(os.path.join(os.fsencode(root), b"caf\xe9", b"0.png"))), np.zeros((8, 8), np.uint8))
    args = ["train-classifier", "--data", str(root), "--steps", "1", "--out", str(tmp_path / "c")]
    error = one_line_error(cli(args), "not UTF-8", "caf\\xe9", "rename the folder")
    error.encode("utf-8")  # printable as it is


def test_image_files_whose_names_are_not_utf8_are_read_and_named_printably(tmp_path):
    """Member (not listed): a file name that is not UTF-8 broke the cache key (UnicodeEncodeError); it is read,
    and an error about such a file names it with escapes."""
    root = _two_classes(tmp_path / "d")
    odd = os.path.join(os.fsencode(root / "a"), b"\xff.png")
    _png(Path(os.fsdecode(odd)), np.full((8, 8), 7, np.uint8))
    ds = load_dataset(root, "train")
    assert len(ds.materialize()) == 7
    Path(os.fsdecode(odd)).write_bytes(b"not an image")
    with pytest.raises(DataError) as info:
        load_dataset(root, "train").materialize()
    assert "\\xff.png" in str(info.value)
    str(info.value).encode("utf-8")
