"""Count the model FLOPs of the paper's run: ``biggan_proj.paper`` trained against ``robust_resnet152``.

``robust_resnet152`` (Xie et al. 2019, a ResNet-152 v1 at 224 px) stands in for the paper's robust ResNet-152-V2
of Qin et al. 2019, whose weights are not public (docs/classifiers.md); the classifier's share below is that of the
substitute.

Counts, with ``torch.utils.flop_counter.FlopCounterMode`` on the CPU (random weights: FLOPs do not depend on
them), (a) one full ``biggan_proj.paper`` training step (``num_d_steps`` D steps + one G step + EMA) on
synthetic 64x64 batches of B = 1 and 2 images with 1000 logits, fitted as ``fixed + B * per_sample``, and
(b) one forward pass of ``robust_resnet152`` on a 64x64 image at its input size (224, resized inside the
classifier), which ``invkit train --cache-logits`` pays once per training image. Prints the totals for the
paper's 250k G steps at batch 2048 and the projected wall time on 8 GPUs at a stated MFU. Usage:

    python benchmarks/imagenet64/count_paper_flops.py [--mfu 0.3 --peak-tflops 989 --gpus 8]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import invkit


def count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def biggan_step_flops(batch: int) -> float:
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.paper", num_classes=1000, channels=3)
    trainer = inv.make_trainer(None, bf16=False, channels_last=False)
    g = torch.Generator().manual_seed(1)

    def next_batch():
        return torch.rand(batch, 3, 64, 64, generator=g), torch.randn(batch, 1000, generator=g) * 3

    return count(lambda: trainer.train_step(next_batch, 0))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mfu", type=float, default=0.3, help="assumed achieved fraction of the GPUs' peak")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100 SXM/H200: 989)")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--steps", type=int, default=250_000, help="G steps (the paper's)")
    p.add_argument("--batch", type=int, default=2048, help="batch size (the paper's)")
    p.add_argument("--train-images", type=int, default=1_281_167, help="ImageNet train images (logits cached once)")
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    f1, f2 = biggan_step_flops(1), biggan_step_flops(2)
    per_sample, fixed = f2 - f1, 2 * f1 - f2
    clf = invkit.create_classifier("robust_resnet152", pretrained=False).eval()
    with torch.no_grad():
        clf_flops = count(lambda: clf.logits(torch.rand(1, 3, 64, 64)))
    step = fixed + a.batch * per_sample
    gan_total = a.steps * step
    logit_total = a.train_images * clf_flops
    total = gan_total + logit_total
    rate = a.gpus * a.peak_tflops * 1e12 * a.mfu
    print(f"counted in {time.perf_counter() - t0:.0f} s, torch {torch.__version__}")
    print(f"biggan_proj.paper step: {f1 / 1e9:.1f} GFLOP at B=1, {f2 / 1e9:.1f} GFLOP at B=2 ->")
    print(f"  {per_sample / 1e9:.1f} GFLOP per batch element + {fixed / 1e9:.2f} GFLOP fixed per step")
    print(f"robust_resnet152 forward at 224 px: {clf_flops / 1e9:.1f} GFLOP per image")
    print(f"paper run: {a.steps} steps x batch {a.batch}: {step / 1e12:.1f} TFLOP/step, {gan_total:.3e} FLOP")
    print(f"logits of {a.train_images} training images once (--cache-logits): {logit_total:.3e} FLOP")
    print(
        f"total {total:.3e} FLOP; at {a.gpus} x {a.peak_tflops:g} TFLOP/s x MFU {a.mfu:g} = "
        f"{rate / 1e15:.2f} PFLOP/s: {total / rate / 3600:.1f} h ({total / rate / 86400:.2f} days)"
    )
    no_cache = a.steps * a.batch * 3 * clf_flops  # each of the 3 batches of a step needs its logits
    print(f"without --cache-logits the classifier would add {no_cache:.3e} FLOP ({no_cache / rate / 3600:.0f} h)")


if __name__ == "__main__":
    main()
