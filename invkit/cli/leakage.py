"""``invkit leakage``: reconstruction quality against a family of observation channels (issue 25 point 3), one bench
per channel (``invkit.evaluation.leakage``)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from ..errors import InputError
from ..evaluation.leakage import LEAKAGE_FILES, LEAKAGE_NAME, Leakage
from ..evaluation.leakage_page import table_rows
from ..evaluation.settings import BenchSettings
from ..io.locate import has_prefix, spec_label
from ..io.outputs import claim_output, input_paths
from ._common import NON_NEGATIVE_INT, POSITIVE_INT, SEED, data_root_option, device_option, local_spec, pick_device
from ._ui import console, progress_bars
from .bench import _inverter_options, _split


@click.command("leakage")
@click.option(
    "--classifier",
    "classifiers",
    multiple=True,
    required=True,
    help="Classifier registry names or checkpoint folders (also demo:NAME, hf-hub:OWNER/NAME[@REV]), comma-separated "
    "or repeated; one line of the curves per (classifier, inverter).",
)
@click.option(
    "--family",
    default=None,
    metavar="NAME:V1,V2,...",
    help="A channel over a list of its parameter values: topk:1,5,20,all (all: K = the number of classes), "
    "round:1,2,3, noise:0,0.5,1,2. The first is the reference of the paired comparisons.",
)
@click.option(
    "--channels",
    default=None,
    metavar="SPEC,SPEC,...",
    help="Instead of --family: a mixed list of channel specs (logits,probs,topk:5,label), plotted on a categorical x "
    "axis; the first is the reference of the paired comparisons.",
)
@click.option(
    "--inverter",
    "inverters",
    multiple=True,
    default=("optim",),
    show_default=True,
    help="Inverter registry names, comma-separated or repeated. A learned one runs each channel with the --checkpoint "
    "trained on it; channels without one are skipped.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(),
    help="A learned inverter's checkpoint folder or `invkit train` run folder, repeatable; each is used for the "
    "channel its config.json records (`invkit train --channel SPEC`).",
)
@click.option(
    "--data",
    default="default",
    show_default=True,
    help="'default' (MNIST subset shipped with invkit), an ImageFolder folder, a .tar.gz of one, or "
    "mnist/fashionmnist/cifar10/cifar100 under --data-root. Its test split is used.",
)
@data_root_option
@click.option("-n", "n", type=POSITIVE_INT, default=50, show_default=True, help="Held-out images per channel.")
@click.option(
    "--id-k", type=click.IntRange(min=2), default=10, show_default=True, help="Candidates per instance identification."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the image draw and the inversions.")
@click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    help="Independent evaluator classifiers (registry names or checkpoint folders, also demo:NAME), comma-separated or "
    "repeated: their top-1 accuracy and identification on the reconstructions are curves too.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="INVERTER:KEY=VALUE",
    help="Setting for an inverter built fresh, e.g. optim:steps=200 (repeatable).",
)
@click.option("--batch-size", type=POSITIVE_INT, default=64, show_default=True, help="Images per inversion call.")
@click.option(
    "--keep-images",
    type=NON_NEGATIVE_INT,
    default=0,
    show_default=True,
    help="Reconstructions kept per pair in OUT/<channel>/recon/ for `invkit study make` (uint8).",
)
@click.option(
    "--download",
    is_flag=True,
    help="Fetch the LPIPS backbone and, with --evaluator, the Inception-V3 of FID/KID if missing (as invkit bench).",
)
@click.option(
    "--out",
    default="invkit-leakage",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for leakage.json, leakage.md, leakage.html, leakage.png and one bench folder per channel "
    "(OUT/<channel>, e.g. OUT/topk_5); finished channels are reused.",
)
@device_option
def command(
    classifiers: tuple[str, ...],
    family: str | None,
    channels: str | None,
    inverters: tuple[str, ...],
    checkpoints: tuple[str, ...],
    data: str,
    data_root: str | None,
    n: int,
    id_k: int,
    seed: int,
    evaluators: tuple[str, ...],
    options: tuple[str, ...],
    batch_size: int,
    keep_images: int,
    download: bool,
    out: str,
    device: str,
) -> None:
    """Tabulate and plot how much of an image leaks through each channel of a family (one bench per channel).

    For example `invkit leakage --classifier demo:classifier_standard --family topk:10,5,1 -n 50` benches optim
    through topk:10, topk:5 and topk:1 on the same images and writes leakage.png, .md, .html and .json.
    """
    if (family is None) == (channels is None):
        raise InputError("give --family NAME:V1,V2,... or --channels SPEC,SPEC,..., exactly one.")
    clf_specs = _split(classifiers)
    prefixed = {spec: local_spec(spec) for spec in clf_specs if has_prefix(spec)}  # demo:, hf-hub: -> folders
    settings = BenchSettings(
        classifiers=[prefixed.get(spec, spec) for spec in clf_specs],
        inverters=_split(inverters),
        data=data,
        data_root=data_root,
        checkpoints=[local_spec(c) or c for c in checkpoints],
        n=n,
        id_k=id_k,
        seed=seed,
        device=str(pick_device(device)),
        batch_size=batch_size,
        inverter_options=_inverter_options(options),
        classifier_labels={folder: spec_label(spec) for spec, folder in prefixed.items()},
        keep_images=keep_images,
        evaluators=[local_spec(e) or e for e in _split(evaluators)],
        download=download,
    )
    folder = Path(out)
    inputs = input_paths(*settings.classifiers, *settings.checkpoints, *settings.evaluators, data, data_root)
    with claim_output(folder, "invkit leakage", inputs=inputs, writes=LEAKAGE_FILES, records=(LEAKAGE_NAME,)):
        with progress_bars(transient=True) as callback:
            leakage = Leakage(settings, folder, family=family, channels=channels, progress=callback)
            for note in leakage.notes:
                console.print(note, markup=False)
            runs = list(leakage.run())
    for run in runs:
        reused = sum(r.reused for r in run.results)
        console.print(f"{run.member.spec}: {len(run.results)} pairs ({reused} reused) in {folder / run.member.slug}")
    headers, rows = table_rows(leakage.document())
    table = Table(title="invkit leakage", title_justify="left", show_edge=False, header_style="bold", padding=(0, 1))
    for h in headers:
        table.add_column(h, justify="left" if h in ("channel", "classifier", "inverter") else "right")
    for row in rows:
        table.add_row(*[Text(text) for text, _ in row])  # Text: "[0.2, 0.4]" is a number, not rich markup
    console.line()
    console.print(table)
    first = leakage.family.members[0].spec
    console.print(f"(in parentheses: the paired difference against {first} on the same images)")
    console.print(f"curves: {folder / 'leakage.png'}; table: {folder / 'leakage.html'} (also leakage.md, leakage.json)")
