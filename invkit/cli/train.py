"""``invkit train``: train a learned inverter (``biggan_proj``, ``dosovitskiy_brox``, ...) against a frozen classifier.

The loop itself is ``invkit.training.loop``; this module turns options into a ``TrainConfig``, builds the classifier,
the inverter and the data sets, draws the progress bar and prints where everything went.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..core.channels import create_channel
from ..core.inverter import Inverter
from ..errors import InvkitError
from ..io.outputs import claim_output, input_paths
from ..training.config import AUGMENTS, CONFIG_FILE, RUN_DEFINING, TrainConfig, build_inverter
from ..training.distributed import launch_env
from ..training.health import SAMPLES
from ..training.loop import LOG_FILE, train_inverter
from ..training.resume import read_run_config, read_run_doc
from ..training.tensorboard_log import TENSORBOARD_DIR, check_tensorboard
from ._common import (
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    check_device,
    classifier_from_spec,
    data_root_option,
    dataset_from_spec,
    inverter_from_spec,
    parse_options,
    pick_device,
)
from ._ui import console, progress_bars

_D = TrainConfig()


def _absolute_paths(values: dict[str, Any]) -> None:
    """A classifier folder and a ``--weights`` file as absolute paths (registry names stay as they are)."""
    for key in ("classifier", "weights"):
        value = values.get(key)
        if isinstance(value, str) and value and Path(value).expanduser().exists():
            values[key] = str(Path(value).expanduser().resolve())


def _init_from(given: dict[str, Any], out: str) -> dict[str, Any] | None:
    """The ``train`` section of the run ``--init-from`` names (its path made absolute in ``given``), or None.

    Raises:
        InvkitError: not a run folder of ``invkit train``, or ``--out`` itself.
    """
    if "init_from" not in given:
        return None
    source = Path(given["init_from"]).expanduser()
    stored = read_run_config(source) if source.is_dir() else None
    if stored is None:
        raise InvkitError(
            f"--init-from '{source}': not a run folder of `invkit train` (no {CONFIG_FILE} there); name the --out "
            "folder of an earlier run."
        )
    if source.resolve() == Path(out).expanduser().resolve():
        raise InvkitError(f"--init-from names --out '{out}' itself; continue a run with --resume instead.")
    given["init_from"] = str(source.resolve())
    return stored


def _same(given: Any, stored: Any) -> bool:
    """Whether a setting given now is the one stored; paths compare as the files they name (a run recorded
    before invkit stored them absolutely has relative ones)."""
    if given == stored:
        return True
    if isinstance(given, str) and isinstance(stored, str) and Path(given).is_absolute():
        return Path(stored).expanduser().exists() and Path(stored).expanduser().resolve() == Path(given)
    return False


@click.command("train")
@click.option(
    "--classifier",
    default=None,
    help="Frozen classifier to invert: a registry name (smallcnn.mnist) or an invkit checkpoint folder (also "
    "demo:NAME, hf-hub:OWNER/NAME[@REV]).",
)
@click.option("--weights", default=None, help="Published weights file for a registry-name classifier.")
@click.option("--inverter", default=None, help="Learned inverter to train: a registry name (biggan_proj.paper).")
@click.option(
    "--data",
    default=None,
    help="Training images: 'default' (MNIST subset shipped with invkit), an ImageFolder folder with "
    "train/ and test/ (or val/), a .tar.gz of one, or mnist/fashionmnist/cifar10/cifar100 under "
    "--data-root. Sample grids use the test split. [default]",
)
@data_root_option
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: train_config.json, log.jsonl, samples/, checkpoints/.",
)
@click.option(
    "--steps", type=NON_NEGATIVE_INT, default=None, help=f"Inverter optimisation steps (GAN: G steps). [{_D.steps}]"
)
@click.option(
    "--batch-size",
    type=POSITIVE_INT,
    default=None,
    help=f"Global batch per data draw, split over torchrun processes. [{_D.batch_size}]",
)
@click.option("--resolution", type=POSITIVE_INT, default=None, help="Inverter output side. [the inverter's default]")
@click.option("--ch", type=POSITIVE_INT, default=None, help="Inverter width (BigGAN ch). [the inverter's default]")
@click.option("--seed", type=SEED, default=None, help=f"Seeds weights, data order, noise, samples. [{_D.seed}]")
@click.option("--lr-g", type=POSITIVE_FLOAT, default=None, help="Inverter (generator) learning rate. [the inverter's]")
@click.option("--lr-d", type=POSITIVE_FLOAT, default=None, help="Discriminator learning rate. [the inverter's]")
@click.option(
    "--option",
    "-o",
    "option",
    multiple=True,
    metavar="KEY=VALUE",
    help="An inverter config field (e.g. cbn_hidden=64) or trainer option (e.g. num_d_steps=1); repeatable.",
)
@click.option("--save-every", type=POSITIVE_INT, default=None, help=f"Steps between checkpoints. [{_D.save_every}]")
@click.option(
    "--sample-every",
    type=NON_NEGATIVE_INT,
    default=None,
    help=f"Steps between sample grids (0: only at the end). [{_D.sample_every}]",
)
@click.option("--log-every", type=POSITIVE_INT, default=None, help=f"Steps between log.jsonl lines. [{_D.log_every}]")
@click.option(
    "--keep-checkpoints",
    type=NON_NEGATIVE_INT,
    default=None,
    help=f"Newest checkpoints kept (0: all). [{_D.keep_checkpoints}]",
)
@click.option(
    "--augment",
    type=click.Choice(list(AUGMENTS)),
    default=None,
    help="Training-image augmentation: hflip (random horizontal flips) or distorted (the paper's random square crops "
    "of 50-100% of each image at its own size, resized; sample grids take the centred square). [none]",
)
@click.option(
    "--channel",
    default=None,
    metavar="SPEC",
    help="What the inverter observes of the classifier's output: an observation channel of its logits (logits, "
    "probs, topk:K, round:D, label, noise:SIGMA; `invkit list channels`), recorded in every checkpoint. "
    "[logits; --resume keeps the run's]",
)
@click.option(
    "--layer",
    default=None,
    metavar="NAME",
    help="Condition on this classifier layer's globally pooled activations instead of a channel of its logits "
    "(a module name or 'penultimate'; `invkit list --layers CLASSIFIER`). Exclusive with --channel.",
)
@click.option(
    "--sync-bn/--no-sync-bn",
    "sync_batchnorm",
    default=None,
    help="Under torchrun, batch-norm statistics over the global batch (compare_gan's cross-replica batch norm), "
    "not each process' shard. [on; --resume keeps the run's choice]",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=check_device,
    help="cpu, cuda or auto (under torchrun, cuda means cuda:LOCAL_RANK).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=None,
    help="bf16: bfloat16 autocast in the trainer and for the classifier's logits. [the trainer's "
    "default: biggan_proj uses bf16 + channels_last where bf16 is native (CUDA, CPUs with AVX512-BF16/AMX), "
    "fp32 elsewhere]",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="channels_last memory format for images and convolutions. [the trainer's default]",
)
@click.option(
    "--cache-logits/--no-cache-logits",
    default=None,
    help="Compute the classifier's logits once for the whole data set. [on unless --augment]",
)
@click.option(
    "--tensorboard/--no-tensorboard",
    default=None,
    help="Also write the losses, img/s, learning rates and sample grids as TensorBoard events in OUT/tensorboard/ "
    "(needs `pip install 'invkit[tensorboard]'`). [off; --resume keeps the run's choice]",
)
@click.option(
    "--init-from",
    default=None,
    metavar="RUN",
    help="Start from the newest checkpoint of another `invkit train` run folder: its weights, optimiser and EMA "
    "states, step, data position and RNG states, as --resume would, into the new --out; options not given are "
    "taken from that run's train_config.json. The new run may observe another --channel or --layer of the same "
    "size (e.g. train a logits run on for topk:5); its classifier and data must be the run's.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its newest checkpoint, exactly; options not given are taken "
    "from its train_config.json.",
)
def command(out: str, resume: bool, device: str, data_root: str | None, option: tuple[str, ...], **given: Any) -> None:
    """Train a learned inverter against a frozen classifier.

    The classifier's logits of the training images are the inverter's input; checkpoints are written
    atomically to OUT/checkpoints/step_NNNNNN (load one with invkit.load_inverter or pass it to `invkit bench`).
    Under `torchrun --nproc_per_node=N` the run is data-parallel (see docs/training.md).
    """
    main = launch_env()[0] == 0  # WORLD_SIZE/RANK checked first: one line when they are wrong
    given = {k: v for k, v in given.items() if v is not None}
    if "channel" in given and "layer" in given:
        raise InvkitError(
            f"--channel {given['channel']} and --layer {given['layer']} are exclusive: an inverter sees a channel of "
            "the logits or one layer's activations, not both; give one."
        )
    if "channel" in given:  # as its channel writes it (noise:1 -> noise:1.0): recorded and compared on --resume
        given["channel"] = create_channel(given["channel"]).spec
    if given.get("tensorboard"):
        check_tensorboard()  # one line naming the pip command, before anything is loaded
    if option:
        given["options"] = parse_options(option, "--option")
    if given.get("data") not in (None, "default") and Path(given["data"]).expanduser().exists():
        given["data"] = str(Path(given["data"]).expanduser().resolve())  # the same data from any working folder
    _absolute_paths(given)  # a classifier folder and a --weights file, too
    stored = read_run_config(out) if resume else None
    base = _init_from(given, out)
    base = base if stored is None else None  # --resume: the run's own record (a resumed run keeps its init_from)
    values = TrainConfig().to_dict()
    if base is not None:  # the run it starts from: its options, except where to write and what is given now
        values.update({k: v for k, v in base.items() if k in values and k not in ("device", "out", "init_from")})
        if "channel" in given:
            values["layer"] = None
        if "layer" in given:
            values["channel"] = "logits"
    if stored is not None:
        doc = read_run_doc(out)
        by_content = {"data"} if "data_fingerprint" in doc else set()  # the data's content decides, not its path
        if "classifier_identity" in doc:  # the classifier's weights decide (checked by the training loop)
            by_content |= {"classifier", "weights"}
        changed = [
            f"--{k.replace('_', '-')} {stored.get(k)!r} (now {given[k]!r})"
            for k in RUN_DEFINING
            if k in given and k in stored and k not in by_content and not _same(given[k], stored[k])
        ]
        if changed:
            raise InvkitError(
                f"--resume: the run in '{out}' was started with {changed[0]}; resume with the same "
                "options, or train into another --out."
            )
        values.update({k: v for k, v in stored.items() if k in values and k != "device"})
        if "sync_batchnorm" not in stored:  # a run from before --sync-bn normalised each process' shard
            values["sync_batchnorm"] = False
    values.update(given)
    _absolute_paths(values)  # recorded absolutely in train_config.json (a run resumed elsewhere finds them)
    values["out"] = out
    values["device"] = str(pick_device(device))
    config = TrainConfig(**values)
    if not config.classifier or not config.inverter:
        raise click.UsageError(
            f"--classifier and --inverter are required (with --resume they are read from {out}/{CONFIG_FILE})."
        )

    classifier = classifier_from_spec(config.classifier, config.weights)

    def create(name: str, clf: Any, **kw: Any) -> Inverter:
        return inverter_from_spec(name, clf, untrained=True, **kw)

    # a resumed run, or one started from another run, is rebuilt as the network that run recorded
    run_of_record = out if stored is not None else given.get("init_from") if base is not None else None
    recorded = read_run_doc(run_of_record).get("inverter", {}).get("config") if run_of_record else None
    inverter, trainer_options = build_inverter(config, classifier, create=create, recorded=recorded)
    if type(inverter).make_trainer is Inverter.make_trainer:
        inverter.make_trainer(classifier)  # raises its one-line "has no training step" before data is loaded
    train_set = dataset_from_spec(config.data, "train", root=data_root)
    heldout = dataset_from_spec(config.data, "test", root=data_root)

    if main:
        inputs = input_paths(config.classifier, config.weights, config.data, data_root)
        claim = claim_output(out, "invkit train", inputs=inputs, writes=(CONFIG_FILE,), records=(CONFIG_FILE,))
        with claim, progress_bars() as progress:
            result = train_inverter(
                config,
                classifier,
                inverter,
                train_set,
                heldout,
                trainer_options=trainer_options,
                resume=resume,
                progress=progress,
            )
        console.print(
            f"trained {inverter.registry_name} for {classifier.name}: step {result.step}/{config.steps}, "
            f"{result.images_per_s:.1f} img/s"
        )
        console.print(f"checkpoint: {result.checkpoint}   samples: {out}/{SAMPLES}/   log: {out}/{LOG_FILE}")
        if config.tensorboard:
            console.print(f"tensorboard: tensorboard --logdir {Path(out) / TENSORBOARD_DIR}")
    else:
        train_inverter(config, classifier, inverter, train_set, heldout, trainer_options=trainer_options, resume=resume)
