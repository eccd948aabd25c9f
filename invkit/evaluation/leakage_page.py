"""The files of a leakage run (``invkit.evaluation.leakage``), written from its document (leakage.json):

* ``leakage.md`` and ``leakage.html``: a table, one row per (channel, classifier, inverter), one column per main
  metric with its 95% interval and, from the second channel on, the verdict of the paired difference against the
  first channel (better / no clear difference / worse); then the differences themselves with their intervals;
* ``leakage.png``: matplotlib, one panel per main metric, x = the channel's parameter (log scale for topk,
  categorical for a mixed list), y = the metric with its 95% interval as error bars, one line per (classifier,
  inverter), chance drawn for identification; the title says what the figure shows.
"""

from __future__ import annotations

import html
import io
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io.figures import img_tag, write_html_page
from ..io.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from .report_uncertainty import VERDICT_COLOURS, with_interval

_HEADERS = {"top1_agreement": ("top-1 agreement", ".3f"), "psnr": ("PSNR dB", ".2f")}


def metric_header(key: str, doc: Mapping[str, Any]) -> tuple[str, str]:
    """``(header, format spec)`` of a main metric: ``instance ID (pixel)``, ``top-1 agreement``, ``PSNR dB``,
    ``LABEL top-1``, ``LABEL ID``."""
    if key == "id_accuracy":
        return f"instance ID ({doc.get('id_space') or 'pixel'})", ".3f"
    if key.startswith("eval:"):
        label, _, name = key[len("eval:") :].rpartition(":")
        return f"{label} {'top-1' if name == 'top1' else 'ID' if name == 'id_accuracy' else name}", ".3f"
    return _HEADERS.get(key, (key, ".4g"))


def _lines(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (classifier, inverter) lines of the document, in order of first appearance."""
    seen: dict[tuple[str, str], None] = {}
    for ch in doc["channels"]:
        for r in ch["results"]:
            seen.setdefault((r["classifier"], r["inverter"]), None)
    return list(seen)


def _first_spec(doc: Mapping[str, Any]) -> str:
    done = [ch["spec"] for ch in doc["channels"] if ch["results"]]
    return done[0] if done else doc["channels"][0]["spec"]


def table_rows(doc: Mapping[str, Any], verdicts: bool = True) -> tuple[list[str], list[list[tuple[str, str | None]]]]:
    """The leakage table: headers, and per (channel, classifier, inverter) its cells as ``(text, verdict or None)``;
    a metric cell is ``value [low, high]`` plus, against the first channel, ``(verdict)``."""
    keys = [m["key"] for m in doc["metrics"]]
    headers = ["channel", "classifier", "inverter", *(metric_header(k, doc)[0] for k in keys)]
    rows = []
    for ch in doc["channels"]:
        for r in ch["results"]:
            cells: list[tuple[str, str | None]] = [(ch["spec"], None), (r["classifier"], None), (r["inverter"], None)]
            for key in keys:
                m, spec = r["metrics"].get(key) or {}, metric_header(key, doc)[1]
                iv = {"low": m.get("low"), "high": m.get("high"), "n": m.get("n")} if m.get("n") else None
                text = with_interval(m.get("value"), iv, spec, r.get("n"))
                word = ((r.get("differences") or {}).get(key) or {}).get("verdict") if verdicts else None
                cells.append((text + (f" ({word})" if word else ""), word))
            rows.append(cells)
    return headers, rows


def difference_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per (channel, classifier, inverter) after the first channel: each metric's paired difference against the first
    channel, ``+d [low, high]``."""
    keys = [m["key"] for m in doc["metrics"]]
    headers = ["channel", "classifier", "inverter", *(metric_header(k, doc)[0] for k in keys)]
    rows = []
    for ch in doc["channels"]:
        for r in ch["results"]:
            diffs = r.get("differences")
            if diffs is None:
                continue
            cells = [ch["spec"], r["classifier"], r["inverter"]]
            for key in keys:
                d, spec = diffs.get(key), metric_header(key, doc)[1]
                if not isinstance(d, Mapping):
                    cells.append("–" if "error" not in diffs else "no per-image values")
                    continue
                iv = {"low": d.get("low"), "high": d.get("high"), "n": d.get("n")}
                cells.append(with_interval(d.get("difference"), iv, "+" + spec, r.get("n")))
            rows.append(cells)
    return headers, rows


def title(doc: Mapping[str, Any]) -> str:
    """What the curve shows, readable alone: the family, classifier(s), inverter(s), data, n and the x axis."""
    s, family = doc["settings"], doc["family"]
    lines = _lines(doc)
    classifiers = ", ".join(dict.fromkeys(c for c, _ in lines)) or ", ".join(s["classifiers"])
    inverters = ", ".join(dict.fromkeys(i for _, i in lines)) or ", ".join(s["inverters"])
    what = f"channels {family['text']}" if family["categorical"] else f"channel {family['name']}"
    return (
        f"Reconstruction quality through {what}: classifier {classifiers}, inverter {inverters}; data "
        f"'{s['data']}', n = {s['n']} test images, seed {s['seed']}; x: {family['x_label']}; error bars: 95% intervals"
    )


def _intro(doc: Mapping[str, Any]) -> str:
    first = _first_spec(doc)
    return (
        f"{title(doc)}. Each channel is one bench on the same images (its folder holds results.json and report.html). "
        f"In parentheses: the paired difference against {first} (the first channel of the family) on the same images, "
        "from the per-image values: better / worse when its 95% bootstrap interval excludes 0, no clear difference "
        "when it contains 0 (uncorrected for the many comparisons)."
    )


def _skipped(doc: Mapping[str, Any]) -> list[str]:
    return [line for ch in doc["channels"] for line in (f"{ch['spec']}: {s}" for s in ch["skipped"])]


def _pending(doc: Mapping[str, Any]) -> list[str]:
    return [ch["spec"] for ch in doc["channels"] if ch["status"] == "not run yet"]


def leakage_markdown(doc: Mapping[str, Any]) -> str:
    """leakage.md: the title, the table with intervals and verdicts, the differences, what was skipped."""
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    headers, rows = table_rows(doc)
    out = ["# Leakage curve", "", _intro(doc), "", "![leakage curves](leakage.png)", ""]
    out += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(esc(text) for text, _ in row) + " |" for row in rows]
    d_headers, d_rows = difference_rows(doc)
    if d_rows:
        out += ["", f"## Paired differences against {_first_spec(doc)} (channel − first, 95% interval)", ""]
        out += ["| " + " | ".join(d_headers) + " |", "|" + "---|" * len(d_headers)]
        out += ["| " + " | ".join(esc(v) for v in row) + " |" for row in d_rows]
    if _skipped(doc):
        out += ["", "## Skipped", ""] + [f"- {line}" for line in _skipped(doc)]
    if _pending(doc):
        out += ["", f"Not run yet: {', '.join(_pending(doc))} (the run was stopped or is going on; rerun to resume)."]
    return "\n".join(out) + "\n"


