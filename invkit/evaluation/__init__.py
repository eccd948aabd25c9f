"""Evaluation: the bench that compares inverters and classifiers on the same held-out images, its metrics, its reports.

Modules, in the order a bench run uses them:

* ``settings``: ``BenchSettings`` (the options of a run), ``Pair`` and ``PairResult`` (its pairs and their records).
* ``matching``: which inverter checkpoint each pair uses (``--checkpoint`` folders matched to the classifiers).
* ``sampling``: which held-out images a run evaluates (``pick_indices``).
* ``inversion``: a pair's logits and reconstructions (``classifier_logits``, ``invert_logits``: seeded, timed).
* ``metrics``: the metrics as functions on batches (PSNR, SSIM, LPIPS, classifier agreement, instance
  identification) and the time and memory measurement.
* ``bench``: ``Bench``, the runner: checks the inputs, runs and scores every pair, reuses finished ones and
  writes results.json.
* ``report``: results.csv, report.md and report.html, written from results.json.
* ``export``: a checkpoint as a folder for the Hugging Face Hub, its model card naming the classifier it inverts
  and, from a bench's results.json, its numbers (``export_checkpoint``, ``invkit export``).
"""

from __future__ import annotations

from .bench import Bench
from .export import export_checkpoint
from .inversion import classifier_logits, invert_logits
from .metrics import (
    LPIPS,
    classifier_agreement,
    draw_distractors,
    identification_hits,
    lpips_status,
    measure,
    psnr,
    ssim,
)
from .report import write_reports
from .sampling import pick_indices
from .settings import BenchSettings, Pair, PairResult

__all__ = [
    "Bench",
    "BenchSettings",
    "export_checkpoint",
    "Pair",
    "PairResult",
    "pick_indices",
    "classifier_logits",
    "invert_logits",
    "psnr",
    "ssim",
    "LPIPS",
    "lpips_status",
    "classifier_agreement",
    "draw_distractors",
    "identification_hits",
    "measure",
    "write_reports",
]
