"""Training throughput of the BigGAN-projection inverter: optimised against naive, in the same run.

Measures full training steps of ``biggan_proj`` (2 D steps + 1 G step + EMA update, exactly what
``invkit train`` runs) on synthetic batches: random images in [0, 1] and random logits. The classifier is
left out on purpose: ``invkit train`` caches its logits for a fixed data set, so it costs nothing per step.

Two settings, each on a freshly built, identically seeded model:

* naive: fp32, contiguous (NCHW) tensors;
* optimised: bf16 autocast + channels_last (+ ``torch.compile`` of G and D with ``--compile``).

Reported per setting: steps/s, img/s (images drawn per second, all 3 batches of a step, as ``log.jsonl``
counts them), model GFLOP per step (``torch.utils.flop_counter.FlopCounterMode`` on one fp32 step) and the
achieved TFLOP/s; on CUDA also MFU = achieved FLOP/s / the GPU's peak dense bf16 FLOP/s (``--peak-tflops``
or a table of known GPUs). The optimised/naive ratio is the point.

Examples::

    # CPU (what benchmarks/results/throughput-biggan64-cpu-torch2.14.1.md holds)
    nice -n 10 python benchmarks/throughput/biggan_throughput.py --device cpu --ch 96 --batch-size 2 --steps 1 \\
        --ch 32 --batch-size 4 --steps 3
    # one GPU
    python benchmarks/throughput/biggan_throughput.py --device cuda --ch 96 --batch-size 256 --steps 20 --warmup 3
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import time
from dataclasses import dataclass

import torch

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) of GPUs by name fragment, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays off on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX); elsewhere it is emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class Setting:
    name: str
    bf16: bool
    channels_last: bool
    compile: bool = False


def build_inverter(ch: int, resolution: int, num_classes: int):
    import invkit

    torch.manual_seed(0)
    return invkit.create_inverter(
        "biggan_proj.paper", ch=ch, resolution=resolution, num_classes=num_classes, channels=3
    )


def make_trainer(inverter, device: torch.device, setting: Setting):
    """A trainer for a private copy of ``inverter`` (every setting starts from the same weights)."""
    inv = copy.deepcopy(inverter).to(device)
    if setting.channels_last:
        inv = inv.to(memory_format=torch.channels_last)
    torch.manual_seed(1)
    trainer = inv.make_trainer(None, bf16=setting.bf16, channels_last=setting.channels_last)
    if setting.compile:  # every G and D call of the step: the D step's no-grad G and the G step's D too
        trainer.G_train = trainer.G = torch.compile(trainer.G)
        trainer.D_train = trainer.D = torch.compile(trainer.D)
    return trainer


def batches(batch_size: int, resolution: int, num_classes: int, device: torch.device, channels_last: bool):
    g = torch.Generator(device="cpu").manual_seed(1)
    images = torch.rand(4, batch_size, 3, resolution, resolution, generator=g).to(device)
    logits = (torch.randn(4, batch_size, num_classes, generator=g) * 3).to(device)
    state = {"i": 0, "drawn": 0}

    def next_batch():
        i = state["i"] % 4
        state["i"] += 1
        state["drawn"] += batch_size
        x = images[i]
        return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), logits[i]

    return next_batch, state


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    ch: int,
    batch_size: int,
    steps: int,
    warmup: int,
    resolution: int,
    num_classes: int,
    device: torch.device,
    settings: list[Setting],
    count_flops: bool,
) -> tuple[list[dict], float | None]:
    """Time ``steps`` training steps per setting, interleaved (A, B, A, B, ...) so that a machine shared
    with other jobs slows every setting alike. Model FLOPs per step are counted with FlopCounterMode on an
    unmeasured fp32 NCHW step (the first warmup step of the naive setting, or an extra one)."""
    from torch.utils.flop_counter import FlopCounterMode

    inverter = build_inverter(ch, resolution, num_classes)
    flops = None
    runs = []
    for s in settings:
        trainer = make_trainer(inverter, device, s)
        next_batch, state = batches(batch_size, resolution, num_classes, device, s.channels_last)
        for i in range(max(warmup, 1 if count_flops and flops is None and s is settings[0] else 0)):
            if count_flops and flops is None and s is settings[0]:
                counter = FlopCounterMode(display=False)
                with counter:
                    trainer.train_step(next_batch, i)
                flops = float(counter.get_total_flops())
            else:
                trainer.train_step(next_batch, i)
        runs.append(
            {
                "setting": s,
                "trainer": trainer,
                "next_batch": next_batch,
                "state": state,
                "seconds": 0.0,
                "finite": True,
                "drawn": 0,
            }
        )
    sync(device)
    for i in range(steps):
        for r in runs:
            before = r["state"]["drawn"]
            t0 = time.perf_counter()
            losses = r["trainer"].train_step(r["next_batch"], warmup + i)
            sync(device)
            r["seconds"] += time.perf_counter() - t0
            r["drawn"] += r["state"]["drawn"] - before
            r["finite"] &= all(v == v and abs(v) != float("inf") for v in losses.values())
    rows = [
        {
            "setting": r["setting"].name,
            "ch": ch,
            "batch_size": batch_size,
            "steps": steps,
            "seconds": r["seconds"],
            "steps_per_s": steps / r["seconds"],
            "img_per_s": r["drawn"] / r["seconds"],
            "finite": r["finite"],
        }
        for r in runs
    ]
    return rows, flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--ch", type=int, action="append", help="BigGAN width (repeat for several) [96]")
    p.add_argument("--batch-size", type=int, action="append", help="batch per ch (repeat, same order) [4]")
    p.add_argument("--steps", type=int, action="append", help="measured steps per ch (repeat) [3]")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first, per setting")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=1000, help="logit dimension (ImageNet classifiers: 1000)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D in the optimised setting")
    p.add_argument(
        "--force-bf16",
        action="store_true",
        help="also time bf16 autocast + channels_last where bf16 is not native (emulated on the CPU)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's default]")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    args = p.parse_args()

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    chs = args.ch or [96]
    bss = args.batch_size or [4] * len(chs)
    stepss = args.steps or [3] * len(chs)
    peak = peak_tflops(device, args.peak_tflops)
    native_bf16 = bf16_supported(device)
    opt_name = "+".join(["channels_last"] + (["bf16"] if native_bf16 else []) + (["compile"] if args.compile else []))
    settings = [Setting("naive", False, False), Setting(f"optimised ({opt_name})", native_bf16, True, args.compile)]
    if args.force_bf16 and not native_bf16:
        settings.append(Setting("channels_last+bf16 (emulated)", True, True, args.compile))
    cpu = platform.processor() or platform.machine()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu}, {torch.get_num_threads()} threads"
    print(f"# biggan_proj {args.resolution}x{args.resolution} training throughput\n")
    print(f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(
        f"- device: {device} ({name}); native bf16: {native_bf16}; torch {torch.__version__}; "
        f"python {platform.python_version()}"
    )
    if device.type == "cpu":
        print(f"- load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine)")
    print(
        f"- naive = fp32, NCHW; optimised = {opt_name}; logit dimension {args.num_classes}; {args.warmup} "
        "warmup step(s) per setting; settings timed interleaved; a step = 2 D steps + 1 G step + EMA update;"
    )
    print("  img/s counts every image drawn (3 batches per step), as log.jsonl does\n")
    head = "| ch | batch | setting | steps | s | steps/s | img/s | GFLOP/step | TFLOP/s |" + (" MFU |" if peak else "")
    for ch, bs, steps in zip(chs, bss, stepss):
        rows, flops = measure(
            ch,
            bs,
            steps,
            args.warmup,
            args.resolution,
            args.num_classes,
            device,
            settings,
            count_flops=not args.no_flops,
        )
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for r in rows:
            tflops = flops * r["steps_per_s"] / 1e12 if flops else None
            line = (
                f"| {ch} | {bs} | {r['setting']} | {steps} | {r['seconds']:.1f} | {r['steps_per_s']:.3f} | "
                f"{r['img_per_s']:.2f} | {f'{flops / 1e9:.1f}' if flops else '-'} | "
                f"{f'{tflops:.4f}' if tflops else '-'} |"
            )
            if peak:
                line += f" {100 * tflops / peak:.2f}% |" if tflops else " - |"
            print(line, flush=True)
        ratios = ", ".join(f"{r['setting']}/naive = {r['img_per_s'] / rows[0]['img_per_s']:.2f}" for r in rows[1:])
        warn = "" if all(r["finite"] for r in rows) else "  (WARNING: non-finite losses)"
        print(f"\nch={ch}, batch {bs}: img/s ratio {ratios}{warn}\n", flush=True)
    if peak:
        print(f"MFU = model FLOPs per step (fp32 count) x steps/s / dense bf16 peak of {peak:.0f} TFLOP/s.")
    if device.type == "cpu" and os.getloadavg():
        print(f"- load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
