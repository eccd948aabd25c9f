"""A human two-alternative forced-choice study of two bench pairs, as the paper's Table 1 (``invkit study make``).

Teterwak et al. (ICML 2021), Section 4 and Table 1: subjects "compared pairs of reconstructed images to a ground
truth image and were asked to indicate which of the reconstructions was closer to ground truth" (64 images per
task; robust ResNet-152, ours vs. Dosovitskiy & Brox: 87.5% vs. 12.5%). ``make_study`` builds that task from a
bench folder: the reconstructions the bench kept (``invkit.evaluation.kept``) of two of its (classifier, inverter)
pairs, A and B, for the same images.

It writes two files into the study folder:

* ``study.html``: the page the participants open (``invkit.evaluation.study_page``), blind: per trial the original
  in the middle and A's and B's reconstructions left and right, A on the left in exactly half of the trials (rounded
  down), which ones drawn by a ``random.Random(seed)`` shuffle;
* ``study_key.json``: which side is A in each trial, the two pairs, the bench folder and the digest of the trials.
  The page never loads it; ``invkit.evaluation.study_score`` reads it to score the answers.

The trials are the first ``n`` kept images (the bench's draw, classes interleaved). Every image is brought to the
same display size by nearest-neighbour upscaling of its pixels (the original's size times the smallest whole
factor that reaches ``display`` pixels on its longer side), so a 28 px digit is judged at 280 px, sharp.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import InvkitError
from ..io.files import atomic_write_json, atomic_write_text, make_dirs
from ..io.read import Required, read_json
from .bench import RESULTS_NAME
from .kept import kept_path, load_kept
from .study_page import render_page

QUESTION = "Which reconstruction is closer to the ground truth?"  # the paper's Table 1, word for word
PAGE_NAME = "study.html"
KEY_NAME = "study_key.json"
KEY_FORMAT = "invkit-study-key"  # the "format" field of study_key.json

# What make_study reads of a bench's results.json (invkit.io.read checks it as it is read).
_RESULTS_SCHEMA = {
    "settings": Required({"image_indices": Required([int])}),
    "results": Required([{"classifier": Required(str), "inverter": Required(str), "slug": Required(str)}]),
}


@dataclass(frozen=True)
class StudyFiles:
    """What ``make_study`` wrote: the page, the key and the study's id."""

    page: Path
    key: Path
    study_id: str
    n: int


def pair_names(bench_dir: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """The pairs of a bench folder by their study names, ``CLASSIFIER/INVERTER`` (the classifier's label and the
    inverter as in results.json), and the data set indices it evaluated (``settings.image_indices``).

    Raises:
        InvkitError: ``bench_dir`` holds no readable results.json of that shape (one line).
    """
    path = Path(bench_dir) / RESULTS_NAME
    doc = read_json(path, _RESULTS_SCHEMA, "bench results file", InvkitError, "give the --out folder of invkit bench")
    return {f"{r['classifier']}/{r['inverter']}": r for r in doc["results"]}, doc["settings"]["image_indices"]


def _kept_for(bench_dir: Path, name: str, record: dict[str, Any], n: int) -> dict[str, torch.Tensor]:
    path = kept_path(bench_dir, record["slug"])
    if not path.exists():
        raise InvkitError(
            f"bench '{bench_dir}' kept no reconstructions of {name} ({path} is missing); rerun invkit bench into that "
            f"folder with --keep-images {n} (finished pairs are computed again to the same numbers)."
        )
    kept = load_kept(path)
    if len(kept["index"]) < n:
        raise InvkitError(
            f"-n {n} is more than the {len(kept['index'])} reconstructions bench '{bench_dir}' kept of {name}; rerun "
            f"invkit bench into that folder with --keep-images {n}, or use -n {len(kept['index'])} or fewer."
        )
    return {k: v[:n] for k, v in kept.items()}


def _upscale(image: torch.Tensor, size: tuple[int, int]) -> bytes:
    """A uint8 ``(C, H, W)`` image as PNG bytes at ``size`` (height, width), resized nearest-neighbour."""
    arr = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr[:, :, :3], "RGB")
    if pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def display_size(shape: tuple[int, int], display: int) -> tuple[int, int]:
    """``(height, width)`` ``shape`` multiplied by the smallest whole factor (at least 1) whose longer side reaches
    ``display`` pixels: ``(28, 28), 256 -> (280, 280)``, ``(64, 64), 256 -> (256, 256)``, ``(300, 300) -> same``."""
    factor = max(1, math.ceil(display / max(shape)))
    return shape[0] * factor, shape[1] * factor


