"""Train an in-house classifier (``smallcnn``, ``resnet18s``, ``vgg11s``), standard or adversarial, and evaluate it.

Adversarial training follows Madry et al. 2018 ("Towards deep learning models resistant to adversarial
attacks"): every training batch is replaced by PGD adversarial examples of the current network (the inner
maximisation, ``invkit.core.adversarial.pgd``) and the network takes an optimiser step on their cross-entropy
(the outer minimisation). Attacks are made with the network in eval mode (batch-norm statistics frozen),
the update in train mode. ``adv="fgsm"`` replaces PGD by one FGSM step from a random start (FGSM-RS, Wong et
al. 2020, "Fast is better than free"), about ``adv_steps`` times cheaper per step.

The run writes an invkit checkpoint folder (``config.json`` + ``model.safetensors`` via
``Classifier.save``) with a ``train_state.safetensors`` for ``resume=True`` (optimiser, step), the three as one
unit (``invkit.io.staged``: after a kill they are all of one step), a ``report.json``
with clean accuracy and PGD accuracy on the test split, and ``train_config.json`` (the resolved config).
Data order and attack random starts are derived from ``seed`` and the step, so a resumed run sees the
batches it would have seen without the interruption. Progress goes to a ``ProgressCallback``; nothing
here prints.

This module holds the run (``train_classifier``, ``build_classifier``, checkpoints and resume); the settings and
the report are in ``invkit.training.classifier_config``, the data in ``invkit.training.classifier_data``, the
evaluation in ``invkit.training.classifier_eval``. All of them are importable from here too.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.classifier import Classifier
from ..data.classes import match_classes
from ..data.datasets import TensorImageDataset
from ..errors import CheckpointError, DataError, InvkitError, TrainingError
from ..io.checkpoint import load_checkpoint_weights, read_checkpoint_config
from ..io.files import atomic_write_json, make_dirs
from ..io.outputs import check_resume, dataset_fingerprint, machine_info
from ..io.read import Required, check_shape, parse_json
from ..io.staged import complete_staged
from ..io.train_state import TRAIN_STATE_NAME, load_train_state
from ..io.weights import WEIGHTS_NAME
from ..utils.progress import Progress, ProgressCallback, no_progress
from .classifier_config import RESUME_MAY_CHANGE, TrainClassifierConfig, TrainClassifierReport, _check_config
from .classifier_data import _augment, _batch, load_split
from .classifier_eval import evaluate
from .interrupt import interrupted_error, stop_requests
from .report import LOG, append_log, log_interruption, log_start, trim_log, write_train_report
from .tensorboard_log import tensorboard_events

# the public names of invkit 0.1's invkit.train_classifier, which is this module now
__all__ = [
    "REPORT_NAME",
    "RESUME_HINT",
    "RESUME_MAY_CHANGE",
    "TRAINABLE",
    "TRAIN_CONFIG_NAME",
    "TrainClassifierConfig",
    "TrainClassifierReport",
    "build_classifier",
    "evaluate",
    "load_split",
    "train_classifier",
]


TRAINABLE = ("smallcnn", "resnet18s", "vgg11s")
RESUME_HINT = "continue with the same command and --resume."  # after an interruption
REPORT_NAME = "report.json"
TRAIN_CONFIG_NAME = "train_config.json"


def build_classifier(cfg: TrainClassifierConfig, train: TensorImageDataset) -> Classifier:
    """A fresh in-house classifier sized for the training data, with the data's mean/std and class names.

    With ``cfg.adv`` other than ``"none"`` the classifier is marked robust and its config records the training
    attack: PGD (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks") or FGSM with
    random start (Wong et al. 2020, "Fast is better than free: revisiting adversarial training").

    Args:
        cfg: the run; ``arch``, ``width`` and the attack fields are used.
        train: the training split, square uint8 images ``(N, C, H, W)``; the per-channel mean and std of its
            pixels in [0, 1] become the classifier's normalisation.

    Returns:
        The classifier with random weights, on the CPU.

    Raises:
        UnknownNameError: ``cfg.arch`` is not a registered classifier name.
        InvkitError: ``cfg.arch`` is not ``smallcnn.base``, ``resnet18s.base`` or ``vgg11s.base``, or the net cannot
            take the data (channels other than 1 or 3, images under 8 px) or ``cfg.width``.
    """
    from ..core.plugins import get_registry

    entry = get_registry("classifier").resolve(cfg.arch)
    if entry.base not in TRAINABLE or entry.tag != "base":
        raise InvkitError(
            f"train-classifier trains the in-house nets from scratch ({', '.join(t + '.base' for t in TRAINABLE)}), "
            f"not '{cfg.arch}'; use a trained or pretrained classifier as it is."
        )
    c = train.images.shape[1]
    total, total_sq, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for i in range(0, len(train.images), 4096):  # in chunks: a memory-mapped 50k-image cache stays on disk
        x = train.images[i : i + 4096].double() / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x[:, 0].numel()
    mean_t = total / count
    std_t = ((total_sq / count - mean_t**2).clamp_min(0) * count / max(count - 1, 1)).sqrt()
    mean = tuple(round(v, 4) for v in mean_t.tolist())
    std = tuple(round(max(v, 1e-3), 4) for v in std_t.tolist())
    kwargs: dict[str, Any] = {
        "channels": c,
        "num_classes": len(train.classes),
        "input_size": train.images.shape[-1],
        "mean": mean,
        "std": std,
        "label_names": list(train.classes),
        "robust": cfg.adv != "none",
    }
    if cfg.width is not None:
        kwargs["width"] = cfg.width
    if cfg.adv != "none":
        method = "PGD (Madry et al. 2018)" if cfg.adv == "pgd" else "FGSM with random start (Wong et al. 2020)"
        kwargs["extra"] = {"adversarial_training": {"method": method, **cfg.train_attack().to_dict()}}
    return entry.factory(pretrained=False, **kwargs)


def _fold(seed: int, scale: int, k: int) -> int:
    """``seed * scale + k`` folded into the 64 bits ``torch.Generator.manual_seed`` takes: a ``--seed`` up to its
    maximum (2**63 - 1) never overflows, and every smaller seed keeps the data order and attack starts it had."""
    return (seed * scale + k) % 2**64


def _check_memory(cfg: TrainClassifierConfig, clf: Classifier, device: torch.device) -> None:
    """Refuse a batch that cannot fit in memory, from a lower-bound estimate (see ``invkit.utils.memory``)."""
    from ..utils.memory import activation_bytes, check_fits, parameter_bytes

    was_training = clf.network.training
    clf.network.eval()  # measuring must not move batch-norm statistics
    try:
        x = torch.zeros(2, *clf.config.input_size)
        per_image = activation_bytes([clf.network], lambda: clf.logits(x)) // 2
    finally:
        clf.network.train(was_training)
    check_fits("--batch-size", cfg.batch_size, 2 * per_image, 4 * parameter_bytes([clf.network]), device, InvkitError)


def train_classifier(
    cfg: TrainClassifierConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: ProgressCallback = no_progress,
    device: str | torch.device = "cpu",
    train_data: TensorImageDataset | None = None,
    test_data: TensorImageDataset | None = None,
) -> TrainClassifierReport:
    """Train, checkpoint and evaluate one classifier.

    Adversarial training (``cfg.adv``) is PGD training as Madry et al. 2018 ("Towards deep learning models
    resistant to adversarial attacks") or FGSM with random start as Wong et al. 2020 ("Fast is better than free:
    revisiting adversarial training"); the evaluation reports clean and PGD accuracy on the test split.

    Args:
        cfg: the run's configuration.
        out_dir: the checkpoint folder to write (created; with ``resume`` it must hold a previous run's state).
        resume: continue from ``out_dir``'s ``train_state.safetensors``.
        progress: receives ``train``, ``eval clean`` and ``eval PGD ...`` events.
        device: where to train.
        train_data: an in-memory training set to use instead of loading ``cfg.data``.
        test_data: an in-memory test set to use instead of loading ``cfg.data``.

    Returns:
        The report (also written to ``out_dir/report.json``).

    Raises:
        InputError: a ``cfg`` field of the wrong type, NaN/inf, negative, or 0 where it must be above 0
            (``invkit.utils.config.check_fields``).
        InvkitError: other bad settings (``adv``, ``norm``, ``optimizer``, ``eps_warmup``, ...); ``out_dir``
            already holding a classifier without ``resume``; a batch larger than the training split or than
            memory allows; an ``arch`` or data ``build_classifier`` refuses; a resume without an earlier run,
            with other settings, data or architecture, or past the steps asked for.
        UnknownNameError: ``cfg.arch`` is not a registered classifier name.
        DataError: data that cannot be loaded, with fewer than 2 classes, test images of another shape than the
            training images, or test classes the train split lacks.
        CheckpointError: with ``resume``, a corrupt ``config.json``, weights or training state in ``out_dir``.
        TrainingError: the training loss becomes NaN or inf.
        OutputError: ``out_dir`` or a file in it cannot be written.
    """
    _check_config(cfg)
    out = Path(out_dir)
    device = torch.device(device)
    complete_staged(out)  # a checkpoint a killed run had committed goes in first (invkit.io.staged)
    if not resume and ((out / WEIGHTS_NAME).exists() or (out / TRAIN_STATE_NAME).exists()):
        raise InvkitError(
            f"'{out}' already holds a trained classifier; pass --resume to continue that run, or choose another "
            "--out (nothing was changed)."
        )
    data_path = Path(cfg.data).expanduser()
    if cfg.data != "default" and data_path.exists():  # record where the data is, not where it was seen from
        cfg = replace(cfg, data=str(data_path.resolve()))
    train = (
        train_data
        if train_data is not None
        else load_split(cfg.data, "train", cfg.data_root, cfg.input_size, cfg.download)
    )
    test = (
        test_data
        if test_data is not None
        else load_split(cfg.data, "test", cfg.data_root, cfg.input_size, cfg.download)
    )
    if len(train.classes) < 2:
        raise DataError(f"training data '{cfg.data}' has {len(train.classes)} class; a classifier needs at least 2.")
    if test.images.shape[1:] != train.images.shape[1:]:
        raise DataError(
            f"the test split of '{cfg.data}' has images of shape {tuple(test.images.shape[1:])}, its train split "
            f"{tuple(train.images.shape[1:])}; give --input-size to bring both to one size."
        )
    # the test labels are renumbered to the train split's classes by name (a test split may have fewer)
    test = match_classes(test, train.classes, owner=f"the train split of '{cfg.data}'")  # type: ignore[assignment]

    if cfg.batch_size > len(train):
        raise InvkitError(
            f"--batch-size {cfg.batch_size} is larger than the {len(train)} training images; use at most {len(train)}."
        )
    torch.manual_seed(cfg.seed)
    clf = build_classifier(cfg, train)
    _check_memory(cfg, clf, device)
    net = clf.network.to(device)
    clf.to(device)
    params = list(net.parameters())
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    n = len(train)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * per_epoch))
    start, seconds = 0, 0.0
    fingerprint = dataset_fingerprint(train)
    if resume:
        start, seconds = _resume(out, clf, opt, cfg, fingerprint)
        if start > total:
            raise InvkitError(
                f"--resume: the run in '{out}' is at step {start}, past the {total} steps asked for now; "
                "ask for more steps (or epochs), not fewer."
            )
        trim_log(out / LOG, start)  # lines a killed run wrote after its last checkpoint (a refused resume: none)
    else:
        make_dirs(out)
    atomic_write_json(out / TRAIN_CONFIG_NAME, asdict(cfg) | {"data_fingerprint": fingerprint})
    machine = machine_info(device)
    if start < total:  # which machine trained which steps: one line per start or resume
        log_start(out, start, machine)

    def lr_at(step: int) -> float:  # cosine decay from cfg.lr to 0
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))

    def autocast() -> torch.autocast:  # bf16 needs no loss scaling; the losses are computed in fp32
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    perm = torch.empty(0, dtype=torch.long)
    perm_epoch = -1
    t0 = time.time() - seconds
    loss_avg = acc_avg = None
    step = start
    events = tensorboard_events(out, start, enabled=cfg.tensorboard and start < total)  # log lines as events too
    with events, stop_requests() as request:  # Ctrl-C / SIGTERM: end the step, save, stop (invkit.training.interrupt)
        for step in range(start, total):
            epoch, k = divmod(step, per_epoch)
            if epoch != perm_epoch:  # the epoch's order depends only on (seed, epoch): resumable
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(_fold(cfg.seed, 100003, epoch)))
                perm_epoch = epoch
            g = torch.Generator().manual_seed(_fold(cfg.seed, 1000003, step))
            x, y = _batch(train, perm[k * cfg.batch_size : (k + 1) * cfg.batch_size])
            if cfg.augment:
                x = _augment(x, g)
            x, y = x.to(device), y.to(device)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            eps_now = cfg.eps
            if cfg.adv != "none":
                warm = cfg.eps_warmup * total
                eps_now = cfg.eps * min(1.0, (step + 1) / warm) if warm > 0 else cfg.eps
                net.eval()
                with autocast():
                    x = cfg.train_attack(eps_now).run(clf, x, y, generator=g)
            net.train()
            net.requires_grad_(True)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            with autocast():
                logits = clf(x)
            loss = F.cross_entropy(logits.float(), y)
            if not torch.isfinite(loss):
                raise TrainingError(f"the training loss became {loss.item()} at step {step}; lower --lr.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            net.eval()
            net.requires_grad_(False)
            acc = (logits.argmax(1) == y).float().mean().item()
            loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
            acc_avg = acc if acc_avg is None else 0.95 * acc_avg + 0.05 * acc
            done = step + 1
            fields = {
                "epoch": f"{done / per_epoch:.2f}",
                "loss": loss_avg,
                "adv acc" if cfg.adv != "none" else "acc": acc_avg,
                "img/s": round((done - start) * cfg.batch_size / max(time.time() - t0 - seconds, 1e-9)),
            }
            if cfg.adv != "none" and cfg.eps_warmup > 0:
                fields["eps"] = round(eps_now, 4)
            progress(Progress("train", done, total, fields))
            if done % cfg.log_every == 0 or done == total:  # this step's values; the report smooths them
                line = {"step": done, "epoch": round(done / per_epoch, 4), "loss": loss.item(), "acc": acc,
                        "lr": lr_at(step), "img_per_s": fields["img/s"]}  # fmt: skip
                if cfg.adv != "none":
                    line["eps"] = eps_now
                append_log(out, line)
            if done % cfg.checkpoint_every == 0 and done < total:
                _save(out, clf, opt, cfg, done, time.time() - t0, extra={}, fingerprint=fingerprint)
            if request and done < total:
                if done % cfg.checkpoint_every:
                    _save(out, clf, opt, cfg, done, time.time() - t0, extra={}, fingerprint=fingerprint)
                log_interruption(out, done, request.signal_name)
                saved = f"the model and its training state in '{out}'"
                raise interrupted_error(request.signal_name, done, out, RESUME_HINT, saved=saved)
    elapsed = time.time() - t0
    if start >= total:
        elapsed = seconds
    else:  # the trained weights are on disk before the (possibly long) evaluation starts
        _save(out, clf, opt, cfg, total, elapsed, extra={}, fingerprint=fingerprint)

    report = evaluate(clf, test, cfg, progress=progress, device=device)
    report.checkpoint = str(out)
    report.steps, report.epochs, report.seconds = total, round(total / per_epoch, 3), round(elapsed, 1)
    report.train_images = n
    _save(out, clf, opt, cfg, total, elapsed, extra={"metrics": _metrics(report)}, fingerprint=fingerprint)
    atomic_write_json(out / REPORT_NAME, report.to_dict() | {"machine": machine})  # the machine that evaluated
    write_train_report(out)  # curves.png and report.html: the log's curves beside the evaluation
    return report


def _metrics(report: TrainClassifierReport) -> dict[str, Any]:
    return {
        "clean_accuracy": report.clean_accuracy,
        "pgd": report.pgd,
        "eval_samples": report.eval_samples,
        "test_images": report.test_images,
    }


def _save(
    out: Path,
    clf: Classifier,
    opt: torch.optim.Optimizer,
    cfg: TrainClassifierConfig,
    step: int,
    seconds: float,
    extra: dict[str, Any],
    fingerprint: str | None = None,
) -> None:
    """Weights, config and the training state for ``--resume``, as one unit (``invkit.io.staged``): a run killed
    while saving leaves the previous checkpoint or this one, never the weights of one step with the state of another.
    """
    state = {
        "optimizer": opt.state_dict(),
        "step": step,
        "seconds": seconds,
        "train_config": json.dumps(asdict(cfg) | {"data_fingerprint": fingerprint}, sort_keys=True),
    }
    train = {"config": asdict(cfg), "step": step, "seconds": round(seconds, 1)}
    clf.save(out, extra={"train": train, **extra}, train_state=state)


# What a resume reads from train-classifier's training state (written by _save), checked as it is read.
_STATE_SCHEMA = {
    "optimizer": Required(dict),
    "step": Required(int),
    "seconds": Required(float),
    "train_config": Required(str),
}


def _resume(
    out: Path, clf: Classifier, opt: torch.optim.Optimizer, cfg: TrainClassifierConfig, fingerprint: str
) -> tuple[int, float]:
    if not (out / WEIGHTS_NAME).exists() or not (out / TRAIN_STATE_NAME).exists():
        raise InvkitError(
            f"cannot resume: '{out}' has no {WEIGHTS_NAME} and {TRAIN_STATE_NAME} of an earlier run; "
            "drop --resume to start a new one."
        )
    doc = read_checkpoint_config(out, kind="classifier")
    if doc["name"] != clf.config.name:
        raise InvkitError(f"cannot resume: '{out}' holds a {doc['name']}, not a {clf.config.name}.")
    where, remedy = out / TRAIN_STATE_NAME, "drop --resume to start a new run"
    state = check_shape(load_train_state(where), _STATE_SCHEMA, where, CheckpointError, remedy)
    saved = parse_json(state["train_config"], dict, f"{where}: train_config", CheckpointError, remedy)
    weights_step = doc.get("train", {}).get("step") if isinstance(doc.get("train"), dict) else None
    if isinstance(weights_step, int) and weights_step != int(state["step"]):  # written apart by an older invkit
        raise CheckpointError(
            f"cannot resume: in '{out}' the weights are of step {weights_step} but {TRAIN_STATE_NAME} of step "
            f"{int(state['step'])} (a run killed while saving them); start a new run in another --out."
        )
    old_fp = saved.pop("data_fingerprint", None)
    given = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, like the saved copy
    if saved.get("data") != given["data"] and old_fp is not None:
        saved.pop("data")  # the data moved or is named another way: its content decides (below)
    check_resume(saved, given, RESUME_MAY_CHANGE, str(out))
    if old_fp is not None and old_fp != fingerprint:
        raise InvkitError(
            f"--resume: the training data '{cfg.data}' is not the data the run in '{out}' was trained on (another "
            "folder or other images; relative paths depend on the working folder); pass the same data."
        )
    clf.load_network_state(load_checkpoint_weights(out), f"weights in '{out}'")
    opt.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state["seconds"])
