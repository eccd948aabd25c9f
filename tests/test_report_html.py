"""report.html opens offline in a real browser (headless Debian chromium): the table and the grid render."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageStat
from test_bench import _one_thread, settings, tiny  # noqa: F401 - fixtures shared with the bench tests

from invkit.evaluation.bench import Bench

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium) to render report.html",
)


@pytest.fixture
def report(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    list(Bench(settings(tiny), out).run())
    return out / "report.html"


def render(page, tmp_path):
    """One chromium run: the DOM after load (stdout) and a 1200x1600 screenshot."""
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'prof'}",
        f"--screenshot={shot}",
        "--window-size=1200,1600",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, Image.open(shot).convert("RGB")


def test_report_html_renders_table_and_grid(report, tmp_path):
    html = report.read_text()
    assert "http://" not in html and "https://download" not in html.split("<h2>Settings")[0]  # nothing fetched
    dom, shot = render(report, tmp_path)

    # the comparison table: a header and one row per (classifier, inverter) pair
    table = re.search(r"<table id=\"results\">(.*?)</table>", dom, re.S).group(1)
    assert "PSNR" in table and "instance ID" in table
    assert len(re.findall(r"<tr>", table)) == 1 + 4

    # the grid: for each classifier each inverter's row below the originals at its resolution, each an embedded PNG
    imgs = re.findall(r"<img src=\"data:image/png;base64,([^\"]+)\" alt=\"([^\"]*)\"", dom)
    assert [alt for _, alt in imgs] == [
        f"{c} {r}" for c in ("clf_std", "clf_rob") for r in ("original", "tinydec", "original", "tinyopt")
    ]
    for data, _ in imgs:
        png = Image.open(io.BytesIO(base64.b64decode(data)))
        png.verify()
        assert png.size[0] > 100 and png.size[1] > 10

    # the browser decoded every image (set by the page's load handler), and the screenshot is not blank
    assert 'data-images-decoded="8/8"' in dom
    stat = ImageStat.Stat(shot)
    assert max(stat.stddev) > 20
    dark = int((np.asarray(shot).sum(axis=2) < 100).sum())
    assert dark > 5000  # black MNIST backgrounds and text: a blank or unstyled page has far fewer
