"""``invkit bench``: compare inverters and classifiers on the same held-out images; with no arguments, the
offline demo bench (the project's main job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvkitError
from ..evaluation.bench import RESULTS_NAME, Bench
from ..evaluation.report import COLUMNS, fmt, shown_inverter
from ..evaluation.settings import BenchSettings
from ..io.locate import has_prefix, spec_label
from ..io.outputs import claim_output, input_paths
from ..utils.progress import Progress as ProgressEvent
from ._common import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    SEED,
    data_root_option,
    device_option,
    local_spec,
    parse_options,
    pick_device,
)
from ._ui import console, err_console, plain_progress

SHORT = {  # compact headers for the terminal table (report.md and report.html use the long ones)
    "psnr": "PSNR",
    "accuracy": "acc",
    "top1_agreement": "agree",
    "top1_agreement_correct": "agree✓",
    "top1_agreement_incorrect": "agree✗",
    "logit_cosine": "cos",
    "logit_cosine_correct": "cos✓",
    "logit_cosine_incorrect": "cos✗",
    "id_accuracy": "ID k={k}",
    "id_pixel": "ID px",
    "id_lpips": "ID lpips",
    "time_per_image_s": "ms/img",
    "peak_memory_mb": "MB",
}


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _inverter_options(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--option optim:steps=50`` -> {"optim": {"steps": 50}}."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        if ":" not in pair.split("=", 1)[0]:
            raise click.BadParameter(f"'{pair}' is not INVERTER:key=value (e.g. optim:steps=50)", param_hint="--option")
        name, rest = pair.split(":", 1)
        out.setdefault(name.strip(), {}).update(parse_options((rest,)))
    return out


@click.command("bench")
@click.option(
    "--classifier",
    "classifiers",
    multiple=True,
    help="Classifier registry names or checkpoint folders (also demo:NAME, hf-hub:OWNER/NAME[@REV]), comma-separated "
    "or repeated.",
)
@click.option("--inverter", "inverters", multiple=True, help="Inverter registry names, comma-separated or repeated.")
@click.option(
    "--data",
    default="default",
    show_default=True,
    help="'default' (MNIST subset shipped with invkit), an ImageFolder folder, a .tar.gz of one, or "
    "mnist/fashionmnist/cifar10/cifar100 under --data-root. Its test split is used.",
)
@data_root_option
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(),
    help="Inverter checkpoint folder, or an `invkit train` run folder (its newest checkpoint); repeatable. "
    "Matched to pairs by inverter name, logit size and the classifier it records.",
)
@click.option("-n", "n", type=POSITIVE_INT, default=None, help="Held-out images per pair (default 50).")
@click.option(
    "--id-k", type=click.IntRange(min=2), default=None, help="Candidates per instance identification (default 10)."
)
@click.option(
    "--only-correct", is_flag=True, help="Draw only images that every classifier classifies correctly (paper Fig. 1)."
)
@click.option(
    "--out",
    default="invkit-bench",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for results.json, results.csv, report.md and report.html; finished pairs are reused.",
)
@click.option(
    "--train-steps",
    type=NON_NEGATIVE_INT,
    default=0,
    show_default=True,
    help="Train a learned inverter that has no checkpoint for this many steps (0: ask for a checkpoint).",
)
@click.option(
    "--channel",
    default=None,
    metavar="SPEC",
    help="What every inverter observes of the classifier's output (logits, probs, topk:K, round:D, label, "
    "noise:SIGMA; `invkit list channels`); a checkpoint trained on another is refused. Metrics still compare the "
    "classifier's logits of the reconstructions with the originals'. [each checkpoint's own; logits for optim]",
)
@click.option(
    "--layer",
    default=None,
    metavar="NAME",
    help="Invert this classifier layer's globally pooled activations instead (a module name or 'penultimate'); "
    "exclusive with --channel. [each checkpoint's own]",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the image draw and the inversions.")
@click.option("--batch-size", type=POSITIVE_INT, default=64, show_default=True, help="Images per inversion call.")
@click.option(
    "--block-size",
    type=POSITIVE_INT,
    default=None,
    help="Images read, inverted and scored at a time (rounded down to a multiple of --batch-size): bounds memory "
    "whatever -n; changes no number. [1024]",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="INVERTER:KEY=VALUE",
    help="Setting for an inverter built fresh, e.g. optim:steps=200 (repeatable).",
)
@click.option(
    "--lpips-net",
    type=click.Choice(["alex", "vgg"]),
    default="alex",
    show_default=True,
    help="LPIPS backbone (used only when its torchvision weights are in the torch hub cache; see --download).",
)
@click.option(
    "--report-images",
    type=POSITIVE_INT,
    default=None,
    help="Originals (with each inverter's reconstructions) shown in report.html and the grid PNGs, one per class "
    "first, at most -n. [10]",
)
@click.option(
    "--keep-images",
    type=NON_NEGATIVE_INT,
    default=None,
    help="Reconstructions kept per pair in OUT/recon/ for `invkit study make` (uint8), at most -n; 0 keeps none. [100]",
)
@click.option(
    "--recon-cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder where each pair's reconstructions are kept batch by batch, so an interrupted pair resumes and a "
    "rerun that only adds metrics (into another --out) reuses them. [OUT/recon-cache]",
)
@click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    help="Independent evaluator classifiers (registry names or checkpoint folders, also demo:NAME), comma-separated "
    "or repeated: their accuracy on the reconstructions, feature distances, FID and KID. [the demo bench: "
    "demo:evaluator when shipped]",
)
@click.option(
    "--id-space",
    default="pixel",
    show_default=True,
    metavar="pixel|lpips|evaluator[:NAME]",
    help="Where the headline instance identification finds the nearest candidate: pixel L2, LPIPS distance (needs "
    "the LPIPS backbone), or an --evaluator's features (NAME: its label; default the first). The report shows "
    "every space available either way.",
)
@click.option(
    "--download",
    is_flag=True,
    help="Fetch the LPIPS backbone (--lpips-net) and, with --evaluator, the Inception-V3 of standard FID/KID into the "
    "torch hub cache if missing, checked against their published SHA-256 (also INVKIT_DOWNLOAD=1; `invkit "
    "download` fetches explicitly). Without it nothing is downloaded.",
)
@device_option
def command(
    classifiers: tuple[str, ...],
    inverters: tuple[str, ...],
    data: str,
    data_root: str | None,
    checkpoints: tuple[str, ...],
    n: int | None,
    id_k: int | None,
    only_correct: bool,
    out: str,
    train_steps: int,
    channel: str | None,
    layer: str | None,
    seed: int,
    batch_size: int,
    block_size: int | None,
    options: tuple[str, ...],
    lpips_net: str,
    report_images: int | None,
    keep_images: int | None,
    recon_cache: str | None,
    evaluators: tuple[str, ...],
    id_space: str,
    download: bool,
    device: str,
) -> None:
    """Evaluate every (classifier, inverter) pair on the same held-out images and write a report.

    With no --classifier and no --inverter: the demo bench, offline, with the checkpoints shipped in invkit
    (standard and PGD-robust MNIST classifiers x biggan_proj, dosovitskiy_brox, optim).
    """
    from .. import demo

    clf_specs, inv_names = _split(classifiers), _split(inverters)
    prefixed = {spec: local_spec(spec) for spec in clf_specs if has_prefix(spec)}  # demo:, hf-hub: -> folders
    clf_specs = [prefixed.get(spec, spec) for spec in clf_specs]
    checkpoints = tuple(local_spec(c) or c for c in checkpoints)
    common = {
        "seed": seed,
        "device": str(pick_device(device)),
        "batch_size": batch_size,
        "lpips_net": lpips_net,
        "train_steps": train_steps,
    }
    if block_size is not None:
        common["block_size"] = block_size  # how much is in memory at once, not what is measured: not in the fingerprint
    if channel is not None:
        common["channel"] = channel.strip()  # in the fingerprint: other numbers, another --out
    if layer is not None:
        common["layer"] = layer.strip()
    if n is not None:
        common["n"] = n
    if id_k is not None:
        common["id_k"] = id_k
    if report_images is not None:
        common["grid_images"] = report_images  # what is shown, not what is measured: not in the fingerprint
    if keep_images is not None:
        common["keep_images"] = keep_images  # kept for studies, not measured: not in the fingerprint either
    if only_correct:
        common["only_correct"] = True
    if evaluators:
        common["evaluators"] = [local_spec(e) or e for e in _split(evaluators)]  # demo:, hf-hub: -> folders
    if id_space != "pixel":
        common["id_space"] = id_space.strip()  # checked by Bench against LPIPS and the evaluators
    if download:
        common["download"] = True  # may fetch a published file; changes no number: not in the fingerprint
    if recon_cache is not None:
        common["recon_cache"] = recon_cache  # where reconstructions are kept, not what they are: not in the fingerprint
    if not clf_specs and not inv_names:
        if checkpoints:
            raise InvkitError(
                "--checkpoint needs --classifier and --inverter; without them invkit bench runs the demo bench "
                "with its own checkpoints."
            )
        settings = demo.default_settings(data=data, data_root=data_root, **common)
        if options:
            settings.inverter_options.update(_inverter_options(options))
    elif not clf_specs or not inv_names:
        raise InvkitError("give both --classifier and --inverter, or neither for the demo bench.")
    else:
        settings = BenchSettings(
            classifiers=clf_specs,
            inverters=inv_names,
            data=data,
            data_root=data_root,
            checkpoints=list(checkpoints),
            inverter_options=_inverter_options(options),
            classifier_labels={folder: spec_label(spec) for spec, folder in prefixed.items()},
            **common,
        )
    run(settings, Path(out))


def run(settings: BenchSettings, out: Path) -> None:
    """Run the bench with a live table and progress bars; the report is on disk after every pair."""
    # Logs and pipes get a wide table rather than one squeezed into 80 columns.
    screen = console  # in a log or a pipe it keeps table rows and paths whole (_ui.LogConsole)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=screen,
    )
    tasks: dict[str, Any] = {}

    # the live display draws nothing in a log until the end: plain lines there (_ui.plain_progress)
    plain = plain_progress(err_console) if not err_console.is_terminal else None

    def callback(event: ProgressEvent) -> None:
        if plain is not None:
            plain(event)
        info = "  ".join(f"{k} {v}" for k, v in event.fields.items())
        if event.task not in tasks:
            tasks[event.task] = progress.add_task(event.task, total=event.total, info=info)
        progress.update(tasks[event.task], completed=event.completed, total=event.total, info=info)
        if event.task != "bench" and event.total and event.completed >= event.total:
            progress.update(tasks[event.task], visible=False)

    table = Table(title="invkit bench", title_justify="left", show_edge=False, header_style="bold", padding=(0, 1))
    inputs = input_paths(*settings.classifiers, *settings.checkpoints, settings.data, settings.data_root)
    writes = (RESULTS_NAME, "results.csv", "report.md", "report.html")  # a user's report.html: refused up front
    claim = claim_output(out, "invkit bench", inputs=inputs, writes=writes, records=(RESULTS_NAME,))
    with claim:  # one run per folder; a refused run leaves no new folder behind
        bench = Bench(settings, out, progress=callback)  # checks every input before anything is written
        _run_live(bench, settings, table, progress, screen)
    screen.line()
    screen.print("columns: see report.md; ✓/✗ = originals the classifier got right/wrong; ID = instance identification")
    screen.print(f"LPIPS: {bench.lpips_message}")
    if bench.evaluators:
        screen.print(f"evaluators: {', '.join(bench.evaluators)} (their tables, FID and KID: report.md)")
    screen.print(f"report: {out / 'report.html'} (also report.md, results.csv, results.json)")


def _run_live(bench: Bench, settings: BenchSettings, table: Table, progress: Progress, screen: Console) -> None:
    for header, key, _ in COLUMNS:
        table.add_column(
            SHORT.get(key, header).format(k=settings.id_k),
            no_wrap=True,
            justify="left" if key in ("classifier", "inverter") else "right",
        )
    with Live(Group(table, progress), console=screen, refresh_per_second=4, transient=False):
        for result in bench.run():
            label = shown_inverter(result.record) + (" (reused)" if result.reused else "")
            table.add_row(
                *[fmt(result.record.get(key), spec) if key != "inverter" else label for _, key, spec in COLUMNS]
            )
