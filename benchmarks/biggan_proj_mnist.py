"""Train and evaluate the ``biggan_proj`` inverter on MNIST against a frozen classifier, on a CPU.

A small stand-alone driver (written before ``invkit train`` existed) around ``BigGANTrainer``: it caches the
classifier's logits of the training digits once (no augmentation, so they never change), trains for a
number of steps or minutes, and writes an invkit checkpoint folder (config.json + model.safetensors with the
EMA generator + train_state.safetensors). ``eval`` measures, on held-out test digits, the classifier's top-1
agreement between each original and its reconstruction and the PSNR of the reconstruction (resized to
28x28) against the original, and writes a grid PNG (originals row, reconstructions row).

usage:
    python benchmarks/biggan_proj_mnist.py train --classifier CKPT --out RUN [--minutes 30] [--steps N]
    python benchmarks/biggan_proj_mnist.py eval --classifier CKPT --inverter RUN/checkpoint --grid out.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import invkit
from invkit.data import load_dataset, resize, take
from invkit.evaluation.metrics import psnr
from invkit.io import save_grid, save_rows

MNIST = str(Path("~/.cache/invkit-data/mnist").expanduser())


def logits_of(clf: invkit.Classifier, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([clf.logits(images[i : i + batch]) for i in range(0, len(images), batch)])


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clf = invkit.load_classifier(args.classifier)
    t0 = time.time()
    images, _ = take(load_dataset(args.data, "train"), args.train_images, seed=args.seed)
    logits = logits_of(clf, images)
    images = resize(images, args.resolution)
    held, _ = take(load_dataset(args.data, "test"), 20, seed=123, per_class=True)
    held_logits = logits_of(clf, held)
    print(f"cached {len(images)} training digits and logits in {time.time() - t0:.0f}s", flush=True)

    options = json.loads(args.config or "{}")
    inv = invkit.create_inverter(args.inverter, classifier=clf, resolution=args.resolution, **options)
    trainer = inv.make_trainer(clf, seed=args.seed)
    order = torch.Generator().manual_seed(args.seed + 1)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(images), (args.batch_size,), generator=order)
        return images[idx], logits[idx]

    held_noise = torch.randn(len(held), inv.noise_dim, generator=torch.Generator().manual_seed(7))
    run = {"command": vars(args), "config": inv.config_dict(), "torch": torch.__version__}
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    log = open(out / "log.jsonl", "a")
    start, step = time.time(), 0
    budget = args.minutes * 60 if args.minutes else math.inf
    while step < args.steps and time.time() - start < budget:
        losses = trainer.train_step(next_batch, step)
        step += 1
        if not all(math.isfinite(v) for v in losses.values()):
            print(f"step {step}: non-finite loss {losses}; stopping, last checkpoint kept", flush=True)
            break
        if step % args.log_every == 0:
            rec = {"step": step, "time_s": round(time.time() - start, 1), **{k: round(v, 4) for k, v in losses.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
        if step % args.save_every == 0:
            save(trainer, out, step, held, held_logits, held_noise)
    save(trainer, out, step, held, held_logits, held_noise)
    print(f"done: {step} steps in {time.time() - start:.0f}s", flush=True)


def save(trainer, out: Path, step: int, held, held_logits, held_noise) -> None:
    ema = trainer.inference_inverter()
    ema.save(out / "checkpoint", train_state=trainer.state_dict(), extra={"step": step})
    recon = ema.invert(held_logits, noise=held_noise)
    save_grid(
        torch.cat([resize(held, recon.shape[-1]), recon]), out / f"samples_{step:06d}.png", nrow=len(held), scale=2
    )


def evaluate(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    clf = invkit.load_classifier(args.classifier)
    inv = invkit.load_inverter(args.inverter, classifier=clf)
    x, y = take(load_dataset(args.data, "test"), args.n, seed=args.seed)
    logits = logits_of(clf, x)
    recon = torch.cat(
        [inv.invert(logits[i : i + 250], generator=torch.Generator().manual_seed(i)) for i in range(0, len(x), 250)]
    )
    recon28 = resize(recon, x.shape[-1])
    pred_orig, pred_recon = logits.argmax(1), logits_of(clf, recon28).argmax(1)
    # Reference: PSNR between each digit and another random test digit of the same true class (right class,
    # other style): reconstructions should beat it if they keep the original's style.
    g = torch.Generator().manual_seed(args.seed + 1)
    other = torch.empty_like(y)
    for c in y.unique():
        members = (y == c).nonzero().flatten()
        other[members] = members[torch.randperm(len(members), generator=g)]
    res = {
        "n": len(x),
        "agreement_top1": (pred_orig == pred_recon).float().mean().item(),
        "recon_label_accuracy": (pred_recon == y).float().mean().item(),
        "classifier_accuracy_on_originals": (pred_orig == y).float().mean().item(),
        "psnr_db": psnr(recon28, x).mean().item(),
        "psnr_same_class_other_digit_db": psnr(x[other], x).mean().item(),
    }
    print(json.dumps(res, indent=2))
    if args.grid:
        k = torch.cat([(y == c).nonzero().flatten()[:2] for c in range(10)])[: args.grid_n]
        save_rows([x[k], recon28[k]], args.grid, scale=3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--classifier", required=True, help="classifier checkpoint folder")
    t.add_argument("--data", default=MNIST)
    t.add_argument("--out", required=True)
    t.add_argument("--inverter", default="biggan_proj.mnist32")
    t.add_argument("--config", default="", help="JSON of inverter config overrides")
    t.add_argument("--resolution", type=int, default=32)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--steps", type=int, default=10**9)
    t.add_argument("--minutes", type=float, default=0)
    t.add_argument("--train-images", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--save-every", type=int, default=250)
    e = sub.add_parser("eval")
    e.add_argument("--classifier", required=True)
    e.add_argument("--inverter", required=True, help="inverter checkpoint folder")
    e.add_argument("--data", default=MNIST)
    e.add_argument("--n", type=int, default=1000)
    e.add_argument("--seed", type=int, default=2021)
    e.add_argument("--grid", default="")
    e.add_argument("--grid-n", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
