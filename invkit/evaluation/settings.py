"""What a bench run is asked to do, and what it is made of: its options and its (classifier, inverter) pairs.

``BenchSettings`` holds every option of a run (the CLI flags of ``invkit bench``, ``invkit.demo.default_settings``)
and its ``fingerprint``, the options a rerun into the same ``out`` must share. ``Pair`` is one (classifier,
inverter) pair of the run's plan, found again in ``results.json`` by its ``key``; ``PairResult`` is a finished pair
with its record. A new option of the bench starts here (and in ``fingerprint`` when it changes the numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..io.checkpoint import spec_identity


@dataclass
class BenchSettings:
    """What to compare and on which images.

    Classifier specs are registry names (``smallcnn.base``) or classifier checkpoint folders; inverters are
    registry names. Learned inverters come from ``checkpoints`` (matched to pairs by what they hold) or are
    trained for ``train_steps`` steps.
    """

    classifiers: list[str]  # classifier specs: registry names or checkpoint folders
    inverters: list[str]  # inverter registry names (name or name.tag)
    data: str = "default"  # 'default', a folder, a .tar.gz or a torchvision data set name; its test split
    data_root: str | None = None  # where torchvision-format data sets live
    checkpoints: list[str] = field(default_factory=list)  # inverter checkpoint folders
    n: int = 50  # held-out images evaluated (an equal number per class, classes interleaved)
    id_k: int = 10  # candidates per instance identification (chance = 1 / id_k)
    seed: int = 0  # image draw, distractor draw, inverter noise
    train_steps: int = 0  # train a learned inverter that has no checkpoint for this many steps (0: refuse)
    device: str = "cpu"  # torch device
    batch_size: int = 64  # images per inversion call
    # images read, inverted and scored at a time (invkit.evaluation.blocks), rounded down to a multiple of batch_size;
    # bounds memory, changes no number: not in the fingerprint
    block_size: int = 1024
    inverter_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # inverter base -> factory kwargs
    lpips_net: str = "alex"  # LPIPS backbone: alex or vgg
    grid_images: int = 10  # originals shown in the report grid (one per class first)
    classifier_labels: dict[str, str] = field(default_factory=dict)  # spec -> name shown in tables
    checkpoint_map: dict[str, str] = field(default_factory=dict)  # "clf spec|inverter base" -> checkpoint folder
    only_correct: bool = False  # draw only images every classifier classifies correctly (the paper's Fig. 1)
    recon_cache: str | None = None  # folder of resumable reconstructions (None: OUT/recon-cache); not in fingerprint
    keep_images: int = 100  # reconstructions kept per pair in OUT/recon/ for invkit study (0: none); not in fingerprint
    evaluators: list[str] = field(default_factory=list)  # independent evaluator classifier specs (issue 21)
    id_space: str = "pixel"  # headline id_accuracy: identification by pixel L2, lpips, or evaluator[:NAME] features
    download: bool = False  # fetch missing published weights (LPIPS backbone) first; also INVKIT_DOWNLOAD=1
    # what every inverter observes (invkit.core.observation): an observation channel spec of the logits, or a layer
    # name; None: each checkpoint's own (logits for an inverter built fresh); another than a checkpoint's is refused
    channel: str | None = None
    layer: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the numbers of every pair: a rerun with other values needs another --out."""
        return {
            "data": self.data,
            "n": self.n,
            "id_k": self.id_k,
            "seed": self.seed,
            "inverter_options": self.inverter_options,
            "lpips_net": self.lpips_net,
            **({"only_correct": True} if self.only_correct else {}),  # absent when off: older results still match
            # by weights (spec_identity), absent without evaluators: older results still match
            **({"evaluators": [spec_identity(e) for e in self.evaluators]} if self.evaluators else {}),
            **({"id_space": self.id_space} if self.id_space != "pixel" else {}),  # pixel: absent, older results match
            **({"channel": self.channel} if self.channel is not None else {}),  # absent by default, as id_space
            **({"layer": self.layer} if self.layer is not None else {}),
        }


@dataclass
class Pair:
    """One (classifier, inverter) pair of a bench run."""

    classifier_spec: str
    classifier_label: str
    inverter: str  # registry name as given
    checkpoint: str | None  # inverter checkpoint folder, or None (built fresh, or trained when learned)
    train: bool = False  # train the inverter first (no checkpoint, learned inverter, train_steps > 0)

    @cached_property
    def key(self) -> str:
        """What a finished pair is found by in results.json: the classifier, the inverter and the checkpoint, each
        folder by its resolved path and its weights' digest (weights retrained into the same folder are new)."""
        ckpt = spec_identity(self.checkpoint) if self.checkpoint else ("trained" if self.train else "fresh")
        return f"{spec_identity(self.classifier_spec)}|{self.inverter}|{ckpt}"

    @property
    def slug(self) -> str:
        raw = f"{self.classifier_label}__{self.inverter}"
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in raw)


@dataclass
class PairResult:
    """A finished pair: its metrics (``record``, one flat dict) and whether it came from an earlier run."""

    pair: Pair
    record: dict[str, Any]
    reused: bool = False


def _location(key: str) -> str:
    """A pair key without its weights digests: which folders, not which weights."""
    return re.sub(r"@[0-9a-f]{16}(?=\||$)", "", key)
