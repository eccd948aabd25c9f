"""biggan_proj training steps against BigGAN-PyTorch's, interleaved in one process (issue 11).

Times full GAN training steps (``num_d_steps`` D steps + 1 G step + EMA update) of

* ``invkit fp32``: invkit's ``biggan_proj`` trainer in fp32, NCHW (what it ran before issue 11);
* ``invkit auto``: the same trainer with its defaults (``precision="auto"``: bf16 autocast + channels_last
  where the device has native bf16, fp32 elsewhere) -- what ``invkit train`` now runs;
* ``peer fp32``: BigGAN-PyTorch's ``Generator``/``Discriminator`` (github.com/ajbrock/BigGAN-PyTorch, imported
  from ``--peer``, never copied into this repository) driven by a training step written here after its
  ``train_fns.GAN_training_function``: D on ``cat([G(z), x])``, hinge losses, the modules' own Adam, EMA of G;
* ``peer bf16+cl`` (with ``--peer-bf16``): the peer under the same autocast + channels_last, to separate what
  the precision lever buys from what the code buys.

Same widths: the peer is conditioned on logits the way invkit is (its ``G.shared`` embedding becomes a linear
map of the logits, its projection ``embed`` an SN linear of the logits), its attention is placed where invkit's
is, and its 64x64 D gets invkit's D widths (2/4/8/16/16 x ch, the paper's supplement; BigGAN-PyTorch's own
D_arch[64] is 1/2/4/8/16 x ch). Remaining differences (documented, small in FLOPs): invkit's CBN gain/bias are
two-layer MLPs of [logits, noise chunk] (Eq. 3), the peer's are one SN linear of [shared(logits), chunk].

Settings are timed round-robin (one step of each, repeated ``--rounds`` times) so that other jobs on a shared
machine slow all of them alike; the median step time per setting is reported with the ratio to ``peer fp32``.
FLOPs per step are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one fp32 step of each network
(matmuls and convolutions, forward and backward); GFLOP/s = those FLOPs / median step time (so a bf16 step is
credited with the same model FLOPs as an fp32 one). The peak is ``cores x GHz x FLOP/cycle/core``, given with
``--peak-fp32``/``--peak-bf16`` (GFLOP/s) or derived from lscpu as documented in docs/training.md.

Example (what benchmarks/results/throughput-peer-cpu-torch2.14.1.md holds)::

    # the peer's files, outside the repository (fetch ajbrock/BigGAN-PyTorch first; its code is never committed)
    mkdir -p /tmp/peer/sync_batchnorm
    for f in BigGAN.py layers.py sync_batchnorm/__init__.py sync_batchnorm/batchnorm.py sync_batchnorm/comm.py \
        sync_batchnorm/replicate.py; do git --git-dir=PEER_GIT_DIR show HEAD:$f > /tmp/peer/$f; done
    nice -n 10 python benchmarks/throughput/peer_compare.py --peer /tmp/peer --config 32:16:64 --rounds 5 \
        --peer-bf16 --threads 1
    nice -n 10 python benchmarks/throughput/peer_compare.py --peer /tmp/peer --config 64:32:8 --rounds 3 \
        --peer-bf16 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def uptime() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "?").strip()
    return f"{model}, {fields.get('CPU(s)', '?').strip()} CPU(s)"


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# ------------------------------------------------------------------------------------------------------- invkit
def invkit_setting(res: int, ch: int, num_classes: int, precision: str, device: torch.device):
    """An invkit biggan_proj trainer; returns (step(next_batch), trainer)."""
    import invkit

    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.paper", ch=ch, resolution=res, num_classes=num_classes, channels=3)
    inv = inv.to(device)
    # "auto": the trainer's defaults (bf16 + channels_last where native_bf16(device)), as `invkit train` runs it.
    options = {} if precision == "auto" else {"bf16": precision == "bf16", "channels_last": precision == "bf16"}
    torch.manual_seed(1)
    trainer = inv.make_trainer(None, **options)
    counter = [0]

    def step(next_batch: Callable) -> dict[str, float]:
        counter[0] += 1
        return trainer.train_step(next_batch, counter[0])

    return step, trainer


# --------------------------------------------------------------------------------------------------------- peer
def import_peer(path: str):
    if not os.path.isfile(os.path.join(path, "BigGAN.py")):
        sys.exit(
            f"--peer {path}: no BigGAN.py there; copy BigGAN.py, layers.py and sync_batchnorm/ from "
            "ajbrock/BigGAN-PyTorch into that folder."
        )
    sys.path.insert(0, path)
    import BigGAN  # noqa: PLC0415 (the peer's module, from --peer)
    import layers  # noqa: PLC0415

    original = BigGAN.D_arch

    def d_arch_invkit_widths(ch=64, attention="64", *args, **kwargs):
        # invkit's 64x64 D widths (paper supplement: 2/4/8/16/16 x ch); the peer's own are 1/2/4/8/16 x ch.
        arch = original(ch, attention, *args, **kwargs)
        arch[64]["in_channels"] = [3] + [ch * m for m in (2, 4, 8, 16)]
        arch[64]["out_channels"] = [ch * m for m in (2, 4, 8, 16, 16)]
        return arch

    BigGAN.D_arch = d_arch_invkit_widths
    return BigGAN, layers


class PeerStep:
    """One BigGAN-PyTorch training step, after its train_fns.GAN_training_function (hinge loss, D on [G(z); x])."""

    def __init__(self, BigGAN, layers, res: int, ch: int, num_classes: int, device, bf16: bool, cl: bool):
        g_attn = "64" if res == 64 else "0"  # where invkit's defaults put attention (g_attention=64)
        d_attn = "32" if res == 64 else "0"  # invkit: d_attention=32, after D's first (downsampling) block
        common = dict(resolution=res, n_classes=num_classes, SN_eps=1e-6, adam_eps=1e-6, skip_init=False)
        torch.manual_seed(0)
        quiet = open(os.devnull, "w")  # noqa: SIM115 (the peer prints while building)
        stdout, sys.stdout = sys.stdout, quiet
        try:
            self.G = BigGAN.Generator(
                G_ch=ch, dim_z=120, hier=True, shared_dim=128, G_shared=True, G_attn=g_attn, G_lr=1e-4, **common
            )
            self.D = BigGAN.Discriminator(D_ch=ch, D_attn=d_attn, D_lr=5e-4, **common)
            self.G_ema = BigGAN.Generator(
                G_ch=ch, dim_z=120, hier=True, shared_dim=128, G_shared=True, G_attn=g_attn, no_optim=True, **common
            )
        finally:
            sys.stdout = stdout
            quiet.close()
        # Logit conditioning: G.shared (an nn.Embedding of class ids) -> a linear map of the logits, D.embed
        # (an SNEmbedding) -> an SN linear of the logits. Optimisers are rebuilt to include the new weights.
        self.G.shared = nn.Linear(num_classes, 128, bias=False)
        self.G_ema.shared = nn.Linear(num_classes, 128, bias=False)
        self.D.embed = layers.SNLinear(num_classes, self.D.arch["out_channels"][-1], bias=False, eps=1e-6)
        nn.init.orthogonal_(self.D.embed.weight)
        self.G_ema.load_state_dict(self.G.state_dict())
        for m in (self.G, self.D, self.G_ema):
            m.to(device)
        if cl:
            # The peer's spectral norm views its weights as matrices (.view), which channels_last weights refuse,
            # so its weights stay NCHW; channels_last activations make every conv run channels_last anyway:
            # D gets channels_last images, G's first block a channels_last input (a hook, no change to its code).
            self.G.blocks[0][0].register_forward_pre_hook(
                lambda _, args: (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
            )
        self.G.optim = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.0, 0.999), eps=1e-6)
        self.D.optim = torch.optim.Adam(self.D.parameters(), lr=5e-4, betas=(0.0, 0.999), eps=1e-6)
        self.device, self.bf16, self.cl = device, bf16, cl
        self.noise = torch.Generator().manual_seed(1)
        self.ema_pairs = [
            (self.G_ema.state_dict()[k], v) for k, v in self.G.state_dict().items() if v.dtype.is_floating_point
        ]

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    def z(self, n: int) -> torch.Tensor:
        return torch.randn(n, 120, generator=self.noise).to(self.device)

    def batch(self, next_batch):
        x, y = next_batch()
        x = x.to(self.device) * 2 - 1
        return (x.contiguous(memory_format=torch.channels_last) if self.cl else x), y.to(self.device)

    def __call__(self, next_batch: Callable, num_d_steps: int = 2, ema_decay: float = 0.9999) -> dict[str, float]:
        self.G.train()
        self.D.train()
        for p in self.D.parameters():  # utils.toggle_grad(D, True)
            p.requires_grad_(True)
        for _ in range(num_d_steps):
            x, y = self.batch(next_batch)
            with torch.no_grad(), self.autocast():
                g_z = self.G(self.z(x.shape[0]), self.G.shared(y))
            with self.autocast():
                out = self.D(torch.cat([g_z.to(x.dtype), x]), torch.cat([y, y])).float()
            d_fake, d_real = out[: x.shape[0]], out[x.shape[0] :]
            loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()  # losses.loss_hinge_dis
            self.D.optim.zero_grad()
            loss.backward()
            self.D.optim.step()
        for p in self.D.parameters():  # utils.toggle_grad(D, False)
            p.requires_grad_(False)
        _, y = self.batch(next_batch)
        with self.autocast():
            d_out = self.D(self.G(self.z(y.shape[0]), self.G.shared(y)), y).float()
        g_loss = -d_out.mean()  # losses.loss_hinge_gen
        self.G.optim.zero_grad()
        g_loss.backward()
        self.G.optim.step()
        with torch.no_grad():  # utils.ema: target = target * decay + source * (1 - decay), every state entry
            for t, s in self.ema_pairs:
                t.copy_(t * ema_decay + s * (1 - ema_decay))
        return {"d_loss": loss.item(), "g_loss": g_loss.item()}


# ---------------------------------------------------------------------------------------------------- measuring
def make_batches(bs: int, res: int, num_classes: int, device: torch.device):
    g = torch.Generator().manual_seed(2)
    images = torch.rand(4, bs, 3, res, res, generator=g).to(device)
    logits = (torch.randn(4, bs, num_classes, generator=g) * 3).to(device)
    state = [0]

    def next_batch():
        state[0] += 1
        return images[state[0] % 4], logits[state[0] % 4]

    return next_batch


def count_flops(step: Callable, next_batch: Callable) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(next_batch)
    return float(counter.get_total_flops())


def run_config(args, res: int, ch: int, bs: int, device: torch.device, BigGAN, layers) -> None:
    bf16_ok = native_bf16(device)
    settings: dict[str, Callable] = {}
    settings["invkit fp32"], _ = invkit_setting(res, ch, args.num_classes, "fp32", device)
    step, trainer = invkit_setting(res, ch, args.num_classes, "auto", device)
    auto_name = "invkit auto (" + ("bf16+channels_last" if trainer.bf16 else "fp32") + ")"
    settings[auto_name] = step
    if args.compile:
        cstep, ctrainer = invkit_setting(res, ch, args.num_classes, "auto", device)
        ctrainer.G_train = ctrainer.G = torch.compile(ctrainer.G)
        ctrainer.D_train = ctrainer.D = torch.compile(ctrainer.D)
        settings[auto_name[:-1] + "+compile)"] = cstep
    settings["peer fp32"] = PeerStep(BigGAN, layers, res, ch, args.num_classes, device, False, False)
    if args.peer_bf16:
        settings["peer bf16+cl"] = PeerStep(BigGAN, layers, res, ch, args.num_classes, device, True, True)

    next_batch = make_batches(bs, res, args.num_classes, device)
    flops = {}
    if not args.no_flops:  # one fp32 step each (unmeasured)
        flops["invkit"] = count_flops(settings["invkit fp32"], next_batch)
        flops["peer"] = count_flops(settings["peer fp32"], next_batch)
    compile_s = {}
    for name, step in settings.items():  # warmup (and compilation, timed)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step(next_batch)
        if "compile" in name:
            compile_s[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in settings}
    loads = [uptime()]
    for _ in range(args.rounds):
        for name, step in settings.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            step(next_batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - t0)
        loads.append(uptime())
    peer = times["peer fp32"]
    print(f"\n### {res}x{res}, ch={ch}, batch {bs}, {args.num_classes}-d logits, 2 D steps + 1 G step + EMA\n")
    print(f"- load average (1, 5, 15 min) before the rounds: {loads[0]}; after: {loads[-1]}")
    if flops:
        print(
            f"- model GFLOP per step (fp32 count): invkit {flops['invkit'] / 1e9:.1f}, peer {flops['peer'] / 1e9:.1f}"
        )
    for name, s in compile_s.items():
        print(f"- {name}: {args.warmup} warmup step(s) including compilation took {s:.1f} s")
    peak = args.peak_bf16 if bf16_ok else args.peak_fp32
    print()
    print(
        "| setting | median s/step | min | max | img/s | ratio to peer fp32 (medians) | median of per-round ratios "
        "| GFLOP/s | % of fp32 peak | % of bf16 peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        per_round = statistics.median(t / p for t, p in zip(ts, peer))
        f = flops.get("peer" if name.startswith("peer") else "invkit")
        gflops = f / med / 1e9 if f else None
        cols = [
            name,
            f"{med:.3f}",
            f"{min(ts):.3f}",
            f"{max(ts):.3f}",
            f"{3 * bs / med:.1f}",
            f"{med / statistics.median(peer):.2f}",
            f"{per_round:.2f}",
            f"{gflops:.1f}" if gflops else "-",
            f"{100 * gflops / args.peak_fp32:.1f}%" if gflops and args.peak_fp32 else "-",
            f"{100 * gflops / args.peak_bf16:.1f}%" if gflops and args.peak_bf16 and peak else "-",
        ]
        print("| " + " | ".join(cols) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--peer", required=True, help="folder holding BigGAN-PyTorch's BigGAN.py, layers.py, sync_batchnorm/"
    )
    p.add_argument("--config", action="append", help="RES:CH:BATCH, repeatable [32:16:64]")
    p.add_argument("--rounds", type=int, default=5, help="timed round-robin rounds (one step per setting each)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps per setting first")
    p.add_argument("--num-classes", type=int, default=200, help="logit dimension (Tiny ImageNet: 200)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads [torch's default]")
    p.add_argument("--peer-bf16", action="store_true", help="also time the peer under bf16 autocast + channels_last")
    p.add_argument("--compile", action="store_true", help="also time invkit auto with torch.compile of G and D")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    # 2 cores x 2.6 GHz x 2 AVX-512 FMA units x 16 fp32 lanes x 2 FLOP = 332.8 GFLOP/s;
    # bf16 on AMX: 2 cores x 2.6 GHz x 1024 bf16 FLOP/cycle (one TMUL per core) = 5324.8 GFLOP/s.
    p.add_argument("--peak-fp32", type=float, default=332.8, help="fp32 peak of the machine in GFLOP/s")
    p.add_argument("--peak-bf16", type=float, default=5324.8, help="bf16 peak of the machine in GFLOP/s")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    BigGAN, layers = import_peer(args.peer)
    print("# biggan_proj against BigGAN-PyTorch: training step time, interleaved\n")
    print(f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='minutes')}")
    print(f"- command: `{' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}`")
    print(
        f"- machine: {lscpu_model()}; torch {torch.__version__} ({torch.get_num_threads()} threads, CPU "
        f"capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16(device)}); python "
        f"{platform.python_version()}; load average at start: {uptime()}"
    )
    print(
        f"- {args.rounds} timed rounds, {args.warmup} warmup step(s) per setting; peaks used: fp32 "
        f"{args.peak_fp32:.1f} GFLOP/s, bf16 {args.peak_bf16:.1f} GFLOP/s"
    )
    for spec in args.config or ["32:16:64"]:
        res, ch, bs = (int(v) for v in spec.split(":"))
        run_config(args, res, ch, bs, device, BigGAN, layers)
    print(f"\n- load average at end: {uptime()}")


if __name__ == "__main__":
    main()
