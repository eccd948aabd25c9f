"""Resumable reconstructions (invkit.evaluation.recon_cache): an inversion stopped mid-pair continues to the same
reconstructions, a rerun of bench into another --out reuses them, and another inversion's cache is never mixed in."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import torch
from test_bench import _one_thread, settings, tiny, tiny_classifier, tiny_optim  # noqa: F401, F811 - fixtures

from invkit.evaluation.bench import Bench
from invkit.evaluation.inversion import invert_logits
from invkit.evaluation.recon_cache import ReconCache
from invkit.utils.progress import Progress

pytestmark = pytest.mark.filterwarnings("ignore:reconstruction cache")


class Stop(Exception):
    pass


def _stop_after(images: int):
    """A progress callback that stops the inversion once ``images`` are done (as a kill between batches would)."""

    def callback(event: Progress) -> None:
        if event.task == "t" and event.completed >= images and event.completed < event.total:
            raise Stop

    return callback


def _case(seed: int = 0):
    clf = tiny_classifier(seed=seed)
    inv = tiny_optim(clf)
    images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = clf.logits(images)
    return inv, logits


def _cache(tmp_path, logits, seed=3, batch_size=3, name="c.safetensors"):
    return ReconCache(tmp_path / name, ReconCache.identity_of("pair", {"steps": 3}, logits, seed, batch_size))


def test_an_interrupted_inversion_resumes_to_the_same_reconstructions(tmp_path, monkeypatch):
    monkeypatch.setattr("invkit.evaluation.inversion.SAVE_EVERY_S", 0.0)  # save after every batch
    inv, logits = _case()
    whole, _ = invert_logits(inv, logits, seed=3, batch_size=3, task="t")
    for stop in (3, 6, 9):  # after the first, second and third of four batches
        cache = _cache(tmp_path, logits, name=f"{stop}.safetensors")
        with pytest.raises(Stop):
            invert_logits(inv, logits, seed=3, batch_size=3, task="t", progress=_stop_after(stop), cache=cache)
        assert len(cache.load().recon) == stop
        resumed, timing = invert_logits(inv, logits, seed=3, batch_size=3, task="t", cache=cache)
        assert timing["resumed_images"] == stop
        assert torch.equal(resumed, whole)
        again, timing = invert_logits(inv, logits, seed=3, batch_size=3, task="t", cache=cache)
        assert timing["resumed_images"] == 10 and torch.equal(again, whole)  # nothing left to invert


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 4},  # another seed
        {"batch_size": 5},  # other batches draw other noise
        {"logits": "other"},  # another classifier or other images: other targets
    ],
)
def test_a_cache_of_another_inversion_is_not_used(tmp_path, change):
    inv, logits = _case()
    invert_logits(inv, logits, seed=3, batch_size=3, cache=_cache(tmp_path, logits))
    seed, batch = change.get("seed", 3), change.get("batch_size", 3)
    targets = _case(seed=1)[1] if "logits" in change else logits
    fresh, _ = invert_logits(inv, targets, seed=seed, batch_size=batch)
    with pytest.warns(UserWarning, match="another inversion"):
        got, timing = invert_logits(
            inv, targets, seed=seed, batch_size=batch, cache=_cache(tmp_path, targets, seed=seed, batch_size=batch)
        )
    assert timing["resumed_images"] == 0 and torch.equal(got, fresh)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "nan"])
def test_a_damaged_cache_is_inverted_again(tmp_path, damage):
    inv, logits = _case()
    cache = _cache(tmp_path, logits)
    whole, _ = invert_logits(inv, logits, seed=3, batch_size=3, cache=cache)
    if damage == "nan":
        part = cache.load()
        part.recon[0, 0, 0, 0] = float("nan")
        gen = torch.Generator().manual_seed(0)
        cache.save(part.recon, gen, 1.0)
    else:
        part = cache.part_path(0)  # the one part: saved after the last batch
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a safetensors file")
    with pytest.warns(UserWarning, match="reconstruction cache"):
        got, timing = invert_logits(inv, logits, seed=3, batch_size=3, cache=cache)
    assert timing["resumed_images"] == 0 and torch.equal(got, whole)


def test_bench_into_another_out_reuses_the_reconstructions(tiny, tmp_path):  # noqa: F811 - the fixture
    s = settings(tiny, inverters=["tinyopt"], classifiers=[tiny["std"][0]], checkpoints=[], n=6)
    first = list(Bench(s, tmp_path / "a").run())
    cache_files = sorted((tmp_path / "a" / "recon-cache").rglob("*"))
    slug = first[0].pair.slug
    assert [str(p.relative_to(cache_files[0].parent)) for p in cache_files] == [
        slug,
        f"{slug}/part-00000000.safetensors",
    ]
    s2 = settings(tiny, inverters=["tinyopt"], classifiers=[tiny["std"][0]], checkpoints=[], n=6, id_k=3)
    s2.recon_cache = str(tmp_path / "a" / "recon-cache")
    second = list(Bench(s2, tmp_path / "b").run())
    assert second[0].record["resumed_images"] == 6
    assert second[0].record["psnr"] == first[0].record["psnr"]  # the same reconstructions, scored again
    assert not (tmp_path / "b" / "recon-cache").exists()


def _kept_by_an_older_invkit(tmp_path, logits, recorded_config, pair="/old/clone/clf@0123456789abcdef|optim|fresh"):
    """A cache file as an earlier invkit wrote it: its own pair key and config record."""
    inv, _ = _case()
    old = ReconCache(tmp_path / "c.safetensors", ReconCache.identity_of(pair, recorded_config, logits, 3, 3))
    whole, _ = invert_logits(inv, logits, seed=3, batch_size=3, cache=old)
    return inv, whole


@pytest.mark.parametrize(
    ("recorded", "wanted", "legacy", "reused"),
    [
        # a field added later, asked for with its legacy value: the same inversion
        ({"steps": 3}, {"steps": 3, "fake_relu": False}, {"fake_relu": False}, True),
        ({"steps": 3}, {"steps": 3, "fake_relu": False, "momentum": 0.9}, {"fake_relu": False, "momentum": 0.9}, True),
        # asked for with another value than the legacy one: another inversion
        ({"steps": 3}, {"steps": 3, "fake_relu": True}, {"fake_relu": False}, False),
        # added later but without a legacy value: not known to be the same
        ({"steps": 3}, {"steps": 3, "fake_relu": False}, {}, False),
        # a field the file records with another value stays a difference, whatever the legacy table says
        ({"steps": 3, "fake_relu": True}, {"steps": 3, "fake_relu": False}, {"fake_relu": False}, False),
        ({"steps": 2}, {"steps": 3, "fake_relu": False}, {"fake_relu": False}, False),
    ],
)
def test_a_config_field_added_later_is_read_with_its_legacy_value(tmp_path, recorded, wanted, legacy, reused):
    _, logits = _case()
    inv, whole = _kept_by_an_older_invkit(tmp_path, logits, recorded)
    pair = "/old/clone/clf@0123456789abcdef|optim|fresh"
    cache = ReconCache(tmp_path / "c.safetensors", ReconCache.identity_of(pair, wanted, logits, 3, 3), legacy)
    if reused:
        assert cache.load() is not None
    else:
        with pytest.warns(UserWarning, match=r"another inversion \(inverter_config differ\)"):
            assert cache.load() is None


@pytest.mark.parametrize(
    ("pair", "reused"),
    [
        ("/new/clone/clf@0123456789abcdef|optim|fresh", True),  # the repository cloned elsewhere: same weights
        ("clf@0123456789abcdef|optim|fresh", True),  # a relative path
        ("/new/clone/clf@0123456789abcdef|optim|/new/ck@fedcba9876543210", False),  # another checkpoint
        ("/old/clone/clf@1123456789abcdef|optim|fresh", False),  # the same folder, retrained weights
        ("/old/clone/clf@0123456789abcdef|optim.robust|fresh", False),  # another inverter preset
    ],
)
def test_a_pair_is_known_by_its_weights_not_its_paths(tmp_path, pair, reused):
    _, logits = _case()
    inv, whole = _kept_by_an_older_invkit(tmp_path, logits, {"steps": 3})
    cache = ReconCache(tmp_path / "c.safetensors", ReconCache.identity_of(pair, {"steps": 3}, logits, 3, 3))
    if reused:
        got, timing = invert_logits(inv, logits, seed=3, batch_size=3, cache=cache)
        assert timing["resumed_images"] == len(logits) and torch.equal(got, whole)
    else:
        with pytest.warns(UserWarning, match=r"another inversion \(pair differ\)"):
            assert cache.load() is None


def test_bench_reads_a_cache_written_before_a_config_field_existed(tiny, tmp_path, monkeypatch):  # noqa: F811
    """Bench hands the inverter options' checkpoint_legacy to the cache: a file whose recorded config lacks a field
    listed there (here tinyopt's `steps`, with the value it is asked for now) is reused, under another path too."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from test_bench import TinyOptimConfig

    s = settings(tiny, inverters=["tinyopt"], classifiers=[tiny["std"][0]], checkpoints=[], n=6)
    first = list(Bench(s, tmp_path / "a").run())
    path = tmp_path / "a" / "recon-cache" / first[0].pair.slug / "part-00000000.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    config = json.loads(meta["inverter_config"])
    del config["steps"]  # as if written before `steps` existed
    meta["inverter_config"] = json.dumps(config, sort_keys=True)
    meta["pair"] = "/elsewhere/" + meta["pair"].rsplit("/", 1)[-1]  # and from a clone in another folder
    save_file(tensors, str(path), metadata=meta)
    s.recon_cache = str(path.parent.parent)
    with pytest.warns(UserWarning, match="another inversion"):  # without a legacy value: not the same inversion
        assert list(Bench(s, tmp_path / "b").run())[0].record["resumed_images"] == 0
    save_file(tensors, str(path), metadata=meta)  # the run above wrote its own file over it
    from invkit.core.registry import Entry

    class Declared(TinyOptimConfig):  # tinyopt declaring options, with `steps` as a field added later
        checkpoint_legacy: ClassVar[dict] = {"steps": 3}

    declared = Entry.declared_options
    monkeypatch.setattr(Entry, "declared_options", lambda e: Declared if e.name == "tinyopt.base" else declared(e))
    again = list(Bench(s, tmp_path / "c").run())
    assert again[0].record["resumed_images"] == 6 and again[0].record["psnr"] == first[0].record["psnr"]


def test_optim_legacy_values_are_its_defaults():
    """optim's checkpoint_legacy names fields it gained after reconstructions were kept, with the values its
    inversion had before they existed: the dataclass defaults (Adam, no fake_relu), which the mv15 preset keeps."""
    from dataclasses import fields

    from invkit_plugins.optim.optimization import PRESETS, OptimConfig

    defaults = {f.name: f.default for f in fields(OptimConfig)}
    assert OptimConfig.checkpoint_legacy and set(OptimConfig.checkpoint_legacy) <= set(defaults)
    assert all(defaults[k] == v for k, v in OptimConfig.checkpoint_legacy.items())
    assert not set(OptimConfig.checkpoint_legacy) & set(PRESETS.get("mv15", {}))
