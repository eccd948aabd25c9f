"""What an observation channel costs per training step: ``invkit train --channel topk:5`` against ``logits``
(issue 25, Speed).

Both modes train the same inverter (same seed, same weights at the start) on the same in-memory images through the
training loop's own data path (``invkit.training.source._Source``) with cached logits, as ``invkit train`` does for a
fixed data set: ``logits`` indexes the cached logits; ``topk:5`` indexes the cache after the channel was applied to
it once (timed separately: a deterministic channel is never applied per step).

The trainer's own data-dependent work is held equal: ``dosovitskiy_brox`` skips its discriminator update while
``L_discr / L_adv`` is below ``d_pause_ratio``, which depends on the losses and so on what the inverter sees, so the
benchmark sets ``d_pause_ratio=0`` (D updated every step in both modes; ``--keep-d-pause`` keeps the paper's rule).
The time spent producing the batches (indexing the cache, and applying a random channel) is timed on its own.

The modes are interleaved in one process (``--reps`` rounds, the order alternating each round, ``--steps`` timed
steps per mode per round after one untimed step each), so a background load shifts both alike; the report gives the
mean seconds per step with a 95% t-interval over the rounds and the per-round ratio topk:5 / logits with its
interval.

Example (what benchmarks/results/throughput-channels-cpu-torch2.14.1.md holds)::

    nice -n 15 python benchmarks/throughput/channel_cost.py --classifier demo:classifier_standard \\
        --inverter dosovitskiy_brox.mnist --batch-size 32 --reps 10 --steps 3
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
    p.add_argument("--classifier", default="demo:classifier_standard", help="classifier spec")
    p.add_argument("--inverter", default="dosovitskiy_brox.mnist", help="learned inverter registry name")
    p.add_argument("--channel", default="topk:5", help="the channel compared with logits")
    p.add_argument("--data", default="default", help="data spec; its train split")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--reps", type=int, default=10, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode per round")
    p.add_argument("--threads", type=int, default=None, help="torch threads [torch's default]")
    p.add_argument("--keep-d-pause", action="store_true", help="keep dosovitskiy_brox's D pause rule (data-dependent)")
    args = p.parse_args()

    import invkit
    from invkit.data import load_dataset
    from invkit.training import TrainConfig, build_inverter, derive_seed
    from invkit.training.source import BatchStream, _Source

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    clf = invkit.resolve_classifier(args.classifier).eval()
    data = load_dataset(args.data, "train")
    device = torch.device("cpu")
    modes = {}
    for spec in ("logits", args.channel):
        config = TrainConfig(classifier=args.classifier, inverter=args.inverter, batch_size=args.batch_size, seed=0)
        config.channel = spec
        if args.inverter.startswith("dosovitskiy_brox") and not args.keep_d_pause:
            config.options = {"d_pause_ratio": 0.0}  # the same D work in both modes
        inverter, options = build_inverter(config, clf)
        trainer = inverter.make_trainer(clf, **options)
        channel = None if spec == "logits" else invkit.create_channel(spec, clf.num_classes)
        t0 = time.perf_counter()
        source = _Source(data, inverter.image_shape, clf, device, False, True, "none", 0, False, channel=channel)
        cache_s = time.perf_counter() - t0
        stream = BatchStream(len(source), args.batch_size, derive_seed(0, "bench"))

        batch_s = [0.0]

        def next_batch(source=source, stream=stream, batch_s=batch_s):
            t = time.perf_counter()
            idx, start = stream.next_indices()
            out = source.batch(idx, start)
            batch_s[0] += time.perf_counter() - t
            return out

        trainer.train_step(next_batch, 0)  # untimed: lazy initialisation
        modes[spec] = {"trainer": trainer, "next_batch": next_batch, "cache_s": cache_s, "times": [], "batch": []}
        modes[spec]["batch_s"], modes[spec]["options"] = batch_s, config.options
    order = list(modes)
    for r in range(args.reps):
        for spec in order if r % 2 == 0 else order[::-1]:
            m = modes[spec]
            m["batch_s"][0] = 0.0
            t0 = time.perf_counter()
            for s in range(args.steps):
                m["trainer"].train_step(m["next_batch"], s + 1)
            m["times"].append((time.perf_counter() - t0) / args.steps)
            m["batch"].append(m["batch_s"][0] / args.steps)
    ratios = [b / a for a, b in zip(modes["logits"]["times"], modes[args.channel]["times"])]
    cap = torch.backends.cpu.get_cpu_capability()
    print(
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, torch.backends.cpu.get_cpu_capability() = {cap}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}; load average "
        f"{', '.join(f'{v:.1f}' for v in load_start)} at start, "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} at the end"
    )
    print(
        f"- setting: {args.classifier} ({clf.num_classes} classes), {args.inverter}, data {args.data} (train, "
        f"{len(data)} images, logits cached), batch {args.batch_size}; {args.reps} interleaved rounds x "
        f"{args.steps} steps per mode; options {modes['logits']['options']}"
    )
    print()
    print("| mode | s per step (95% CI) | of which producing batches (s, 95% CI) | building the cache, once (s) |")
    print("|---|---|---|---|")
    for spec, m in modes.items():
        mean, half = mean_interval(m["times"])
        bmean, bhalf = mean_interval(m["batch"])
        print(f"| {spec} | {mean:.4f} ± {half:.4f} | {bmean:.5f} ± {bhalf:.5f} | {m['cache_s']:.3f} |")
    mean, half = mean_interval(ratios)
    print()
    print(f"ratio {args.channel} / logits, per round: {mean:.3f} ± {half:.3f} (95% CI, n = {len(ratios)})")


if __name__ == "__main__":
    main()
