"""``invkit study make`` and ``invkit study score``: a human two-alternative forced-choice study of two bench pairs,
as the paper's Table 1 (docs/study.md). The page and the scoring live in ``invkit.evaluation.study`` and
``invkit.evaluation.study_score``; this module talks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..errors import StudyError
from ..evaluation.study import KEY_NAME, PAGE_NAME
from ..io.outputs import claim_output, input_paths
from ._common import POSITIVE_INT, SEED
from ._ui import console

SCORE_NAME = "study_score.json"  # what `invkit study score` writes beside the key unless --out says otherwise


@click.group("study")
def command() -> None:
    """Human two-alternative forced-choice studies of a bench's reconstructions (the paper's Table 1): `make` writes
    a blind page for participants, `score` scores the answers they save."""


@command.command("make")
@click.argument("bench_dir", type=click.Path(path_type=Path))
@click.option("--a", "a", required=True, metavar="CLASSIFIER/INVERTER", help="Pair A, as in the bench's results.json.")
@click.option("--b", "b", required=True, metavar="CLASSIFIER/INVERTER", help="Pair B, as in the bench's results.json.")
@click.option("-n", "n", type=POSITIVE_INT, default=64, show_default=True, help="Trials (images); the paper used 64.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds which trials show A on the left.")
@click.option(
    "--display",
    type=POSITIVE_INT,
    default=256,
    show_default=True,
    help="Least longer side, in pixels, images are upscaled to (nearest neighbour, a whole factor).",
)
@click.option(
    "--out",
    default="invkit-study",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Study folder: {PAGE_NAME} (for participants) and {KEY_NAME} (not for them).",
)
def make(bench_dir: Path, a: str, b: str, n: int, seed: int, display: int, out: Path) -> None:
    """Write a blind study page comparing the reconstructions of pairs A and B kept by the bench in BENCH_DIR
    (`invkit bench --keep-images`, default 100)."""
    from ..evaluation.study import make_study

    writes = (PAGE_NAME, KEY_NAME)
    with claim_output(out, "invkit study make", inputs=input_paths(bench_dir), writes=writes, records=(KEY_NAME,)):
        files = make_study(bench_dir, a, b, out, n=n, seed=seed, display=display)
    console.print(f"study {files.study_id}: {files.n} trials, A = {a}, B = {b}", soft_wrap=True)
    console.print(f"page for participants: {files.page}", soft_wrap=True)
    console.print(f"key (keep it from participants; `invkit study score` reads it): {files.key}", soft_wrap=True)


@command.command("score")
@click.argument("answers", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--key",
    type=click.Path(path_type=Path),
    default=None,
    help=f"The study's {KEY_NAME} or its folder. [the {KEY_NAME} beside the first ANSWERS file]",
)
@click.option(
    "--bench",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Bench folder with the per-image metrics (per_image/). [the one the key names]",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"JSON file the scores are written to. [{SCORE_NAME} beside the key]",
)
def score(answers: tuple[Path, ...], key: Path | None, bench: Path | None, out: Path | None) -> None:
    """Score the ANSWERS files the study page saved (one per subject): each subject's and the pooled preference for A
    with a Wilson 95% interval, and how often each bench metric prefers the reconstruction the people chose."""
    from ..evaluation.study_score import score_study

    if key is None:
        key = answers[0].parent / KEY_NAME
        if not key.is_file():
            raise StudyError(f"no {KEY_NAME} beside '{answers[0]}'; give the study's key with --key.")
    key_file = key / KEY_NAME if key.is_dir() else key
    out = out if out is not None else key_file.parent / SCORE_NAME
    result = score_study(answers, key, bench=bench)
    from ..io.files import atomic_write_json

    inputs = input_paths(*answers, key_file)
    with claim_output(out.parent, "invkit study score", inputs=inputs, writes=(out.name,)):
        atomic_write_json(out, result)
    _print(result)
    console.print(f"scores: {out}", soft_wrap=True)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _ci(ci: list[float | None]) -> str:
    return "-" if None in ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]%"


def _print(result: dict[str, Any]) -> None:
    console.print(f"study {result['study_id']}: {result['question']}", soft_wrap=True)
    console.print(f"A = {result['a']}   B = {result['b']}", soft_wrap=True)
    people = Table(title="preference for A (Wilson 95%)", title_justify="left", show_edge=False, header_style="bold")
    for name in ("subject", "answered", "chose A", "A", "B", "95% CI of A", "median ms"):
        people.add_column(name, justify="left" if name == "subject" else "right")
    rows = [(r["subject"], r) for r in result["subjects"]] + [("pooled", result["pooled"])]
    for name, r in rows:
        b = None if r["share_a"] is None else 1 - r["share_a"]
        rt = r.get("median_rt_ms")
        people.add_row(
            name,
            str(r["n"]),
            str(r["prefer_a"]),
            _pct(r["share_a"]),
            _pct(b),
            _ci(r["ci95"]),
            "" if rt is None else f"{rt:g}",
        )
    console.print(people)
    if result["metrics"]:
        table = Table(
            title="metrics vs. people: share of answers where the metric prefers the chosen reconstruction",
            title_justify="left",
            show_edge=False,
            header_style="bold",
        )
        for name in ("metric", "better", "agrees", "answers", "ties", "95% CI"):
            table.add_column(name, justify="left" if name == "metric" else "right")
        for m in result["metrics"]:
            better = "higher" if m["higher_is_better"] else "lower"
            table.add_row(m["metric"], better, _pct(m["share"]), str(m["n"]), str(m["ties"]), _ci(m["ci95"]))
        console.print(table)
    if result.get("metrics_note"):
        console.print(f"metrics: {result['metrics_note']}", soft_wrap=True)
