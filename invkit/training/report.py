"""A training run at a glance: ``OUT/curves.png`` and ``OUT/report.html``, written from the run folder.

``invkit train`` leaves numbers in ``log.jsonl`` and pictures in ``samples/step_NNNNNN.png``; reading a GAN run
from those means a plotting script and a file browser. ``write_train_report`` draws each logged loss (and the
throughput) against the step in a panel of its own, raw and as a moving average over a tenth of the log lines
(GAN losses are noisy), and writes
one self-contained HTML page (images embedded, opens offline) with the run's settings, the curves, the
checkpoints with their health check and the newest sample grids. The training loop calls it whenever it draws
samples and when it stops, so the page follows the run; it can also be called on any run folder.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvkitError
from ..io.figures import html_table, img_tag, save_panels, write_html_page
from ..io.files import atomic_write_text
from ..io.owned import check_write
from ..io.read import parse_json, try_read_json
from .tensorboard_log import add_scalars

__all__ = ["LOG", "append_log", "log_interruption", "log_start", "read_log", "trim_log", "write_train_report"]

LOG = "log.jsonl"
CURVES = "curves.png"
REPORT = "report.html"
NOT_CURVES = frozenset({"step", "time", "epoch", "event"})  # log fields that are not per-step measurements


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The step lines of a ``log.jsonl``, in order; event lines (``interrupted``, ``stopped``) and lines that do
    not parse (a line cut short by a kill) are left out.

    Returns:
        One dict per logged step: ``step`` (int), ``time`` (seconds since the run or resume began), ``img_per_s``
        and the trainer's losses, as written.
    """
    rows = []
    path = Path(path)
    if not path.is_file():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        row = _parse_line(line)
        if row is not None and isinstance(row.get("step"), int) and "event" not in row:
            rows.append(row)
    return rows


# A log line as the report and trim_log use it: an object whose step is a whole number, whose img_per_s a number.
_LINE_SCHEMA = {"step": int, "img_per_s": float}


def _parse_line(line: str) -> dict[str, Any] | None:
    """One line of a log.jsonl as a dict, or None when it is not one invkit wrote (cut short by a kill, edited)."""
    try:
        return parse_json(line, _LINE_SCHEMA, LOG)
    except InvkitError:
        return None


