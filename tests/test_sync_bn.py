"""Batch norm over the global batch under DDP (invkit.training.sync_batchnorm; compare_gan's cross-replica BN).

Two gloo processes on the CPU, each with half of a batch, run a tiny ``biggan_proj`` generator whose batch norms
(the conditional batch norms' normalisation and the last, unconditional one) were converted: every batch norm's
statistics, the output images and the summed gradients equal one process running the plain generator on the
concatenated batch. Without the conversion they do not (each half is normalised on its own).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import invkit
from invkit.testing import tiny_classifier
from invkit.training.distributed import ddp_wrap
from invkit.training.sync_batchnorm import GlobalBatchNorm, batch_moments, convert_batchnorms, global_batchnorms

REPO = Path(__file__).resolve().parents[1]


def _generator() -> nn.Module:
    if "biggan_proj" not in invkit.get_registry("inverter"):
        pytest.skip("biggan_proj is not installed")
    torch.manual_seed(0)
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=tiny_classifier(), ch=4, cbn_hidden=8)
    return inv.generator.train()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(8, 120, generator=g), torch.randn(8, 10, generator=g) * 3


def _run_generator(g: nn.Module, rows: slice) -> dict:
    """One training-mode forward and backward on ``rows`` of the batch: each batch norm's input moments, the output,
    the running statistics and the parameter gradients of the loss summed over those rows."""
    noise, logits = _batch()
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach())) for m in norms]
    out = g(noise[rows], logits[rows])
    weights = torch.linspace(-1, 1, out[0].numel()).view(out.shape[1:])
    (out * weights).sum().backward()
    for h in hooks:
        h.remove()
    return {
        "inputs": inputs,
        "out": out.detach(),
        "running": [(m.running_mean.clone(), m.running_var.clone()) for m in norms],
        "grads": {n: p.grad.clone() for n, p in g.named_parameters() if p.grad is not None},
    }


def _rank(rank: int, port: int, sync: bool, queue) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        g = _generator()
        plain = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in g.modules())
        if sync:
            g = convert_batchnorms(g)
        got = _run_generator(g, slice(4 * rank, 4 * rank + 4))
        for p in got["grads"].values():  # what DDP does with them (it averages; the sum is the full-batch loss')
            dist.all_reduce(p)
        buffer = io.BytesIO()  # bytes, not tensors: a tensor in a queue is shared memory that dies with the process
        torch.save(got, buffer)
        queue.put((rank, plain, len(global_batchnorms(g)), buffer.getvalue()))
    finally:
        dist.destroy_process_group()


def _two_ranks(sync: bool) -> dict[int, tuple]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")  # children share the imported modules: two processes in about 1 s
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, sync, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        got = {
            rank: (plain, converted, torch.load(io.BytesIO(data)))
            for rank, plain, converted, data in (queue.get(timeout=60) for _ in procs)
        }
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    return got


def test_two_gloo_ranks_normalise_with_the_statistics_of_the_global_batch():
    reference = _run_generator(_generator(), slice(0, 8))  # one process, plain batch norms, the whole batch
    got = _two_ranks(sync=True)
    for rank in range(2):
        plain, converted, result = got[rank]
        assert converted == plain == 7  # 2 CBNs in each of the 3 up-blocks at 32 px + the last BN: every one
        for mine, ref in zip(result["inputs"], reference["inputs"]):
            # this rank's input is its half of the global input (same upstream statistics) ...
            torch.testing.assert_close(mine, ref[4 * rank : 4 * rank + 4], atol=2e-5, rtol=1e-4)
        for (mean, var), (ref_mean, ref_var) in zip(result["running"], reference["running"]):
            torch.testing.assert_close(mean, ref_mean, atol=1e-6, rtol=1e-5)  # ... and its statistics the global ones
            torch.testing.assert_close(var, ref_var, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(result["out"], reference["out"][4 * rank : 4 * rank + 4], atol=2e-5, rtol=1e-4)
        assert result["grads"].keys() == reference["grads"].keys()
        for name, grad in result["grads"].items():
            torch.testing.assert_close(grad, reference["grads"][name], atol=2e-4, rtol=1e-3, msg=name)
    # the moments the reference normalised with are those of the concatenated halves
    first = reference["inputs"][0]
    halves = torch.cat([first[:4], first[4:]])
    for a, b in zip(batch_moments(first), batch_moments(halves)):
        torch.testing.assert_close(a, b)


def test_without_conversion_each_rank_normalises_its_own_half():
    reference = _run_generator(_generator(), slice(0, 8))
    got = _two_ranks(sync=False)
    _, _, result = got[0]
    assert got[0][0] == 7 and got[0][1] == 0
    mean, _ = result["running"][0]
    assert not torch.allclose(mean, reference["running"][0][0], atol=1e-4)  # the first BN's statistics: its half's


def test_a_single_process_and_eval_mode_are_plain_batch_norm():
    """Outside a process group (and in eval mode) a GlobalBatchNorm computes what nn.BatchNorm2d computes; the
    conversion keeps the parameters and buffers (same tensors, same names) and the mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)))
    net[1].eval()
    before = dict(net.state_dict())
    weight = net[1].weight
    net = convert_batchnorms(net)
    assert isinstance(net[1], GlobalBatchNorm) and isinstance(net[2][0], GlobalBatchNorm)
    assert net[1].weight is weight and not net[1].training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    x = torch.randn(5, 3, 4, 4)
    ref = nn.BatchNorm2d(3)
    ref.load_state_dict(net[1].state_dict())
    torch.testing.assert_close(net[1](x), ref.eval()(x))
    net[1].train()
    ref.train()
    torch.testing.assert_close(net[1](x), ref(x))
    torch.testing.assert_close(net[1].running_var, ref.running_var)
    alone = convert_batchnorms(nn.BatchNorm2d(3))
    assert isinstance(alone, GlobalBatchNorm)


