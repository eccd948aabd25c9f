"""``misclassified`` and ``fgsm``: what the logits of wrongly classified and adversarial images look like.

* ``misclassified`` (paper Fig. 6, supplement Figs. 7-8): reconstructions of held-out images the classifier
  gets wrong. The paper reports that misclassified images are reconstructed faithfully, with no qualitative
  difference in fidelity from correctly classified ones. The probe measures exactly that: PSNR, SSIM and
  instance identification (among ``id_k`` scanned images of the same true class) of misclassified versus
  correctly classified originals, each group reconstructed the same way; plus the error rate and how often the
  reconstruction of a misclassified image is classified as the predicted versus the true label.
* ``fgsm`` (paper Fig. 7): FGSM adversarial images (Goodfellow et al. 2015, ``invkit.core.adversarial.fgsm``) with
  eps = 0.1 in [0, 1] pixel units, and reconstructions of the clean and adversarial logits. Numbers: clean
  accuracy, attack success (fraction of correctly classified images whose prediction the attack changes),
  and how often the adversarial reconstruction is classified as the adversarial prediction (the logits
  carry the attack into the image) or as the true label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.core.adversarial import fgsm
from invkit.data import take
from invkit.errors import InputError
from invkit.io import save_rows

from . import _common as C


def _names(ctx: ProbeContext, labels: torch.Tensor) -> list[str]:
    names = ctx.classifier.config.label_names
    return [names[i] if names and i < len(names) else str(i) for i in labels.tolist()]


@dataclass(frozen=True)
class MisclassifiedOptions:
    scan: int = 2000  # held-out images classified to find mistakes (all of --data when smaller)
    show: int = 16  # misclassified images in the figure (at most)
    compare: int = 200  # images per group (misclassified, correct) whose fidelity is measured (at most)
    id_k: int = 5  # candidates per instance identification (the original and id_k - 1 of its true class)


def _fidelity(
    ctx: ProbeContext, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor, k: int, seed: int
) -> tuple[dict[str, float | int], torch.Tensor]:
    """PSNR, SSIM and instance identification of the reconstructions of ``images[idx]``; also the reconstructions."""
    from invkit.evaluation.metrics import draw_distractors, identification_hits, psnr, ssim

    x = images[idx]
    recon = C.invert(ctx, C.logits_of(ctx, x))
    out: dict[str, float | int | None] = {
        "n": len(idx),
        "psnr": float(psnr(recon, x).clamp(max=100).mean()),
        "ssim": float(ssim(recon, x).mean()),
        "identification": None,  # when a class has fewer than 2 scanned images
    }
    if k >= 2:
        distractors = images[draw_distractors(labels.cpu(), idx.cpu(), k, seed)]
        out["identification"] = float(identification_hits(recon.cpu(), x.cpu(), distractors.cpu()).mean())
    return out, recon


class Misclassified(Probe):
    """Fidelity (PSNR, SSIM, identification) of reconstructions of misclassified vs correctly classified images
    (paper Fig. 6, supplement Figs. 7-8).

    Args:
        **options: fields of ``MisclassifiedOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            the classifier gets every scanned image right.
    """

    description = "fidelity of reconstructions of misclassified vs correctly classified images (Fig. 6)"

    options = MisclassifiedOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        images, labels = take(ctx.data, o.scan, seed=C.seed_from(ctx.generator), size=C.inverter_size(ctx))
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
        right = (pred == labels).nonzero().flatten()
        seed = C.seed_from(ctx.generator)
        # Candidates per identification: id_k, fewer when a class of the compared images has fewer scanned images.
        counts = torch.bincount(labels.cpu())
        compared = torch.cat([wrong[: o.compare], right[: o.compare]]).cpu()
        k = min(o.id_k, int(counts[labels.cpu()[compared]].min()))
        groups = {}
        recon_wrong = None
        for name, members in (("misclassified", wrong), ("correct", right)):
            if len(members) == 0:
                continue
            groups[name], recon = _fidelity(ctx, images, labels, members[: o.compare], k, seed)
            if name == "misclassified":
                recon_wrong = recon
        C.report(ctx, "probe misclassified", 1, 2)
        show = min(o.show, len(wrong))
        x, y, p = images[wrong[:show]], labels[wrong[:show]], pred[wrong[:show]]
        recon = recon_wrong[:show]
        r = C.predict(ctx, recon_wrong)
        r_show = r[:show]
        C.report(ctx, "probe misclassified", 2, 2)
        save_rows([x, recon], ctx.out / "misclassified.png", scale=2)
        numbers = {
            "scanned": len(images),
            "misclassified": len(wrong),
            "error_rate": len(wrong) / len(images),
            "fidelity": groups,
            "id_k": k,
            "recon_classified_as_predicted": float((r == pred[wrong[: o.compare]]).float().mean()),
            "recon_classified_as_true": float((r == labels[wrong[: o.compare]]).float().mean()),
        }
        if "correct" in groups:
            g, c = groups["misclassified"], groups["correct"]
            numbers["psnr_misclassified_minus_correct"] = g["psnr"] - c["psnr"]
            numbers["ssim_misclassified_minus_correct"] = g["ssim"] - c["ssim"]
            if g["identification"] is not None and c["identification"] is not None:
                numbers["identification_misclassified_minus_correct"] = g["identification"] - c["identification"]
        rows = [
            {"column": i, "true": t, "predicted": q, "reconstruction classified as": s}
            for i, (t, q, s) in enumerate(zip(_names(ctx, y), _names(ctx, p), _names(ctx, r_show)))
        ]
        fidelity_rows = [{"originals": name} | g for name, g in groups.items()]
        g = groups["misclassified"]

        def ident(group: dict) -> str:
            return "n/a" if group["identification"] is None else f"{group['identification']:.2f}"

        summary = (
            f"{len(wrong)} of {len(images)} images misclassified. Fidelity of their reconstructions: PSNR "
            f"{g['psnr']:.2f} dB, SSIM {g['ssim']:.3f}, identification {ident(g)} (k={k})"
        )
        if "correct" in groups:
            c = groups["correct"]
            summary += (
                f"; correctly classified: {c['psnr']:.2f} dB, {c['ssim']:.3f}, {ident(c)}. "
                "(The paper: misclassified images are reconstructed as faithfully as correct ones.)"
            )
        summary += (
            f" Reconstructions of misclassified images are classified as the predicted label "
            f"{100 * numbers['recon_classified_as_predicted']:.0f}% of the time, as the true label "
            f"{100 * numbers['recon_classified_as_true']:.0f}%."
        )
        return C.finish(
            "misclassified",
            numbers,
            {"misclassified": "misclassified.png"},
            summary,
            {
                "misclassified": "top: misclassified held-out images; bottom: reconstructions "
                "of their logits. Labels per column in the table."
            },
            tables=[("Fidelity: misclassified vs correctly classified originals", fidelity_rows), ("Labels", rows)],
        )


@dataclass(frozen=True)
class FGSMOptions:
    eps: float = 0.1  # FGSM step in [0, 1] pixel units (the paper's 0.1)
    show: int = 12  # columns in the figure
    other_classifier: str = ""  # a second classifier (name or checkpoint folder): also report on images whose
    # attack succeeds on both (Fig. 7: attacked successfully on the robust and the standard classifier)


def _load_classifier(spec: str, device: torch.device) -> Any:
    import invkit

    # the one spec resolution of every command: names, folders, demo:NAME, hf-hub:..., and the warning for a
    # classifier without trained weights
    return invkit.resolve_classifier(spec).to(device).eval()


class FGSM(Probe):
    """FGSM adversarial images (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
    ICLR 2015) and what the reconstructions of their logits are classified as (paper Fig. 7).

    Args:
        **options: fields of ``FGSMOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            ``other_classifier`` has another number of classes.
    """

    description = "FGSM eps=0.1 adversarial inputs and their reconstructions with labels (Fig. 7)"

    options = FGSMOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
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
        if o.other_classifier:
            other = _load_classifier(o.other_classifier, ctx.device)
            if other.num_classes != ctx.classifier.num_classes:
                raise InputError(
                    f"fgsm: other_classifier {other.name} has {other.num_classes} classes, "
                    f"{ctx.classifier.name} {ctx.classifier.num_classes}; give one for the same labels."
                )
            x_adv_other = fgsm(other, x, y, eps=o.eps)
            with torch.no_grad():
                other_pred = other.logits(x).argmax(1)
                other_adv = other.logits(x_adv_other).argmax(1)
            both = flipped & (other_pred == y) & (other_adv != y)
            sub = both.nonzero().flatten()
            numbers["other_classifier"] = other.name
            numbers["other_attack_success"] = float(((other_pred == y) & (other_adv != y)).sum()) / max(
                int((other_pred == y).sum()), 1
            )
            numbers["both_attacked"] = {"images": int(len(sub))}
            if len(sub):
                numbers["both_attacked"] |= {
                    "recon_adv_classified_as_adv_prediction": float((r_adv[sub] == pred_adv[sub]).float().mean()),
                    "recon_adv_classified_as_true": float((r_adv[sub] == y[sub]).float().mean()),
                    "recon_adv_rms_to_recon_clean": float(C.rms(recon_adv[sub], recon[sub]).mean()),
                }
            flipped = both  # the figure shows the images attacked successfully on both first
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