def append_log(run: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``RUN/log.jsonl``: a step's values, or an event (``{"step", "event", ...}``).

    A step's numbers (all but ``NOT_CURVES``) also go to the run's TensorBoard events when
    ``invkit.training.tensorboard_log.tensorboard_events`` holds them open (``--tensorboard``).

    Raises:
        OutputError: ``log.jsonl`` is a file the running command did not write (``invkit.io.owned.check_write``).
    """
    check_write(Path(run) / LOG)
    with open(Path(run) / LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
    if "event" not in record and isinstance(record.get("step"), int):
        add_scalars(run, record["step"], {k: v for k, v in record.items() if k not in NOT_CURVES})


def log_start(run: str | os.PathLike, step: int, machine: Mapping[str, Any], **extra: Any) -> None:
    """The line a training run writes when it starts (``step`` 0), resumes, or starts from another run's checkpoint
    (``init_from`` in ``extra``: event ``initialised``): which machine trains from ``step``."""
    event = "initialised" if "init_from" in extra else "resumed" if step else "started"
    append_log(run, {"step": step, "event": event, **extra, "machine": dict(machine)})


def log_interruption(run: str | os.PathLike, step: int, signal_name: str | None) -> None:
    """The line a run stopped by a signal writes after saving ``step``, then the report as it stands."""
    append_log(run, {"step": step, "event": "interrupted", "signal": signal_name})
    write_train_report(run)


def trim_log(path: str | os.PathLike, step: int) -> None:
    """Drop the lines of a ``log.jsonl`` past ``step`` (written by a run killed after its last checkpoint), and
    lines cut short by a kill, so that a resumed run's log reads as one run."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text(errors="replace").splitlines():
        row = _parse_line(line)
        if row is not None and row.get("step", 0) <= step:
            keep.append(line)
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _curve_series(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    names = [k for k in rows[0] if k not in NOT_CURVES]
    return {k: [float(r[k]) for r in rows] for k in names if all(isinstance(r.get(k), int | float) for r in rows)}


def _settings(run: Path) -> str:
    config_path = run / "train_config.json"
    if not config_path.is_file():
        return "<p>(no train_config.json)</p>"
    doc = try_read_json(config_path, dict)
    if doc is None:
        return "<p>(train_config.json is not a JSON object invkit wrote)</p>"
    # invkit train nests its options under "train"; invkit train-classifier writes them flat
    train = doc.get("train", {}) if isinstance(doc.get("train"), Mapping) else doc
    rows = [{"setting": k, "value": json.dumps(v) if not isinstance(v, str) else v} for k, v in sorted(train.items())]
    if isinstance(doc.get("inverter"), Mapping):
        rows.append({"setting": "inverter", "value": str(doc["inverter"].get("name", "?"))})
    for key in ("device", "world_size", "torch", "invkit"):
        if key in doc:
            rows.append({"setting": key, "value": str(doc[key])})
    return html_table(rows)


def _results(run: Path) -> str | None:
    """``train-classifier``'s evaluation (``report.json``): clean accuracy and each PGD accuracy."""
    path = run / "report.json"
    doc = try_read_json(path, {"pgd": [{"attack": dict}]}) if path.is_file() else None
    if doc is None or not isinstance(doc, Mapping):
        return None
    rows = [{"measure": k, "value": doc[k]} for k in ("clean_accuracy", "test_images", "steps", "epochs", "seconds")
            if isinstance(doc.get(k), int | float)]  # fmt: skip
    for entry in doc.get("pgd") or []:
        attack = entry.get("attack", {}) if isinstance(entry, Mapping) else {}
        eps = attack.get("eps")
        eps = f"{eps:.4g}" if isinstance(eps, int | float) else "?"
        label = f"PGD-{attack.get('steps', '?')} {attack.get('norm', '?')} eps {eps} accuracy"
        rows.append({"measure": label, "value": entry.get("accuracy", "")})
    return html_table(rows) if rows else None


def _checkpoints(run: Path) -> str:
    rows = []
    for folder in sorted((run / "checkpoints").glob("step_*")):
        config = try_read_json(folder / "config.json", {"health": dict, "machine": dict})
        if not isinstance(config, Mapping):
            continue
        health, machine = config.get("health", {}), config.get("machine", {})
        made_on = machine.get("gpu") or " ".join(str(machine.get(k, "")) for k in ("cpu", "cpu_capability"))
        rows.append(
            {
                "checkpoint": folder.name,
                "sample std": health.get("sample_std", ""),
                "collapse threshold": health.get("collapse_std", ""),
                "machine": made_on.strip() or "(not recorded)",
            }
        )
    return html_table(rows) if rows else "<p>(no checkpoint yet)</p>"


def write_train_report(run: str | os.PathLike, embed_samples: int = 8) -> Path:
    """Write ``RUN/curves.png`` (when the log has steps) and ``RUN/report.html`` for a training run folder.

    Args:
        run: an ``invkit train`` output folder (``log.jsonl``, ``samples/``, ``checkpoints/``) or an
            ``invkit train-classifier`` one (``log.jsonl``, ``report.json`` once evaluated).
        embed_samples: how many of the newest sample grids the page embeds; older ones are linked by path.

    Returns:
        The path of ``report.html``.

    Raises:
        OutputError: a file cannot be written (the previous version of each file stays).
    """
    run = Path(run)
    rows = read_log(run / LOG)
    sections: list[tuple[str, str]] = [("Settings", _settings(run))]
    if rows:
        last = rows[-1]
        summary = f"step {last['step']}"
        if "img_per_s" in last:
            summary += f", {last['img_per_s']:.4g} images/s at the last log line"
        smooth = max(1, len(rows) // 10)
        save_panels(
            run / CURVES, [r["step"] for r in rows], _curve_series(rows), smooth=smooth, xlabel="step", title=run.name
        )
        caption = (
            "<p class='caption'>Faint: the values logged every <code>--log-every</code> steps; line: their moving "
            f"average over {smooth} log lines. Newest log line: {html.escape(summary)}.</p>"
        )
        sections.append(("Losses", img_tag(run / CURVES, alt="losses against the step") + caption))
    else:
        sections.append(("Losses", "<p>(no step logged yet)</p>"))
    samples = sorted((run / "samples").glob("step_*.png"), reverse=True)
    if samples:
        parts = [
            "<p class='caption'>Held-out images (top row) above their reconstructions from fixed logits and noise.</p>"
        ]
        for path in samples[:embed_samples]:
            parts.append(f"<h3>{html.escape(path.stem)}</h3>{img_tag(path, alt=path.stem)}")
        older = samples[embed_samples:]
        if older:
            links = ", ".join(f"<a href='samples/{html.escape(p.name)}'>{html.escape(p.stem)}</a>" for p in older)
            parts.append(f"<p>Older grids (files beside this page): {links}</p>")
        sections.append(("Samples, newest first", "".join(parts)))
    results = _results(run)
    if results is not None:
        sections.insert(1, ("Evaluation (report.json)", results))
    if (run / "checkpoints").is_dir():
        sections.append(("Checkpoints", _checkpoints(run)))
    return write_html_page(run / REPORT, f"invkit training run: {run.name}", sections)
