"""``iterative-stability``: does the classifier give a reconstruction the same class as its original?

Supplement §5. Reconstruct held-out images from their logits, classify the reconstructions, and count how
often the predicted class is identical to the original's predicted class, split by whether the original was
classified correctly (``invkit.evaluation.metrics.classifier_agreement``). With ``rounds`` > 1 the reconstruction is
inverted again from its own logits, and the agreement with the original's prediction is reported after each
round. The paper reports, on ImageNet with 1000 classes: robust 54% (correct) / 35% (incorrect), standard
49.3% / 29.9%. The first round's three proportions get Wilson 95% intervals with their n (``intervals`` in the
numbers; ``invkit.evaluation.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.data import stack_images
from invkit.errors import InputError
from invkit.evaluation.metrics import classifier_agreement, classifier_agreement_per_image
from invkit.evaluation.stats import intervals
from invkit.io import save_curves, save_rows

from . import _common as C

PAPER_IMAGENET = {"robust": {"correct": 0.54, "incorrect": 0.35}, "standard": {"correct": 0.493, "incorrect": 0.299}}


@dataclass(frozen=True)
class StabilityOptions:
    rounds: int = 3  # invert -> classify -> invert ... rounds
    images: int = 1000  # held-out images (misclassified ones are rare); 0: --num-images
    show: int = 12  # columns in the figure
    classes: int = 0  # >0: draw `images` from this many random classes, an equal number each (paper: 500 from 50)


def load_from_classes(ctx: ProbeContext, n: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` target images from ``classes`` classes drawn at random (all when the data has fewer), ``n // classes``
    per class drawn at random: the paper's sampling (500 images from 50 ImageNet classes). Seeded by ctx.generator.

    Raises:
        InputError: a drawn class has fewer than ``n // classes`` images.
    """
    labels = torch.tensor(
        ctx.data.labels() if hasattr(ctx.data, "labels") else [ctx.data[i][1] for i in range(len(ctx.data))]
    )
    present = labels.unique()
    chosen = present[torch.randperm(len(present), generator=ctx.generator)[:classes]].sort().values
    per = max(1, n // len(chosen))
    idx = []
    for c in chosen.tolist():
        members = (labels == c).nonzero().flatten()
        if len(members) < per:
            raise InputError(
                f"iterative-stability: class {c} has {len(members)} images, fewer than {per} per class; "
                "lower --option images=N or give more --data."
            )
        idx += members[torch.randperm(len(members), generator=ctx.generator)[:per]].tolist()
    x, y = stack_images(ctx.data, idx, C.inverter_size(ctx))  # one at a time, each resized on its own
    return C.to_inverter_shape(ctx, x), y


class IterativeStability(Probe):
    """How often a reconstruction (and the reconstruction of its reconstruction, per round) gets the original's
    predicted class, split by correct and incorrect originals (supplement §5).

    Args:
        **options: fields of ``StabilityOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            with ``classes`` > 0, a drawn class has too few images.
    """

    description = "re-classify reconstructions; % identical, split by correct/incorrect originals (supp. §5)"

    options = StabilityOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        if o.classes > 0:
            x, y = load_from_classes(ctx, o.images or ctx.num_images, o.classes)
        else:
            x, y = C.load_images(ctx, o.images or None)
        y = y.to(ctx.device)
        logits0 = C.logits_of(ctx, x)
        rows, per_round, current = [x], [], logits0
        first_logits = logits0
        for k in range(max(o.rounds, 1)):
            C.report(ctx, "probe iterative-stability", k, o.rounds)
            recon = C.invert(ctx, current)
            current = C.logits_of(ctx, recon)
            if k == 0:
                first_logits = current  # the headline numbers are the first round's
            rows.append(recon)
            agreement = classifier_agreement(current, logits0, y)
            per_round.append({k2: v for k2, v in agreement.items() if v is not None})
        C.report(ctx, "probe iterative-stability", o.rounds, o.rounds)
        first = per_round[0]
        key = "robust" if getattr(ctx.classifier.config, "robust", False) else "standard"

        def split(d: dict) -> dict:
            return {g: d.get(f"top1_agreement_{g}") for g in ("correct", "incorrect") if f"top1_agreement_{g}" in d}

        numbers = {
            "identical_correct": first.get("top1_agreement_correct"),
            "identical_incorrect": first.get("top1_agreement_incorrect"),
            "identical_all": first["top1_agreement"],
            "logit_cosine": first["logit_cosine"],
            "accuracy": first["accuracy"],
            "n_correct": first["n_correct"],
            "n_incorrect": first["n_incorrect"],
            "per_round": [split(d) | {"all": d["top1_agreement"]} for d in per_round],
            "images": len(x),
            "classes_drawn": int(y.unique().numel()),
            "paper_imagenet": PAPER_IMAGENET[key],
            "paper_imagenet_classifier": key,
        }
        numbers = {k: v for k, v in numbers.items() if v is not None}
        # Wilson 95% intervals of the first round's proportions (0/1 per image; invkit.evaluation.stats), with their n
        per_image = classifier_agreement_per_image(first_logits, logits0, y)
        names = {"identical_all": "", "identical_correct": "_correct", "identical_incorrect": "_incorrect"}
        found = intervals({k: per_image[f"top1_agreement{s}"] for k, s in names.items()})
        numbers["intervals"] = {k: iv.as_dict() for k, iv in found.items()}
        n = min(o.show, len(x))
        save_rows([r[:n] for r in rows], ctx.out / "rounds.png", scale=2)
        save_curves(
            ctx.out / "per_round.png",
            list(range(1, len(per_round) + 1)),
            {
                g: [d.get(f"top1_agreement{s}", 0.0) for d in per_round]
                for g, s in (("all", ""), ("correct originals", "_correct"), ("incorrect originals", "_incorrect"))
                if f"top1_agreement{s}" in per_round[0]
            },
            xlabel="round (invert, classify)",
            ylabel="same class as original",
            title="iterative stability",
        )
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731

        def pct_ci(key: str) -> str:  # 54.0% [48.1%, 59.8%] (n=300)
            iv = numbers["intervals"].get(key)
            ci = f" [{pct(iv['low'])}, {pct(iv['high'])}] (n={iv['n']})" if iv else ""
            return pct(numbers.get(key)) + ci

        summary = (
            f"Reconstructions keep the original's predicted class for {pct_ci('identical_correct')}"
            f" of correctly and {pct_ci('identical_incorrect')} of incorrectly classified images, with 95% Wilson "
            "intervals "
            f"(paper, ImageNet, {key}: {100 * PAPER_IMAGENET[key]['correct']:.1f}% / "
            f"{100 * PAPER_IMAGENET[key]['incorrect']:.1f}%)."
        )
        table = [
            {
                "": "this run",
                "correct": pct_ci("identical_correct"),
                "incorrect": pct_ci("identical_incorrect"),
            }
        ] + [
            {"": f"paper ImageNet {k}", "correct": pct(v["correct"]), "incorrect": pct(v["incorrect"])}
            for k, v in PAPER_IMAGENET.items()
        ]
        return C.finish(
            "iterative-stability",
            numbers,
            {"rounds": "rounds.png", "per round": "per_round.png"},
            summary,
            {
                "rounds": "top: held-out images; each further row: one more round of invert and re-classify.",
                "per round": "fraction whose predicted class equals the original's, after each round.",
            },
            tables=[("Beside the paper (supplement §5, ImageNet)", table)],
        )
