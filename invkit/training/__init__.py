"""Training: learned inverters (``invkit train``) and the in-house classifiers (``invkit train-classifier``).

Learned inverters:

* ``loop``: ``train_inverter``, the run stage by stage and the step loop (logs, samples, checkpoints, stops); the
  overview of what the loop provides.
* ``config``: ``TrainConfig`` (one run), ``RUN_DEFINING``, ``TrainResult``, ``build_inverter``, ``derive_seed``.
* ``source``: ``BatchStream`` (the seeded, resumable, sharded data order), the training images with the frozen
  classifier's logits, the held-out samples.
* ``checkpoints``: ``checkpoint_dir``, ``find_checkpoints``, ``latest_checkpoint``, ``write_checkpoint`` (atomic).
* ``resume``: the RNG states a checkpoint saves, reading a checkpoint back into a run, ``read_run_config``.
* ``health``: the memory check before a run; non-finite or stuck losses, collapse, and the sample grids.
* ``distributed``: the ``torchrun`` process group and what the ranks share.
* ``sync_batchnorm``: batch norm over the global batch of all ranks (``--sync-bn``, compare_gan's cross-replica BN).

In-house classifiers:

* ``classifier``: ``train_classifier`` (standard, PGD or FGSM-RS adversarial training), ``build_classifier``.
* ``classifier_config``: ``TrainClassifierConfig``, ``TrainClassifierReport``.
* ``classifier_data``: ``load_split``, batches and augmentation.
* ``classifier_eval``: ``evaluate`` (clean and PGD accuracy on the test split).

Both:

* ``report``: ``log.jsonl`` (``append_log``, ``read_log``), ``curves.png`` and ``report.html``
  (``write_train_report``).
* ``tensorboard_log``: ``--tensorboard``: the log lines and sample grids as TensorBoard events in
  ``RUN/tensorboard/`` (``tensorboard_events``), trimmed on resume like ``log.jsonl``.
* ``interrupt``: Ctrl-C and SIGTERM end the step, save a checkpoint and stop.

The names below are importable from the package; it also stands for invkit 0.1's ``invkit.train``.
"""

from __future__ import annotations

from .checkpoints import CHECKPOINTS, LATEST, checkpoint_dir, find_checkpoints, latest_checkpoint, write_checkpoint
from .classifier import REPORT_NAME, train_classifier
from .classifier_config import TrainClassifierConfig, TrainClassifierReport
from .classifier_data import load_split
from .config import CONFIG_FILE, RUN_DEFINING, TrainConfig, TrainResult, build_inverter, config_field_names, derive_seed
from .health import SAMPLES
from .loop import LOG_FILE, RESUME_HINT, train_inverter
from .report import read_log, write_train_report
from .resume import read_run_config
from .source import IN_MEMORY_LIMIT, BatchStream

__all__ = [
    # learned inverters (invkit.train in invkit 0.1)
    "BatchStream",
    "CHECKPOINTS",
    "CONFIG_FILE",
    "IN_MEMORY_LIMIT",
    "LATEST",
    "LOG_FILE",
    "RESUME_HINT",
    "RUN_DEFINING",
    "SAMPLES",
    "TrainConfig",
    "TrainResult",
    "build_inverter",
    "checkpoint_dir",
    "config_field_names",
    "derive_seed",
    "find_checkpoints",
    "latest_checkpoint",
    "read_run_config",
    "train_inverter",
    "write_checkpoint",
    # in-house classifiers
    "REPORT_NAME",
    "TrainClassifierConfig",
    "TrainClassifierReport",
    "load_split",
    "train_classifier",
    # the run's log and report page
    "read_log",
    "write_train_report",
]
