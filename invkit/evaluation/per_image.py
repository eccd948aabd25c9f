"""Per-image values of bench pairs: the file that keeps them, their 95% intervals and the paired comparisons.

``Bench`` scores every metric of a pair first as one float32 value per image (``Bench._summarize``'s ``per_image``
dict, keyed by the results.json metric name; NaN where a metric does not apply to an image), and saves them to
``OUT/per_image/<slug>.safetensors`` in the order of results.json's ``settings.image_indices``, beside ``index``
(those dataset indices, int64). From them:

* ``record_intervals``: each record's ``intervals`` (``invkit.evaluation.stats.intervals``: Wilson for 0/1 values,
  a seeded BCa bootstrap over images otherwise);
* ``comparisons``: results.json's ``comparisons``, every pair of inverters on the same classifier and every pair of
  classifiers with the same inverter, per metric the paired difference ``a - b`` with its interval and a verdict
  (``stats.paired_differences``, ``stats.verdict``, ``stats.better_direction``).

Everything is generic over the keys of the per-image dict: a metric another part of the bench adds there gets its
interval and comparisons without a change here. How to read them: docs/bench.md, "Intervals and comparisons".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, InputError
from ..io.files import atomic_save_safetensors
from ..io.weights import load_safetensors
from . import stats

PER_IMAGE_DIR = "per_image"
INDEX_KEY = "index"  # the dataset indices of the images, int64 (n,), in the order of every value


def per_image_path(out: str | os.PathLike, slug: str) -> Path:
    """``OUT/per_image/<slug>.safetensors``: where a pair's per-image values are kept."""
    return Path(out) / PER_IMAGE_DIR / f"{slug}.safetensors"


def save_per_image(path: str | os.PathLike, values: Mapping[str, torch.Tensor], index: torch.Tensor) -> None:
    """Write a pair's per-image values atomically (``invkit.io.files.atomic_save_safetensors``).

    Args:
        path: the file (``per_image_path``).
        values: metric name -> ``(n,)`` per-image values (stored as float32; NaN where the metric does not apply).
        index: ``(n,)`` dataset indices of the images, stored as int64 under ``index``.

    Raises:
        InputError: a value that is not ``(n,)`` for ``n = len(index)``, or a metric named ``index``.
        OutputError: the file cannot be written (``path`` keeps its old content).
    """
    n = len(index)
    tensors = {INDEX_KEY: index.detach().cpu().to(torch.int64)}
    for key, v in values.items():
        if key == INDEX_KEY or tuple(v.shape) != (n,):
            raise InputError(
                f"per-image '{key}' has shape {tuple(v.shape)}; expected ({n},) and a name other than '{INDEX_KEY}'."
            )
        tensors[key] = v.detach().cpu().float()
    atomic_save_safetensors(path, tensors)