def _data_uri(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode()


def make_study(
    bench_dir: str | os.PathLike,
    a: str,
    b: str,
    out: str | os.PathLike,
    n: int = 64,
    seed: int = 0,
    display: int = 256,
) -> StudyFiles:
    """Write a blind 2AFC study page and its key for pairs ``a`` and ``b`` of a bench folder.

    Args:
        bench_dir: an ``invkit bench --out`` folder whose pairs kept reconstructions (``--keep-images``).
        a: pair A as ``CLASSIFIER/INVERTER`` (the classifier's label and the inverter as in results.json).
        b: pair B, the same way; another pair than ``a``.
        out: the study folder (created); ``study.html`` and ``study_key.json`` are written into it atomically.
        n: trials (images), at most the reconstructions kept; the paper used 64.
        seed: seeds which trials show A on the left.
        display: the least longer side, in pixels, that images are upscaled to (nearest neighbour).

    Returns:
        The files written and the study's id.

    Raises:
        InvkitError: ``n`` or ``display`` below 1; no results.json in ``bench_dir``; ``a`` or ``b`` not a pair
            of the bench (the message lists its pairs) or the same pair; fewer kept reconstructions than ``n``;
            kept reconstructions of other images than the bench's draw.
        CheckpointError: a kept reconstructions file that is damaged (``invkit.evaluation.kept.load_kept``).
        OutputError: a file cannot be written.
    """
    if n < 1 or display < 1:
        raise InvkitError(f"-n and the display size must be at least 1, got -n {n} and {display} px.")
    bench_dir = Path(bench_dir)
    pairs, indices = pair_names(bench_dir)
    for flag, name in (("--a", a), ("--b", b)):
        if name not in pairs:
            have = ", ".join(pairs) or "none"
            raise InvkitError(
                f"{flag} {name} is not a pair of bench '{bench_dir}' (CLASSIFIER/INVERTER as in its results.json); "
                f"it has: {have}."
            )
    if a == b:
        raise InvkitError(f"--a and --b both name {a}; a study compares two different pairs.")
    kept = {side: _kept_for(bench_dir, name, pairs[name], n) for side, name in (("a", a), ("b", b))}
    want = torch.tensor(indices[:n], dtype=torch.int64)
    for side, name in (("a", a), ("b", b)):
        if len(want) < n or not torch.equal(kept[side]["index"], want):
            raise InvkitError(
                f"the reconstructions bench '{bench_dir}' kept of {name} are not of the images its results.json "
                "evaluated (settings.image_indices); rerun invkit bench into that folder to rewrite them."
            )
    # the original at the finer of the two inverters' resolutions (both show the same data image)
    targets = max((kept["a"]["targets"], kept["b"]["targets"]), key=lambda t: t.shape[-1] * t.shape[-2])
    size = display_size(tuple(targets.shape[-2:]), display)
    a_left = [i < n // 2 for i in range(n)]  # A on the left in half of the trials, shuffled by the seed
    random.Random(seed).shuffle(a_left)
    trials, key_trials, digest = [], [], hashlib.sha256(b"invkit-study-v1")
    for i in range(n):
        pa, pb, po = (_upscale(t[i], size) for t in (kept["a"]["images"], kept["b"]["images"], targets))
        left, right = (pa, pb) if a_left[i] else (pb, pa)
        for png in (left, po, right):
            digest.update(hashlib.sha256(png).digest())
        trials.append({"left": _data_uri(left), "original": _data_uri(po), "right": _data_uri(right)})
        key_trials.append({"trial": i, "index": int(want[i]), "left": "a" if a_left[i] else "b"})
    trials_digest = digest.hexdigest()
    study_id = trials_digest[:16]
    out = make_dirs(out)
    page = render_page({"study_id": study_id, "trials_digest": trials_digest, "n": n, "trials": trials}, QUESTION, size)
    key = {
        "format": KEY_FORMAT,
        "version": 1,
        "study_id": study_id,
        "trials_digest": trials_digest,
        "n": n,
        "seed": seed,
        "question": QUESTION,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "bench": str(bench_dir.resolve()),
        "a": _arm(a, pairs[a]),
        "b": _arm(b, pairs[b]),
        "display": list(size),
        "trials": key_trials,
    }
    atomic_write_json(out / KEY_NAME, key)  # the key first: a page is never without its key
    atomic_write_text(out / PAGE_NAME, page)
    return StudyFiles(out / PAGE_NAME, out / KEY_NAME, study_id, n)


def _arm(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """One side of the study in the key: its name and what results.json says about the pair."""
    return {
        "name": name,
        "classifier": record["classifier"],
        "inverter": record["inverter"],
        "slug": record["slug"],
        "key": record.get("key"),
        "inverter_label": record.get("inverter_label"),
    }
