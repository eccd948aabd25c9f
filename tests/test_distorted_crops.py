"""`invkit train --augment distorted`: compare_gan's ImagenetDataset crops (invkit.data.crops) in the training loop.

The box sampler follows TF's ``sample_distorted_bounding_box`` as compare_gan calls it (side uniform, corner short of
the last position, whole-image fallback); evaluation takes the centred square, corner rounded down. In the loop the
crops are drawn per sample of the global stream, so they resume bit-identically and do not depend on the number of
ranks; cached logits are refused in one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

import invkit
from invkit.data import load_dataset
from invkit.data.crops import CenterCropDataset, center_crop, center_square_box, distorted_crop, distorted_square_box
from invkit.io import load_train_state
from invkit.training import TrainConfig
from invkit.training.source import _heldout, _Source

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from test_train_loop import _assert_identical, _run, _tensors  # noqa: E402


@pytest.fixture(autouse=True)
def _toy_plugin():
    _toy_inverter.register()


# ------------------------------------------------------------------------------------------------ the sampler
def test_distorted_box_follows_tf_sample_distorted_bounding_box():
    """A 4:3 image (375x500): squares from round(sqrt(0.5 H W)) = 306, nudged to 307 as 306^2 < 0.5 H W, up to the
    short side 375 (TF caps the largest side, so the first attempt always succeeds); the side uniform over those
    whole numbers (306 counting for 307), not the area; the corner in [0, H - side) x [0, W - side)."""
    g = torch.Generator().manual_seed(0)
    boxes = [distorted_square_box(375, 500, g) for _ in range(20000)]
    sides = np.array([b[2] for b in boxes])
    assert all(b[2] == b[3] for b in boxes)
    assert sides.min() == 307 and sides.max() == 375
    assert all(0 <= t < 375 - s or s == 375 for t, _, s, _ in boxes)  # never touches the bottom edge
    assert all(0 <= left < 500 - s for _, left, s, _ in boxes)
    assert all(0.5 <= s * s / (375 * 500) <= 0.75 for *_, s, _ in boxes)
    grid = np.arange(307, 376)
    empirical = np.array([(sides <= s).mean() for s in grid])
    side_uniform = (grid - 305) / 70  # 70 draws of [306, 375], 306 counted as 307
    area_uniform = (grid**2 - 0.5 * 375 * 500) / (375**2 - 0.5 * 375 * 500)  # torchvision's RandomResizedCrop
    assert np.abs(empirical - side_uniform).max() < 0.012  # Kolmogorov-Smirnov at 1% for n = 20000: 0.0115
    assert np.abs(empirical - area_uniform).max() > 0.02
    # a square image: sides 46..64 (45 * 45 < 0.5 * 64 * 64, so TF's nudge makes it 46)
    g = torch.Generator().manual_seed(1)
    square = [distorted_square_box(64, 64, g)[2] for _ in range(3000)]
    assert min(square) == 46 and max(square) == 64


def test_distorted_box_falls_back_to_the_whole_image_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    assert distorted_square_box(100, 300, g) == (0, 0, 100, 300)  # no square covers half of a 1:3 image
    a = [distorted_square_box(50, 70, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert a[0] == a[1]
    with pytest.raises(invkit.InputError, match="area_range"):
        distorted_square_box(10, 10, g, area_range=(0.9, 0.5))


def test_center_box_rounds_the_corner_down_like_compare_gan():
    assert center_square_box(5, 8) == (0, 1, 5, 5)  # (8 - 5) / 2 = 1.5 -> 1 (torchvision's center_crop: 2)
    assert center_square_box(375, 500) == (0, 62, 375, 375)
    assert center_square_box(64, 64) == (0, 0, 64, 64)


def test_crops_cut_the_box_and_resize_bilinear_without_antialiasing():
    image = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    top, left, s, _ = distorted_square_box(40, 60, torch.Generator().manual_seed(3))
    got = distorted_crop(image, 16, torch.Generator().manual_seed(3))
    want = F.interpolate(
        image[None, :, top : top + s, left : left + s], size=(16, 16), mode="bilinear", align_corners=False
    )[0].clamp(0, 1)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    centre = center_crop(image, 40)  # side 40: the crop itself, unresized
    assert torch.equal(centre, image[:, :, 10:50])


# ------------------------------------------------------------------------------------------------ in the loop
def _source(augment: str = "distorted", rank: int = 0, world: int = 1) -> _Source:
    data = load_dataset("default", "train")
    clf = invkit.create_classifier("toyclf.base")
    source = _Source(data, (1, 16, 16), clf, torch.device("cpu"), False, False, augment, 0, False)
    source.rank, source.world = rank, world
    return source


def test_flips_are_drawn_for_the_global_batch_so_ranks_flip_their_own_samples():
    """--augment hflip under torchrun: each rank flips its shard as one process flips the whole batch (they once drew
    the same flips on every rank: correlated augmentation across the global batch)."""
    idx = torch.arange(16)
    whole = _source("hflip").batch(idx, 32)[0]
    halves = [_source("hflip", rank=r, world=2).batch(idx[8 * r : 8 * r + 8], 32)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), whole)
    plain = _source("none").batch(idx, 32)[0]
    flipped = [not torch.equal(w, p) for w, p in zip(whole, plain, strict=True)]
    assert flipped[:8] != flipped[8:]  # the two shards' flips differ (the same seed would have made them equal)


def test_crops_are_per_sample_of_the_global_stream_so_ranks_draw_the_same():
    """Two ranks, each with its half of the global batch, get the crops one process gets for the whole batch; the
    images are crops (not the resized full image) and their logits are those of the crops."""
    whole = _source()
    idx = torch.arange(8)
    images, logits = whole.batch(idx, 40)
    halves = [_source(rank=r).batch(idx[4 * r : 4 * r + 4], 40)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), images)
    plain = _source("none").batch(idx, 40)[0]
    assert images.shape == plain.shape == (8, 1, 16, 16)
    assert not torch.equal(images, plain)
    torch.testing.assert_close(logits, whole._logits(images))
    assert not torch.equal(images, whole.batch(idx, 48)[0])  # another position: other crops


def test_distorted_training_resumes_bit_identically(tmp_path):
    """The existing exact-resume check (tests/test_train_loop.py), with distorted crops."""
    kw = dict(save_every=2, sample_every=2, augment="distorted")
    whole = _run(tmp_path / "whole", steps=4, **kw)
    _run(tmp_path / "split", steps=2, **kw)
    resumed = _run(tmp_path / "split", steps=4, resume=True, **kw)
    _assert_identical(
        load_file(whole.checkpoint / "model.safetensors"), load_file(resumed.checkpoint / "model.safetensors")
    )
    _assert_identical(
        _tensors(load_train_state(whole.checkpoint / "train_state.safetensors")),
        _tensors(load_train_state(resumed.checkpoint / "train_state.safetensors")),
    )
    doc = json.loads((tmp_path / "whole" / "train_config.json").read_text())
    assert doc["train"]["augment"] == "distorted" and doc["cache_logits"] is False


def test_cached_logits_with_distorted_crops_are_refused_in_one_line(tmp_path):
    with pytest.raises(invkit.TrainingError, match="--augment distorted makes new ones every step"):
        _run(tmp_path / "r", steps=1, augment="distorted", cache_logits=True)
    from invkit.cli import build_cli

    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--out", str(tmp_path / "c")]
    r = CliRunner().invoke(build_cli(), [*args, "--augment", "distorted", "--cache-logits", "--device", "cpu"])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "--no-cache-logits" in r.output


def _folder(root: Path, size: tuple[int, int]) -> None:
    """An ImageFolder of two classes with non-square greyscale images (H, W = size)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("0", "1"):
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, size, dtype=np.uint8)
                Image.fromarray(pixels, "L").save(root / split / c / f"{i}.png")


