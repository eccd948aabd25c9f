"""The training loop for learned inverters (``biggan_proj``, ``dosovitskiy_brox``, any plugin's).

The loop owns everything around one optimisation step; the inverter's ``InverterTrainer`` owns the step's
maths (see ``invkit.inverter.InverterTrainer``). The loop provides:

* **Data order.** Sample ``k`` of the endless stream is ``perm_e[k % N]`` with ``e = k // N`` and ``perm_e``
  a permutation drawn from ``(seed, e)``. The stream position (samples consumed) is saved with every
  checkpoint, so a resumed run draws exactly the batches the uninterrupted run would have drawn. Under
  ``torchrun`` each global batch of ``batch_size`` indices is cut into ``world_size`` contiguous shards, one
  per rank (what ``DistributedSampler`` does, but resumable mid-epoch).
* **Logits of the frozen classifier**, computed from the training images resized to the inverter's
  resolution: on the fly, or once for the whole data set when it is fixed (no augmentation).
* **Checkpoints** ``OUT/checkpoints/step_NNNNNN/`` (config.json + model.safetensors + train_state.safetensors),
  each written into a hidden temporary folder and renamed into place, so a crash never leaves a half-written
  checkpoint; ``OUT/checkpoints/latest`` names the newest. The training state holds the trainer's
  ``state_dict()``, the step, the data position and every RNG state (torch CPU and CUDA, python, numpy) of
  every rank, which is what makes ``resume`` bit-exact.
* **Logs and samples**: ``OUT/train_config.json`` (the resolved run), ``OUT/log.jsonl`` (one JSON line per
  log step), ``OUT/samples/step_NNNNNN.png`` (held-out images above their reconstructions from fixed
  logits and fixed noise), and ``OUT/curves.png`` + ``OUT/report.html`` (``invkit.train_report``), redrawn
  with every sample grid.
* **Stops** with ``TrainingError`` (one line) on a non-finite loss or weight, on a loss stuck at one value
  for ``stuck_steps`` steps, or on samples that no longer depend on their logits (collapse); the last good
  checkpoint is kept.
* **Distributed data parallel** under ``torchrun`` (gloo on CPU, nccl on CUDA); only rank 0 writes files
  and reports progress.

Progress goes to a ``ProgressCallback``; this module never prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import (
    CONFIG_NAME,
    TRAIN_STATE_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
    load_checkpoint_weights,
    load_train_state,
)
from .classifier import Classifier
from .data import ImageDataset, TensorImageDataset, for_classifier, resize, take
from .errors import CheckpointError, InvkitError, TrainingError
from .interrupt import interrupted_error, stop_requests
from .inverter import Batch, Inverter, InverterTrainer
from .outputs import dataset_fingerprint, machine_info
from .progress import Progress, ProgressCallback, no_progress
from .train_report import LOG, append_log, log_interruption, log_start, trim_log, write_train_report

CHECKPOINTS = "checkpoints"
LATEST = "latest"
CONFIG_FILE = "train_config.json"
LOG_FILE = LOG  # log.jsonl, written through invkit.train_report
SAMPLES = "samples"
# how to go on after an interruption (bench trains through train_inverter too)
RESUME_HINT = (
    "run the same command again to continue from it (with --resume for `invkit train`; `invkit bench` resumes its "
    "own training runs)."
)
IN_MEMORY_LIMIT = 200_000  # folders with more images are decoded batch by batch instead of held in memory


@dataclass
class TrainConfig:
    """One training run. Written, resolved, to ``OUT/train_config.json``."""

    classifier: str = ""  # registry name or checkpoint folder of the frozen classifier (recorded only)
    inverter: str = ""  # registry name of the inverter (recorded only; the caller builds it)
    data: str = "default"  # data set spec (recorded only)
    out: str = "runs/train"  # output folder: config, log, samples, checkpoints
    weights: str | None = None  # published classifier weights file, if any (recorded only)
    steps: int = 10_000  # optimisation steps of the inverter (for a GAN: G steps)
    batch_size: int = 64  # global batch (all ranks together) per next_batch() call
    resolution: int | None = None  # inverter output side; None: the inverter's default
    ch: int | None = None  # width multiplier of the inverter (BigGAN ``ch``); None: the inverter's default
    seed: int = 0  # seeds weights, data order, noise and the held-out samples
    lr_g: float | None = None  # inverter (generator) learning rate, passed to the trainer as ``g_lr``
    lr_d: float | None = None  # discriminator learning rate, passed to the trainer as ``d_lr``
    options: dict[str, Any] = field(default_factory=dict)  # key=value: inverter config fields or trainer options
    save_every: int = 1000  # checkpoint every N steps (and at the last step)
    sample_every: int = 500  # sample grid every N steps (and at the last step); 0: only at the end
    log_every: int = 50  # one log.jsonl line and a progress update every N steps
    keep_checkpoints: int = 3  # newest checkpoints kept; 0 keeps all
    device: str = "cpu"  # cpu or cuda (under torchrun, cuda means cuda:LOCAL_RANK)
    precision: str | None = None  # fp32 or bf16 autocast (trainer option ``bf16``); None: the trainer's default
    channels_last: bool | None = None  # channels_last memory format; None: the trainer's default
    cache_logits: bool | None = None  # logits computed once for the data set; None: when augment is "none"
    augment: str = "none"  # "none" or "hflip" (random horizontal flips; logits then computed on the fly)
    sample_count: int = 20  # held-out images in the sample grid (an equal number per class)
    stuck_steps: int = 1000  # stop when a loss (a key containing "loss") has not changed for N steps; 0: never
    collapse_std: float = 1e-4  # stop when sample images vary less than this across the grid; 0: never

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Fields a resumed run must share with the run it continues (the others may change, e.g. more steps).
RUN_DEFINING = (
    "classifier",
    "inverter",
    "data",
    "weights",
    "batch_size",
    "resolution",
    "ch",
    "seed",
    "lr_g",
    "lr_d",
    "options",
    "augment",
)


@dataclass
class TrainResult:
    """What ``train_inverter`` returns.

    Attributes:
        step: steps completed.
        checkpoint: the newest checkpoint folder (None if none was written).
        losses: the last step's losses (averaged over ranks).
        images_per_s: mean training throughput of this process' run (all ranks together).
        trainer: the trainer, for library use (its ``inference_inverter()`` is the trained inverter).
    """

    step: int
    checkpoint: Path | None
    losses: dict[str, float]
    images_per_s: float
    trainer: InverterTrainer


# --------------------------------------------------------------------------------------------- small helpers
def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (``derive_seed(seed, "epoch", 3)``); stable across processes and runs."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def config_field_names(inverter: Inverter) -> set[str]:
    cfg = inverter.config
    return {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set(cfg)


def build_inverter(
    config: TrainConfig, classifier: Classifier, create: Callable[..., Inverter] | None = None
) -> tuple[Inverter, dict[str, Any]]:
    """Build the inverter of a run, seeded, and split ``config.options`` into config fields and trainer options.

    Options naming a field of the inverter's config go to its factory; the rest are trainer options.

    Args:
        config: the run; ``inverter``, ``resolution``, ``ch``, ``seed``, ``options`` are used.
        classifier: the frozen classifier (gives num_classes and channels).
        create: ``create(name, classifier, **config_fields) -> Inverter``; default ``invkit.create_inverter``.

    Returns:
        The inverter (identical on every rank for the same seed) and the trainer options.

    Raises:
        TrainingError: ``config.ch`` is set but the inverter's config has no ``ch`` field.
        UnknownNameError: ``config.inverter`` is not a registered name (default ``create`` only).
        InputError: the inverter's factory refuses ``resolution``, ``ch`` or a config option's value.
    """
    if create is None:
        from . import create_inverter

        def create(name: str, classifier: Classifier, **kw: Any) -> Inverter:
            return create_inverter(name, classifier=classifier, **kw)

    base = {k: v for k, v in (("resolution", config.resolution), ("ch", config.ch)) if v is not None}
    torch.manual_seed(derive_seed(config.seed, "inverter"))
    inverter = create(config.inverter, classifier, **base)
    fields = config_field_names(inverter)
    if "ch" in base and "ch" not in fields:
        raise TrainingError(
            f"{inverter.registry_name} has no width option 'ch'; drop --ch (its config fields: "
            f"{', '.join(sorted(fields))})."
        )
    cfg_opts = {k: v for k, v in config.options.items() if k in fields}
    trainer_opts = {k: v for k, v in config.options.items() if k not in fields}
    if cfg_opts:  # rebuild with the config options, from the same seed
        torch.manual_seed(derive_seed(config.seed, "inverter"))
        inverter = create(config.inverter, classifier, **base, **cfg_opts)
    if config.lr_g is not None:
        trainer_opts["g_lr"] = config.lr_g
    if config.lr_d is not None:
        trainer_opts["d_lr"] = config.lr_d
    return inverter, trainer_opts


# ------------------------------------------------------------------------------------------------ distributed
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # whether this module initialised the process group (and tears it down)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> _Dist:
    """Join the ``torchrun`` process group if the environment asks for one (RANK/WORLD_SIZE/LOCAL_RANK)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    owned = False
    if not dist.is_initialized():
        cuda = device_name.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owned = True
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local, owned=owned)


