"""Resumable reconstructions (invkit.evaluation.recon_cache): an inversion stopped mid-pair continues to the same
reconstructions, a rerun of bench into another --out reuses them, and another inversion's cache is never mixed in."""

from __future__ import annotations

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
        data = cache.path.read_bytes()
        cache.path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a safetensors file")
    with pytest.warns(UserWarning, match="reconstruction cache"):
        got, timing = invert_logits(inv, logits, seed=3, batch_size=3, cache=cache)
    assert timing["resumed_images"] == 0 and torch.equal(got, whole)


def test_bench_into_another_out_reuses_the_reconstructions(tiny, tmp_path):  # noqa: F811 - the fixture
    s = settings(tiny, inverters=["tinyopt"], classifiers=[tiny["std"][0]], checkpoints=[], n=6)
    first = list(Bench(s, tmp_path / "a").run())
    cache_files = sorted((tmp_path / "a" / "recon-cache").iterdir())
    assert [p.name for p in cache_files] == [f"{first[0].pair.slug}.safetensors"]
    s2 = settings(tiny, inverters=["tinyopt"], classifiers=[tiny["std"][0]], checkpoints=[], n=6, id_k=3)
    s2.recon_cache = str(tmp_path / "a" / "recon-cache")
    second = list(Bench(s2, tmp_path / "b").run())
    assert second[0].record["resumed_images"] == 6
    assert second[0].record["psnr"] == first[0].record["psnr"]  # the same reconstructions, scored again
    assert not (tmp_path / "b" / "recon-cache").exists()
