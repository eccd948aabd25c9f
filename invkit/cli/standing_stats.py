"""``invkit standing-stats``: give a trained inverter's batch-norms standing statistics, without retraining.

For inverters that implement ``with_standing_stats(logits_batches, generator)`` (``biggan_proj``): the logits
of ``--batches`` x ``--batch-size`` training images (resized to the inverter's resolution, as in training), each
batch with fresh seeded noise, give the statistics; the result is a new checkpoint folder in ``--out`` with the
same weights and the original ``config.json`` fields, its config saying ``bn_stats: standing``. Checkpoints
trained since issue 12 already carry them; this command is for older ones (docs/biggan_proj.md).
"""

from __future__ import annotations

from pathlib import Path

import click
import torch

from ..data.datasets import take
from ..data.images import resize
from ..errors import InvkitError
from ..io.checkpoint import checkpoint_folder, read_checkpoint_config
from ._common import (
    SEED,
    apply,
    classifier_from_spec,
    data_options,
    dataset_from_spec,
    device_option,
    local_spec,
    pick_device,
)
from ._ui import console


@click.command("standing-stats")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--classifier", "classifier_spec", required=True, help="Classifier the inverter was trained for (name or folder)."
)
@apply(data_options)
@click.option("--split", default="train", show_default=True, help="Data split whose images give the logits.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="New checkpoint folder.")
@click.option("--batches", type=int, default=16, show_default=True, help="Accumulation batches (BigGAN: 16).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images (and noise draws) per batch.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the image draw and the noise.")
@device_option
def command(
    checkpoint: Path,
    classifier_spec: str,
    data: str,
    data_root: str | None,
    split: str,
    out: Path,
    batches: int,
    batch_size: int,
    seed: int,
    device: str,
) -> None:
    """Accumulate standing batch-norm statistics for the inverter in CHECKPOINT and save the result to --out.

    CHECKPOINT is a checkpoint folder, or an `invkit train` run folder (its newest checkpoint, named on stderr).
    """
    from ..core.factory import create_inverter
    from ..core.observation import choose_observation, observe

    checkpoint, classifier_spec = Path(local_spec(str(checkpoint)) or checkpoint), local_spec(classifier_spec)
    checkpoint = Path(checkpoint_folder(checkpoint))  # a training run folder: its newest checkpoint (a note says which)
    if batches < 1 or batch_size < 2:
        raise click.BadParameter("needs at least 1 batch of at least 2 images.", param_hint="--batches/--batch-size")
    if out.resolve() == checkpoint.resolve():
        raise click.BadParameter("write to a new folder; the original checkpoint is kept.", param_hint="--out")
    if out.exists() and any(out.iterdir()):
        raise click.BadParameter(f"'{out}' is not empty; give a new folder.", param_hint="--out")
    dev = pick_device(device)
    doc = read_checkpoint_config(checkpoint, kind="inverter")
    classifier = classifier_from_spec(classifier_spec).to(dev)
    inverter = create_inverter(classifier=classifier, checkpoint=str(checkpoint)).to(dev)
    choose_observation(inverter, classifier)  # its own channel or layer, checked against this classifier
    if not hasattr(inverter, "with_standing_stats"):
        raise InvkitError(f"{inverter.registry_name} has no batch-norm statistics to accumulate; nothing to do.")
    if inverter.layer is None and inverter.num_classes != classifier.num_classes:
        raise InvkitError(
            f"checkpoint '{checkpoint}' inverts {inverter.num_classes} logits but {classifier.name} gives "
            f"{classifier.num_classes}; use the classifier it was trained for."
        )
    dataset = dataset_from_spec(data, split, root=data_root)
    images, _ = take(dataset, batches * batch_size, seed=seed, size=inverter.image_shape[-1])  # as resize below
    if len(images) < batches * batch_size:
        raise InvkitError(
            f"the {split} split has {len(images)} images, fewer than --batches x --batch-size = "
            f"{batches * batch_size}; lower one of them."
        )
    c, h, _ = inverter.image_shape
    logits = []  # what the inverter observes: its channel of the logits, or its layer (invkit.core.observation)
    channel_gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        for chunk in images.split(batch_size):
            logits.append(observe(inverter, classifier, resize(chunk, h, c).to(dev), generator=channel_gen))
    standing = inverter.with_standing_stats(logits, torch.Generator().manual_seed(seed))
    extra = {k: v for k, v in doc.items() if k not in ("invkit_kind", "name", "config", "invkit_version")}
    extra["standing_stats"] = {"classifier": classifier.name, "data": data, "split": split, "seed": seed}
    standing.save(out, extra=extra)
    console.print(
        f"standing statistics over {batches} x {batch_size} {split} images ({classifier.name} logits): [bold]{out}"
    )
