"""The reports' uncertainty: every bench number with its 95% interval and n, and the paired comparisons rendered as
better / no clear difference / worse.

``invkit.evaluation.report`` calls these for report.md, report.html and results.csv; they read only the document
(results.json): each record's ``intervals`` and the document's ``comparisons`` (``invkit.evaluation.per_image``).
A malformed interval (a results.json edited by hand) is shown as no interval, never as a wrong one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

# metric key -> (header, format spec) of the metrics a report knows; other keys are shown by name with 4 digits
Names = Mapping[str, tuple[str, str]]
_DEFAULT_SPEC = ".4g"
VERDICT_COLOURS = {  # verdict -> (text, background) of its cell in report.html
    "better": ("#0a5d24", "#d8f5df"),
    "worse": ("#8c1a10", "#fde3df"),
    "no clear difference": ("#555", "#f1f1f1"),
}


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def interval_of(record: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The record's interval of metric ``key`` as ``{"low", "high", "n"}`` (bounds None where undefined), or None
    when it has none or it is malformed."""
    iv = (record.get("intervals") or {}).get(key) if isinstance(record.get("intervals"), Mapping) else None
    if not isinstance(iv, Mapping) or not isinstance(iv.get("n"), int) or isinstance(iv.get("n"), bool):
        return None
    return {"low": _number(iv.get("low")), "high": _number(iv.get("high")), "n": iv["n"]}


def _fmt(value: Any, spec: str) -> str:
    v = _number(value)
    return "–" if v is None else format(v, spec)


def with_interval(value: Any, interval: Mapping[str, Any] | None, spec: str, n: int | None = None) -> str:
    """A number with its interval, ``12.73 [12.41, 13.05]``, and `` (n=540)`` when the interval rests on another
    number of images than ``n`` (the record's). ``–`` for a missing value; the bare value without an interval."""
    text = _fmt(value, spec)
    if interval is None or text == "–":
        return text
    text += f" [{_fmt(interval['low'], spec)}, {_fmt(interval['high'], spec)}]"
    return text + (f" (n={interval['n']})" if n is not None and interval["n"] != n else "")


def csv_fields(doc: Mapping[str, Any]) -> list[str]:
    """results.csv's interval columns: ``METRIC_low``, ``METRIC_high``, ``METRIC_n`` of every metric with an interval
    in some record, in the order they first appear."""
    keys = dict.fromkeys(k for r in doc.get("results", []) for k in (r.get("intervals") or {}) if interval_of(r, k))
    return [f"{k}_{part}" for k in keys for part in ("low", "high", "n")]


def csv_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's interval columns (``csv_fields``)."""
    out: dict[str, Any] = {}
    for key in record.get("intervals") or {}:
        iv = interval_of(record, key)
        if iv is not None:
            out |= {f"{key}_low": iv["low"], f"{key}_high": iv["high"], f"{key}_n": iv["n"]}
    return out


def _title(c: Mapping[str, Any]) -> str:
    a, b = c.get("a") or {}, c.get("b") or {}
    if c.get("kind") == "classifiers":
        return f"{a.get('inverter')} on {a.get('classifier')} vs on {b.get('classifier')}"
    name = lambda s: s.get("inverter_label") or s.get("inverter")  # noqa: E731
    return f"{a.get('classifier')}: {name(a)} vs {name(b)}"


def comparison_tables(doc: Mapping[str, Any], names: Names) -> list[tuple[str, str, list[list[str]]]]:
    """The document's comparisons as ``(title, tally, rows)``: rows ``[metric, a − b, 95% interval, n, verdict]`` of
    strings, the tally counting the verdicts (``a is better on 3, worse on 1, no clear difference on 7 metrics``)."""
    out = []
    for c in doc.get("comparisons") or []:
        if not isinstance(c, Mapping) or not isinstance(c.get("metrics"), Mapping):
            continue
        rows, tally = [], {"better": 0, "worse": 0, "no clear difference": 0}
        for key, m in c["metrics"].items():
            if not isinstance(m, Mapping):
                continue
            header, spec = names.get(key, (key, _DEFAULT_SPEC))
            word = m.get("verdict") if m.get("verdict") in tally else "–"
            tally[word] = tally.get(word, 0) + 1
            diff = _number(m.get("difference"))
            rows.append(
                [
                    header,
                    "–" if diff is None else format(diff, "+" + spec),
                    f"[{_fmt(m.get('low'), spec)}, {_fmt(m.get('high'), spec)}]",
                    str(m.get("n", "–")),
                    word,
                ]
            )
        counts = f"better on {tally['better']}, worse on {tally['worse']}, no clear difference on "
        out.append((_title(c), f"a is {counts}{tally['no clear difference']} metrics", rows))
    return out


COMPARISON_HEADERS = ["metric", "a − b", "95% interval", "n", "a vs b"]
INTRO = (
    "Each pair of inverters on the same classifier, and each pair of classifiers with the same inverter, on the same "
    "images: per metric the mean of a − b over the images (those where both are defined: n), its 95% paired bootstrap "
    "interval, and what it says: better / worse when the interval excludes 0 (better = higher for PSNR, SSIM, "
    "agreement, cosine, identification; lower for LPIPS and distances), no clear difference when it contains 0. "
    "Uncorrected for the many comparisons: about 1 in 20 of those without a true difference shows one anyway."
)


def comparisons_markdown(doc: Mapping[str, Any], names: Names) -> list[str]:
    """report.md's "Comparisons" section as lines (empty without comparisons)."""
    tables = comparison_tables(doc, names)
    if not tables:
        return []
    lines = ["## Comparisons", "", INTRO, ""]
    for title, tally, rows in tables:
        lines += [f"### {title}", "", tally + ".", ""]
        lines += ["| " + " | ".join(COMPARISON_HEADERS) + " |", "|" + "---|" * len(COMPARISON_HEADERS)]
        lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in rows] + [""]
    return lines


def comparisons_html(doc: Mapping[str, Any], names: Names) -> str:
    """report.html's "Comparisons" section body: a table per comparison, each verdict as a word on its colour
    (empty without comparisons)."""
    tables = comparison_tables(doc, names)
    if not tables:
        return ""
    style = "".join(
        f".v-{word.replace(' ', '-')}{{color:{fg};background:{bg};font-weight:600}}"
        for word, (fg, bg) in VERDICT_COLOURS.items()
    )
    parts = [f"<style>{style} .cmp td:nth-child(5){{text-align:left}}</style><p>{html.escape(INTRO)}</p>"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in COMPARISON_HEADERS)
    for title, tally, rows in tables:
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(v)}</td>" for v in row[:-1])
            + f"<td class='v-{row[-1].replace(' ', '-')}'>{html.escape(row[-1])}</td></tr>"
            for row in rows
        )
        parts.append(
            f"<h3>{html.escape(title)}</h3><p class='caption'>{html.escape(tally)}.</p>"
            f"<table class='cmp'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    return "".join(parts)
