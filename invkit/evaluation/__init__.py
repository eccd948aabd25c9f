"""Evaluation: the bench that compares inverters and classifiers on the same held-out images, its metrics, its reports.

Modules, in the order a bench run uses them:

* ``settings``: ``BenchSettings`` (the options of a run), ``Pair`` and ``PairResult`` (its pairs and their records).
* ``matching``: which inverter checkpoint each pair uses (``--checkpoint`` folders matched to the classifiers).
* ``sampling``: which held-out images a run evaluates (``pick_indices``).
* ``inversion``: a pair's logits and reconstructions (``classifier_logits``, ``invert_logits``: seeded, timed).
* ``metrics``: the metrics as functions on batches (PSNR, SSIM, LPIPS, classifier agreement, instance
  identification) and the time and memory measurement.
* ``evaluator``: metrics from an independent evaluator classifier (its accuracy on the reconstructions, feature
  distances, identification and KNN distance in its feature space), per image; ``BenchEvaluation`` for the bench.
* ``distribution``: FID and KID between reconstructions and originals in a feature space (torchmetrics).
* ``bench``: ``Bench``, the runner: checks the inputs, runs and scores every pair, reuses finished ones and
  writes results.json.
* ``stats``: 95% intervals (Wilson, BCa bootstrap over images), paired differences and their verdicts.
* ``per_image``: each pair's per-image values (``OUT/per_image/``), the records' intervals and the comparisons.
* ``report``: results.csv, report.md and report.html, written from results.json (``report_uncertainty``: the
  intervals and comparisons in them).
* ``export``: a checkpoint as a folder for the Hugging Face Hub, its model card naming the classifier it inverts
  and, from a bench's results.json, its numbers (``export_checkpoint``, ``invkit export``).
* ``leakage``, ``leakage_page``: leakage curves, one bench per channel of a family (``topk:1,5,20,all``) and the
  table and plot of quality against the channel's parameter with intervals (``Leakage``, ``invkit leakage``).
* ``kept``: the reconstructions a bench keeps per pair (``OUT/recon/``, uint8) for a human study.
* ``study``, ``study_page``, ``study_score``: a human two-alternative forced-choice study of two pairs, as the
  paper's Table 1 (``make_study``: a blind self-contained page and its key; ``score_study``: preferences with
  Wilson intervals and the agreement of each bench metric with the people; ``invkit study``).
"""

from __future__ import annotations

from .bench import Bench
from .distribution import ClassifierFeatures, fid, fid_min_n, inception_status, kid
from .evaluator import (
    cosine_distance,
    draw_heldout,
    feature_identification_hits,
    knn_distance,
    prediction_agreement,
    topk_correct,
)
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
    "topk_correct",
    "prediction_agreement",
    "cosine_distance",
    "feature_identification_hits",
    "knn_distance",
    "draw_heldout",
    "fid",
    "fid_min_n",
    "kid",
    "inception_status",
    "ClassifierFeatures",
    "write_reports",
]
