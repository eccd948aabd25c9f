"""A bench run a block of images at a time (invkit.evaluation.blocks, issue 21 "Speed and scale"): the same numbers
whatever the block size, a reconstruction cache of parts that resumes (and continues an older single file), and no
step that holds more than a block of images."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_bench import TinyDecoder, TinyOptim, _one_thread, settings, tiny  # noqa: F401 - fixtures
from test_evaluators import _evaluator

import invkit
from invkit.evaluation import evaluator as ev
from invkit.evaluation.bench import Bench
from invkit.evaluation.inversion import BlockInversion
from invkit.evaluation.per_image import load_per_image, per_image_path
from invkit.utils.progress import Progress

pytestmark = pytest.mark.filterwarnings("ignore:clf_std. the inverters reconstruct")

# what may differ between two runs of the same numbers: how long they took and how much memory they held
TIMING = {"time_per_image_s", "peak_memory_mb", "peak_total_mb", "memory_method", "resumed_images"}


def _run(s, out, block_size, **kw):
    s.block_size = block_size
    bench = Bench(s, out, **kw)
    return bench, list(bench.run())


def _same(a, b) -> bool:
    """Equal JSON values, NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _assert_same_numbers(out_a, out_b, bench):
    """results.json records and comparisons field by field (timing excepted), per-image values bit for bit."""
    doc_a, doc_b = (json.loads((o / "results.json").read_text()) for o in (out_a, out_b))
    assert len(doc_a["results"]) == len(doc_b["results"]) > 0
    for ra, rb in zip(doc_a["results"], doc_b["results"]):
        fields = set(ra) - TIMING
        assert fields == set(rb) - TIMING
        differ = [k for k in sorted(fields) if not _same(ra[k], rb[k])]
        assert not differ, f"{ra['slug']}: {differ}"
        va, vb = (load_per_image(per_image_path(o, ra["slug"]), bench.indices) for o in (out_a, out_b))
        assert va.keys() == vb.keys() and len(va) > 5
        for k in va:
            assert torch.equal(va[k].nan_to_num(-1), vb[k].nan_to_num(-1)), (ra["slug"], k)
    assert _same(doc_a["comparisons"], doc_b["comparisons"])
    assert doc_a["comparisons"] or len(doc_a["results"]) == 1  # paired differences between two pairs


def test_one_block_and_several_blocks_give_the_same_numbers(tiny, tmp_path):  # noqa: F811
    """A learned inverter (warm-up call once per pair) and an optimisation one (global RNG jitter, a generator for
    its starts) on 14 images in batches of 4, with an evaluator: one block, blocks of 8 and of 4 (the last ones
    shorter) give bit-identical records, per-image values and comparisons."""
    s = settings(tiny, classifiers=[tiny["std"][0]], checkpoints=[tiny["std"][1]], n=14, batch_size=4, id_k=3)
    s.evaluators = [_evaluator(tmp_path / "eval")]
    bench, whole = _run(s, tmp_path / "whole", 1000)
    assert bench.blocks() == [(0, 14)]
    for size in (8, 5, 4):  # 5 is rounded down to a multiple of the batch size: 4
        bench, blocked = _run(s, tmp_path / f"b{size}", size)
        assert bench.blocks()[:2] == [(0, 8 if size == 8 else 4), (8, 14) if size == 8 else (4, 8)]
        _assert_same_numbers(tmp_path / "whole", tmp_path / f"b{size}", bench)
        assert [r.record["evaluators"]["eval"]["n"] for r in blocked] == [14, 14]
    for name in ("images", "recon"):  # the figures' and the study's first images
        for f in (tmp_path / "whole" / name).glob("*.safetensors"):
            with safe_open(str(f), "pt") as a, safe_open(str(tmp_path / "b4" / name / f.name), "pt") as b:
                assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())  # noqa: SIM118


def test_a_noise_channel_draws_the_same_noise_in_blocks(tiny, tmp_path):  # noqa: F811
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[], n=10, batch_size=2)
    s.channel = "noise:0.5"
    bench, (one,) = _run(s, tmp_path / "one", 100)
    _, (blocked,) = _run(s, tmp_path / "blocked", 4)
    assert one.record["channel"] == "noise:0.5"
    _assert_same_numbers(tmp_path / "one", tmp_path / "blocked", bench)


class Stop(Exception):
    pass


