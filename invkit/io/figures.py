"""Figures people look at: image grids (PNG), curves (PNG, matplotlib) and self-contained HTML pages.

Bench reports, probes and training sample grids all write through these helpers, so that every HTML page
opens offline (images embedded as data URIs) and every grid is laid out the same way.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .files import atomic_write_bytes, atomic_write_text


def to_pil_grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0, scale: int = 1
) -> Image.Image:
    """Tile a ``(N, C, H, W)`` batch in [0, 1] into one PIL image, ``nrow`` images per row."""
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, scale: int = 1) -> Path:
    """Write a grid PNG atomically; returns the path."""
    buf = io.BytesIO()
    to_pil_grid(images, nrow=nrow, scale=scale).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_rows(rows: Sequence[torch.Tensor], path: str | os.PathLike, scale: int = 1) -> Path:
    """A grid whose rows are given separately (e.g. originals, then each inverter's reconstructions).

    Every row must hold the same number of images; images are resized to the first row's size.
    """
    import torch.nn.functional as F

    n = rows[0].shape[0]
    size = rows[0].shape[-2:]
    fixed = []
    for r in rows:
        if r.shape[0] != n:
            raise ValueError("every row needs the same number of images")
        r = r.detach().float().cpu()
        r = r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r
        if r.shape[-2:] != size:
            r = F.interpolate(r, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        fixed.append(r.clamp(0, 1))
    return save_grid(torch.cat(fixed), path, nrow=n, scale=scale)


LABEL_FONT_PX = 14  # row labels of save_labelled_rows


def save_labelled_rows(
    rows: Sequence[tuple[str, torch.Tensor]], path: str | os.PathLike, cell: int | None = None, per_line: int = 10
) -> Path:
    """A PNG of labelled rows: each row's label at its left, its images at their own resolution.

    Every image is enlarged by a whole factor (nearest neighbour: its pixels stay visible as they are) to fit a
    ``cell`` x ``cell`` square and centred in it, so rows of different resolutions (originals at 28x28, an
    inverter's 32x32) sit side by side without one being resampled to the other. More than ``per_line`` images
    per row continue in further blocks of the same rows below, so a figure of 50 images stays readable.

    Args:
        rows: (label, ``(N, C, H, W)`` images in [0, 1], C 1 or 3); rows may hold different N and sizes. With
            every label empty there is no label column.
        path: the PNG to write (atomically).
        cell: the side of a cell in pixels; default: the largest image side times a whole factor of at least 1
            that brings it to about 96 px.
        per_line: images per row of a block.

    Returns:
        The path.

    Raises:
        ValueError: no rows, or a row that is not ``(N, C, H, W)``.
        OutputError: the file cannot be written.
    """
    from PIL import ImageDraw, ImageFont

    if not rows:
        raise ValueError("no rows to draw")
    for _, images in rows:
        if images.dim() != 4:
            raise ValueError(f"a row must be (N, C, H, W), got {tuple(images.shape)}")
    side = max(max(images.shape[-2:]) for _, images in rows)
    cell = cell or side * max(1, 96 // side)
    try:
        font: Any = ImageFont.load_default(size=LABEL_FONT_PX)
    except TypeError:  # Pillow < 10.1: the bitmap font
        font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = 2
    longest = max(measure.textlength(label, font=font) for label, _ in rows)
    label_w = int(longest) + 3 * pad if longest else 0  # no labels: no label column (a strip of one row)
    count = max(len(images) for _, images in rows)
    blocks = max(1, -(-count // per_line))
    cols = min(count, per_line) or 1
    width = label_w + cols * (cell + pad) + pad
    block_h = len(rows) * (cell + pad)
    height = blocks * block_h + (blocks - 1) * 2 * cell // 8 + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        x = images.detach().float().cpu().clamp(0, 1)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        arr = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        h, w = arr.shape[1:3]
        k = max(1, cell // max(h, w))
        for i in range(len(arr)):
            b, c = divmod(i, per_line)
            top = pad + b * (block_h + 2 * cell // 8) + r * (cell + pad)
            left = label_w + pad + c * (cell + pad)
            tile = Image.fromarray(arr[i]).resize((w * k, h * k), Image.NEAREST)
            canvas.paste(tile, (left + (cell - w * k) // 2, top + (cell - h * k) // 2))
            if c == 0 and label:  # the label, centred on the row (a bitmap font has no anchors: its top 6 px above)
                free = isinstance(font, ImageFont.FreeTypeFont)
                at = (pad, top + cell // 2 - (0 if free else 6))
                draw.text(at, label, fill=(0, 0, 0), font=font, anchor="lm" if free else None)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _write_figure(fig: object, path: str | os.PathLike) -> Path:
    """Lay out a matplotlib figure, write it as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_curves(
    path: str | os.PathLike,
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
) -> Path:
    """Line plot of one or more named curves over the same x, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    for name, y in ys.items():
        ax.plot(list(x), list(y), marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logx:
        ax.set_xscale("log")
    if len(ys) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _write_figure(fig, path)


def save_panels(
    path: str | os.PathLike,
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    *,
    smooth: int = 1,
    xlabel: str = "",
    title: str = "",
    ncols: int = 2,
) -> Path:
    """One small plot per named series over the same x, written as PNG: the raw values faint and, when
    ``smooth`` > 1, their trailing moving average over ``smooth`` points drawn over them (noisy training losses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ys)
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.6 * nrows), dpi=100, squeeze=False)
    for ax, name in zip(axes.flat, names):
        y = [float(v) for v in ys[name]]
        line = ax.plot(list(x), y, linewidth=0.8, alpha=0.35 if smooth > 1 else 1.0)[0]
        if smooth > 1:
            ax.plot(list(x), moving_average(y, smooth), color=line.get_color(), linewidth=1.6)
        ax.set_title(name if smooth <= 1 else f"{name} (line: mean of {smooth})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _write_figure(fig, path)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` points (fewer at the start), one value per input value."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def data_uri(path: str | os.PathLike) -> str:
    """A PNG file as a ``data:`` URI, for HTML that opens offline with no side files."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def html_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (floats shown with 4 significant digits)."""
    if not rows:
        return "<p>(no rows)</p>"
    columns = list(columns or rows[0].keys())

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.5em} table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} img{image-rendering:pixelated;max-width:100%}
.caption{color:#555;font-size:.9em} code{background:#f3f3f3;padding:0 .2em}
"""


def write_html_page(path: str | os.PathLike, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """Write a self-contained HTML page: ``sections`` are (heading, HTML body) pairs.

    Use ``img_tag(png_path)`` in a body to embed a figure.
    """
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{PAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}" if heading else body)
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
    return Path(path)


def img_tag(path: str | os.PathLike, alt: str = "", width: int | None = None) -> str:
    w = f" width='{width}'" if width else ""
    return f"<img src='{data_uri(path)}' alt='{html.escape(alt)}'{w}>"
