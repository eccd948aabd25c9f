"""``misclassified`` and ``fgsm``: what the logits of wrongly classified and adversarial images look like.

* ``misclassified`` (paper Fig. 6, supplement Figs. 7-8): reconstructions of held-out images the classifier
  gets wrong. Numbers: the error rate over the images scanned, and how often the reconstruction is classified
  as the (wrong) predicted label versus the true label; the paper's observation is that the reconstruction
  tends to look like the predicted class.
* ``fgsm`` (paper Fig. 7): FGSM adversarial images (Goodfellow et al. 2015, ``invkit.adversarial.fgsm``) with
  eps = 0.1 in [0, 1] pixel units, and reconstructions of the clean and adversarial logits. Numbers: clean
  accuracy, attack success (fraction of correctly classified images whose prediction the attack changes),
  and how often the adversarial reconstruction is classified as the adversarial prediction (the logits
  carry the attack into the image) or as the true label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.adversarial import fgsm
from invkit.data import take
from invkit.errors import InputError
from invkit.figures import save_rows

from . import _common as C


def _names(ctx: ProbeContext, labels: torch.Tensor) -> list[str]:
    names = ctx.classifier.config.label_names
    return [names[i] if names and i < len(names) else str(i) for i in labels.tolist()]


@dataclass(frozen=True)
class MisclassifiedOptions:
    scan: int = 2000  # held-out images classified to find mistakes (all of --data when smaller)
    show: int = 16  # misclassified images in the figure and the numbers (at most)


class Misclassified(Probe):
    description = "reconstructions of misclassified images with true and predicted labels (Fig. 6)"

    def __init__(self, **options):
        self.options = C.resolve_options("misclassified", MisclassifiedOptions(), options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = C.resolve_options("misclassified", self.options, ctx.options)
        images, labels = take(ctx.data, o.scan, seed=C.seed_from(ctx.generator))
        images = C.to_inverter_shape(ctx, images)
        labels = labels.to(ctx.device)
        C.report(ctx, "probe misclassified", 0, 2)
        pred = C.predict(ctx, images)
        wrong = (pred != labels).nonzero().flatten()
        if len(wrong) == 0:
            raise InputError(
                f"misclassified: {ctx.classifier.name} classifies all {len(images)} scanned images "
                "correctly; raise --option scan=N or give more --data."
            )
        idx = wrong[: o.show]
        x, y, p = images[idx], labels[idx], pred[idx]
        recon = C.invert(ctx, C.logits_of(ctx, x))
        r = C.predict(ctx, recon)
        C.report(ctx, "probe misclassified", 2, 2)
        save_rows([x, recon], ctx.out / "misclassified.png", scale=2)
        numbers = {
            "scanned": len(images),
            "misclassified": len(wrong),
            "error_rate": len(wrong) / len(images),
            "shown": len(idx),
            "recon_classified_as_predicted": float((r == p).float().mean()),
            "recon_classified_as_true": float((r == y).float().mean()),
        }
        rows = [
            {"column": i, "true": t, "predicted": q, "reconstruction classified as": s}
            for i, (t, q, s) in enumerate(zip(_names(ctx, y), _names(ctx, p), _names(ctx, r)))
        ]
        summary = (
            f"{len(wrong)} of {len(images)} images misclassified; their reconstructions are classified as "
            f"the predicted label {100 * numbers['recon_classified_as_predicted']:.0f}% of the time and as "
            f"the true label {100 * numbers['recon_classified_as_true']:.0f}%."
        )
        return C.finish(
            ctx,
            "misclassified",
            "misclassified",
            numbers,
            {"misclassified": "misclassified.png"},
            summary,
            {
                "misclassified": "top: misclassified held-out images; bottom: reconstructions "
                "of their logits. Labels per column in the table."
            },
            tables=[("Labels", rows)],
        )


@dataclass(frozen=True)
class FGSMOptions:
    eps: float = 0.1  # FGSM step in [0, 1] pixel units (the paper's 0.1)
    show: int = 12  # columns in the figure


class FGSM(Probe):
    description = "FGSM eps=0.1 adversarial inputs and their reconstructions with labels (Fig. 7)"

    def __init__(self, **options):
        self.options = C.resolve_options("fgsm", FGSMOptions(), options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = C.resolve_options("fgsm", self.options, ctx.options)
        x, y = C.load_images(ctx)
        y = y.to(ctx.device)
        C.report(ctx, "probe fgsm", 0, 3)
        x_adv = fgsm(ctx.classifier, x, y, eps=o.eps)
        C.report(ctx, "probe fgsm", 1, 3)
        logits, logits_adv = C.logits_of(ctx, x), C.logits_of(ctx, x_adv)
        pred, pred_adv = logits.argmax(1), logits_adv.argmax(1)
        noise = C.sample_noise(ctx, len(x))
        recon, recon_adv = C.invert(ctx, logits, noise), C.invert(ctx, logits_adv, noise)
        C.report(ctx, "probe fgsm", 2, 3)
        r, r_adv = C.predict(ctx, recon), C.predict(ctx, recon_adv)
        correct = pred == y
        flipped = correct & (pred_adv != y)
        numbers = {
            "eps": o.eps,
            "images": len(x),
            "clean_accuracy": float(correct.float().mean()),
            "adversarial_accuracy": float((pred_adv == y).float().mean()),
            "attack_success": float(flipped.sum()) / max(int(correct.sum()), 1),
            "recon_adv_classified_as_adv_prediction": float((r_adv == pred_adv).float().mean()),
            "recon_adv_classified_as_true": float((r_adv == y).float().mean()),
            "recon_clean_classified_as_clean_prediction": float((r == pred).float().mean()),
            "recon_adv_rms_to_recon_clean": float(C.rms(recon_adv, recon).mean()),
            "adv_rms_to_clean": float(C.rms(x_adv, x).mean()),
        }
        if flipped.any():
            fl = flipped.nonzero().flatten()
            numbers["successful_attacks"] = int(len(fl))
            numbers["recon_adv_as_adv_prediction_when_attack_succeeds"] = float(
                (r_adv[fl] == pred_adv[fl]).float().mean()
            )
        # show successful attacks first
        order = torch.cat([flipped.nonzero().flatten(), (~flipped).nonzero().flatten()])[: o.show]
        save_rows([x[order], recon[order], x_adv[order], recon_adv[order]], ctx.out / "fgsm.png", scale=2)
        C.report(ctx, "probe fgsm", 3, 3)
        rows = [
            {
                "column": i,
                "true": t,
                "clean prediction": a,
                "adversarial prediction": b,
                "adv. reconstruction classified as": c,
            }
            for i, (t, a, b, c) in enumerate(
                zip(
                    _names(ctx, y[order]),
                    _names(ctx, pred[order]),
                    _names(ctx, pred_adv[order]),
                    _names(ctx, r_adv[order]),
                )
            )
        ]
        summary = (
            f"FGSM eps={o.eps} changes {100 * numbers['attack_success']:.0f}% of correct predictions; the "
            "reconstruction of the adversarial logits is classified as the adversarial prediction "
            f"{100 * numbers['recon_adv_classified_as_adv_prediction']:.0f}% of the time."
        )
        return C.finish(
            ctx,
            "fgsm",
            "fgsm",
            numbers,
            {"fgsm": "fgsm.png"},
            summary,
            {
                "fgsm": "rows: clean input, its reconstruction, FGSM input, its reconstruction "
                "(successful attacks first)."
            },
            tables=[("Labels", rows)],
        )