def _broadcast_flag(d: _Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, on every rank."""
    if not d.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


# ------------------------------------------------------------------------------------------------------ data
class BatchStream:
    """The seeded, resumable order of training samples, sharded over ranks.

    Args:
        n: data set size.
        batch_size: global batch size (divisible by ``world``).
        seed: run seed; epoch ``e`` uses ``randperm(n)`` seeded by ``(seed, "epoch", e)``.
        rank, world: this process' shard.
        position: samples of the global stream already consumed (0 for a fresh run).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, position: int = 0):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.position = position
        self._perm: tuple[int, torch.Tensor] | None = None

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def next_indices(self) -> tuple[torch.Tensor, int]:
        """This rank's sample indices of the next global batch, and the batch's start position."""
        start = self.position
        local = self.batch_size // self.world
        ks = range(start + self.rank * local, start + (self.rank + 1) * local)
        idx = torch.tensor([int(self._epoch_perm(k // self.n)[k % self.n]) for k in ks], dtype=torch.long)
        self.position += self.batch_size
        return idx, start


class _Source:
    """Images (resized to the inverter's shape) and their logits, by index."""

    def __init__(
        self,
        dataset: ImageDataset,
        shape: tuple[int, int, int],
        classifier: Classifier,
        device: torch.device,
        autocast: bool,
        cache_logits: bool,
        augment: str,
        seed: int,
        channels_last: bool,
    ):
        self.shape, self.classifier, self.device = shape, classifier, device
        self.autocast, self.augment, self.seed, self.channels_last = autocast, augment, seed, channels_last
        self.dataset = dataset
        self.images_u8: torch.Tensor | None = None
        if isinstance(dataset, TensorImageDataset):
            self.images_u8 = dataset.images
        elif hasattr(dataset, "materialize") and len(dataset) <= IN_MEMORY_LIMIT:
            self.images_u8 = dataset.materialize(size=shape[-1]).images
        self.logits: torch.Tensor | None = None
        if cache_logits:
            chunks = []
            for i in range(0, len(dataset), 256):
                chunks.append(self._logits(self._images(torch.arange(i, min(i + 256, len(dataset))))))
            self.logits = torch.cat(chunks)

    def __len__(self) -> int:
        return len(self.dataset)

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        c, r, _ = self.shape
        if self.images_u8 is not None:  # uint8 to the device first: a quarter of the bytes of float32
            x = self.images_u8[idx].to(self.device, non_blocking=True).float() / 255.0
        else:  # lazily decoded folder: images may differ in size, resize one by one
            x = torch.cat([resize(self.dataset[int(i)][0][None], r, c) for i in idx])
        return resize(x, r, c).to(self.device)

    @torch.no_grad()
    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.classifier.logits(images).float()

    def batch(self, idx: torch.Tensor, position: int) -> Batch:
        images = self._images(idx)
        if self.augment == "hflip":  # flips drawn from (seed, position): resumable without saved state
            g = torch.Generator().manual_seed(derive_seed(self.seed, "hflip", position))
            flip = (torch.rand(len(idx), generator=g) < 0.5).to(self.device)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        logits = self.logits[idx.to(self.logits.device)] if self.logits is not None else self._logits(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, logits


# ----------------------------------------------------------------------------------------------- RNG states
def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch_cpu"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


def _gather_rng(d: _Dist, device: torch.device) -> list[dict[str, Any]]:
    mine = _rng_state(device)
    if not d.active:
        return [mine]
    import torch.distributed as dist

    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, mine)
    return out


# ------------------------------------------------------------------------------------------------ checkpoints
def checkpoint_dir(out: str | os.PathLike, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f"step_{step:06d}"


def find_checkpoints(out: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoint folders of a run, oldest first. Hidden temporary folders are never listed."""
    root = Path(out) / CHECKPOINTS
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit():
                if all((p / f).is_file() for f in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME)):
                    found.append((int(p.name[5:]), p))
    return sorted(found)


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = find_checkpoints(out)
    return found[-1][1] if found else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(
    out: str | os.PathLike,
    step: int,
    inverter: Inverter,
    train_state: dict[str, Any],
    extra: dict[str, Any],
    keep: int = 0,
) -> Path:
    """Write ``OUT/checkpoints/step_NNNNNN`` atomically: into a hidden temporary folder, then one rename.

    Args:
        keep: how many of the newest checkpoints to keep (0: all). Older ones are renamed away, then deleted.
    """
    root = Path(out) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(out, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        inverter.save(tmp, train_state=train_state, extra=extra)
        _fsync_dir(tmp)
        if final.exists():  # the same step written again: move the old one out of the way first
            final.rename(root / f".old-{final.name}-{os.getpid()}")
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    if keep > 0:
        for _, old in find_checkpoints(out)[:-keep]:
            trash = root / f".old-{old.name}-{os.getpid()}"
            old.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
    for leftover in root.glob(".old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def _clean_partial(out: Path) -> None:
    """Remove temporary folders a killed run left behind (they never count as checkpoints)."""
    root = out / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)


def _all_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return k
    return None


# ------------------------------------------------------------------------------------------------------ loop
def _check_config(config: TrainConfig, world: int) -> None:
    from .config import check_fields

    check_fields(TrainConfig, config.to_dict(), "train config")  # types, NaN/inf, negative or zero sizes and rates
    if config.steps < 0:
        raise TrainingError(f"--steps must be >= 0, got {config.steps}.")
    if config.batch_size < 1 or config.batch_size % world:
        raise TrainingError(
            f"--batch-size {config.batch_size} must be a positive multiple of the number of processes ({world})."
        )
    if config.augment not in ("none", "hflip"):
        raise TrainingError(f"augment must be 'none' or 'hflip', got '{config.augment}'.")
    if config.precision not in (None, "fp32", "bf16"):
        raise TrainingError(f"--precision must be fp32 or bf16, got '{config.precision}'.")
    if config.cache_logits and config.augment != "none":
        raise TrainingError("--cache-logits needs a fixed data set, but augment is on; use --no-cache-logits.")
    for name in ("save_every", "log_every"):
        if getattr(config, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}.")


def train_inverter(
    config: TrainConfig,
    classifier: Classifier,
    inverter: Inverter,
    train_set: ImageDataset,
    heldout_set: ImageDataset | None = None,
    *,
    trainer_options: dict[str, Any] | None = None,
    resume: bool = False,
    progress: ProgressCallback = no_progress,
) -> TrainResult:
    """Train ``inverter`` to invert the frozen ``classifier`` on ``train_set``.

    Args:
        config: the run (``build_inverter`` builds ``inverter`` and ``trainer_options`` from it).
        classifier: frozen; its logits of the training images are the inverter's input.
        inverter: a learned inverter (``make_trainer`` implemented), on the CPU.
        train_set: training images.
        heldout_set: images for the sample grids (default: ``train_set``).
        trainer_options: passed to ``inverter.make_trainer`` (besides ``bf16``/``channels_last`` from config).
        resume: continue from the newest checkpoint in ``config.out`` (a fresh start if there is none).
        progress: receives one event per step (step, img/s, losses); only rank 0 reports.

    Raises:
        TrainingError: bad settings, an inverter with no training step, NaN/inf, a stuck loss or collapse.
        InputError: a ``config`` field of the wrong type, NaN/inf, or a negative or zero size or rate
            (``invkit.config.check_fields``).
        DataError: data whose class names the classifier does not know (``invkit.data.for_classifier``).
    """
    train_set = for_classifier(train_set, classifier)  # labels by class name, never by folder order
    heldout_set = for_classifier(heldout_set, classifier) if heldout_set is not None else None
    d = _init_distributed(config.device)
    try:
        return _train(
            config,
            classifier,
            inverter,
            train_set,
            heldout_set if heldout_set is not None else train_set,
            dict(trainer_options or {}),
            resume,
            progress,
            d,
        )
    finally:
        if d.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in [*module.parameters(), *module.buffers()]), torch.device("cpu"))


def _check_memory(
    config: TrainConfig, classifier: Classifier, inverter: Inverter, n_images: int, device: torch.device, world: int
) -> None:
    """Refuse, before anything is written, a batch larger than the data set or one that cannot fit in memory
    (a lower-bound estimate from one forward pass of two images; see ``invkit.memory``)."""
    from .memory import activation_bytes, check_fits, parameter_bytes

    if config.batch_size > n_images:
        raise TrainingError(
            f"--batch-size {config.batch_size} is larger than the {n_images} training images; use at most {n_images}."
        )
    was_training = inverter.training
    inverter.eval()  # no running statistics or power iterations change, and no global RNG is drawn from
    try:
        x = torch.zeros(2, *classifier.config.input_size, device=_device_of(classifier))
        per_cls = activation_bytes([classifier], lambda: classifier.logits(x)) / 2
        with torch.no_grad():
            logits = classifier.logits(x)
        inv_device = _device_of(inverter)
        g = torch.Generator(device=inv_device).manual_seed(0)
        per_inv = activation_bytes([inverter], lambda: inverter.invert(logits.to(inv_device), generator=g)) / 2
    finally:
        inverter.train(was_training)
    scale = 0.5 if config.precision == "bf16" else 1.0
    per_image = int(scale * (2 * per_inv + per_cls))  # the inverter's activations and their gradients
    fixed = 5 * parameter_bytes([inverter]) + parameter_bytes([classifier])  # + grads, Adam moments, EMA
    # each process holds its share of the global batch; the message speaks of the global batch
    share = config.batch_size // max(world, 1)
    check_fits("--batch-size", share, per_image, fixed, device, TrainingError, scale=max(world, 1))


def _train(
    config: TrainConfig,
    classifier: Classifier,
    inverter: Inverter,
    train_set: ImageDataset,
    heldout_set: ImageDataset,
    trainer_options: dict[str, Any],
    resume: bool,
    progress: ProgressCallback,
    d: _Dist,
) -> TrainResult:
    """One run, stage by stage: output folder -> trainer -> images and their logits -> resume -> the loop."""
    _check_config(config, d.world)
    out = Path(config.out)
    device = torch.device(config.device)
    if device.type == "cuda" and d.active:
        device = torch.device("cuda", d.local_rank)
    _check_memory(config, classifier, inverter, len(train_set), device, d.world)  # before anything is written
    existing = _open_out(out, resume, d)
    trainer = _setup_trainer(config, classifier, inverter, trainer_options, device, d)  # models now on device
    cache = config.cache_logits if config.cache_logits is not None else config.augment == "none"
    source = _training_source(config, train_set, inverter.image_shape, classifier, device, cache, d)
    held = _heldout(config, heldout_set, inverter, source, device)
    step, position = 0, 0
    fingerprint = dataset_fingerprint(train_set)
    if resume and existing is not None:
        step, position, existing = _restore(trainer, out, config, fingerprint, device, d)
    stream = BatchStream(len(source), config.batch_size, config.seed, d.rank, d.world, position)
    if d.main:
        run = {"trainer_options": trainer_options, "world_size": d.world, "device": str(device)}
        run["data_fingerprint"] = fingerprint  # a resume on other images is refused (see _check_resumed_data)
        _write_run_config(out, config, inverter, classifier, run | {"train_images": len(source), "cache_logits": cache})
        trim_log(out / LOG_FILE, step)
    last_ckpt = existing if resume else None
    from .bench import classifier_identity

    machine = machine_info(device)
    if d.main:  # which machine trained which steps: one line per start or resume, kept by trim_log
        log_start(out, step, machine, world_size=d.world)
    checkpoint_extra = {
        "machine": machine,  # of the run segment that wrote the checkpoint (log.jsonl has every segment's)
        "classifier": classifier.name,
        "train_config": config.to_dict(),
        # absolute folder + digest of the classifier: the checkpoint is matched to it from any working folder
        "classifier_identity": (
            classifier_identity(config.classifier) if config.classifier else {"name": classifier.name}
        ),
    }
    return _loop(
        config, trainer, inverter, source, stream, held, out, device, d, step, last_ckpt, checkpoint_extra, progress
    )


def _open_out(out: Path, resume: bool, d: _Dist) -> Path | None:
    """The newest checkpoint already in ``out`` (refused unless ``resume``); leftovers of a killed run removed."""
    existing = latest_checkpoint(out)
    if existing is not None and not resume:
        raise TrainingError(
            f"'{out}' already holds a run (last checkpoint {existing.name}); pass --resume to "
            "continue it, or choose another --out."
        )
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        _clean_partial(out)
    return existing


def _setup_trainer(
    config: TrainConfig,
    classifier: Classifier,
    inverter: Inverter,
    trainer_options: dict[str, Any],
    device: torch.device,
    d: _Dist,
) -> InverterTrainer:
    """Models on ``device``, per-rank seeds, the inverter's trainer (wrapped for DDP when distributed)."""
    if config.precision is not None:
        trainer_options.setdefault("bf16", config.precision == "bf16")
    if config.channels_last is not None:
        trainer_options.setdefault("channels_last", config.channels_last)
    classifier.to(device).eval()
    inverter.to(device)
    if config.channels_last:
        inverter.to(memory_format=torch.channels_last)
    # Per-rank randomness (noise, auxiliary-network init); DDP broadcasts rank 0's weights when wrapping.
    torch.manual_seed(derive_seed(config.seed, "train", d.rank))
    random.seed(derive_seed(config.seed, "python", d.rank))
    np.random.seed(derive_seed(config.seed, "numpy", d.rank) % 2**32)
    trainer = inverter.make_trainer(classifier, **trainer_options)  # optim & co. raise "no training step"
    if d.active:
        from torch.nn.parallel import DistributedDataParallel

        def wrap(module: nn.Module, **kwargs: Any) -> nn.Module:
            ids = [device.index] if device.type == "cuda" else None
            return DistributedDataParallel(module, device_ids=ids, **kwargs)

        trainer.distribute(wrap)
    return trainer


def _training_source(
    config: TrainConfig,
    train_set: ImageDataset,
    shape: tuple[int, int, int],
    classifier: Classifier,
    device: torch.device,
    cache: bool,
    d: _Dist,
) -> _Source:
    """The training images at the inverter's shape and the frozen classifier's logits of them."""
    if d.active and not d.main:  # rank 0 decodes a folder into the shared cache first
        import torch.distributed as dist

        dist.barrier()
    bf16, channels_last = config.precision == "bf16", bool(config.channels_last)
    source = _Source(train_set, shape, classifier, device, bf16, cache, config.augment, config.seed, channels_last)
    if d.active and d.main:
        import torch.distributed as dist

        dist.barrier()
    return source


@dataclass
class _Held:
    """The fixed held-out images of the sample grids, with their logits and noise (same every grid)."""

    images: torch.Tensor  # (sample_count, C, H, W) in [0, 1], at the inverter's shape
    logits: torch.Tensor  # (sample_count, num_classes)
    noise: torch.Tensor | None  # (sample_count, noise_dim), or None for a deterministic inverter


def _heldout(
    config: TrainConfig, heldout_set: ImageDataset, inverter: Inverter, source: _Source, device: torch.device
) -> _Held:
    shape = inverter.image_shape
    images, _ = take(
        heldout_set,
        config.sample_count,
        seed=derive_seed(config.seed, "heldout") % 2**31,
        per_class=hasattr(heldout_set, "labels"),
    )
    images = resize(images, shape[-1], shape[0]).to(device)
    logits = source._logits(images)
    noise = None
    if inverter.noise_dim:
        g = torch.Generator().manual_seed(derive_seed(config.seed, "sample-noise"))
        noise = torch.randn(len(images), inverter.noise_dim, generator=g).to(device)
    return _Held(images, logits, noise)


def _restore(
    trainer: InverterTrainer, out: Path, config: TrainConfig, fingerprint: str, device: torch.device, d: _Dist
) -> tuple[int, int, Path]:
    """Load the newest readable checkpoint's weights and training state into ``trainer``.

    Refuses data other than the run's (by fingerprint) and fewer ``--steps`` than the run has reached.

    Returns:
        (step, data position, the checkpoint folder used).
    """
    _check_resumed_data(out, fingerprint, config.data)
    checkpoint, state, weights = _newest_loadable(out)
    if int(state["step"]) > config.steps:
        raise TrainingError(
            f"--resume: the run in '{out}' is at step {int(state['step'])}, past --steps {config.steps}; "
            "ask for more steps, not fewer (nothing was changed)."
        )
    trainer.inference_inverter().load_state_dict(weights)
    if "inverter" in state:
        trainer.inverter.load_state_dict(state["inverter"])
    trainer.load_state_dict(state["trainer"])
    step, position = int(state["step"]), int(state["position"])
    rngs = state["rng"]
    if len(rngs) == d.world:
        _set_rng_state(rngs[d.rank], device)
    else:  # another number of processes: the run goes on, but not bit-identically
        torch.manual_seed(derive_seed(config.seed, "train", d.rank, "resume", step))
    return step, position, checkpoint


def _write_run_config(
    out: Path, config: TrainConfig, inverter: Inverter, classifier: Classifier, run: dict[str, Any]
) -> None:
    """``OUT/train_config.json``: the resolved run, the models and the machine."""
    doc = {
        "train": config.to_dict(),
        "inverter": {"name": inverter.registry_name, "config": inverter.config_dict()},
        "classifier": {"name": classifier.name, "num_classes": classifier.num_classes},
        **run,
        "torch": torch.__version__,
        "invkit": __version__,
    }
    atomic_write_text(out / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def _loop(
    config: TrainConfig,
    trainer: InverterTrainer,
    inverter: Inverter,
    source: _Source,
    stream: BatchStream,
    held: _Held,
    out: Path,
    device: torch.device,
    d: _Dist,
    step: int,
    last_ckpt: Path | None,
    checkpoint_extra: dict[str, Any],
    progress: ProgressCallback,
) -> TrainResult:
    """Step until ``config.steps``: train, check the losses, log, draw samples, write checkpoints."""
    counted = [0]

    def next_batch() -> Batch:
        idx, start = stream.next_indices()
        counted[0] += config.batch_size
        return source.batch(idx, start)

    def save(step_: int) -> Path | None:
        weights = trainer.inference_inverter().state_dict()
        bad = _all_finite(dict(weights)) if d.main else None
        if _broadcast_flag(d, bad is not None, device):
            raise stop(f"weight {bad or '?'} of the inference inverter is not finite")
        # A checkpoint is written only if it passes the health check the sample grids get, so "the last good
        # checkpoint" named when a run stops is one that passed it, never one that had already collapsed.
        reason, spread = _health(trainer, held.logits, held.noise, device, config.collapse_std) if d.main else (None, 0)
        if _broadcast_flag(d, reason is not None, device):
            raise stop(reason or "the samples on rank 0 failed the health check (see its log)")
        state: dict[str, Any] = {
            "trainer": trainer.state_dict(),
            "step": step_,
            "position": stream.position,
            "rng": _gather_rng(d, device),
            "world_size": d.world,
        }
        if trainer.inference_inverter() is not trainer.inverter:
            state["inverter"] = dict(trainer.inverter.state_dict())
        path = None
        if d.main:
            extra = (
                {"step": step_}
                | checkpoint_extra
                | {"health": {"sample_std": spread, "collapse_std": config.collapse_std}}
            )
            path = write_checkpoint(out, step_, trainer.inference_inverter(), state, extra, config.keep_checkpoints)
        if d.active:
            import torch.distributed as dist

            dist.barrier()
        return path

    def stop(reason: str, since: int | None = None) -> TrainingError:
        """The error that ends the run; ``since``: the step the trouble began (checkpoints after it are suspect)."""
        if d.main:
            append_log(out, {"step": step, "event": "stopped", "reason": reason})
            write_train_report(out)  # the curves up to the stop are what one looks at next
        good = last_ckpt
        if since is not None:
            before = [p for s_, p in find_checkpoints(out) if s_ <= since]
            good = before[-1] if before else None
        where = (
            f"the last good checkpoint is {good}"
            if good
            else ("no checkpoint from before it is kept" if since is not None else "no checkpoint was written yet")
        )
        return TrainingError(
            f"step {step}: {reason}; stopped, {where} (resume it with --resume, perhaps with lower --lr-g/--lr-d)."
        )

    losses: dict[str, float] = {}
    history: dict[str, deque] = {}
    t_start = t_log = time.perf_counter()
    imgs_log = total_imgs = 0
    ips = t_train_extra = 0.0
    inverter.train()
    with stop_requests() as request:  # Ctrl-C / SIGTERM: end the step, save, stop (invkit.interrupt)
        while step < config.steps:
            raw = trainer.train_step(next_batch, step)
            step += 1
            losses = _mean_over_ranks(d, raw, device)
            reason, since = _bad_losses(losses, history, config.stuck_steps, step)
            if reason:
                raise stop(reason, since=since)
            imgs_log += counted[0]
            total_imgs += counted[0]
            counted[0] = 0
            last = step == config.steps
            if step % config.log_every == 0 or last:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                now = time.perf_counter()
                ips = imgs_log / max(now - t_log, 1e-9)
                t_log, imgs_log = now, 0
                if d.main:
                    epoch = round(stream.position / len(source), 4)
                    line = {"step": step, "time": round(now - t_start, 3), "img_per_s": round(ips, 2), "epoch": epoch}
                    append_log(out, line | losses)
            if d.main:
                progress(
                    Progress("train", step, config.steps, ({"img/s": ips} if ips else {}) | losses)
                )  # img/s once measured
            t_extra = time.perf_counter()  # samples and checkpoints do not count in img/s
            sampled = bool(config.sample_every and step % config.sample_every == 0) or last
            if sampled:
                reason = None
                if d.main:
                    reason = _samples(
                        trainer, held.images, held.logits, held.noise, out, step, device, config.collapse_std
                    )
                if _broadcast_flag(d, reason is not None, device):
                    raise stop(reason or "the samples on rank 0 failed a check (see its log)")
            saved = step % config.save_every == 0 or last
            if saved:
                last_ckpt = save(step) or last_ckpt
            if d.main and (saved or sampled):
                write_train_report(out)  # curves.png and report.html follow the run
            if not last and _broadcast_flag(d, bool(request), device):  # rank 0's decision, on every rank
                path = last_ckpt if saved else save(step)
                if d.main:
                    log_interruption(out, step, request.signal_name)  # rank 0 decided: it got the signal
                raise interrupted_error(request.signal_name, step, path, RESUME_HINT)
            overhead = time.perf_counter() - t_extra
            t_log += overhead
            t_train_extra += overhead
    elapsed = time.perf_counter() - t_start - t_train_extra
    return TrainResult(
        step=step,
        checkpoint=last_ckpt,
        losses=losses,
        images_per_s=total_imgs / elapsed if elapsed > 0 and total_imgs else 0.0,
        trainer=trainer,
    )


def _bad_losses(
    losses: dict[str, float], history: dict[str, deque], stuck_steps: int, step: int
) -> tuple[str | None, int | None]:
    """Why the run must stop after these losses (non-finite, or a loss stuck for ``stuck_steps``), or None; and
    the step the trouble began when it began earlier (a stuck loss: checkpoints after it are suspect)."""
    bad = [k for k, v in losses.items() if not np.isfinite(v)]
    if bad:
        return f"loss {bad[0]} is {losses[bad[0]]}", None
    if stuck_steps:
        for k, v in losses.items():
            if "loss" in k:
                h = history.setdefault(k, deque(maxlen=stuck_steps))
                h.append(v)
                if len(h) == stuck_steps and max(h) - min(h) <= 1e-7 * max(1.0, abs(v)):
                    return f"loss {k} has stayed at {v:.6g} for {stuck_steps} steps (collapse)", step - stuck_steps
    return None, None


def _mean_over_ranks(d: _Dist, losses: dict[str, float], device: torch.device) -> dict[str, float]:
    """Losses averaged over ranks (so every rank sees a NaN on any rank and stops together)."""
    if not d.active:
        return {k: float(v) for k, v in losses.items()}
    import torch.distributed as dist

    keys = sorted(losses)
    t = torch.tensor([float(losses[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


def _samples(
    trainer: InverterTrainer,
    images: torch.Tensor,
    logits: torch.Tensor,
    noise: torch.Tensor | None,
    out: Path,
    step: int,
    device: torch.device,
    collapse_std: float,
) -> str | None:
    """Write the sample grid (originals above reconstructions); return why the run must stop, or None."""
    from .figures import save_rows

    recon = _sample(trainer, logits, noise, device)
    save_rows(
        [images, torch.nan_to_num(recon, nan=0.0, posinf=1.0, neginf=0.0)],
        out / SAMPLES / f"step_{step:06d}.png",
        scale=max(1, 64 // images.shape[-1]),
    )
    return _health(trainer, logits, noise, device, collapse_std, recon)[0]


def _sample(
    trainer: InverterTrainer, logits: torch.Tensor, noise: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # sampling must not move the training RNG
        return trainer.sample_images(logits, noise).float()


def _health(
    trainer: InverterTrainer,
    logits: torch.Tensor,
    noise: torch.Tensor | None,
    device: torch.device,
    collapse_std: float,
    recon: torch.Tensor | None = None,
) -> tuple[str | None, float]:
    """The run's health check on the held-out samples: (why the run must stop or None, spread across inputs)."""
    if recon is None:
        recon = _sample(trainer, logits, noise, device)
    if not bool(torch.isfinite(recon).all()):
        return "the sample images are not finite (NaN/inf in the inverter's output)", float("nan")
    spread = float(recon.std(0).mean())
    if collapse_std > 0 and spread < collapse_std:
        return (
            f"samples vary by {spread:.2g} < {collapse_std:g} across {len(recon)} different logit vectors "
            "(collapse: the output no longer depends on the logits)",
            spread,
        )
    return None, spread


def _check_resumed_data(out: Path, fingerprint: str, data: str) -> None:
    """Refuse to resume on other images than the run's (a relative --data seen from another folder, say)."""
    path = out / CONFIG_FILE
    try:
        old = json.loads(path.read_text()).get("data_fingerprint") if path.exists() else None
    except (OSError, ValueError, AttributeError):
        old = None
    if old is not None and old != fingerprint:
        raise TrainingError(
            f"--resume: the training data '{data}' is not the data the run in '{out}' was trained on (another "
            "folder or other images; relative paths depend on the working folder); pass the same --data."
        )


def _newest_loadable(out: Path) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """The newest checkpoint whose files all load, with its training state and weights.

    A checkpoint cut short (disk full, a copy interrupted) is skipped with a warning naming it, and the one
    before it is used; it is never deleted here (the run rewrites that step when it gets there again).
    """
    found = find_checkpoints(out)
    problems = []
    for _, path in reversed(found):
        try:
            state = load_train_state(path / TRAIN_STATE_NAME)
            weights = load_checkpoint_weights(path)
        except CheckpointError as exc:
            problems.append(f"{path} ({exc})")
            continue
        for p in problems:
            warnings.warn(f"skipped the unreadable checkpoint {p}; resuming from {path.name}", stacklevel=2)
        return path, state, weights
    raise TrainingError(
        f"--resume: no checkpoint in '{out / CHECKPOINTS}' can be read ({'; '.join(problems)}); delete the broken "
        "folder(s) named here, or start a new run in another --out."
    )


def read_run_config(out: str | os.PathLike) -> dict[str, Any] | None:
    """The ``train`` section of ``OUT/train_config.json``, or None when there is no run there."""
    path = Path(out) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["train"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise InvkitError(
            f"'{path}' is not a readable training config ({exc}); remove it or use another --out."
        ) from None
