"""``invkit invert``: reconstruct images from the logits a classifier gives them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import torch
from rich.table import Table

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..data import IMAGE_EXTENSIONS, load_image
from ..errors import DataError, InvkitError
from ..figures import save_rows, to_pil_grid
from ._common import classifier_from_spec, device_option, inverter_from_spec, parse_options, pick_device
from ._ui import console


def image_files(paths: tuple[str, ...]) -> list[Path]:
    """Image files named directly or found (recursively) in folders, in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(f"'{p}' does not exist; give image files or folders of images.")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"folder '{p}' holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
            files += found
        else:
            files.append(p)
    return files


def _png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_pil_grid(image[None], nrow=1, padding=0).save(buf, format="PNG")
    return buf.getvalue()


@click.command("invert")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option(
    "--classifier",
    "classifier_spec",
    required=True,
    help="Classifier registry name or checkpoint folder whose logits are inverted.",
)
@click.option("--weights", default=None, type=click.Path(), help="Weights file for a registry classifier.")
@click.option("--inverter", default=None, help="Inverter registry name (optim needs no checkpoint).")
@click.option("--checkpoint", default=None, type=click.Path(), help="Inverter checkpoint folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs and grid.png.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the inverter's noise.")
@click.option(
    "-n",
    "samples",
    type=int,
    default=1,
    show_default=True,
    help="Reconstructions per image (different noise for stochastic inverters).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Setting for an inverter built fresh, e.g. steps=200 (repeatable).",
)
@device_option
def command(
    images: tuple[str, ...],
    classifier_spec: str,
    weights: str | None,
    inverter: str | None,
    checkpoint: str | None,
    out: str,
    seed: int,
    samples: int,
    options: tuple[str, ...],
    device: str,
) -> None:
    """Invert the logits of IMAGES (files or folders): writes <name>_recon.png per image and grid.png
    (originals on top, then each row of reconstructions)."""
    if samples < 1:
        raise InvkitError(f"-n must be at least 1, got {samples}.")
    dev = pick_device(device)
    files = image_files(images)
    clf = classifier_from_spec(classifier_spec, weights).to(dev).eval()
    inv = inverter_from_spec(inverter, clf, checkpoint=checkpoint, **parse_options(options)).to(dev).eval()
    c, h, w = clf.config.input_size
    mode = "L" if c == 1 else "RGB"
    loaded = [load_image(f, mode) for f in files]
    for f, image in zip(files, loaded):
        if min(image.shape[-2:]) < 8:  # the same floor Classifier.check_images applies
            raise InvkitError(
                f"image '{f}' is {image.shape[-2]}x{image.shape[-1]} pixels, too small to classify; "
                "use images of at least 8x8."
            )
    # The image the inverter reconstructs: each image at the inverter's resolution (Inverter.target_images).
    originals = torch.cat([inv.target_images(image[None]) for image in loaded]).to(dev)
    with torch.no_grad():
        logits = clf.logits(originals)
    targets = inv.targets(originals) if hasattr(inv, "targets") else logits  # optim.robust: penultimate layer
    gen = torch.Generator(device=dev).manual_seed(seed)
    grad = torch.no_grad() if getattr(inv, "trainable", False) else torch.enable_grad()
    rows = []
    with grad:
        for _ in range(samples):
            rows.append(inv.invert(targets, generator=gen).detach().float().clamp(0, 1))
    out_dir = Path(out)
    summary = []
    table = Table(title=f"{clf.name} -> {inv.registry_name}", title_justify="left", show_edge=False)
    for col in ("image", "Φ(x) class", "Φ(x̂) class", "logit cos", "written"):
        table.add_column(col)
    with torch.no_grad():
        recon_logits = [clf.logits(r) for r in rows]
    for i, f in enumerate(files):
        written = []
        for j, r in enumerate(rows):
            name = f"{f.stem}_recon.png" if samples == 1 else f"{f.stem}_recon{j}.png"
            atomic_write_bytes(out_dir / name, _png(r[i].cpu()))
            written.append(name)
        cos = torch.nn.functional.cosine_similarity(recon_logits[0][i], logits[i], dim=0).item()
        entry = {
            "image": str(f),
            "class": int(logits[i].argmax()),
            "recon_classes": [int(rl[i].argmax()) for rl in recon_logits],
            "logit_cosine": cos,
            "written": written,
        }
        summary.append(entry)
        table.add_row(
            f.name, str(entry["class"]), ",".join(map(str, entry["recon_classes"])), f"{cos:.3f}", ", ".join(written)
        )
    scale = max(1, 96 // max(h, rows[0].shape[-1]))
    save_rows([originals.cpu()] + [r.cpu() for r in rows], out_dir / "grid.png", scale=scale)
    atomic_write_text(
        out_dir / "invert.json",
        json.dumps({"classifier": clf.name, "inverter": inv.registry_name, "seed": seed, "images": summary}, indent=2)
        + "\n",
    )
    console.print(table)
    console.print(f"wrote {len(files) * samples} reconstructions and {out_dir / 'grid.png'}")
