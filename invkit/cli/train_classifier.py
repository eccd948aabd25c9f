"""``invkit train-classifier``: train an in-house classifier, standard or PGD-adversarial, and report its accuracy."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..io.checkpoint import CONFIG_NAME
from ..io.outputs import claim_output, input_paths
from ..io.train_state import TRAIN_STATE_NAME
from ..io.weights import WEIGHTS_NAME
from ..training.classifier import REPORT_NAME, TRAIN_CONFIG_NAME, train_classifier
from ..training.classifier_config import TrainClassifierConfig, TrainClassifierReport
from ..training.tensorboard_log import TENSORBOARD_DIR, check_tensorboard
from ._common import (
    FRACTION,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    FiniteFloat,
    data_root_option,
    device_option,
    pick_device,
)
from ._ui import console, progress_bars


@click.command("train-classifier")
@click.option(
    "--arch",
    default="smallcnn",
    show_default=True,
    help="In-house network: smallcnn (28-32 px), resnet18s (32-64 px) or vgg11s (28-64 px).",
)
@click.option(
    "--width",
    type=POSITIVE_INT,
    default=None,
    help="Network width (first layer's channels) [smallcnn 16, resnet18s and vgg11s 64].",
)
@click.option(
    "--data",
    default="default",
    show_default=True,
    help="'default' (MNIST subset shipped with invkit), an ImageFolder folder with train/ and test/ (or "
    "val/), a .tar.gz of one, or mnist/fashionmnist/cifar10/cifar100 under --data-root.",
)
@data_root_option
@click.option("--download", is_flag=True, help="Let torchvision download a missing data set (needs the network).")
@click.option(
    "--input-size", type=click.IntRange(min=8), default=None, help="Resize the data to this side first [its own size]."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Checkpoint folder to write (config.json, model.safetensors, train_state.safetensors, report.json).",
)
@click.option("--epochs", type=POSITIVE_FLOAT, default=5.0, show_default=True, help="Passes over the training split.")
@click.option("--steps", type=POSITIVE_INT, default=None, help="Optimiser steps (overrides --epochs).")
@click.option("--batch-size", type=POSITIVE_INT, default=128, show_default=True)
@click.option(
    "--lr", type=POSITIVE_FLOAT, default=1e-3, show_default=True, help="Peak learning rate (cosine decay to 0)."
)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True)
@click.option(
    "--augment/--no-augment",
    default=False,
    show_default=True,
    help="Random 4 px shifts (and horizontal flips for RGB).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--adv",
    type=click.Choice(["none", "pgd", "fgsm"]),
    default="none",
    show_default=True,
    help="'pgd': adversarial training on PGD examples (Madry et al. 2018); 'fgsm': one FGSM step of 1.25 eps "
    "from a random start (Wong et al. 2020).",
)
@click.option(
    "--norm",
    type=click.Choice(["linf", "l2"]),
    default="linf",
    show_default=True,
    help="Attack norm, for training and for the default evaluation.",
)
@click.option("--eps", type=FRACTION, default=0.3, show_default=True, help="Attack radius in [0, 1] pixel units.")
@click.option("--adv-steps", type=POSITIVE_INT, default=10, show_default=True, help="PGD steps per training batch.")
@click.option(
    "--step-size",
    type=POSITIVE_FLOAT,
    default=None,
    help="Attack step size [pgd: 2.5 * eps / adv-steps; fgsm: 1.25 * eps].",
)
@click.option(
    "--eps-warmup",
    type=FiniteFloat(min=0.0, max=1.0),
    default=0.0,
    show_default=True,
    help="Fraction of the run over which the training eps ramps up linearly from 0.",
)
@click.option(
    "--eval-eps", type=FRACTION, multiple=True, help="Eps of the PGD evaluation (repeat for several) [--eps]."
)
@click.option(
    "--eval-steps", type=POSITIVE_INT, default=None, help="PGD steps of the evaluation [max(20, 2 * adv-steps)]."
)
@click.option(
    "--eval-samples",
    type=NON_NEGATIVE_INT,
    default=1000,
    show_default=True,
    help="Test images attacked in the PGD evaluation (0: all); clean accuracy uses the whole split.",
)
@click.option(
    "--checkpoint-every", type=POSITIVE_INT, default=500, show_default=True, help="Steps between checkpoints."
)
@click.option(
    "--log-every",
    type=POSITIVE_INT,
    default=50,
    show_default=True,
    help="Steps between lines of log.jsonl (the loss and accuracy curves of report.html).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: bfloat16 autocast for training steps and attacks (pays off on GPUs and CPUs with AMX/AVX512-BF16).",
)
@click.option("--channels-last", is_flag=True, help="channels_last memory format for the network and batches.")
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write the loss, accuracy, learning rate and img/s as TensorBoard events in OUT/tensorboard/ (needs "
    "`pip install 'invkit[tensorboard]'`); may be switched on or off when resuming.",
)
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
@device_option
def command(
    out_dir: str,
    resume: bool,
    device: str,
    eval_eps: tuple[float, ...],
    eval_samples: int,
    precision: str,
    **options: object,
) -> None:
    """Train an in-house classifier (standard or PGD adversarial training) and report clean and PGD accuracy.

    Writes an invkit checkpoint folder (load it with invkit.load_classifier or pass it as --classifier),
    report.json, log.jsonl, curves.png and report.html; prints a table of clean accuracy and PGD accuracy on the
    test split.
    """
    if options.get("tensorboard"):
        check_tensorboard()  # one line naming the pip command, before anything is loaded
    cfg = TrainClassifierConfig(
        eval_eps=eval_eps or None, eval_samples=eval_samples or None, bf16=precision == "bf16", **options
    )  # type: ignore[arg-type]
    dev = pick_device(device)
    claim = claim_output(
        out_dir,
        "invkit train-classifier",
        inputs=input_paths(cfg.data if cfg.data != "default" else None, cfg.data_root),
        writes=(CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME, TRAIN_CONFIG_NAME),
        records=(TRAIN_CONFIG_NAME,),
    )
    with claim, progress_bars() as progress:
        report = train_classifier(cfg, out_dir, resume=resume, progress=progress, device=dev)
    print_report(report)
    console.print(
        f"checkpoint: {report.checkpoint}   report: {report.checkpoint}/{REPORT_NAME} and report.html", soft_wrap=True
    )
    if cfg.tensorboard:
        console.print(f"tensorboard: tensorboard --logdir {Path(out_dir) / TENSORBOARD_DIR}", soft_wrap=True)


def print_report(report: TrainClassifierReport) -> None:
    a = report.train_attack
    kind = f"PGD-trained: {a['norm']} eps {a['eps']:g}, {a['steps']} steps of {a['step_size']:.3g}" if a else "standard"
    table = Table(
        title=f"{report.classifier} ({kind}), {report.steps} steps, {report.seconds:.0f} s",
        title_justify="left",
        show_edge=False,
    )
    table.add_column("evaluation")
    table.add_column("images", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_row("clean", str(report.test_images), f"{100 * report.clean_accuracy:.2f}%")
    for r in report.pgd:
        a = r["attack"]
        table.add_row(
            f"PGD-{a['steps']} {a['norm']} eps {a['eps']:g} (step {a['step_size']:.3g})",
            str(report.eval_samples),
            f"{100 * r['accuracy']:.2f}%",
        )
    console.print(table)
