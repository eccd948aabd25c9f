"""The evaluation at the end of a ``train-classifier`` run: clean accuracy and PGD accuracy on the test split.

Clean accuracy is measured on the whole test split; PGD accuracy, for each of ``TrainClassifierConfig.eval_attacks``,
on a fixed draw of ``eval_samples`` test images (seed 0, random starts seeded by batch), so that two classifiers
evaluated with the same options see the same images and random starts.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..core.classifier import Classifier
from ..data.datasets import TensorImageDataset
from ..utils.progress import Progress, ProgressCallback, no_progress
from .classifier_config import TrainClassifierConfig, TrainClassifierReport
from .classifier_data import _batch


def evaluate(
    clf: Classifier,
    test: TensorImageDataset,
    cfg: TrainClassifierConfig,
    *,
    progress: ProgressCallback = no_progress,
    device: str | torch.device = "cpu",
    batch_size: int = 500,
) -> TrainClassifierReport:
    """Clean accuracy on the whole test split and PGD accuracy on ``cfg.eval_samples`` of it (a fixed draw,
    seed 0, so that two classifiers evaluated with the same options see the same images and random starts)."""
    clf.eval()
    n = len(test)
    correct = 0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            x, y = _batch(test, torch.arange(i, min(n, i + batch_size)))
            correct += (clf(x.to(device)).argmax(1).cpu() == y).sum().item()
            progress(Progress("eval clean", min(n, i + batch_size), n))
    m = n if cfg.eval_samples is None else min(n, cfg.eval_samples)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:m]
    pgd_results = []
    for attack in cfg.eval_attacks():
        task = f"eval {attack.norm} eps {attack.eps:g}"
        robust_correct = 0
        for i in range(0, m, batch_size):
            x, y = _batch(test, idx[i : i + batch_size])
            x, y = x.to(device), y.to(device)
            x_adv = attack.run(clf, x, y, generator=torch.Generator().manual_seed(i))
            with torch.no_grad():
                robust_correct += (clf(x_adv).argmax(1) == y).sum().item()
            progress(Progress(task, min(m, i + batch_size), m))
        pgd_results.append({"attack": attack.to_dict(), "accuracy": robust_correct / m})
    return TrainClassifierReport(
        classifier=clf.config.name,
        checkpoint="",
        robust=clf.config.robust,
        steps=0,
        epochs=0.0,
        seconds=0.0,
        train_images=0,
        test_images=n,
        clean_accuracy=correct / n,
        eval_samples=m,
        pgd=pgd_results,
        train_attack=cfg.train_attack().to_dict() if cfg.adv != "none" else None,
        config=asdict(cfg),
    )
