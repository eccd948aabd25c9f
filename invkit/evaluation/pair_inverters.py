"""The inverter each pair of a bench run uses (loaded from its checkpoint, trained by the run, or built fresh), and
where its reconstructions are kept as they are made (``invkit.evaluation.recon_cache``).

``PairInverters`` holds these steps as methods of ``Bench`` (one of its bases): they read the run's settings, device,
data and output folder. A change to how a pair gets its inverter goes here; which checkpoint a pair uses is decided
before anything runs, in ``matching``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..core.classifier import Classifier
from ..core.inverter import Inverter
from ..core.plugins import get_registry
from ..core.resolve import resolve_inverter
from ..data.datasets import ImageDataset
from ..data.sources import load_dataset
from ..errors import TrainingError
from ..utils.progress import ProgressCallback
from .recon_cache import RECON_CACHE_DIR, ReconCache
from .settings import BenchSettings, Pair


class PairInverters:
    """A pair's inverter and its reconstruction cache (a base of ``Bench``; uses the attributes declared here and
    ``Bench._options``)."""

    settings: BenchSettings
    device: torch.device
    out: Path | None
    dataset: ImageDataset
    progress: ProgressCallback

    def _inverter(self, pair: Pair, clf: Classifier) -> tuple[Inverter, dict[str, Any]]:
        """The pair's inverter: loaded from its checkpoint, trained here, or built fresh; plus training facts."""
        seen = {"channel": self.settings.channel, "layer": self.settings.layer}  # None: a checkpoint's own
        if pair.checkpoint is not None:
            # --option for an inverter read from a checkpoint would be ignored: resolve_inverter refuses it
            opts = self._options(pair.inverter)
            inv = resolve_inverter(pair.inverter, clf, checkpoint=pair.checkpoint, **seen, **opts)
            return inv.to(self.device).eval(), {}
        if pair.train:
            return self._train(pair, clf)
        inv = resolve_inverter(pair.inverter, clf, **seen, **self._options(pair.inverter))
        return inv.to(self.device).eval(), {}

    def _train(self, pair: Pair, clf: Classifier) -> tuple[Inverter, dict[str, Any]]:
        """Train a learned inverter for ``train_steps`` steps with the core loop (``invkit.training.loop``), on the
        train split of the bench's data; a rerun continues from the checkpoint already in ``out/trained``."""
        try:
            from ..training.checkpoints import latest_checkpoint
            from ..training.config import TrainConfig, build_inverter
            from ..training.loop import train_inverter
        except ImportError as exc:
            raise TrainingError(
                f"the training loop (invkit.training.loop) cannot be used here ({exc}); pass --checkpoint "
                f"DIR with a {pair.inverter} trained for {pair.classifier_label}."
            ) from None
        s = self.settings
        folder = (self.out or Path("invkit-bench")) / "trained" / pair.slug
        cfg = TrainConfig(
            classifier=pair.classifier_spec,
            inverter=pair.inverter,
            data=s.data,
            out=str(folder),
            steps=s.train_steps,
            seed=s.seed,
            device=str(self.device),
            options=self._options(pair.inverter),
            save_every=s.train_steps,
            sample_every=0,
            log_every=max(1, s.train_steps // 50),
            channel=s.channel or "logits",  # what the inverter observes, recorded in its checkpoints
            layer=s.layer,
        )
        inv, trainer_options = build_inverter(cfg, clf)
        t0 = time.perf_counter()
        result = train_inverter(
            cfg,
            clf,
            inv,
            load_dataset(s.data, "train", root=s.data_root),
            self.dataset,
            trainer_options=trainer_options,
            resume=latest_checkpoint(folder) is not None,
            progress=self.progress,
        )
        trained = result.trainer.inference_inverter()
        trained.checkpoint_dir = result.checkpoint  # named by the checkpoint it wrote (invkit.core.naming)
        return trained.to(self.device).eval(), {
            "trained_steps": result.step,
            "train_seconds": round(time.perf_counter() - t0, 2),
            "trained_checkpoint": str(result.checkpoint),
        }

    def _recon_cache(self, pair: Pair, inv: Inverter, targets: torch.Tensor) -> ReconCache | None:
        """Where this pair's reconstructions are kept as they are made (``invkit.evaluation.recon_cache``):
        ``--recon-cache DIR`` or ``--out``/recon-cache; None without either, or for an inverter trained in this run
        (its weights are not known before it is trained)."""
        folder = self.settings.recon_cache or (self.out / RECON_CACHE_DIR if self.out is not None else None)
        if folder is None or pair.train:
            return None
        identity = ReconCache.identity_of(
            pair.key, inv.config_dict(), targets, self.settings.seed, self.settings.batch_size
        )
        # config fields added after a cache file was written are read with their legacy value (recon_cache)
        legacy = get_registry("inverter").resolve(pair.inverter).checkpoint_legacy()
        return ReconCache(Path(folder) / f"{pair.slug}.safetensors", identity, legacy)