def _html_table(headers: list[str], rows: list[list[tuple[str, str | None]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = ""
    for row in rows:
        cells = []
        for text, word in row:
            colours = VERDICT_COLOURS.get(word or "")
            style = f" style='color:{colours[0]};background:{colours[1]}'" if colours else ""
            cells.append(f"<td{style}>{html.escape(text)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_leakage_html(path: str | Path, doc: Mapping[str, Any], png: str | Path) -> Path:
    """leakage.html: self-contained (the figure embedded), the same table and differences as leakage.md."""
    headers, rows = table_rows(doc)
    sections = [("", f"<p class='caption'>{html.escape(_intro(doc))}</p>"), ("Curves", img_tag(png, "leakage curves"))]
    sections.append(("Table", _html_table(headers, rows)))
    d_headers, d_rows = difference_rows(doc)
    if d_rows:
        heading = f"Paired differences against {_first_spec(doc)} (channel − first, 95% interval)"
        sections.append((heading, _html_table(d_headers, [[(v, None) for v in row] for row in d_rows])))
    if _skipped(doc):
        sections.append(("Skipped", "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in _skipped(doc)) + "</ul>"))
    return write_html_page(path, "Leakage curve", sections)


def _finite(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else math.nan


def leakage_figure(doc: Mapping[str, Any]) -> Any:
    """The leakage figure (a matplotlib ``Figure``, one axes per main metric; the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [m["key"] for m in doc["metrics"]]
    chance = {m["key"]: m.get("chance") for m in doc["metrics"]}
    family, done = doc["family"], [ch for ch in doc["channels"] if ch["results"]]
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = plt.figure(figsize=(4.4 * cols, 3.3 * rows + 0.9), dpi=100)
    order = {ch["spec"]: i for i, ch in enumerate(c for c in doc["channels"] if c["status"] != "skipped")}
    for p, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, p + 1)
        for clf, inv in _lines(doc):
            pts = []
            for ch in done:
                r = next((r for r in ch["results"] if (r["classifier"], r["inverter"]) == (clf, inv)), None)
                if r is None:
                    continue
                m = r["metrics"].get(key) or {}
                x = order[ch["spec"]] if family["categorical"] else ch["parameter"]
                pts.append((x, _finite(m.get("value")), _finite(m.get("low")), _finite(m.get("high"))))
            pts.sort(key=lambda t: t[0])
            if not pts:
                continue
            xs, ys = [t[0] for t in pts], [t[1] for t in pts]
            below = [y - lo if math.isfinite(lo) else 0.0 for _, y, lo, _ in pts]
            above = [hi - y if math.isfinite(hi) else 0.0 for _, y, _, hi in pts]
            ax.errorbar(xs, ys, yerr=[below, above], marker="o", markersize=4, capsize=3, label=f"{clf} × {inv}")
        if isinstance(chance.get(key), int | float):
            ax.axhline(chance[key], color="grey", linestyle="--", linewidth=1, label=f"chance ({chance[key]:.2g})")
        if family["categorical"]:
            ax.set_xticks(list(order.values()), list(order), rotation=30, fontsize=8)
        elif family["log_x"]:
            ax.set_xscale("log")
            ticks = [ch["parameter"] for ch in done]
            ax.set_xticks(ticks, [ch["label"] for ch in done], fontsize=8)
            ax.minorticks_off()
        ax.set_title(metric_header(key, doc)[0], fontsize=10)
        ax.set_xlabel(textwrap.shorten(family["x_label"], 60), fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if p == 0:
            ax.legend(fontsize=7)
    fig.suptitle(textwrap.fill(title(doc), 40 * cols + 20), fontsize=9)
    fig.tight_layout()
    return fig


def write_leakage_png(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """leakage.png (atomically), from ``leakage_figure``."""
    import matplotlib.pyplot as plt

    fig = leakage_figure(doc)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_leakage_files(out: str | Path, doc: Mapping[str, Any]) -> None:
    """Write leakage.json, leakage.png, leakage.md and leakage.html into ``out`` (each atomically)."""
    out = Path(out)
    atomic_write_json(out / "leakage.json", doc)  # NaN becomes null: valid JSON
    png = write_leakage_png(out / "leakage.png", doc)
    atomic_write_text(out / "leakage.md", leakage_markdown(doc))
    write_leakage_html(out / "leakage.html", doc, png)
