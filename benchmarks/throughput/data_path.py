"""Images/s of the training data path (issue 11 point 4): does data ever starve the biggan_proj step?

Measures, for an image folder (e.g. Tiny ImageNet's train split) at the inverter's resolution:

1. lazy decoding, one image at a time in the main process (``dataset[i]``: what ``invkit train`` does for folders
   over its in-memory limit of 200k images), and the same through a ``torch.utils.data.DataLoader`` with
   ``--workers`` worker processes;
2. building the decoded uint8 cache (``FolderImageDataset.materialize``: decode every image once, saved as
   safetensors under ``$INVKIT_CACHE/decoded``) cold, and loading it again warm;
3. batch assembly from that cache exactly as the training loop does it per step
   (``invkit.training.source._Source.batch``: gather uint8 rows, convert to float in [0, 1], resize if needed,
   channels_last, index the cached logits), at each ``--batch-size``.

Compare (3) with the step's img/s (benchmarks/throughput/peer_compare.py on CPU; biggan_throughput.py on a GPU):
the data path keeps up when its img/s is well above the step's. Whatever ``invkit.data`` does to load a folder
(e.g. a memory-mapped uint8 cache) is what this measures, through the same two calls.

Example (what docs/training.md quotes)::

    nice -n 10 python benchmarks/throughput/data_path.py --data ~/.cache/invkit-data/tinyimagenet64 \\
        --cache /tmp/invkit-data-path-cache --batch-size 64 --batch-size 2048
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="image folder or archive (invkit.data.load_dataset spec)")
    p.add_argument("--split", default="train")
    p.add_argument("--resolution", type=int, default=64, help="the inverter's resolution")
    p.add_argument("--batch-size", type=int, action="append", help="repeatable [64, 2048]")
    p.add_argument("--lazy-images", type=int, default=2000, help="images decoded in the lazy measurements")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the lazy path")
    p.add_argument("--cache", default=None, help="INVKIT_CACHE for the decoded cache (a fresh folder: cold build)")
    p.add_argument("--num-classes", type=int, default=200, help="logit dimension of the cached logits")
    p.add_argument("--repeats", type=int, default=20, help="timed batches per batch size")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads [torch's default]")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cache:
        os.environ["INVKIT_CACHE"] = args.cache
    from invkit.data import load_dataset
    from invkit.training.source import _Source

    load = lambda: ", ".join(f"{x:.1f}" for x in os.getloadavg())  # noqa: E731
    print(f"# data path, {args.data} ({args.split}), {args.resolution}x{args.resolution}\n")
    print(f"- torch {torch.__version__}, {torch.get_num_threads()} threads; load average at start: {load()}\n")
    ds = load_dataset(args.data, args.split)
    n = min(args.lazy_images, len(ds))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    t0 = time.perf_counter()
    for i in idx:
        ds[i]
    lazy = n / (time.perf_counter() - t0)
    print(f"| path | images | img/s |\n|---|---|---|\n| lazy decode, main process | {n} | {lazy:.0f} |")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, idx), batch_size=64, num_workers=args.workers, persistent_workers=False
    )
    t0 = time.perf_counter()
    for _ in loader:
        pass
    print(f"| lazy decode, DataLoader, {args.workers} workers, batch 64 | {n} | {n / (time.perf_counter() - t0):.0f} |")
    if not hasattr(ds, "materialize"):
        print("\n(no decoded cache for this data set type)")
        return
    for label in ("first call (decode + write, unless --cache holds it already)", "second call (read)"):
        t0 = time.perf_counter()
        cached = ds.materialize(size=args.resolution)
        s = time.perf_counter() - t0
        print(f"| decoded uint8 cache, {label} | {len(ds)} | {len(ds) / s:.0f} |")
    source = _Source(cached, cached.image_shape, None, torch.device("cpu"), False, False, "none", 0, channels_last=True)
    source.logits = torch.randn(len(ds), args.num_classes)  # what --cache-logits holds
    for bs in args.batch_size or [64, 2048]:
        g = torch.Generator().manual_seed(1)
        times = []
        for r in range(args.repeats + 1):
            batch = torch.randint(0, len(ds), (bs,), generator=g)
            t0 = time.perf_counter()
            source.batch(batch, r * bs)
            if r:  # the first one warms up
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"| batch assembly from the cache (_Source.batch), batch {bs} | {bs * args.repeats} | {bs / med:.0f} |")
        times = []
        for r in range(args.repeats + 1):  # on CUDA only this gather runs on the CPU; float, /255 run on the GPU
            batch = torch.randint(0, len(ds), (bs,), generator=g)
            t0 = time.perf_counter()
            source.images_u8[batch]
            if r:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"| uint8 gather alone (the CPU's share on CUDA), batch {bs} | {bs * args.repeats} | {bs / med:.0f} |")
    print(f"\n- load average at end: {load()}")


if __name__ == "__main__":
    main()
