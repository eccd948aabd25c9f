"""Seconds per `train-classifier` step on Tiny ImageNet, to size the runs in make_tinyimagenet.sh.

Runs the library behind `invkit train-classifier` (``train_classifier``) for a few steps per configuration on
the real train split (decoded once into the uint8 cache), evaluating on 16 val images only so that evaluation
does not count, and reports the median wall time and process CPU time of the steps after the first two (warm-up);
on a machine shared with other jobs the wall time is inflated by their load, CPU time much less so. Usage:

    python benchmarks/checkpoints/tinyimagenet64/time_classifier_steps.py ~/.cache/invkit-data/tinyimagenet64 [bf16]

With ``bf16`` the width-32 configurations run with ``--precision bf16 --channels-last``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import torch

from invkit.training import TrainClassifierConfig, load_split, train_classifier
from invkit.utils.progress import Progress

CONFIGS = [  # (width, input size, adversarial training, attack steps)
    (16, 32, "none", 1),
    (32, 32, "none", 1),
    (16, 64, "none", 1),
    (32, 64, "none", 1),
    (32, 32, "fgsm", 1),
    (32, 32, "pgd", 3),
]


def main(root: str, fast: bool = False, steps: int = 6, batch: int = 128) -> None:
    torch.set_num_threads(2)
    setting = "bf16 autocast + channels_last" if fast else "fp32, NCHW"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, {setting}", flush=True)
    for width, size, adv, adv_steps in [c for c in CONFIGS if not fast or c[0] == 32]:
        train = load_split(root, "train", size=size)
        test = load_split(root, "val", size=size)
        test = type(test)(test.images[:16], test.targets[:16], test.classes, test.name)
        stamps: list[float] = []
        cpu: list[float] = []

        def progress(p: Progress, stamps: list[float] = stamps, cpu: list[float] = cpu) -> None:
            if p.task == "train":
                stamps.append(time.perf_counter())
                cpu.append(time.process_time())

        cfg = TrainClassifierConfig(
            arch="resnet18s",
            width=width,
            data=root,
            input_size=size,
            steps=steps,
            batch_size=batch,
            optimizer="sgd",
            lr=0.1,
            weight_decay=5e-4,
            augment=True,
            adv=adv,
            eps=2 / 255,
            adv_steps=adv_steps,
            eval_samples=8,
            eval_steps=1,
            checkpoint_every=10_000,
            bf16=fast,
            channels_last=fast,
        )
        with tempfile.TemporaryDirectory() as out:
            train_classifier(cfg, out, train_data=train, test_data=test, progress=progress)
        per_step = statistics.median(b - a for a, b in zip(stamps[2:], stamps[3:], strict=False))
        cpu_step = statistics.median(b - a for a, b in zip(cpu[2:], cpu[3:], strict=False))
        epoch_steps = -(-len(train) // batch)
        print(
            f"resnet18s width {width} input {size} adv {adv}{f' ({adv_steps} steps)' if adv == 'pgd' else ''}: "
            f"wall {per_step:.2f} s/step ({per_step * epoch_steps / 60:.1f} min/epoch), "
            f"CPU {cpu_step:.2f} core-s/step (idle 2 cores: {cpu_step * epoch_steps / 2 / 60:.1f} min/epoch, "
            f"{3600 * 2 / (cpu_step * epoch_steps):.2f} epochs/hour)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], fast=sys.argv[2:] == ["bf16"])