def test_held_out_samples_of_a_distorted_run_are_centre_crops(tmp_path):
    _folder(tmp_path / "d", (20, 36))
    test = load_dataset(tmp_path / "d", "test")
    clf = invkit.create_classifier("toyclf.base")
    inverter = invkit.create_inverter("toyinv.base", classifier=clf)
    config = TrainConfig(augment="distorted", sample_count=4, seed=0)
    source = _source()
    held = _heldout(config, test, inverter, source, torch.device("cpu"))
    crops = CenterCropDataset(test, 16)
    wanted = torch.stack([crops[i][0] for i in range(len(crops))])
    assert held.images.shape == (4, 1, 16, 16)
    for image in held.images:  # each held-out image is one of the centre crops
        assert min((image - w).abs().max().item() for w in wanted) < 1e-6
    squeezed = invkit.data.resize(test[0][0][None], 16)[0]  # what the other modes show: the squeezed image
    assert not torch.allclose(crops[0][0], squeezed, atol=1e-2)
    assert len(crops) == len(test) and crops.labels() == test.labels()


def test_a_folder_of_one_size_is_cropped_from_memory_and_mixed_sizes_lazily(tmp_path):
    _folder(tmp_path / "same", (20, 36))
    clf = invkit.create_classifier("toyclf.base")
    same = load_dataset(tmp_path / "same", "train")
    source = _Source(same, (1, 16, 16), clf, torch.device("cpu"), False, False, "distorted", 0, False)
    assert source.images_u8 is not None and tuple(source.images_u8.shape[-2:]) == (20, 36)  # own size
    (tmp_path / "same" / "train" / "0" / "big.png").write_bytes(b"")
    Image.fromarray(np.zeros((30, 30), np.uint8), "L").save(tmp_path / "same" / "train" / "0" / "big.png")
    mixed = load_dataset(tmp_path / "same", "train")
    lazy = _Source(mixed, (1, 16, 16), clf, torch.device("cpu"), False, False, "distorted", 0, False)
    assert lazy.images_u8 is None
    images, _ = lazy.batch(torch.arange(len(mixed)), 0)
    assert images.shape == (len(mixed), 1, 16, 16)
