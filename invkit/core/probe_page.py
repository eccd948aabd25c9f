"""The HTML pages of probe results: one per probe (``index.html`` beside its ``results.json``) and one across the
probes of an output folder.

A probe returns numbers, figures, captions and tables (``ProbeResult``) and writes only its PNG figures; invkit
renders the page from the result (``render_probe_page``, called by ``run_probe``), so every probe's page has the
same parts in the same order and a plugin writes no HTML. ``write_probe_index`` writes ``OUT/index.html`` for an
``invkit probe`` output folder: a row per probe with its summary and a link to its page. Pages are self-contained
(figures embedded as data URIs) and open offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvkitError
from ..io.figures import html_table, img_tag, write_html_page
from ..io.read import try_read_json

PAGE_NAME = "index.html"
RESULTS_NAME = "results.json"
LONG_LIST = 12  # lists longer than this are shortened in the numbers table (results.json keeps them whole)


def flatten_numbers(numbers: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested numbers as ``{"a.b": value}``; a list longer than ``LONG_LIST`` shown by its first items."""
    out: dict[str, Any] = {}
    for k, v in numbers.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_numbers(v, key + "."))
        elif isinstance(v, list) and len(v) > LONG_LIST:
            out[key] = json.dumps(v[:LONG_LIST], default=str)[:-1] + ", ...]"
        else:
            out[key] = v
    return out


def render_probe_page(result: Any, folder: Path, about: Mapping[str, str]) -> Path:
    """Write ``folder/index.html`` for a probe's result.

    The page holds, in order: the summary and what the probe ran on (``about``: classifier, inverter, data), the
    numbers (flattened), each table of ``result.tables``, and each figure of ``result.figures`` embedded with its
    caption (``result.captions``). Text is HTML-escaped.

    Args:
        result: the ``ProbeResult``.
        folder: the probe's output folder (``ctx.out``); figure paths are relative to it.
        about: what the run was on, shown under the summary (name -> value).

    Returns:
        The page's path.

    Raises:
        OutputError: the page cannot be written, or ``folder`` holds an ``index.html`` the running command did not
            write (``invkit.io.owned.check_write``).
        InvkitError: a listed PNG figure is not in ``folder`` (a probe bug, named in one line).
    """
    folder = Path(folder)
    ran_on = ", ".join(f"{k} <code>{html.escape(str(v))}</code>" for k, v in about.items() if v)
    intro = f"<p>{html.escape(result.summary)}</p>" if result.summary else ""
    sections = [("", intro + (f"<p class='caption'>{ran_on}</p>" if ran_on else ""))]
    rows = [{"number": k, "value": v} for k, v in flatten_numbers(result.numbers).items()]
    sections.append(("Numbers", html_table(rows)))
    sections += [(title, html_table(table)) for title, table in result.tables.items()]
    for name, rel in result.figures.items():
        if name == "page" or not str(rel).lower().endswith(".png"):
            continue
        if not (folder / rel).is_file():
            raise InvkitError(
                f"probe {result.probe} lists the figure '{name}' as '{rel}' but did not write it into '{folder}'."
            )
        caption = result.captions.get(name, "")
        body = img_tag(folder / rel, alt=name) + (f"<p class='caption'>{html.escape(caption)}</p>" if caption else "")
        sections.append((name, body))
    return write_html_page(folder / PAGE_NAME, result.probe, sections)


def write_probe_index(out: Path, title: str = "invkit probe") -> Path | None:
    """Write ``out/index.html``: one row per probe sub-folder of ``out`` that holds a finished ``results.json``.

    Each row links the probe's own page and shows its summary, the classifier and inverter it ran on, the images
    it used and the seconds it took. A ``results.json`` that cannot be read is listed as such, never skipped
    silently.

    Args:
        out: an ``invkit probe --out`` folder (one sub-folder per probe).
        title: the page title.

    Returns:
        The page's path, or None when ``out`` holds no probe results.

    Raises:
        OutputError: the page cannot be written, or ``out`` holds an ``index.html`` the running command did not
            write (``invkit.io.owned.check_write``).
    """
    out = Path(out)
    rows = []
    for results in sorted(out.glob(f"*/{RESULTS_NAME}")):
        name = results.parent.name
        doc = try_read_json(results, {"probe": str, "summary": str, "run": dict})
        link = f"<a href='{html.escape(name)}/{PAGE_NAME}'>{html.escape(name)}</a>"
        if doc is None:
            rows.append(f"<tr><td>{html.escape(name)}</td><td colspan='5'>results.json cannot be read</td></tr>")
            continue
        run = doc.get("run", {})
        cells = [
            link if (results.parent / PAGE_NAME).is_file() else html.escape(name),
            html.escape(str(doc.get("summary", ""))),
            html.escape(str(run.get("classifier", ""))),
            html.escape(str(run.get("inverter", ""))),
            html.escape(str(run.get("images_used", ""))),
            html.escape(str(run.get("seconds", ""))),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not rows:
        return None
    head = "".join(f"<th>{c}</th>" for c in ("probe", "summary", "classifier", "inverter", "images", "seconds"))
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    intro = f"<p>{len(rows)} probe(s) in this folder; each name opens that probe's page.</p>"
    return write_html_page(out / PAGE_NAME, title, [("", intro + table)])