def test_an_interrupted_blocked_run_resumes_from_the_cache_parts(tiny, tmp_path, monkeypatch):  # noqa: F811
    """tinyopt in blocks of 4 (batches of 2), stopped after 6 of 12 images (inside the second block): the rerun
    reads the 6 from the part files, continues the generators, and scores exactly as an uninterrupted run."""
    monkeypatch.setattr("invkit.evaluation.inversion.SAVE_EVERY_S", 0.0)  # a part after every batch
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[], n=12, batch_size=2)
    bench, _ = _run(s, tmp_path / "whole", 4)

    def stop_after_six(event: Progress) -> None:
        if event.task.endswith("x tinyopt") and event.completed == 6 and event.total == 12:
            raise Stop

    with pytest.raises(Stop):
        _run(s, tmp_path / "cut", 4, progress=stop_after_six)
    parts = sorted(p.name for p in (tmp_path / "cut" / "recon-cache").rglob("part-*"))
    assert parts == [f"part-{i:08d}.safetensors" for i in (0, 2, 4)]  # 6 images, never rewritten
    _, (resumed,) = _run(s, tmp_path / "cut", 4)
    assert resumed.record["resumed_images"] == 6
    _assert_same_numbers(tmp_path / "whole", tmp_path / "cut", bench)


def test_the_single_file_of_earlier_invkits_is_read_and_continued(tiny, tmp_path):  # noqa: F811
    """The layout written until now, <slug>.safetensors with the first m reconstructions and the generator states
    after them (no part folder): read as the first part; the run continues with part-<m> and scores as a run that
    made them all."""
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[], n=12, batch_size=2)
    bench, (whole,) = _run(s, tmp_path / "whole", 4)
    folder = tmp_path / "whole" / "recon-cache" / whole.pair.slug
    with (
        safe_open(str(folder / "part-00000000.safetensors"), "pt") as f0,
        safe_open(str(folder / "part-00000004.safetensors"), "pt") as f1,
    ):
        recon = torch.cat([f0.get_tensor("recon"), f1.get_tensor("recon")])  # images 0..7
        meta = {k: v for k, v in f1.metadata().items() if k not in ("start", "stop")}  # as the old file had it
        old = {"recon": recon} | {k: f1.get_tensor(k) for k in ("generator_state", "global_state")}
    legacy = tmp_path / "old-cache" / f"{whole.pair.slug}.safetensors"
    legacy.parent.mkdir()
    save_file(old, str(legacy), metadata=meta)
    s.recon_cache = str(legacy.parent)
    _, (continued,) = _run(s, tmp_path / "continued", 4)
    assert continued.record["resumed_images"] == 8
    assert sorted(p.name for p in legacy.with_suffix("").iterdir()) == ["part-00000008.safetensors"]
    _assert_same_numbers(tmp_path / "whole", tmp_path / "continued", bench)
    _, (again,) = _run(s, tmp_path / "again", 4)  # the old file and the new part: everything is there
    assert again.record["resumed_images"] == 12


