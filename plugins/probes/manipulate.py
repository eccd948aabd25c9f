"""``logit-shift``, ``logit-scale`` and ``logit-perturb``: manipulate the logits, measure the reconstructions.

Paper Fig. 8. Softmax ignores a constant added to every logit, and an argmax ignores a positive scale, so
the classifier's decision does not change; the reconstructions still do. For each manipulation level the
probe reconstructs the same held-out images (same noise throughout) and measures brightness (mean
intensity), contrast (std of intensity) and sharpness (mean gradient magnitude) of the reconstructions; see
``_common``. Numbers: each measure per level, its least-squares slope against the level, and how often the
reconstruction is still classified as the original's predicted class.

* ``logit-shift``: ``logits + s``; ``s`` from -0.30 to 0.30 for a robust classifier, -0.1 to 0.1 for a standard
  one (``ClassifierConfig.robust``), as in the paper.
* ``logit-scale``: ``logits * 10^e``, ``e`` from -0.3 to 0.3.
* ``logit-perturb``: ``logits + N(0, var)`` i.i.d. per logit, ``var`` = 0.55 in the paper; the sweep also shows
  smaller and larger variances, and the numbers are changes relative to the unperturbed reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.io import save_curves, save_grid

from . import _common as C


@dataclass(frozen=True)
class ShiftOptions:
    low: float | None = None  # smallest shift; None: -0.30 for robust classifiers, -0.1 for standard ones
    high: float | None = None  # largest shift; None: 0.30 robust, 0.1 standard
    levels: int = 7  # evenly spaced shifts from low to high
    images: int = 32  # held-out images measured at every level
    rows: int = 6  # of which shown in the figure


@dataclass(frozen=True)
class ScaleOptions:
    low: float = -0.3  # smallest log10 scale factor (10^-0.3 = 0.5)
    high: float = 0.3  # largest log10 scale factor (10^0.3 = 2.0)
    levels: int = 7  # evenly spaced exponents
    images: int = 32
    rows: int = 6


@dataclass(frozen=True)
class PerturbOptions:
    variances: tuple[float, ...] = (0.0, 0.1375, 0.275, 0.55, 1.1)  # Gaussian variances; the paper's is 0.55
    draws: int = 4  # perturbations per image and variance
    images: int = 32
    rows: int = 6


def _measure_levels(
    ctx: ProbeContext, name: str, levels: list[float], apply, images: int, rows: int, draws: int = 1
) -> tuple[dict, list[torch.Tensor], torch.Tensor]:
    C.require_logit_space(ctx, name)  # shifts, scales and noise on logits mean nothing through probs or labels
    x, _ = C.load_images(ctx, images)
    logits = C.logits_of(ctx, x)
    pred = logits.argmax(1)
    noise = C.sample_noise(ctx, len(x))
    per_level = {m: [] for m in (*C.MEASURES, "laplacian_variance", "class_kept", "rms_to_unchanged")}
    base = C.invert(ctx, logits, noise)
    shown = []
    for k, level in enumerate(levels):
        C.report(ctx, f"probe {name}", k, len(levels))
        vals = {m: [] for m in per_level}
        for d in range(draws):
            recon = C.invert(ctx, apply(logits, level), noise)
            if d == 0:
                shown.append(recon[:rows])
            for m, fn in C.MEASURES.items():
                vals[m].append(float(fn(recon).mean()))
            vals["laplacian_variance"].append(float(C.laplacian_variance(recon).mean()))
            vals["class_kept"].append(float((C.predict(ctx, recon) == pred).float().mean()))
            vals["rms_to_unchanged"].append(float(C.rms(recon, base).mean()))
        for m in per_level:
            per_level[m].append(sum(vals[m]) / len(vals[m]))
    C.report(ctx, f"probe {name}", len(levels), len(levels))
    return per_level, shown, C.to_inverter_shape(ctx, x[:rows])


def _write(
    ctx: ProbeContext,
    name: str,
    xlabel: str,
    levels: list[float],
    per_level: dict,
    shown: list[torch.Tensor],
    originals: torch.Tensor,
    caption: str,
    extra: dict,
) -> ProbeResult:
    # figure: one row per image, one column per level, the original first
    cols = [originals] + shown
    grid = torch.stack(cols, dim=1).flatten(0, 1)
    save_grid(grid, ctx.out / "reconstructions.png", nrow=len(cols), scale=2)
    mid = min(range(len(levels)), key=lambda i: abs(levels[i] - extra.get("neutral", 0.0)))
    rel = {m: [v / per_level[m][mid] if per_level[m][mid] else 0.0 for v in per_level[m]] for m in C.MEASURES}
    save_curves(
        ctx.out / "measures.png",
        levels,
        rel,
        xlabel=xlabel,
        ylabel="relative to unmanipulated",
        title=f"{name}: reconstruction measures",
    )
    numbers = {
        "levels": levels,
        "measures": per_level,
        "slopes": {m: C.fit_slope(levels, per_level[m]) for m in (*C.MEASURES, "laplacian_variance")},
        **{k: v for k, v in extra.items() if k != "neutral"},
    }
    s = numbers["slopes"]
    summary = (
        f"Against {xlabel}: brightness slope {s['brightness']:+.3g}, contrast slope {s['contrast']:+.3g}, "
        f"sharpness slope {s['sharpness']:+.3g}; the reconstruction keeps the original's class in "
        f"{100 * min(per_level['class_kept']):.0f}-{100 * max(per_level['class_kept']):.0f}% of images."
    )
    table = [{"level": lv, **{m: per_level[m][i] for m in per_level}} for i, lv in enumerate(levels)]
    return C.finish(
        name,
        numbers,
        {"reconstructions": "reconstructions.png", "measures": "measures.png"},
        summary,
        {
            "reconstructions": caption,
            "measures": "brightness = mean intensity, contrast = "
            "std of intensity, sharpness = mean gradient magnitude; each divided by its value "
            "without manipulation.",
        },
        tables=[("Per level", table)],
    )


def _linspace(low: float, high: float, n: int) -> list[float]:
    return [float(v) for v in torch.linspace(low, high, max(n, 2)).tolist()]


class LogitShift(Probe):
    """Brightness, contrast and sharpness of reconstructions of ``logits + s`` over a range of shifts ``s``
    (paper Fig. 8).

    Args:
        **options: fields of ``ShiftOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "add a constant to every logit (Fig. 8); brightness/contrast/sharpness of reconstructions"

    options = ShiftOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        robust = bool(getattr(ctx.classifier.config, "robust", False))
        span = 0.30 if robust else 0.1
        levels = _linspace(-span if o.low is None else o.low, span if o.high is None else o.high, o.levels)
        per_level, shown, orig = _measure_levels(ctx, "logit-shift", levels, lambda z, s: z + s, o.images, o.rows)
        return _write(
            ctx,
            "logit-shift",
            "logit shift s (logits + s)",
            levels,
            per_level,
            shown,
            orig,
            "first column: held-out image; then reconstructions of logits + s for each shift s.",
            {"robust_classifier": robust, "images": o.images},
        )


