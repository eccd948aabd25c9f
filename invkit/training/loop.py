"""The training loop for learned inverters (``biggan_proj``, ``dosovitskiy_brox``, any plugin's): ``train_inverter``.

The loop owns everything around one optimisation step; the inverter's ``InverterTrainer`` owns the step's
maths (see ``invkit.core.inverter.InverterTrainer``). A run goes stage by stage (``_train``): the output folder, the
trainer, the images and their logits, the resume, then the steps (``_loop``). The loop provides, with the module of
``invkit.training`` that holds each part:

* **Data order** and the **logits of the frozen classifier** (``source``): a seeded sample order that a resumed
  run continues exactly, sharded over ranks; logits on the fly, or once for a fixed data set.
* **Checkpoints** ``OUT/checkpoints/step_NNNNNN/``, written atomically (``checkpoints``). The training state holds
  the trainer's ``state_dict()``, the step, the data position and every RNG state of every rank, which is what
  makes ``resume`` bit-exact (``resume``).
* **Logs and samples**: ``OUT/train_config.json`` (the resolved run), ``OUT/log.jsonl`` (one JSON line per
  log step), ``OUT/samples/step_NNNNNN.png`` (held-out images above their reconstructions from fixed
  logits and fixed noise, ``health``), and ``OUT/curves.png`` + ``OUT/report.html`` (``report``), redrawn
  with every sample grid.
* **Stops** with ``TrainingError`` (one line) on a non-finite loss or weight, on a loss stuck at one value
  for ``stuck_steps`` steps, or on samples that no longer depend on their logits (collapse; ``health``); the last
  good checkpoint is kept. Ctrl-C and SIGTERM end the step, save and stop (``interrupt``).
* **Distributed data parallel** under ``torchrun`` (gloo on CPU, nccl on CUDA; ``distributed``); only rank 0 writes
  files and reports progress.

The run's settings (``TrainConfig``) and ``build_inverter`` are in ``config``. Progress goes to a
``ProgressCallback``; this module never prints.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..core.channels import create_channel
from ..core.classifier import Classifier
from ..core.inverter import Batch, Inverter, InverterTrainer
from ..core.provenance import classifier_identity
from ..data.classes import for_classifier
from ..data.datasets import ImageDataset
from ..errors import TrainingError
from ..io.files import atomic_write_text
from ..io.outputs import dataset_fingerprint, machine_info
from ..utils.progress import Progress, ProgressCallback, no_progress
from .checkpoints import _clean_partial, checkpoint_dir, find_checkpoints, latest_checkpoint, write_checkpoint
from .config import CONFIG_FILE, TrainConfig, TrainResult, _check_config, derive_seed
from .distributed import _broadcast_flag, _Dist, _init_distributed, _mean_over_ranks, ddp_wrap
from .health import SAMPLES, _all_finite, _bad_losses, _check_memory, _health, _samples
from .interrupt import interrupted_error, stop_requests
from .report import LOG, append_log, log_interruption, log_start, trim_log, write_train_report
from .resume import _check_resumed_classifier, _check_resumed_observation, _gather_rng, _restore
from .source import BatchStream, _Held, _heldout, _Source, _training_source
from .tensorboard_log import add_image, tensorboard_events

LOG_FILE = LOG  # log.jsonl, written through invkit.training.report
# how to go on after an interruption (bench trains through train_inverter too)
RESUME_HINT = (
    "run the same command again to continue from it (with --resume for `invkit train`; `invkit bench` resumes its "
    "own training runs)."
)


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
            (``invkit.utils.config.check_fields``).
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
    if config.layer is None:  # topk:K with K above the classifier's classes: refused before anything is written
        create_channel(config.channel, classifier.num_classes)
    out = Path(config.out)
    device = torch.device(config.device)
    if device.type == "cuda" and d.active:
        device = torch.device("cuda", d.local_rank)
    _check_memory(config, classifier, inverter, len(train_set), device, d.world)  # before anything is written
    existing = _open_out(out, resume, d)
    # by content: the classifier folder's and --weights file's digests, and the weights the network holds
    identity = classifier_identity(config.classifier or classifier.name, classifier, config.weights)
    if resume and existing is not None:  # before the logits of the data are computed against it
        _check_resumed_classifier(out, existing, identity, config.classifier or classifier.name)
        _check_resumed_observation(out, existing, config)  # the same channel or layer as the run's
    # --init-from: a new run (or one resumed before its first checkpoint) starts from another run's newest checkpoint;
    # its channel or layer may differ from that run's (same observation size), its classifier and data may not
    fork = Path(config.init_from) if config.init_from and not (resume and existing is not None) else None
    if fork is not None:
        fork_ckpt = latest_checkpoint(fork)
        if fork_ckpt is not None:
            _check_resumed_classifier(fork, fork_ckpt, identity, config.classifier or classifier.name, "--init-from")
    trainer = _setup_trainer(config, classifier, inverter, trainer_options, device, d)  # models now on device
    cache = config.cache_logits if config.cache_logits is not None else config.augment == "none"
    source = _training_source(config, train_set, inverter.image_shape, classifier, device, cache, d)
    held = _heldout(config, heldout_set, inverter, source, device)
    step, position = 0, 0
    fingerprint = dataset_fingerprint(train_set)
    if resume and existing is not None:
        step, position, existing = _restore(trainer, out, config, fingerprint, device, d)
    elif fork is not None:  # as a resume of that run, into this one's folder (bit-exact for the same observation)
        step, position, fork_ckpt = _restore(trainer, fork, config, fingerprint, device, d, "--init-from")
    stream = BatchStream(len(source), config.batch_size, config.seed, d.rank, d.world, position)
    if d.main:
        run = {"trainer_options": trainer_options, "world_size": d.world, "device": str(device)}
        run["data_fingerprint"] = fingerprint  # a resume on other images is refused (see _check_resumed_data)
        run["classifier_identity"] = identity  # and one against other classifier weights (_check_resumed_classifier)
        _write_run_config(out, config, inverter, classifier, run | {"train_images": len(source), "cache_logits": cache})
        trim_log(out / LOG_FILE, step)
    last_ckpt = existing if resume else None
    machine = machine_info(device)
    if d.main:  # which machine trained which steps: one line per start or resume, kept by trim_log
        started_from = {"init_from": str(fork_ckpt)} if fork is not None and step > 0 and not last_ckpt else {}
        log_start(out, step, machine, world_size=d.world, **started_from)
    checkpoint_extra = {
        "machine": machine,  # of the run segment that wrote the checkpoint (log.jsonl has every segment's)
        "classifier": classifier.name,
        "train_config": config.to_dict(),
        # absolute folder + digests of the classifier: the checkpoint is matched to it from any working folder
        "classifier_identity": identity,
        # what the inverter observes (invkit.core.observation): checked by every command that loads the checkpoint
        "channel": config.channel,
        "layer": config.layer,
    }
    with tensorboard_events(out, step, enabled=config.tensorboard and d.main):  # rank 0's log lines, as events too
        return _loop(
            config, trainer, inverter, source, stream, held, out, device, d, step, last_ckpt, checkpoint_extra, progress
        )


def _learning_rates(trainer: InverterTrainer) -> dict[str, float]:
    """The learning rate of each torch optimiser the trainer holds as an attribute, for log.jsonl (and TensorBoard):
    ``opt_G``/``opt_g`` -> ``lr_g``, ``opt_D`` -> ``lr_d``, ``optimizer`` -> ``lr`` (its first parameter group's)."""
    rates = {}
    for attr, value in vars(trainer).items():
        if isinstance(value, torch.optim.Optimizer) and value.param_groups:
            suffix = attr.lower().removeprefix("optimizer").removeprefix("optim").removeprefix("opt").strip("_")
            rates[f"lr_{suffix}" if suffix else "lr"] = float(value.param_groups[0]["lr"])
    return rates


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
    inverter.channel, inverter.layer = config.channel, config.layer  # what it observes, on the trained copy too
    trainer.inference_inverter().channel, trainer.inference_inverter().layer = config.channel, config.layer
    if d.active:
        # an Inverter keeps invert() under DDP (DistributedInverter); batch norms over the global batch (compare_gan)
        trainer.distribute(ddp_wrap(device, sync_bn=config.sync_batchnorm))
    return trainer


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
        return path if d.main else checkpoint_dir(out, step_)  # what rank 0 wrote: every rank names it alike

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
    with stop_requests() as request:  # Ctrl-C / SIGTERM: end the step, save, stop (invkit.training.interrupt)
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
                    append_log(out, line | losses | _learning_rates(trainer))
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
                    add_image(out, SAMPLES, step, out / SAMPLES / f"step_{step:06d}.png")  # with --tensorboard
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
