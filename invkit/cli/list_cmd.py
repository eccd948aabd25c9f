"""``invkit list``: registered classifiers, inverters, probes and observation channels."""

from __future__ import annotations

import click
from rich.table import Table

from ..core.plugins import get_registry
from ._ui import console

KINDS = {"classifiers": "classifier", "inverters": "inverter", "probes": "probe", "channels": "channel"}


@click.command("list")
@click.argument("kind_or_pattern", metavar="[KIND|PATTERN]", required=False, default="all")
@click.argument("pattern", required=False, default=None)
@click.option(
    "--layers",
    "layers_of",
    default=None,
    metavar="CLASSIFIER",
    help="List the usual layer names of this classifier (registry name or checkpoint folder, also demo:NAME) for "
    "--layer: 'penultimate', then its modules of the first two levels with their pooled widths.",
)
def command(kind_or_pattern: str, pattern: str | None, layers_of: str | None) -> None:
    """List registered names, optionally of one KIND (all, classifiers, inverters, probes, channels) and matching a
    wildcard PATTERN: `invkit list`, `invkit list inverters`, `invkit list '*proto*'`,
    `invkit list classifiers 'resnet*'`; `invkit list --layers CLASSIFIER` lists a classifier's layer names."""
    if layers_of is not None:
        _layers(layers_of)
        return
    kind = kind_or_pattern
    singular = {v: k for k, v in KINDS.items()}
    kind = singular.get(kind, kind)  # 'classifier' as well as 'classifiers'
    if pattern is None and kind not in ("all", *KINDS):
        kind, pattern = "all", kind_or_pattern  # a pattern alone: search every kind
    if kind not in ("all", *KINDS):
        raise click.BadParameter(
            f"'{kind_or_pattern}' is not a kind; use all, {', '.join(KINDS)}, or give the pattern alone.",
            param_hint="KIND",
        )
    pattern = pattern or "*"
    kinds = list(KINDS) if kind == "all" else [kind]
    found = {k: get_registry(KINDS[k]).entries(pattern) for k in kinds}
    if pattern != "*" and not any(found.values()):
        raise click.ClickException(f"no {' or '.join(kinds)} match '{pattern}'; run `invkit list` to see every name.")
    for k, entries in found.items():
        if not entries and pattern != "*":
            continue
        table = Table(title=k, title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        table.add_column("plugin")
        table.add_column("description")
        for e in entries:
            table.add_row(e.name, e.plugin, e.description)
        console.print(table)


def _layers(spec: str) -> None:
    """The usual layer names of a classifier (``Classifier.layer_names``) with the width each gives once globally
    pooled (what ``--layer`` conditions an inverter on); a layer that cannot be pooled alone is shown as '-'."""
    from ..core.observation import layer_width
    from ..core.resolve import resolve_classifier
    from ..errors import InvkitError
    from ._common import local_spec

    clf = resolve_classifier(local_spec(spec) or spec).eval()
    table = Table(title=f"layers of {clf.name}", title_justify="left", show_edge=False)
    table.add_column("layer", style="bold")
    table.add_column("pooled width", justify="right")
    for name in clf.layer_names():
        try:
            width = str(layer_width(clf, name))
        except InvkitError:  # e.g. a module the forward pass does not call
            width = "-"
        table.add_row(name, width)
    console.print(table)
