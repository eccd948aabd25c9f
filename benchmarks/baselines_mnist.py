"""Compare the baseline inverters (and biggan_proj, when given) on the same held-out MNIST test digits.

For each classifier: the same ``--n`` test digits (a seeded draw), their logits z, then per inverter the
reconstructions, the classifier's top-1 agreement between x̂ and x, PSNR at 28x28 (reconstructions are resized
to the originals' size), time per image (wall clock of the whole batch / n, one thread unless --threads), and
for ``optim`` the logit cosine / MSE of its final images. Writes a JSON file, a Markdown table to stdout and one
grid PNG per classifier (rows: originals, then each inverter).

usage:
    python benchmarks/baselines_mnist.py --data ~/.cache/invkit-data/mnist --n 100 \
        --classifier standard=invkit/assets/demo/classifier_standard \
        --inverter standard:dbrox=invkit/assets/demo/dbrox_standard \
        --classifier robust=invkit/assets/demo/classifier_robust \
        --inverter robust:dbrox=invkit/assets/demo/dbrox_robust \
        --optim optim.mv15 --optim optim.robust --out runs/baselines_bench
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import invkit
from invkit.data import load_dataset, resize, take
from invkit.evaluation.metrics import classifier_agreement, psnr
from invkit.io import save_rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="default", help="data set spec (test split is used)")
    p.add_argument("--n", type=int, default=100, help="held-out test digits")
    p.add_argument("--seed", type=int, default=0, help="seed of the digit draw and of optim's start images")
    p.add_argument("--classifier", action="append", default=[], help="LABEL=checkpoint folder (repeatable)")
    p.add_argument("--inverter", action="append", default=[], help="LABEL:NAME=checkpoint folder (repeatable)")
    p.add_argument("--optim", action="append", default=[], help="optim preset run on every classifier")
    p.add_argument("--optim-steps", type=int, default=None, help="override optim steps")
    p.add_argument("--grid", type=int, default=10, help="digits shown in each grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="folder for results.json and the grids")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = take(load_dataset(args.data, "test"), args.n, seed=args.seed)
    rows, grids = [], {}
    for spec in args.classifier:
        label, folder = spec.split("=", 1)
        clf = invkit.load_classifier(folder)
        with torch.no_grad():
            z = clf.logits(images)
        inverters = [
            (s.split("=", 1)[0].split(":", 1)[1], s.split("=", 1)[1])
            for s in args.inverter
            if s.split(":", 1)[0] == label
        ]
        grid_rows = [images[: args.grid]]
        for name, ckpt in inverters:
            inv = invkit.load_inverter(ckpt, classifier=clf)
            with torch.no_grad():
                inv.invert(z[:2], generator=torch.Generator().manual_seed(args.seed))  # warm-up
                t0 = time.perf_counter()
                recon = inv.invert(z, generator=torch.Generator().manual_seed(args.seed))
                seconds = time.perf_counter() - t0
            rows.append(_row(label, name, inv, clf, images, labels, z, recon, seconds, None))
            grid_rows.append(recon[: args.grid])
        for preset in args.optim:
            kw = {"steps": args.optim_steps} if args.optim_steps is not None else {}
            inv = invkit.create_inverter(preset, classifier=clf, **kw)
            t0 = time.perf_counter()
            recon, info = inv.invert_with_info(z, generator=torch.Generator().manual_seed(args.seed))
            seconds = time.perf_counter() - t0
            rows.append(_row(label, preset, inv, clf, images, labels, z, recon, seconds, info))
            grid_rows.append(recon[: args.grid])
        grids[label] = str(save_rows(grid_rows, out / f"grid_{label}.png", scale=3))
    env = {
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out / "results.json").write_text(
        json.dumps({"rows": rows, "grids": grids, "env": env, "args": vars(args)}, indent=2) + "\n"
    )
    print(
        "| classifier | inverter | top-1 agreement | PSNR (dB, 28x28) | time / image (s) | logit cosine "
        "(mean / min) | cosine > 0.99 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cos = f"{r['logit_cosine']:.4f} / {r['logit_cosine_min']:.4f}"
        print(
            f"| {r['classifier']} | {r['inverter']} | {r['top1_agreement']:.3f} | {r['psnr']:.2f} | "
            f"{r['seconds_per_image']:.4f} | {cos} | {r['frac_cosine_gt_0.99']:.2f} |"
        )
    print(json.dumps(env))


def _row(label, name, inv, clf, images, labels, z, recon, seconds, info) -> dict:
    with torch.no_grad():
        recon_logits = clf.logits(recon)
    agree = classifier_agreement(recon_logits, z, labels)
    cos = torch.nn.functional.cosine_similarity(recon_logits.double(), z.double(), dim=1)
    return {
        "classifier": label,
        "inverter": name,
        "registry_name": inv.registry_name,
        "n": len(images),
        "top1_agreement": agree["top1_agreement"],
        "classifier_accuracy": agree["accuracy"],
        "psnr": psnr(resize(recon, images.shape[-1]), images).mean().item(),
        "seconds_per_image": seconds / len(images),
        "logit_cosine": cos.mean().item(),
        "logit_cosine_min": cos.min().item(),
        "frac_cosine_gt_0.99": (cos > 0.99).float().mean().item(),
        "optim_info_cosine_mean": None if info is None else info["logit_cosine"].mean().item(),
    }


if __name__ == "__main__":
    main()