def test_ddp_wrap_converts_only_when_asked_and_leaves_copies_alone():
    """``ddp_wrap(device, sync_bn=True)`` converts the module it wraps in place (so the trainer's references see
    it) and no copy made before, such as an EMA generator (no process group is needed to convert)."""
    g = _generator()
    import copy

    ema = copy.deepcopy(g)
    from invkit.training import distributed

    seen = []
    original = distributed.DistributedDataParallel
    try:
        distributed.DistributedDataParallel = lambda module, **kw: seen.append(module) or module
        ddp_wrap(torch.device("cpu"), sync_bn=True)(g)
        assert len(global_batchnorms(g)) == 7 and seen == [g]
        assert not global_batchnorms(ema)
        other = copy.deepcopy(ema)
        ddp_wrap(torch.device("cpu"))(other)
        assert not global_batchnorms(other)
    finally:
        distributed.DistributedDataParallel = original


def _torchrun_biggan(tmp_path: Path, out: Path, *more: str) -> subprocess.CompletedProcess:
    toy = REPO / "tests" / "_toy_inverter.py"
    args = ["train", "--classifier", "toyclf.base", "--inverter", "biggan_proj.mnist32", "--ch", "4"]
    args += ["-o", "cbn_hidden=8", "--out", str(out), "--steps", "2", "--batch-size", "4", "--save-every", "2"]
    args += ["--sample-every", "2", "--log-every", "1", "--device", "cpu", *more]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(toy), "cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TOY_HASH_DIR=str(tmp_path))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two torchrun runs of a tiny biggan_proj: 56 s on the loaded 2-core machine
def test_torchrun_biggan_trains_with_global_batch_norm_and_records_it(tmp_path):
    """`invkit train` under torchrun (gloo, 2 processes) with global batch norm (the default) runs the whole loop —
    D steps, G step, samples and checkpoint on rank 0 alone — without a rank waiting on another, records the choice,
    and its losses differ from the same run with --no-sync-bn."""
    runs = {}
    for flag in ("--sync-bn", "--no-sync-bn"):
        out = tmp_path / flag.strip("-")
        r = _torchrun_biggan(tmp_path, out, flag)
        assert r.returncode == 0, r.stderr[-3000:]
        doc = json.loads((out / "train_config.json").read_text())
        assert doc["train"]["sync_batchnorm"] is (flag == "--sync-bn")
        runs[flag] = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"g_loss"' in line]
    assert [ln["step"] for ln in runs["--sync-bn"]] == [1, 2]
    assert runs["--sync-bn"][0]["g_loss"] != runs["--no-sync-bn"][0]["g_loss"]


def test_a_run_from_before_the_option_resumes_with_per_process_statistics(tmp_path):
    """A train_config.json without ``sync_batchnorm`` (invkit before --sync-bn normalised each process' shard)
    resumes with it off; a new run records it on."""
    from click.testing import CliRunner

    from invkit.cli import build_cli

    sys.path.insert(0, str(Path(__file__).parent))
    import _toy_inverter

    _toy_inverter.register()
    out = tmp_path / "run"
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--out", str(out), "--device", "cpu"]
    args += ["--batch-size", "8", "--save-every", "1", "--sample-every", "0"]
    r = CliRunner().invoke(build_cli(), [*args, "--steps", "1"])
    assert r.exit_code == 0, r.output
    path = out / "train_config.json"
    doc = json.loads(path.read_text())
    assert doc["train"]["sync_batchnorm"] is True
    del doc["train"]["sync_batchnorm"]
    path.write_text(json.dumps(doc))
    r = CliRunner().invoke(build_cli(), ["train", "--out", str(out), "--resume", "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert json.loads(path.read_text())["train"]["sync_batchnorm"] is False
