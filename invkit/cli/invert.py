"""``invkit invert``: reconstruct images from the logits a classifier gives them."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import click
import torch
from rich.table import Table

from ..core.classifier import Classifier
from ..core.inverter import Inverter
from ..core.naming import classifier_label, inverter_label
from ..core.observation import observation_of, observe
from ..data.images import IMAGE_EXTENSIONS, load_image, shown_path
from ..errors import DataError, InvkitError
from ..io.checkpoint import spec_identity
from ..io.figures import save_labelled_rows, to_pil_grid
from ..io.files import atomic_write_bytes, atomic_write_json
from ..io.outputs import claim_output, input_paths
from ..io.owned import may_write
from ..io.read import Required, read_json
from ._common import (
    POSITIVE_INT,
    SEED,
    classifier_from_spec,
    device_option,
    inverter_from_spec,
    local_spec,
    parse_options,
    pick_device,
)
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


BATCH = 64  # images classified and inverted at a time: memory stays bounded however many files are given


def _originals(files: list[Path], inv: Inverter, mode: str) -> torch.Tensor:
    """The images the inverter reconstructs, ``(N, C, H, W)`` in [0, 1] on the CPU: each file decoded on its own
    (``load_image``) and brought at once to the inverter's resolution (``Inverter.target_images``), so memory holds
    one full-size image at a time, not every file at full size as float32.

    Raises:
        DataError: a file that cannot be read (named).
        InvkitError: an image smaller than 8x8 (named).
    """
    out = []
    for f in files:
        image = load_image(f, mode)
        if min(image.shape[-2:]) < 8:  # the same floor Classifier.check_images applies
            raise InvkitError(
                f"image '{shown_path(f)}' is {image.shape[-2]}x{image.shape[-1]} pixels, too small to classify; "
                "use images of at least 8x8."
            )
        out.append(inv.target_images(image[None]).cpu())
        del image
    return torch.cat(out)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``fn`` applied to ``x`` ``BATCH`` rows at a time on ``device``; the results concatenated there."""
    return torch.cat([fn(x[i : i + BATCH].to(device)) for i in range(0, len(x), BATCH)])


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
    help="Classifier registry name or checkpoint folder (also demo:NAME, hf-hub:OWNER/NAME[@REV]) whose logits are "
    "inverted.",
)
@click.option("--weights", default=None, type=click.Path(), help="Weights file for a registry classifier.")
@click.option("--inverter", default=None, help="Inverter registry name (optim needs no checkpoint).")
@click.option(
    "--checkpoint",
    default=None,
    type=click.Path(),
    help="Inverter checkpoint folder, or an `invkit train` run folder (its newest checkpoint).",
)
@click.option(
    "--channel",
    default=None,
    metavar="SPEC",
    help="What the inverter observes of the classifier's output (logits, probs, topk:K, round:D, label, "
    "noise:SIGMA); a checkpoint trained on another is refused. [the checkpoint's own; logits for optim]",
)
@click.option(
    "--layer",
    default=None,
    metavar="NAME",
    help="Invert this classifier layer's globally pooled activations (a module name or 'penultimate'); exclusive "
    "with --channel. [the checkpoint's own]",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs and grid.png.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the inverter's noise.")
@click.option(
    "-n",
    "samples",
    type=POSITIVE_INT,
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
    channel: str | None,
    layer: str | None,
    out: str,
    seed: int,
    samples: int,
    options: tuple[str, ...],
    device: str,
) -> None:
    """Invert the logits of IMAGES (files or folders): writes <name>_recon.png per image and grid.png
    (originals on top, then each row of reconstructions)."""
    dev = pick_device(device)
    files = image_files(images)
    classifier_spec, inverter, checkpoint = local_spec(classifier_spec), local_spec(inverter), local_spec(checkpoint)
    clf = classifier_from_spec(classifier_spec, weights).to(dev).eval()
    opts = parse_options(options)
    inv = inverter_from_spec(inverter, clf, checkpoint=checkpoint, channel=channel, layer=layer, **opts).to(dev).eval()
    settings = _settings(clf, classifier_spec, inv.registry_name, checkpoint, seed, samples, options)
    settings["channel"], settings["layer"] = observation_of(inv)  # what it inverted: another is other settings
    _previous(Path(out).expanduser() / "invert.json", settings)  # refuse mixing before the (slow) inversion
    c, h, w = clf.config.input_size
    originals = _originals(files, inv, "L" if c == 1 else "RGB")  # (N, C, H, W) at the inverter's resolution
    with torch.no_grad():
        logits = _batched(clf.logits, originals, dev)
    # what the inverter observes: its channel of the logits, a layer's pooled activations, or (optim.robust) the
    # penultimate layer (inv.targets); a random channel (noise) seeded from --seed (invkit.core.observation)
    gen = torch.Generator(device=dev).manual_seed(seed)
    targets = _batched(lambda x: observe(inv, clf, x, generator=gen), originals, dev)
    grad = torch.no_grad() if getattr(inv, "trainable", False) else torch.enable_grad()
    rows = []
    with grad:  # a batch at a time, one generator throughout: up to BATCH images the same draws as one call
        for _ in range(samples):
            rows.append(_batched(lambda t: inv.invert(t, generator=gen).detach().float().clamp(0, 1), targets, dev))
    out_dir = Path(out).expanduser()
    inputs = [*files, *input_paths(classifier_spec, weights, checkpoint)]  # never written over
    claim = claim_output(
        out_dir, "invkit invert", inputs=inputs, writes=("invert.json", "grid.png"), records=("invert.json",)
    )
    click.get_current_context().with_resource(claim)  # held until the end
    earlier = _previous(out_dir / "invert.json", settings)
    previous = [e for e in earlier if e.get("image") not in map(str, files)]
    taken = {n: e["image"] for e in previous for n in e.get("written", [])}
    # a file here that invkit did not write (the user's d_recon.png) or that is an input keeps its name: other names
    taken.update({p.name: "" for p in out_dir.iterdir() if not may_write(p)})
    again = {e.get("image"): e.get("written", []) for e in earlier if e.get("image") in map(str, files)}
    names = _names(files, samples, taken, again)
    summary = []
    clf_label, inv_label = classifier_label(clf), inverter_label(inv)  # what the weights are (invkit.core.naming)
    table = Table(title=f"{clf_label} -> {inv_label}", title_justify="left", show_edge=False)
    for col in ("image", "Φ(x) class", "Φ(x̂) class", "logit cos", "written"):
        table.add_column(col)
    with torch.no_grad():
        recon_logits = [_batched(clf.logits, r, dev) for r in rows]
    for i, f in enumerate(files):
        written = []
        for j, r in enumerate(rows):
            atomic_write_bytes(out_dir / names[i][j], _png(r[i].cpu()))
            written.append(names[i][j])
        cos = torch.nn.functional.cosine_similarity(recon_logits[0][i], logits[i], dim=0).item()
        entry = {
            "image": str(f),
            "class": int(logits[i].argmax()),
            "class_name": class_name(clf, int(logits[i].argmax())),
            "recon_classes": [int(rl[i].argmax()) for rl in recon_logits],
            "recon_class_names": [class_name(clf, int(rl[i].argmax())) for rl in recon_logits],
            "logit_cosine": cos,
            "written": written,
        }
        summary.append(entry)
        table.add_row(
            str(f), entry["class_name"], ", ".join(entry["recon_class_names"]), f"{cos:.3f}", ", ".join(written)
        )
    side = f"{originals.shape[-2]}x{originals.shape[-1]}"  # the inverter's resolution: what it reconstructs
    labelled = [(f"original {side}", originals.cpu())]
    labelled += [(inv_label if samples == 1 else f"{inv_label} #{j + 1}", r.cpu()) for j, r in enumerate(rows)]
    save_labelled_rows(labelled, out_dir / "grid.png")
    labels = {"classifier_label": clf_label, "inverter_label": inv_label}  # for people; not compared on a rerun
    atomic_write_json(out_dir / "invert.json", {**settings, **labels, "images": previous + summary})  # NaN -> null
    console.print(table)
    console.print(f"wrote {len(files) * samples} reconstructions and {out_dir / 'grid.png'}")


def class_name(clf: Classifier, index: int) -> str:
    """The classifier's name for class ``index`` (``config.label_names``), or the index when it stores none."""
    names = clf.config.label_names or ()
    return str(names[index]) if 0 <= index < len(names) else str(index)


def _settings(
    clf: Classifier, spec: str, inv: str, checkpoint: str | None, seed: int, samples: int, options: tuple
) -> dict:
    """What the reconstructions in --out depend on (``spec_identity``: a folder from anywhere, with its weights)."""
    return {
        "classifier": clf.name,
        "classifier_spec": spec_identity(spec),  # weights by path and digest: retrained weights are other settings
        "inverter": inv,
        "checkpoint": spec_identity(checkpoint),
        "seed": seed,
        "samples": samples,
        "options": sorted(options),
    }


# What a rerun reads back from an earlier invert.json (checked as it is read, invkit.io.read).
INVERT_JSON_SCHEMA = {"images": Required([{"image": Required(str), "written": [str]}])}


def _previous(path: Path, settings: dict) -> list[dict]:
    """The entries of an earlier invert.json in --out, if its settings are these; else refuse (no mixing)."""
    if not path.exists():
        return []
    remedy = "use another --out or delete it"
    doc = read_json(path, INVERT_JSON_SCHEMA, "invert.json", InvkitError, remedy)
    entries = list(doc["images"])
    diff = [f"{k} {doc.get(k)!r} -> {v!r}" for k, v in settings.items() if k in doc and doc[k] != v]
    if diff:
        raise InvkitError(
            f"'{path.parent}' holds reconstructions made with other settings ({', '.join(diff)}); use another "
            "--out or delete that folder (nothing was changed)."
        )
    return entries


def _names(
    files: list[Path], samples: int, taken: dict[str, str], again: dict[str, list[str]] | None = None
) -> list[list[str]]:
    """Output names per image: <stem>_recon.png, or <folder>_<stem>_recon.png (then a number) when two inputs
    (in this run or in an earlier one into the same --out) share a stem; an image inverted again keeps its names."""
    stems = [f.stem for f in files]
    out = []
    for f in files:
        kept = (again or {}).get(str(f), [])
        if len(kept) == samples and all(taken.get(n, str(f)) == str(f) for n in kept):
            taken.update(dict.fromkeys(kept, str(f)))
            out.append(list(kept))
            continue
        base = f.stem if stems.count(f.stem) == 1 else f"{f.parent.name}_{f.stem}"
        cand, i = base, 2
        while any(taken.get(n, str(f)) != str(f) for n in _recon_names(cand, samples)):
            cand, i = f"{base}_{i}", i + 1
        names = _recon_names(cand, samples)
        taken.update(dict.fromkeys(names, str(f)))
        out.append(names)
    return out


def _recon_names(stem: str, samples: int) -> list[str]:
    return [f"{stem}_recon.png"] if samples == 1 else [f"{stem}_recon{j}.png" for j in range(samples)]
