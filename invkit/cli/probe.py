"""``invkit probe``: run one probe, several (a wildcard) or ``all`` on a classifier and its inverter.

Each probe writes into ``OUT/<probe>/``: PNG figures, ``index.html`` (rendered by invkit from the probe's result) and
``results.json`` (written last, so a folder with ``results.json`` holds a finished run); ``OUT/index.html`` links
every probe of the folder. A probe whose ``results.json`` exists is skipped unless
``--force``, so an interrupted ``invkit probe all`` picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import click
import torch
from rich.table import Table

from ..core.factory import create_probe, list_probes
from ..core.naming import classifier_label, inverter_label
from ..core.plugins import get_registry
from ..core.probe import PAGE_NAME, ProbeContext, ProbeResult, check_probe_options, declared_options, run_probe
from ..core.probe_page import write_probe_index
from ..data.classes import for_classifier
from ..data.sources import load_dataset
from ..errors import InvkitError
from ..io.checkpoint import spec_identity
from ..io.files import make_dirs
from ..io.outputs import claim_output, input_paths
from ..io.read import read_json
from ..utils.progress import Progress
from ._common import (
    POSITIVE_INT,
    SEED,
    apply,
    classifier_from_spec,
    data_options,
    dataset_from_spec,
    device_option,
    inverter_from_spec,
    local_spec,
    parse_options,
    pick_device,
)
from ._ui import console, err_console, progress_bars


def resolve_names(name: str) -> list[str]:
    """``all``, a wildcard (``logit-*``) or one registered probe name -> the probe names to run."""
    if name == "all":
        return list_probes()
    if any(c in name for c in "*?["):
        names = list_probes(name)
        if not names:
            raise InvkitError(f"no probe matches '{name}'; run `invkit list probes` to see every name.")
        return names
    return [get_registry("probe").resolve(name).name]


def split_options(options: dict[str, Any], probes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Share ``--option`` values out among the probes to run.

    ``probe-name.key=value`` goes to that probe only. A plain ``key=value`` goes to a single probe as is (it
    rejects keys it does not know); with several probes, to each probe that declares ``key`` or declares no
    options at all, and it is an error if none takes it.
    """
    per: dict[str, dict[str, Any]] = {n: {} for n in probes}
    by_key = {n.replace("-", "_"): n for n in probes}
    known = {n.replace("-", "_") for n in list_probes()}
    for key, value in options.items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix in known:
            if prefix in by_key:
                per[by_key[prefix]][rest] = value
            continue
        takers = [n for n, p in probes.items() if len(probes) == 1 or (declared_options(p) or {key}) >= {key}]
        if not takers:
            raise InvkitError(f"no probe among {', '.join(probes)} has an option '{key}'; see docs/probes.md.")
        for n in takers:
            per[n][key] = value
    return per


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += _flatten(v, f"{prefix}{k}.")
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        text = "[" + ", ".join(_show(x) if not isinstance(x, dict) else "{…}" for x in v[:8])
        return text + (", …]" if len(v) > 8 else "]")
    return str(v)