def load_per_image(path: str | os.PathLike, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Read a pair's per-image values back and check them against the images of this run.

    Args:
        path: the file ``save_per_image`` wrote.
        index: ``(n,)`` the dataset indices this run evaluates, in order.

    Returns:
        metric name -> float32 ``(n,)`` values (without ``index``).

    Raises:
        CheckpointError: the file is missing or not a safetensors file (``invkit.io.weights.load_safetensors``), or
            its ``index`` differs from ``index`` (other images, or another order), or a value is not a float
            ``(n,)`` tensor. One line naming the file.
    """
    tensors = load_safetensors(path)
    stored = tensors.pop(INDEX_KEY, None)
    if stored is None or stored.dtype != torch.int64 or not torch.equal(stored, index.to(torch.int64).cpu()):
        raise CheckpointError(f"'{path}' holds per-image values of other images than this run's ({len(index)})")
    for key, v in tensors.items():
        if not v.is_floating_point() or tuple(v.shape) != (len(index),):
            raise CheckpointError(f"'{path}' holds per-image '{key}' {v.dtype} {tuple(v.shape)}, not ({len(index)},)")
    return {k: v.float() for k, v in tensors.items()}


def reusable_per_image(path: Path, index: torch.Tensor, pair: str) -> dict[str, torch.Tensor] | None:
    """``load_per_image``, or None when the pair must be computed again: silently when the file is missing (results
    of an invkit before per-image values), with a warning naming the file when it is damaged or of other images."""
    if not path.exists():
        return None
    try:
        return load_per_image(path, index)
    except CheckpointError as exc:
        warnings.warn(f"{str(exc).rstrip('.')}; computing {pair} again.", stacklevel=3)
        return None


def record_intervals(
    values: Mapping[str, torch.Tensor], seed: int, confidence: float = stats.CONFIDENCE
) -> dict[str, dict[str, Any]]:
    """A record's ``intervals``: per metric ``{"low", "high", "n", "method", "confidence"}``.

    Args:
        values: metric name -> ``(n,)`` per-image values (NaN left out).
        seed: the bootstrap seed (the bench's ``--seed``).
        confidence: the confidence level.

    Returns:
        metric name -> interval dict, for every metric with a finite value (``stats.intervals``).
    """
    return {k: iv.as_dict() for k, iv in stats.intervals(values, confidence, seed=seed).items()}


def _side(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("slug", "classifier", "inverter", "inverter_label")}


def compare_pair(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], seed: int, confidence: float = stats.CONFIDENCE
) -> dict[str, dict[str, Any]]:
    """Per metric both have: the paired difference ``a - b`` with its interval, and the verdict for ``a``.

    Args:
        a: metric name -> ``(n,)`` per-image values of the first pair.
        b: the same of the second pair, on the same images.
        seed: the bootstrap seed.
        confidence: the confidence level.

    Returns:
        metric -> ``{"difference", "low", "high", "n", "method", "confidence", "better", "verdict"}``: ``better`` is
        ``"higher"`` or ``"lower"`` (``stats.better_direction``), ``verdict`` one of ``stats.VERDICTS``; both None
        for a metric whose direction the name does not tell.
    """
    out = {}
    for key, iv in stats.paired_differences(a, b, confidence, seed=seed).items():
        try:
            direction = stats.better_direction(key)
        except InputError:
            direction = 0
        better = {1: "higher", -1: "lower"}.get(direction)
        judged = stats.verdict(iv, direction) if direction else None
        out[key] = {"difference": iv.estimate, **iv.as_dict(), "better": better, "verdict": judged}
    return out


def comparisons(
    records: list[Mapping[str, Any]],
    values_of: Callable[[str], Mapping[str, torch.Tensor] | None],
    seed: int,
    cache: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """results.json's ``comparisons``: every pair of inverters on the same classifier, then every pair of
    classifiers with the same inverter, in the order of ``records``.

    Args:
        records: the results.json records (``slug``, ``classifier``, ``inverter``).
        values_of: a record's slug -> its per-image values, or None when it has none (left out).
        seed: the bootstrap seed.
        cache: (kind, slug a, slug b) -> comparison, kept between calls (a bench rewrites results.json after every
            pair; a comparison is computed once).

    Returns:
        One dict per comparison: ``kind`` (``"inverters"`` or ``"classifiers"``), ``a`` and ``b`` (slug,
        classifier, inverter, inverter_label) and ``metrics`` (``compare_pair``), a minus b.
    """
    cache = {} if cache is None else cache
    out = []
    for kind, same in (("inverters", "classifier"), ("classifiers", "inverter")):
        groups: dict[Any, list[Mapping[str, Any]]] = {}
        for r in records:
            if values_of(r["slug"]) is not None:
                groups.setdefault(r.get(same), []).append(r)
        for group in groups.values():
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    key = (kind, a["slug"], b["slug"])
                    if key not in cache:
                        metrics = compare_pair(values_of(a["slug"]), values_of(b["slug"]), seed)
                        cache[key] = {"kind": kind, "a": _side(a), "b": _side(b), "metrics": metrics}
                    out.append(cache[key])
    return out


class PerImageValues:
    """What ``Bench`` (a subclass) does with the per-image values of its pairs: keeps them for every finished pair,
    writes them to ``OUT/per_image`` and reads them back for a reused pair, and turns them into the records'
    ``intervals`` and the document's ``comparisons``. Uses the bench's ``out``, ``indices`` and ``settings.seed``."""

    out: Path | None
    indices: torch.Tensor
    settings: Any

    def _caches(self) -> tuple[dict[str, dict[str, torch.Tensor] | None], dict[tuple[str, str, str], dict[str, Any]]]:
        """slug -> per-image values of the pairs seen so far (None: a file that cannot be used), and the comparisons
        computed so far (a bench rewrites results.json after every pair; each comparison is computed once)."""
        if "_per_image_caches" not in self.__dict__:
            self._per_image_caches: tuple[dict, dict] = ({}, {})
        return self._per_image_caches

    def keep_values(self, slug: str, values: Mapping[str, torch.Tensor], write: bool = True) -> dict[str, Any]:
        """Keep a finished pair's per-image values (and write them to ``OUT/per_image/<slug>.safetensors``); return
        the record's ``{"intervals": ...}`` (``record_intervals``, seeded by the bench's seed).

        Raises:
            InputError: a value that is not ``(n,)`` (``save_per_image``).
            OutputError: the file cannot be written.
        """
        values = dict(values)
        if write and self.out is not None:
            save_per_image(per_image_path(self.out, slug), values, self.indices)
        self._caches()[0][slug] = values
        return {"intervals": record_intervals(values, self.settings.seed)}

    def stored_values(self, slug: str, pair: str) -> dict[str, torch.Tensor] | None:
        """A finished pair's per-image values read back from ``OUT/per_image`` (``reusable_per_image``: None, and
        the pair is computed again, when the file is missing, damaged or of other images)."""
        if self.out is None:
            return None
        return reusable_per_image(per_image_path(self.out, slug), self.indices, pair)

    def _values_of(self, slug: str) -> dict[str, torch.Tensor] | None:
        values = self._caches()[0]
        if slug not in values and self.out is not None:  # a pair kept from an earlier run: its file
            try:
                values[slug] = load_per_image(per_image_path(self.out, slug), self.indices)
            except CheckpointError:
                values[slug] = None  # no usable file (an older invkit's pair): left out of the comparisons
        return values.get(slug)

    def comparisons_of(self, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The document's ``comparisons`` of ``records`` (``comparisons``), each computed once per bench."""
        return comparisons(records, self._values_of, self.settings.seed, self._caches()[1])