class LogitScale(Probe):
    """Brightness, contrast and sharpness of reconstructions of ``logits * 10^e`` over a range of exponents ``e``
    (paper Fig. 8).

    Args:
        **options: fields of ``ScaleOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "multiply the logits by 10^e, e in [-0.3, 0.3] (Fig. 8); measures of reconstructions"

    options = ScaleOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        levels = _linspace(o.low, o.high, o.levels)
        per_level, shown, orig = _measure_levels(ctx, "logit-scale", levels, lambda z, e: z * 10.0**e, o.images, o.rows)
        return _write(
            ctx,
            "logit-scale",
            "log10 of the scale factor (logits * 10^e)",
            levels,
            per_level,
            shown,
            orig,
            "first column: held-out image; then reconstructions of logits * 10^e.",
            {"images": o.images},
        )


class LogitPerturb(Probe):
    """Change in brightness, contrast and sharpness of reconstructions when i.i.d. Gaussian noise is added to the
    logits (paper Fig. 8, variance 0.55).

    Args:
        **options: fields of ``PerturbOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "i.i.d. Gaussian noise on the logits, variance 0.55 (Fig. 8); measures of reconstructions"

    options = PerturbOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        levels = [float(v) for v in o.variances]
        gen = ctx.generator

        def perturb(z: torch.Tensor, var: float) -> torch.Tensor:
            return z + var**0.5 * torch.randn(z.shape, generator=gen).to(z.device)

        per_level, shown, orig = _measure_levels(ctx, "logit-perturb", levels, perturb, o.images, o.rows, o.draws)
        extra = {"images": o.images, "draws": o.draws}
        if 0.55 in levels:
            i = levels.index(0.55)
            extra["at_variance_0.55"] = {m: per_level[m][i] for m in per_level}
        return _write(
            ctx,
            "logit-perturb",
            "variance of the Gaussian added to the logits",
            levels,
            per_level,
            shown,
            orig,
            "first column: held-out image; then one perturbed reconstruction per variance "
            "(the first column of reconstructions is unperturbed when 0 is in the sweep).",
            extra,
        )
