"""Scoring a two-alternative forced-choice study (``invkit study score``): who preferred which pair, and which bench
metrics agree with the people.

Inputs: the answers files the study page saved (``invkit.evaluation.study_page``; one per subject) and the study's
``study_key.json`` (``invkit.evaluation.study``), which says in which trials pair A was on the left.

* **Preference.** Per subject and pooled over every answer: the share of answers that chose A's reconstruction,
  with a Wilson 95% interval (``invkit.evaluation.stats.wilson_interval``). Pooling treats every answer as an
  independent trial, as the paper's Table 1 does (4 subjects x 64 images); answers of one subject are not
  independent of each other, so the pooled interval is narrower than a model with a per-subject effect would give.
* **Metric agreement.** For each per-image bench metric (``BENCH/per_image/<slug>.safetensors``, one float32 value
  per evaluated image and metric in the order of its ``index``; ``invkit.evaluation.per_image``): the metric prefers
  A's reconstruction of an image when A's value is better (``stats.better_direction``: higher or lower); the
  agreement is the share of answers whose chosen side is the one the metric prefers, with a Wilson 95% interval.
  Images where the two values are equal or either is NaN are left out and counted as ``ties``. 0.5 is what a metric
  unrelated to the people's choices scores; 1.0 a metric that always picks what they picked.

An answers file is refused, in one line (``StudyError``), when it is not an answers file, belongs to another study
(its study id or trials digest differ from the key's), or was edited: a trial index outside the study, out of
order or given twice, a side that is not ``left``/``right``, a negative or non-finite response time, an empty
subject, or two files of the same subject.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, InputError, StudyError
from ..io.read import Required, read_json
from ..io.weights import load_safetensors
from .per_image import INDEX_KEY, PER_IMAGE_DIR, per_image_path
from .stats import better_direction, wilson_interval
from .study import KEY_FORMAT, KEY_NAME
from .study_page import ANSWERS_FORMAT

_ARM = {"name": Required(str), "slug": Required(str)}
_KEY_SCHEMA = {
    "format": Required(str),
    "study_id": Required(str),
    "trials_digest": Required(str),
    "n": Required(int),
    "bench": Required(str),
    "a": Required(_ARM),
    "b": Required(_ARM),
    "trials": Required([{"trial": Required(int), "index": Required(int), "left": Required(str)}]),
}
_ANSWERS_SCHEMA = {
    "format": Required(str),
    "study_id": Required(str),
    "trials_digest": Required(str),
    "n": Required(int),
    "subject": Required(str),
    "answers": Required([{"trial": Required(int), "side": Required(str), "rt_ms": Required((float, None))}]),
}


def read_key(path: str | os.PathLike) -> dict[str, Any]:
    """A study's key, checked: ``path`` is ``study_key.json`` or the study folder holding it.

    Raises:
        StudyError: missing, not JSON, not of the key's shape, or with trials that do not number ``0..n-1`` with
            sides ``a``/``b`` (one line).
    """
    path = Path(path)
    if path.is_dir():
        path = path / KEY_NAME
    remedy = f"give the {KEY_NAME} that invkit study make wrote (or its folder) with --key"
    key = read_json(path, _KEY_SCHEMA, "study key", StudyError, remedy)
    trials = key["trials"]
    if key["format"] != KEY_FORMAT or [t["trial"] for t in trials] != list(range(key["n"])):
        raise StudyError(f"'{path}' is not a whole invkit study key (format or trials edited); {remedy}.")
    if any(t["left"] not in ("a", "b") for t in trials):
        raise StudyError(f"'{path}' has a trial whose left side is neither 'a' nor 'b'; {remedy}.")
    key["path"] = str(path)
    return key


def read_answers(path: str | os.PathLike, key: dict[str, Any]) -> dict[str, Any]:
    """An answers file the study page saved, checked against the study's ``key`` (see the module docstring).

    Returns:
        The document: ``subject``, ``answers`` (``trial``, ``side``, ``rt_ms``), ``study_id``, ...

    Raises:
        StudyError: one line saying what is wrong with the file and what to do.
    """
    path = Path(path)
    doc = read_json(path, _ANSWERS_SCHEMA, "study answers file", StudyError, "give a file the study page saved")
    if doc["format"] != ANSWERS_FORMAT:
        raise StudyError(f"'{path}' is not an invkit study answers file (format {doc['format']!r}).")
    if doc["study_id"] != key["study_id"]:
        raise StudyError(
            f"'{path}' holds answers to study {doc['study_id']}, not to study {key['study_id']} of "
            f"'{key['path']}'; score it with its own study's key (--key)."
        )
    if doc["trials_digest"] != key["trials_digest"] or doc["n"] != key["n"]:
        raise StudyError(
            f"'{path}' names study {doc['study_id']} but not its trials (digest or n differ from '{key['path']}'); "
            "it was edited or comes from another page: use the file the page saved."
        )
    if not doc["subject"].strip():
        raise StudyError(f"'{path}' has no subject id; use the file the page saved (it asks for one).")
    if not doc["answers"]:
        raise StudyError(f"'{path}' holds no answers; the subject saved before answering any trial.")
    seen: set[int] = set()
    for pos, answer in enumerate(doc["answers"]):
        trial, side, rt = answer["trial"], answer["side"], answer["rt_ms"]
        where = f"'{path}' answer {pos + 1}"
        if not 0 <= trial < key["n"]:
            raise StudyError(f"{where} is for trial {trial}, outside the study's 0..{key['n'] - 1}; it was edited.")
        if trial in seen:
            raise StudyError(
                f"{where} answers trial {trial} a second time; it was edited: use the file the page saved."
            )
        if trial != pos:
            raise StudyError(f"{where} is for trial {trial}, but the page saves trials in order; it was edited.")
        if side not in ("left", "right"):
            raise StudyError(f"{where} chose side {side!r}, not 'left' or 'right'; it was edited.")
        if rt is not None and not (math.isfinite(rt) and rt >= 0):
            raise StudyError(f"{where} has response time {rt!r} ms (not a time); it was edited.")
        seen.add(trial)
    doc["path"] = str(path)
    return doc


def _preference(k: int, n: int) -> dict[str, Any]:
    ci = wilson_interval(k, n)
    return {"prefer_a": k, "n": n, "share_a": ci.estimate, "ci95": [ci.low, ci.high]}


def _chose_a(key: dict[str, Any], answer: dict[str, Any]) -> bool:
    left = key["trials"][answer["trial"]]["left"]
    return (answer["side"] == "left") == (left == "a")


def _per_image(bench: Path, slug: str) -> dict[str, Any] | None:
    """One pair's per-image metric values by data set index, or None when the bench folder has none."""
    path = per_image_path(bench, slug)
    if not path.exists():
        return None
    tensors = load_safetensors(path)
    index = tensors.pop(INDEX_KEY, None)
    bad = index is None or index.dim() != 1 or index.is_floating_point()
    bad = bad or any(v.dim() != 1 or len(v) != len(index) or not v.is_floating_point() for v in tensors.values())
    if bad:
        raise CheckpointError(
            f"'{path}' is not a per-image metrics file (float (n,) per metric and an integer index (n,)); rerun "
            "invkit bench into that folder to rewrite it."
        )
    rows = {int(i): pos for pos, i in enumerate(index.tolist())}
    return {"path": path, "rows": rows, "values": {k: v.double().tolist() for k, v in tensors.items()}}


