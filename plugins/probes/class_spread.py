"""``class-spread``: how tightly do a class's logit vectors cluster? (paper §5.5)

For up to ``classes`` random classes (10 in the paper) with at least two held-out images each, the mean
L2 distance of each image's logit vector to its class's mean logit vector, averaged over the classes. The
paper reports 42.33 for a standard and 43.78 for a robust ResNet-152 on ImageNet; logit scales differ between
models and data sets, so the probe also reports the spread divided by the mean L2 norm of the class means
(``relative_spread``). The figure shows the reconstruction of each class's mean logit vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.data import take
from invkit.errors import InputError
from invkit.io import save_curves, save_grid

from . import _common as C

PAPER_IMAGENET = {"standard": 42.33, "robust": 43.78}


def class_spread(logits: torch.Tensor, labels: torch.Tensor) -> dict[int, float]:
    """Per class: mean L2 distance of that class's logit vectors to their mean."""
    out = {}
    for c in labels.unique().tolist():
        z = logits[labels == c]
        out[int(c)] = float((z - z.mean(0)).norm(dim=1).mean())
    return out


@dataclass(frozen=True)
class ClassSpreadOptions:
    classes: int = 10  # random classes (the paper's 10)
    per_class: int = 50  # held-out images per class (fewer if the data has fewer)


class ClassSpread(Probe):
    """Mean L2 distance of logit vectors to their class's mean logit vector, and reconstructions of the class means
    (paper §5.5).

    Args:
        **options: fields of ``ClassSpreadOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            the data yields fewer than two images.
    """

    description = "mean L2 distance of logits to their class mean over 10 random classes (§5.5)"

    options = ClassSpreadOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        labels_all = torch.tensor(
            ctx.data.labels() if hasattr(ctx.data, "labels") else [ctx.data[i][1] for i in range(len(ctx.data))]
        )
        present = labels_all.unique()
        chosen = present[torch.randperm(len(present), generator=ctx.generator)[: o.classes]].sort().values
        members = [(labels_all == c).nonzero().flatten() for c in chosen]
        idx = torch.cat([m[torch.randperm(len(m), generator=ctx.generator)[: o.per_class]] for m in members])
        subset = torch.utils.data.Subset(ctx.data, idx.tolist())
        x, y = take(subset, None, size=C.inverter_size(ctx))
        if len(x) < 2:
            raise InputError("class-spread needs at least two held-out images per class in --data.")
        C.report(ctx, "probe class-spread", 0, 2)
        logits = C.logits_of(ctx, C.to_inverter_shape(ctx, x)).double()  # the image the inverter reconstructs
        y = y.to(logits.device)
        spread = {c: s for c, s in class_spread(logits, y).items() if int((y == c).sum()) > 1}
        means = torch.stack([logits[y == c].mean(0) for c in spread])
        mean_spread = sum(spread.values()) / len(spread)
        recon = C.invert(ctx, means.float())
        C.report(ctx, "probe class-spread", 2, 2)
        save_grid(recon, ctx.out / "class_means.png", nrow=len(spread), scale=2)
        save_curves(
            ctx.out / "spread.png",
            list(spread),
            {"spread": list(spread.values())},
            xlabel="class",
            ylabel="mean L2 distance to class mean",
            title="class spread",
        )
        key = "robust" if getattr(ctx.classifier.config, "robust", False) else "standard"
        numbers = {
            "class_spread": mean_spread,
            "relative_spread": mean_spread / float(means.norm(dim=1).mean()),
            "per_class": {str(c): s for c, s in spread.items()},
            "classes": len(spread),
            "images": len(x),
            "paper_imagenet": PAPER_IMAGENET,
            "paper_imagenet_classifier": key,
        }
        summary = (
            f"Logits lie {mean_spread:.3g} (L2) from their class mean on average over {len(spread)} classes "
            f"({numbers['relative_spread']:.2f}x the class-mean norm); paper, ImageNet: standard 42.33, "
            "robust 43.78."
        )
        return C.finish(
            "class-spread",
            numbers,
            {"class means": "class_means.png", "spread": "spread.png"},
            summary,
            {
                "class means": "reconstructions of each class's mean logit vector.",
                "spread": "per-class mean L2 distance of logits to the class mean.",
            },
        )