def print_result(result: ProbeResult, folder: Path, ran_on: str = "") -> None:
    title = f"{result.probe}: {ran_on}" if ran_on else result.probe
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("number", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in _flatten(result.numbers):
        table.add_row(k, _show(v))
    console.print(table)
    for key, rows in result.numbers.items():  # lists of rows (per factor, per level) as tables of their own
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            sub = Table(title=f"{result.probe}: {key}", title_justify="left", show_edge=False)
            for col in rows[0]:
                sub.add_column(col, overflow="fold")
            for r in rows:
                sub.add_row(*(_show(r.get(col, "")) for col in rows[0]))
            console.print(sub)
    if result.summary:
        console.print(result.summary, soft_wrap=True)
    console.print(f"page: {folder / 'index.html'}   numbers: {folder / 'results.json'}", soft_wrap=True)
    figures = [str(folder / p) for k, p in result.figures.items() if k != "page"]
    if figures:
        console.print("figures: " + "  ".join(figures), soft_wrap=True)


# Options of the built-in probes that set how many held-out images a probe reads instead of -n (a probe needs its
# own count: misclassified images are rare, a class spread needs whole classes, a figure has a number of rows).
COUNT_OPTIONS = ("images", "scan", "compare", "classes", "per_class")
ROW_OPTIONS = ("rows", "pairs")  # the count where a probe reads one image per figure row (and has none of the above)


def _images_note(
    name: str, probe: Any, options: dict[str, Any], folder: Path, asked: int, available: int
) -> str | None:
    """One line when probe ``name`` read another number of images than ``-n`` asked for, saying why; None when it
    read ``asked`` (or all ``available`` images, fewer than asked: the command warned of that once already)."""
    doc = read_json(folder / "results.json", {"run": dict}, "probe results file", InvkitError, "run it again")
    used = doc.get("run", {}).get("images_used")
    if not isinstance(used, int) or used == asked or used == available < asked:
        return None
    declared = getattr(probe, "options", None)
    values = dataclasses.asdict(declared) | options if dataclasses.is_dataclass(declared) else dict(options)
    counts = [f"{k}={values[k]}" for k in COUNT_OPTIONS if isinstance(values.get(k), int)]
    counts = counts or [f"{k}={values[k]}" for k in ROW_OPTIONS if isinstance(values.get(k), int)]
    why = (
        f"its own options set how many ({', '.join(counts)}; change with --option {name}.KEY=N)"
        if counts
        else "the probe decides how many it needs"
    )
    return f"{name}: used {used} images, not -n {asked}: {why}."


def _spec(spec: str | None) -> str | None:
    """A spec as recorded: an existing path made absolute (the same folder from anywhere), a name as given."""
    if spec is None:
        return None
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def _same_settings(path: Path, settings: dict[str, Any]) -> None:
    """Refuse to keep (and report as done) a probe's results computed with other settings."""
    remedy = "delete it or pass --force to run the probe again"
    run = read_json(path, {"run": dict}, "probe results file", InvkitError, remedy).get("run", {})
    diff = [f"{k} {run[k]!r} -> {v!r}" for k, v in settings.items() if k in run and run[k] != v]
    if diff:
        raise InvkitError(
            f"'{path}' holds results of other settings ({', '.join(diff)}); use another --out, or --force to "
            "replace them (nothing was changed)."
        )


@click.command("probe")
@click.argument("name")
@click.option(
    "--classifier",
    "classifier_spec",
    required=True,
    help="Registry name (smallcnn.base) or an invkit classifier checkpoint folder (also demo:NAME, "
    "hf-hub:OWNER/NAME[@REV]).",
)
@click.option("--weights", default=None, help="Weights file for a registry-name classifier.")
@click.option("--inverter", "inverter_spec", default=None, help="Inverter registry name (or checkpoint folder).")
@click.option(
    "--checkpoint",
    default=None,
    help="Inverter checkpoint folder (trained for this classifier), or an `invkit train` run folder (its newest "
    "checkpoint).",
)
@click.option(
    "--channel",
    default=None,
    metavar="SPEC",
    help="What the inverter observes of the classifier's output (logits, probs, topk:K, round:D, label, "
    "noise:SIGMA); a checkpoint trained on another is refused. Probes that manipulate logits are skipped, with the "
    "reason, for a channel that does not keep them. [the checkpoint's own; logits for optim]",
)
@click.option(
    "--inverter-option",
    "inverter_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option of an inverter built from its name (repeatable), e.g. 'steps=50' for optim; --option goes to "
    "the probes.",
)
@apply(data_options)
@click.option(
    "--ood-data",
    default=None,
    help="Out-of-distribution data for the 'ood' probe (same forms as --data). Default, shipped with "
    "invkit: negatives of the embedded MNIST digits for grey inverters, the MNIST digits for RGB ones.",
)
@click.option("-n", "--num-images", type=POSITIVE_INT, default=64, show_default=True, help="Held-out images per probe.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds every random draw (each probe afresh).")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Probe option (repeatable); 'probe-name.key=value' for one probe only when running several.",
)
@device_option
@click.option("--force", is_flag=True, help="Run probes whose results.json already exists again.")
@click.option(
    "--download",
    is_flag=True,
    help="Fetch the LPIPS AlexNet backbone the probes' LPIPS numbers need, if missing (checked against its "
    "published SHA-256; also INVKIT_DOWNLOAD=1). Without it LPIPS is used only when already in the cache.",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Output folder (one sub-folder per probe)."
)
def command(
    name: str,
    classifier_spec: str,
    weights: str | None,
    inverter_spec: str | None,
    checkpoint: str | None,
    channel: str | None,
    inverter_options: tuple[str, ...],
    data: str,
    data_root: str | None,
    ood_data: str | None,
    num_images: int,
    seed: int,
    options: tuple[str, ...],
    device: str,
    force: bool,
    download: bool,
    out: str,
) -> None:
    """Run probe NAME ('all', a wildcard such as 'logit-*', or one name from `invkit list probes`).

    Each probe writes PNG figures, index.html and results.json into OUT/NAME/ and prints its numbers;
    OUT/index.html links every probe in OUT. A probe whose results.json already exists is skipped unless --force,
    so an interrupted 'all' resumes. See docs/probes.md for every probe's options and numbers.
    """
    names = resolve_names(name)
    classifier_spec, inverter_spec, checkpoint = (
        local_spec(classifier_spec),
        local_spec(inverter_spec),
        local_spec(checkpoint),
    )
    probes = {n: create_probe(n) for n in names}
    per_probe = split_options(parse_options(options), probes)
    # names and types checked now, before an existing results.json is compared: a misspelt key is "no option 'gird'"
    per_probe = {n: check_probe_options(probes[n], per_probe[n]) for n in names}
    inv_opts = parse_options(inverter_options)
    if inv_opts and (checkpoint is not None or (inverter_spec is not None and Path(inverter_spec).is_dir())):
        raise click.UsageError("--inverter-option is for an inverter built from its name; a checkpoint has its config.")
    out_dir = Path(out).expanduser()
    settings = {
        # weights by path and digest: new weights in the same folder are other settings, not finished results
        "classifier_spec": spec_identity(classifier_spec),
        "weights": spec_identity(weights),
        "inverter_spec": spec_identity(inverter_spec),
        "checkpoint": spec_identity(checkpoint),
        "data_spec": _spec(data),
        "ood_data": _spec(ood_data),
        "num_images": num_images,
        "seed": seed,
        **({"channel": channel} if channel is not None else {}),  # absent by default: older results still match
    }
    todo = []
    for n in names:
        done = out_dir / n / "results.json"
        if force or not done.exists():
            todo.append(n)
            continue
        _same_settings(done, {**settings, "options": per_probe[n]})  # other settings: refuse, as bench does
        err_console.print(f"{n}: results.json exists in {out_dir / n}, skipped (use --force to run it again).")
    if not todo:
        return
    inputs = input_paths(classifier_spec, weights, inverter_spec, checkpoint, data, ood_data, data_root)
    claim = claim_output(out_dir, "invkit probe", inputs=inputs, writes=(PAGE_NAME,), records=("*/results.json",))
    click.get_current_context().with_resource(claim)  # held until the end
    dev = pick_device(device)
    if download:  # before any probe runs: a failed download is one line, no probe half done
        from ..evaluation.metrics import lpips_status

        lpips_status("alex", download=True)
    classifier = classifier_from_spec(classifier_spec, weights).to(dev)
    inverter = inverter_from_spec(inverter_spec, classifier, checkpoint=checkpoint, channel=channel, **inv_opts)
    inverter = inverter.to(dev).eval()
    dataset = for_classifier(dataset_from_spec(data, "test", root=data_root), classifier)
    if num_images > len(dataset):  # never let "num_images: 5000" stand for the 1000 images there are
        warnings.warn(
            f"-n {num_images} is more than the {len(dataset)} images of the test split of '{data}'; the probes use "
            "at most those, and each results.json records the number it used (run.images_used).",
            stacklevel=1,
        )
    extra = {"ood": load_dataset(ood_data, "test", root=data_root)} if ood_data else {}
    failed: list[tuple[str, str]] = []
    results: list[tuple[ProbeResult, Path]] = []
    notes: list[str | None] = []  # a probe that read another number of images than -n, and why
    with progress_bars(transient=True) as progress:
        for i, n in enumerate(todo):
            if len(todo) > 1:
                progress(Progress(task="probes", completed=i, total=len(todo), fields={"now": n}))
            folder = make_dirs(out_dir / n)
            ctx = ProbeContext(
                classifier=classifier,
                inverter=inverter,
                data=dataset,
                out=folder,
                generator=torch.Generator().manual_seed(seed),
                num_images=num_images,
                device=dev,
                extra_data=extra,
                options=per_probe[n],
                progress=progress,
            )
            run_info = {
                **settings,
                "classifier": classifier_label(classifier),  # what the weights are (invkit.core.naming)
                "inverter": inverter_label(inverter),
                "inverter_options": inv_opts,
                "data": getattr(dataset, "name", data),
                "num_images": num_images,
                "seed": seed,
                "options": per_probe[n],
                "device": str(dev),
            }
            try:
                result = run_probe(probes[n], ctx, run_info)  # writes results.json last
            except InvkitError as exc:
                if not any(folder.iterdir()):  # refused before it wrote anything: no empty folder left
                    folder.rmdir()
                if len(names) == 1:  # one probe asked for: its error is the command's (several: go on)
                    raise
                failed.append((n, str(exc)))
                continue
            results.append((result, folder))
            notes.append(_images_note(n, probes[n], per_probe[n], folder, num_images, len(dataset)))
    ran_on = f"{classifier_label(classifier)} -> {inverter_label(inverter)}"
    for result, folder in results:
        print_result(result, folder, ran_on)
    overview = write_probe_index(out_dir) if results else None  # one page across every probe in --out
    if overview is not None:
        console.print(f"all probes in {out_dir}: {overview}", soft_wrap=True)
    for note in filter(None, notes):
        err_console.print(note, markup=False)
    for n, message in failed:
        err_console.print(f"[yellow]{n}: not run: {message}[/yellow]")