def _metric_agreement(key: dict[str, Any], answers: list[dict[str, Any]], bench: Path) -> tuple[list, str | None]:
    """Per metric both pairs have per-image values for: how often it prefers what the people chose."""
    per = {side: _per_image(bench, key[side]["slug"]) for side in ("a", "b")}
    missing = [key[s]["name"] for s in ("a", "b") if per[s] is None]
    if missing:
        return [], (
            f"no per-image metrics of {', '.join(missing)} in '{bench / PER_IMAGE_DIR}' (a bench run before invkit "
            "kept them, or another --bench); the agreement of the metrics with the people is not computed."
        )
    images = [key["trials"][a["trial"]]["index"] for a in answers]
    for side in ("a", "b"):
        if any(i not in per[side]["rows"] for i in images):
            raise StudyError(
                f"'{per[side]['path']}' holds no metric values for some of the study's images: the bench in "
                f"'{bench}' was rerun with other images; give --bench the folder the study was made from."
            )
    out, undecidable = [], []
    for metric in sorted(set(per["a"]["values"]) & set(per["b"]["values"])):
        try:
            direction = better_direction(metric)
        except InputError:
            undecidable.append(metric)
            continue
        agree = ties = 0
        for answer, image in zip(answers, images, strict=True):
            va = per["a"]["values"][metric][per["a"]["rows"][image]]
            vb = per["b"]["values"][metric][per["b"]["rows"][image]]
            if not (math.isfinite(va) and math.isfinite(vb)) or va == vb:
                ties += 1
                continue
            agree += (direction * (va - vb) > 0) == answer["chose_a"]
        decided = len(answers) - ties
        row: dict[str, Any] = {"metric": metric, "higher_is_better": direction > 0, "ties": ties, "n": decided}
        if decided:
            ci = wilson_interval(agree, decided)
            row |= {"agree": agree, "share": ci.estimate, "ci95": [ci.low, ci.high]}
        else:
            row |= {"agree": 0, "share": None, "ci95": [None, None]}
        out.append(row)
    note = f"left out (no known better direction): {', '.join(undecidable)}" if undecidable else None
    return out, note


