"""What `invkit train --augment distorted` costs per training step against cached logits (issue 22 point 2).

Both modes train the same inverter on the same in-memory images (``--images`` drawn from the data's train split
at their own size, seed 0), through the training loop's own data path (``invkit.training.source._Source``):

* ``cached``: ``--augment none``, the classifier's logits computed once before the timing; a step indexes them.
* ``distorted``: ``--augment distorted``, each sample a random square crop of 50-100% of its image (compare_gan's
  ``ImagenetDataset``, ``invkit.data.crops``), resized to the inverter's resolution, its logits computed for
  every batch (three batches per ``biggan_proj`` step: two D steps and one G step).

The two modes are interleaved in one process (``--reps`` rounds, the order alternating each round, ``--steps``
timed steps per mode per round after one untimed step each), so a background load shifts both alike; the report
gives the mean seconds per step with a 95% t-interval over the rounds, the part spent producing batches, and the
per-round ratio distorted / cached with its interval.

Example (what benchmarks/results/throughput-distorted-cpu-torch2.14.1.md holds)::

    python benchmarks/throughput/distorted_cost.py --classifier demo:classifier_standard \\
        --inverter biggan_proj.mnist32 --data default --batch-size 16 --reps 10
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from _stats import cpu_model, mean_interval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classifier", required=True, help="classifier spec (registry name, folder, demo:NAME)")
    p.add_argument("--inverter", required=True, help="inverter registry name, e.g. biggan_proj.mnist32")
    p.add_argument("--data", default="default", help="data spec; its train split, images of one size")
    p.add_argument("--images", type=int, default=2048, help="training images held in memory (seeded draw)")
    p.add_argument("--resolution", type=int, default=None, help="inverter resolution [the inverter's]")
    p.add_argument("--ch", type=int, default=None, help="inverter width [the inverter's]")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="as invkit train -o")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--reps", type=int, default=10, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=2, help="timed training steps per mode per round")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads [torch's default]")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from invkit.cli._common import classifier_from_spec, inverter_from_spec, parse_options
    from invkit.data import TensorImageDataset, for_classifier, load_dataset, stack_images
    from invkit.training import BatchStream, TrainConfig, build_inverter
    from invkit.training.source import _Source

    load = lambda: ", ".join(f"{x:.1f}" for x in os.getloadavg())  # noqa: E731
    load_start = load()
    clf = classifier_from_spec(args.classifier)
    options = parse_options(tuple(args.option), "--option") if args.option else {}
    config = TrainConfig(
        classifier=args.classifier, inverter=args.inverter, resolution=args.resolution, ch=args.ch, options=options
    )
    inverter, trainer_options = build_inverter(
        config, clf, create=lambda name, c, **kw: inverter_from_spec(name, c, untrained=True, **kw)
    )
    data = for_classifier(load_dataset(args.data, "train"), clf)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[: args.images]
    images, labels = stack_images(data, pick, dtype=torch.uint8)  # each image at its own (one) size
    data = TensorImageDataset(images, labels, data.classes, data.name)
    device = torch.device("cpu")
    clf.to(device).eval()
    trainer = inverter.make_trainer(clf, **trainer_options)
    shape = inverter.image_shape
    bf16 = bool(getattr(trainer, "bf16", False))
    t0 = time.perf_counter()
    sources = {"cached": _Source(data, shape, clf, device, bf16, True, "none", 0, False)}
    cache_s = time.perf_counter() - t0
    sources["distorted"] = _Source(data, shape, clf, device, bf16, False, "distorted", 0, False)
    streams = {m: BatchStream(len(data), args.batch_size, 0) for m in sources}
    data_time = {m: 0.0 for m in sources}

    def next_batch_of(mode: str):
        def next_batch():
            t = time.perf_counter()
            idx, start = streams[mode].next_indices()
            batch = sources[mode].batch(idx, start)
            data_time[mode] += time.perf_counter() - t
            return batch

        return next_batch

    step = 0
    for mode in sources:  # untimed: first-call allocations
        trainer.train_step(next_batch_of(mode), step)
        step += 1
    per_step: dict[str, list[float]] = {m: [] for m in sources}
    data_step: dict[str, list[float]] = {m: [] for m in sources}
    for r in range(args.reps):
        for mode in ("cached", "distorted") if r % 2 == 0 else ("distorted", "cached"):
            data_time[mode] = 0.0
            t = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step(next_batch_of(mode), step)
                step += 1
            per_step[mode].append((time.perf_counter() - t) / args.steps)
            data_step[mode].append(data_time[mode] / args.steps)
    ratios = [d / c for d, c in zip(per_step["distorted"], per_step["cached"])]

    print(f"# `--augment distorted` against cached logits: {args.inverter}, {args.classifier}\n")
    print(
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, torch.backends.cpu.get_cpu_capability() = "
        f"{torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"python {platform.python_version()}; load average {load_start} at start, {load()} at the end"
    )
    print(
        f"- setting: data {args.data} (train, {len(data)} images of {tuple(images.shape[1:])} in memory), "
        f"inverter output {shape}, batch {args.batch_size}, trainer bf16={bf16}; {args.reps} interleaved rounds x "
        f"{args.steps} steps per mode; caching the logits of the {len(data)} images took {cache_s:.2f} s (once)\n"
    )
    print("| mode | s per step (95% CI) | of which producing batches (s) | img/s (3 batches per step) |")
    print("|---|---|---|---|")
    for mode in sources:
        m, h = mean_interval(per_step[mode])
        dm, dh = mean_interval(data_step[mode])
        print(f"| {mode} | {m:.4f} ± {h:.4f} | {dm:.4f} ± {dh:.4f} | {3 * args.batch_size / m:.1f} |")
    m, h = mean_interval(ratios)
    print(f"\nratio distorted / cached, per round: {m:.3f} ± {h:.3f} (95% CI, n = {len(ratios)})")


if __name__ == "__main__":
    main()