def test_no_step_holds_more_than_a_block_of_images(tiny, tmp_path, monkeypatch):  # noqa: F811
    """40 images in blocks of 8 (batches of 4), with an evaluator: every stack of images read from the data holds
    at most a block of originals (float) or a block's distractors (uint8, id_k - 1 each), every inverter call a
    batch, every inversion step, evaluator step and kept set of reconstructions a block at most."""
    import invkit.evaluation.sampling as sampling

    n, block, batch, id_k = 40, 8, 4, 3
    s = settings(tiny, classifiers=[tiny["std"][0]], checkpoints=[tiny["std"][1]], n=n, batch_size=batch, id_k=id_k)
    s.evaluators, s.keep_images, s.grid_images = [_evaluator(tmp_path / "eval")], 6, 3
    seen: dict[str, list[int]] = {"float": [], "uint8": [], "invert": [], "block": [], "evaluator": []}
    stack = sampling.stack_images

    def counting_stack(dataset, indices, *a, dtype=None, **kw):
        seen["uint8" if dtype == torch.uint8 else "float"].append(len(indices))
        return stack(dataset, indices, *a, dtype=dtype, **kw)

    def counting(key, method):
        def wrapper(self, x, *a, **kw):
            seen[key].append(len(x))
            return method(self, x, *a, **kw)

        return wrapper

    monkeypatch.setattr(sampling, "stack_images", counting_stack)
    for cls in (TinyDecoder, TinyOptim):
        monkeypatch.setattr(cls, "invert", counting("invert", cls.invert))
    monkeypatch.setattr(BlockInversion, "__call__", counting("block", BlockInversion.__call__))
    monkeypatch.setattr(ev.BenchEvaluator, "embed", counting("evaluator", ev.BenchEvaluator.embed))
    bench, results = _run(s, tmp_path / "out", block)
    assert len(results) == 2 and all(r.record["n"] == n for r in results)
    assert max(seen["float"]) == block and max(seen["uint8"]) <= block * (id_k - 1) + 1
    assert sum(seen["float"]) >= 2 * 2 * n  # each pair read its originals twice (logits, then scoring)
    assert max(seen["invert"]) == batch and seen["block"].count(block) == 2 * (n // block)
    assert max(seen["evaluator"]) <= block
    with safe_open(str(tmp_path / "out" / "recon" / f"{results[0].pair.slug}.safetensors"), "pt") as f:
        assert f.get_slice("images").get_shape()[0] == 6  # the study's first keep_images only
    held = [*vars(bench).items(), *vars(bench._evaluation).items(), *vars(bench._evaluation.evaluators["eval"]).items()]
    images = [k for k, v in held if isinstance(v, torch.Tensor) and v.dim() >= 4 and len(v) > block]
    assert not images  # what a run keeps between blocks: no images beyond a block


def test_inception_sees_the_same_batches_of_64_across_blocks(tiny, tmp_path, monkeypatch):  # noqa: F811
    """Standard FID features run 64 reconstructions at a time counted from a pair's first image, whatever the
    blocks: the rest of a block waits for the next (a stand-in network records the batches)."""
    calls: list[int] = []

    class FakeInception:
        def __init__(self, device):
            pass

        def __call__(self, images, batch_size=64):
            chunks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
            calls.extend(len(c) for c in chunks)  # the batches the network would run
            return torch.cat([c.flatten(1).double()[:, :4] for c in chunks])

    import invkit.evaluation.distribution as distribution

    monkeypatch.setattr(distribution, "InceptionFeatures", FakeInception)
    monkeypatch.setattr(distribution, "inception_status", lambda: (True, "stand-in"))
    s = settings(tiny, classifiers=[tiny["std"][0]], checkpoints=[tiny["std"][1]], n=150, batch_size=10, id_k=3)
    s.evaluators = [_evaluator(tmp_path / "eval")]
    bench = Bench(s)
    evaluation = ev.BenchEvaluation(bench)
    recon = torch.rand(150, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    calls.clear()
    whole, per_image = evaluation.score(recon)
    assert calls == [64, 64, 22]
    calls.clear()
    for i in range(0, 150, 40):
        evaluation.add(recon[i : i + 40])
    blocked, blocked_per_image = evaluation.finish()
    assert calls == [64, 64, 22]  # after 40 images: none yet; 80: 64 (16 wait); 120: none (56); 150: 64; 22 left
    assert _same(json.loads(json.dumps(whole)), json.loads(json.dumps(blocked)))
    assert all(torch.equal(per_image[k].nan_to_num(-1), blocked_per_image[k].nan_to_num(-1)) for k in per_image)


def test_a_block_that_is_not_whole_batches_is_refused():
    inversion = BlockInversion(object(), 10, seed=0, batch_size=4)  # refused before the inverter is called
    with pytest.raises(invkit.InputError, match="whole batches"):
        inversion(torch.zeros(6, 10))


@pytest.mark.parametrize("label", ["standard", "robust"])
def test_the_committed_single_file_caches_open_as_one_part_read_a_block_at_a_time(label):
    """benchmarks/checkpoints/tinyimagenet64/resume/bench-recon-cache/ (optim's 1000 Tiny ImageNet reconstructions,
    written by the single-file layout) opens under the identity it records, and a block reads exactly its rows."""
    from pathlib import Path

    from invkit.evaluation.recon_cache import ReconCache

    path = Path(__file__).parents[1] / "benchmarks/checkpoints/tinyimagenet64/resume/bench-recon-cache"
    path = path / f"classifier_{label}__optim.safetensors"
    with safe_open(str(path), "pt") as f:
        meta, rows = f.metadata(), f.get_tensor("recon")[100:164]
    identity = {k: meta[k] for k in ("pair", "inverter_config", "targets", "n", "seed", "batch_size")}
    cache = ReconCache(path, identity)
    assert cache.folder == path.with_suffix("") and not cache.folder.exists()  # nothing written by reading
    done = cache.open()
    assert done.count == 1000 and done.recon is None and done.parts == [(path, 0, 1000)]
    assert torch.equal(done.read(100, 164), rows) and done.seconds == float(meta["seconds"])
