"""The settings of an inverter training run, what the run returns, and building the run's inverter.

``TrainConfig`` is one run, written resolved to ``OUT/train_config.json`` (``CONFIG_FILE``); ``RUN_DEFINING``
names the fields a resumed run must share with the run it continues; ``TrainResult`` is what
``invkit.training.loop.train_inverter`` returns. ``build_inverter`` builds the run's inverter, seeded, and splits
``TrainConfig.options`` into inverter config fields and trainer options; ``derive_seed`` derives every seed of a run
(weights, data order, flips, noise, held-out samples) from the run's ``seed``; ``_check_config`` refuses bad settings
before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.classifier import Classifier
from ..core.inverter import Inverter, InverterTrainer
from ..errors import TrainingError

CONFIG_FILE = "train_config.json"
AUGMENTS = ("none", "hflip", "distorted")  # TrainConfig.augment's values (invkit train --augment)


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
    # "none", "hflip" (random horizontal flips) or "distorted" (the paper's random square crops of 50-100% of each
    # image at its own size, invkit.data.crops; held-out samples take the centred square); logits then on the fly
    augment: str = "none"
    # batch-norm statistics over the global batch under torchrun (compare_gan's cross-replica batch norm) instead of
    # each process' shard: every BatchNorm of the modules the trainer hands to DDP (invkit.training.sync_batchnorm)
    sync_batchnorm: bool = True
    sample_count: int = 20  # held-out images in the sample grid (an equal number per class)
    stuck_steps: int = 1000  # stop when a loss (a key containing "loss") has not changed for N steps; 0: never
    collapse_std: float = 1e-4  # stop when sample images vary less than this across the grid; 0: never
    tensorboard: bool = False  # also write the log lines and sample grids as TensorBoard events (OUT/tensorboard/)
    # what the inverter observes of the classifier (invkit.core.observation): an observation channel of its logits
    # (logits, probs, topk:K, round:D, label, noise:SIGMA), recorded in every checkpoint
    channel: str = "logits"
    layer: str | None = None  # or this classifier layer's globally pooled activations instead (exclusive with channel)
    # start from the newest checkpoint of this other run (weights, optimiser and EMA states, step, data position and
    # RNG states), e.g. to train a logits run on for another channel; None: from scratch (invkit.training.resume)
    init_from: str | None = None

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
    "sync_batchnorm",
    "channel",
    "layer",
    "init_from",
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


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (``derive_seed(seed, "epoch", 3)``); stable across processes and runs."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def config_field_names(inverter: Inverter) -> set[str]:
    cfg = inverter.config
    return {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set(cfg)


def build_inverter(
    config: TrainConfig,
    classifier: Classifier,
    create: Callable[..., Inverter] | None = None,
    recorded: dict[str, Any] | None = None,
) -> tuple[Inverter, dict[str, Any]]:
    """Build the inverter of a run, seeded, and split ``config.options`` into config fields and trainer options.

    Options naming a field of the inverter's config go to its factory; the rest are trainer options.

    Args:
        config: the run; ``inverter``, ``resolution``, ``ch``, ``seed``, ``options``, ``channel`` and ``layer`` are
            used (with ``layer``, the factory gets ``num_classes`` = the layer's pooled width: its input width).
        classifier: the frozen classifier (gives num_classes and channels).
        create: ``create(name, classifier, **config_fields) -> Inverter``; default ``invkit.create_inverter``.
        recorded: the resolved inverter config a run being resumed (or started from, ``--init-from``) recorded
            (its train_config.json's ``inverter.config``). The fields the inverter's options list in
            ``checkpoint_legacy`` are built as recorded, and one the record lacks was added to invkit after the run
            started: it is built with that legacy value, not the preset's current default (``biggan_proj.paper``
            follows compare_gan since issue 22; a run started before keeps its net, and so do runs started from it).

    Returns:
        The inverter (identical on every rank for the same seed) and the trainer options.

    Raises:
        TrainingError: ``config.ch`` is set but the inverter's config has no ``ch`` field.
        UnknownNameError: ``config.inverter`` is not a registered name (default ``create`` only).
        InputError: the inverter's factory refuses ``resolution``, ``ch`` or a config option's value; a layer the
            classifier does not have (with the nearest names).
    """
    if create is None:
        from ..core.factory import create_inverter

        def create(name: str, classifier: Classifier, **kw: Any) -> Inverter:
            return create_inverter(name, classifier=classifier, **kw)

    base = {k: v for k, v in (("resolution", config.resolution), ("ch", config.ch)) if v is not None}
    if config.layer is not None:  # conditioned on a layer: the input width is its channel count, not num_classes
        from ..core.observation import layer_width

        base["num_classes"] = layer_width(classifier, config.layer)
    if recorded is not None:  # a resumed run keeps the architecture it started with
        from ..core.plugins import get_registry

        legacy = get_registry("inverter").resolve(config.inverter).checkpoint_legacy()
        # a field the record names keeps its recorded value (a run started from such a run writes them all out);
        # one it lacks was added later: the legacy value
        base.update({k: recorded.get(k, v) for k, v in legacy.items() if k not in config.options})
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
    inverter.channel, inverter.layer = config.channel, config.layer  # recorded in its checkpoints (Inverter.save)
    if config.lr_g is not None:
        trainer_opts["g_lr"] = config.lr_g
    if config.lr_d is not None:
        trainer_opts["d_lr"] = config.lr_d
    return inverter, trainer_opts


def _check_config(config: TrainConfig, world: int) -> None:
    from ..utils.config import check_fields

    check_fields(TrainConfig, config.to_dict(), "train config")  # types, NaN/inf, negative or zero sizes and rates
    if config.steps < 0:
        raise TrainingError(f"--steps must be >= 0, got {config.steps}.")
    if config.batch_size < 1 or config.batch_size % world:
        raise TrainingError(
            f"--batch-size {config.batch_size} must be a positive multiple of the number of processes ({world})."
        )
    _check_observation(config)
    if config.augment not in AUGMENTS:
        raise TrainingError(f"augment must be one of {', '.join(AUGMENTS)}, got '{config.augment}'.")
    if config.precision not in (None, "fp32", "bf16"):
        raise TrainingError(f"--precision must be fp32 or bf16, got '{config.precision}'.")
    if config.cache_logits and config.augment != "none":
        raise TrainingError(
            f"--cache-logits needs fixed images, but --augment {config.augment} makes new ones every step (their "
            "logits are computed then); use --no-cache-logits."
        )
    for name in ("save_every", "log_every"):
        if getattr(config, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}.")
    if config.tensorboard:
        from .tensorboard_log import check_tensorboard

        check_tensorboard()  # one line naming the pip command, before anything is written


def _check_observation(config: TrainConfig) -> None:
    """Refuse ``channel`` with ``layer``, and a channel spec that is malformed, unknown or refused by its channel
    (K < 1, D < 0, SIGMA not finite), before anything is written (K above the classes: ``_check_channel``)."""
    from ..core.channels import DEFAULT_CHANNEL, create_channel

    if config.layer is not None and config.channel != DEFAULT_CHANNEL:
        raise TrainingError(
            f"--channel {config.channel} and --layer {config.layer} are exclusive: an inverter sees a channel of the "
            "logits or one layer's activations, not both; give one."
        )
    create_channel(config.channel)
