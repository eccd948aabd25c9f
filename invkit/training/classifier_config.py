"""The settings of a ``train-classifier`` run, and what the run measured.

``TrainClassifierConfig`` is everything a run depends on (written to ``train_config.json``), including the
training attack (``train_attack``: PGD, or FGSM with a random start) and the evaluation attacks
(``eval_attacks``); ``_check_config`` refuses bad settings before anything is loaded, and ``RESUME_MAY_CHANGE``
names the settings a resumed run may change. ``TrainClassifierReport`` is what a run measured (clean and PGD
accuracy), returned by ``invkit.training.classifier.train_classifier`` and written to ``report.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.adversarial import NORMS, AttackConfig
from ..errors import InvkitError


@dataclass
class TrainClassifierConfig:
    """Everything a ``train-classifier`` run depends on (written to ``train_config.json``)."""

    arch: str = "smallcnn"  # in-house registry name: smallcnn, resnet18s or vgg11s (``.base`` tag optional)
    width: int | None = None  # network width (first layer's channels); None: the architecture's default
    data: str = "default"  # 'default', an ImageFolder folder / .tar.gz, or a torchvision set name
    data_root: str | None = None  # where torchvision-format data sets live
    download: bool = False  # let torchvision download a missing data set (needs the network)
    input_size: int | None = None  # resize the data to this side first; None: the data's own size
    epochs: float = 5.0  # passes over the training split (ignored when ``steps`` is set)
    steps: int | None = None  # optimiser steps; overrides ``epochs``
    batch_size: int = 128  # images per step
    lr: float = 1e-3  # peak learning rate (cosine decay to 0 over the run)
    optimizer: str = "adam"  # "adam" (Madry et al.'s MNIST choice) or "sgd" (momentum 0.9, for resnet18s)
    weight_decay: float = 0.0  # L2 weight decay
    augment: bool = False  # random 4 px shifts (+ horizontal flips for RGB data); off for digits
    seed: int = 0  # seeds initialisation, data order and attack random starts
    adv: str = "none"  # "none"; "pgd": PGD training (Madry et al. 2018); "fgsm": FGSM-RS (Wong et al. 2020)
    norm: str = "linf"  # attack norm for training and the default evaluation: "linf" or "l2"
    eps: float = 0.3  # attack radius in [0, 1] pixel units (Madry et al.'s MNIST Linf setting)
    adv_steps: int = 10  # PGD steps per training batch (fgsm: always 1)
    step_size: float | None = None  # attack step size; None: 2.5 * eps / adv_steps (pgd), 1.25 * eps (fgsm)
    eps_warmup: float = 0.0  # fraction of the run over which the training eps ramps linearly from 0
    eval_eps: tuple[float, ...] | None = None  # eps values of the PGD evaluation; None: (eps,)
    eval_steps: int | None = None  # PGD steps of the evaluation; None: max(20, 2 * adv_steps)
    eval_samples: int | None = 1000  # test images attacked in the PGD evaluation (None: all); clean acc uses all
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end)
    log_every: int = 50  # steps between lines of OUT/log.jsonl (loss, accuracy, lr of that step; curves.png)
    bf16: bool = False  # bfloat16 autocast for the training forward passes and attacks (evaluation stays fp32)
    channels_last: bool = False  # channels_last memory format for the network and the training batches
    tensorboard: bool = False  # also write the log lines as TensorBoard events (OUT/tensorboard/); may change on resume

    # > 0 (see invkit.utils.config)
    positive_fields = ("steps", "adv_steps", "checkpoint_every", "log_every", "eval_steps", "step_size")

    def __post_init__(self) -> None:
        if self.eval_eps is not None:
            self.eval_eps = tuple(float(e) for e in self.eval_eps)

    def eval_attacks(self) -> list[AttackConfig]:
        steps = self.eval_steps if self.eval_steps is not None else max(20, 2 * self.adv_steps)
        return [
            AttackConfig(norm=self.norm, eps=e, steps=steps, random_start=True)
            for e in (self.eval_eps if self.eval_eps is not None else (self.eps,))
        ]

    def train_attack(self, eps: float | None = None) -> AttackConfig:
        """The attack made on every training batch: PGD, or for ``adv="fgsm"`` one step from a random start.

        FGSM with random start follows Wong et al. 2020 ("Fast is better than free: revisiting adversarial
        training"): ``delta ~ U[-eps, eps]``, one signed-gradient step of ``1.25 * eps``, projection onto the
        eps ball and the [0, 1] clamp, which is PGD with one step, a random start and that step size.
        """
        eps = self.eps if eps is None else eps
        if self.adv == "fgsm":
            step = self.step_size if self.step_size is not None else 1.25 * eps
            return AttackConfig(norm=self.norm, eps=eps, steps=1, step_size=step, random_start=True)
        return AttackConfig(norm=self.norm, eps=eps, steps=self.adv_steps, step_size=self.step_size, random_start=True)


@dataclass
class TrainClassifierReport:
    """What a run measured. ``pgd`` holds one ``{"attack": ..., "accuracy": ...}`` per evaluation eps."""

    classifier: str
    checkpoint: str
    robust: bool
    steps: int
    epochs: float
    seconds: float
    train_images: int
    test_images: int
    clean_accuracy: float
    eval_samples: int
    pgd: list[dict[str, Any]] = field(default_factory=list)
    train_attack: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Settings a resumed run may change; every other field must equal the run's (see docs/guide.md).
RESUME_MAY_CHANGE = (
    "epochs",
    "steps",
    "eval_eps",
    "eval_steps",
    "eval_samples",
    "checkpoint_every",
    "log_every",
    "download",
    "tensorboard",
)


def _check_config(cfg: TrainClassifierConfig) -> None:
    from ..utils.config import check_fields

    check_fields(TrainClassifierConfig, asdict(cfg), "train-classifier")  # types, NaN/inf, signs, sizes > 0
    if any(not math.isfinite(e) or e < 0 for e in cfg.eval_eps or ()):
        raise InvkitError(f"eval_eps values must be finite and >= 0, got {list(cfg.eval_eps or ())}.")
    if cfg.adv not in ("none", "pgd", "fgsm"):
        raise InvkitError(f"unknown adversarial training '{cfg.adv}'; use 'none', 'pgd' or 'fgsm'.")
    if cfg.norm not in NORMS:
        raise InvkitError(f"unknown attack norm '{cfg.norm}'; use one of {', '.join(NORMS)}.")
    if cfg.optimizer not in ("adam", "sgd"):
        raise InvkitError(f"unknown optimizer '{cfg.optimizer}'; use 'adam' or 'sgd'.")
    for name in ("batch_size", "adv_steps", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise InvkitError(f"{name} must be at least 1, got {getattr(cfg, name)}.")
    if cfg.steps is not None and cfg.steps < 1:
        raise InvkitError(f"steps must be at least 1, got {cfg.steps}.")
    if cfg.steps is None and cfg.epochs <= 0:
        raise InvkitError(f"epochs must be positive, got {cfg.epochs}.")
    if cfg.lr <= 0:
        raise InvkitError(f"learning rate must be positive, got {cfg.lr}.")
    if cfg.eps < 0 or any(e < 0 for e in cfg.eval_eps or ()):
        raise InvkitError("eps values must be >= 0.")
    if not 0 <= cfg.eps_warmup < 1:
        raise InvkitError(f"eps_warmup is a fraction of the run in [0, 1), got {cfg.eps_warmup}.")
    if cfg.tensorboard:
        from .tensorboard_log import check_tensorboard

        check_tensorboard()  # one line naming the pip command, before anything is loaded
