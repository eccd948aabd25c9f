"""How much bf16 autocast + channels_last changes biggan_proj's numbers (issue 11, "Numerics").

Two measurements on one seeded model (synthetic data: images uniform in [0, 1], logits N(0, 3^2)):

1. one forward pass of G and of D with the same weights and inputs, fp32 NCHW against bf16 autocast +
   channels_last: max and mean absolute difference of G's tanh output (range [-1, 1]) and of D's score;
2. loss trajectories of ``--steps`` training steps from the same seed and the same batches, fp32 against
   bf16 + channels_last, beside a second fp32 run whose only change is the seed of the trainer's noise
   generator -- the size of difference a GAN's trajectory shows anyway, to judge the bf16 one against.

Example (what docs/training.md quotes)::

    nice -n 10 python benchmarks/throughput/bf16_numerics.py --resolution 32 --ch 16 --batch-size 64 --steps 40
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics

import torch


def build(resolution: int, ch: int, num_classes: int):
    import invkit

    torch.manual_seed(0)
    return invkit.create_inverter(
        "biggan_proj.paper", ch=ch, resolution=resolution, num_classes=num_classes, channels=3
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--ch", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=200)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.__version__}")
    inv = build(args.resolution, args.ch, args.num_classes)
    res, bs, nc = args.resolution, args.batch_size, args.num_classes
    g = torch.Generator().manual_seed(2)
    batches = [
        (torch.rand(bs, 3, res, res, generator=g), torch.randn(bs, nc, generator=g) * 3) for _ in range(3 * args.steps)
    ]

    # 1. one forward pass, same weights and inputs (training mode: batch statistics, as in a training step)
    trainer = copy.deepcopy(inv).make_trainer(None, bf16=False, channels_last=False, seed=0)
    G, D = trainer.G.train(), trainer.D.train()
    noise = torch.randn(bs, inv.noise_dim, generator=g)
    images, logits = batches[0]
    with torch.no_grad():
        G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last)
        D_cl = copy.deepcopy(D).to(memory_format=torch.channels_last)
        out32 = G(noise, logits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16 = G_cl(noise, logits).float()
        x = images * 2 - 1
        d32 = D(x, logits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            d16 = D_cl(x.contiguous(memory_format=torch.channels_last), logits).float()
    dg, dd = (out16 - out32).abs(), (d16 - d32).abs()
    print(f"\nG output (tanh, [-1, 1]), {bs} images: max |bf16 - fp32| {dg.max():.4f}, mean {dg.mean():.5f}")
    print(
        f"D score: max |bf16 - fp32| {dd.max():.4f}, mean {dd.mean():.4f}; "
        f"fp32 scores have std {d32.std():.4f}, mean |score| {d32.abs().mean():.4f}"
    )

    # 2. loss trajectories
    def trajectory(bf16: bool, seed: int) -> list[dict[str, float]]:
        tr = copy.deepcopy(inv).make_trainer(None, bf16=bf16, channels_last=bf16, seed=seed)
        it = iter(batches)
        return [tr.train_step(lambda: next(it), s) for s in range(args.steps)]

    ref = trajectory(False, 0)
    runs = {"bf16+channels_last, same seed": trajectory(True, 0), "fp32, other noise seed": trajectory(False, 1)}
    print(f"\nloss trajectories over {args.steps} steps ({res}x{res}, ch={args.ch}, batch {bs}); per loss: mean over")
    print("steps of |run - fp32 reference| (first 5 steps | all steps), and the reference's own mean |loss|\n")
    print("| run | loss | mean abs diff, steps 1-5 | mean abs diff, all steps | reference mean abs value |")
    print("|---|---|---|---|---|")
    for name, run in runs.items():
        for key in ("d_loss_real", "d_loss_fake", "g_loss"):
            diffs = [abs(a[key] - b[key]) for a, b in zip(run, ref)]
            scale = statistics.mean(abs(r[key]) for r in ref)
            print(f"| {name} | {key} | {statistics.mean(diffs[:5]):.4f} | {statistics.mean(diffs):.4f} | {scale:.4f} |")
    last = {name: run[-1] for name, run in runs.items()} | {"fp32 reference": ref[-1]}
    print("\nlosses at the last step:")
    for name, losses in last.items():
        print(f"- {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