def score_study(
    answers: Sequence[str | os.PathLike], key: str | os.PathLike, bench: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Score a study's answers files against its key.

    Args:
        answers: one or more answers files saved by the study page (one per subject).
        key: the study's ``study_key.json`` or its folder.
        bench: the bench folder whose per-image metrics to compare with (default: the one the key names).

    Returns:
        ``{"study_id", "question", "a", "b", "bench", "n_trials", "subjects": [...], "pooled": {...},
        "metrics": [...], "metrics_note"}``: per subject (``subject``, ``file``, ``prefer_a``, ``n``,
        ``share_a``, ``ci95``, ``median_rt_ms``) and pooled, the preference for A with its Wilson 95% interval; per
        metric (``metric``, ``higher_is_better``, ``agree``, ``n``, ``ties``, ``share``, ``ci95``) the agreement
        with the people. Shares are proportions in [0, 1].

    Raises:
        StudyError: no answers files; a key or answers file that is refused (``read_key``, ``read_answers``); two
            files of one subject; per-image metrics of other images than the study's.
        CheckpointError: a damaged per-image metrics file.
    """
    if not answers:
        raise StudyError("give at least one answers file saved by the study page.")
    key_doc = read_key(key)
    docs = [read_answers(path, key_doc) for path in answers]
    by_subject: dict[str, str] = {}
    for doc in docs:
        if doc["subject"] in by_subject:
            raise StudyError(
                f"'{doc['path']}' and '{by_subject[doc['subject']]}' are both answers of subject {doc['subject']!r}; "
                "score one file per subject."
            )
        by_subject[doc["subject"]] = doc["path"]
    pooled: list[dict[str, Any]] = []
    subjects = []
    for doc in docs:
        marked = [a | {"chose_a": _chose_a(key_doc, a)} for a in doc["answers"]]
        pooled += marked
        rts = sorted(a["rt_ms"] for a in marked if a["rt_ms"] is not None)
        subjects.append(
            {"subject": doc["subject"], "file": doc["path"], "complete": len(marked) == key_doc["n"]}
            | _preference(sum(a["chose_a"] for a in marked), len(marked))
            | {"median_rt_ms": rts[len(rts) // 2] if rts else None}
        )
    bench_dir = Path(bench) if bench is not None else Path(key_doc["bench"])
    metrics, note = _metric_agreement(key_doc, pooled, bench_dir)
    return {
        "study_id": key_doc["study_id"],
        "question": key_doc.get("question"),
        "a": key_doc["a"]["name"],
        "b": key_doc["b"]["name"],
        "bench": str(bench_dir),
        "n_trials": key_doc["n"],
        "subjects": subjects,
        "pooled": _preference(sum(a["chose_a"] for a in pooled), len(pooled)) | {"subjects": len(docs)},
        "metrics": metrics,
        "metrics_note": note,
    }
