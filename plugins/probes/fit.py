"""``brightness-fit`` and ``sharpness-fit``: which logit shift or scale mimics an image brightness/sharpness change?

Supplement §6, Figs. 9-16. For each enhancement factor ``f`` (PIL ``ImageEnhance.Brightness`` /
``ImageEnhance.Sharpness`` semantics, implemented in torch in ``_common``; ``f`` = 1 leaves the image as is):

**The supplement's quantities (the headline numbers).** Per image, in logit space, with ``z = classifier(x)``
and ``z_f = classifier(enhance(x, f))``, two separate least-squares fits over the classes:

* ``logits_original = logits_adjusted + shift``:  ``shift = mean_k (z - z_f)``
* ``logits_original = logits_adjusted x scale``:  ``scale = <z, z_f> / <z_f, z_f>``

reported per factor as ``logit_shift`` and ``logit_scale`` (mean and standard deviation over the images) in
results.json and in the figures ``logit_shift.png`` / ``logit_scale.png``. They need no inverter.

**Reconstruction view (extra).** The probe also reconstructs the enhanced images,
``target = inverter(classifier(enhance(x, f)))``, and searches a grid of logit shifts (``logits + s``) and
scales (``logits * 10^e``) of the *original* logits for the one whose reconstructions are closest to ``target``,
the noise held fixed: ``*_pixels`` (smallest mean RMS pixel distance) and ``*_measure`` (closest mean brightness
= mean intensity, or sharpness = mean gradient magnitude). Curves: ``best_shift.png``, ``best_scale.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.io import save_curves, save_rows

from . import _common as C


@dataclass(frozen=True)
class FitOptions:
    factors: tuple[float, ...] = ()  # enhancement factors; () uses the probe's defaults
    shift_low: float = -1.0  # logit shift grid
    shift_high: float = 1.0
    scale_low: float = -0.5  # log10 scale grid
    scale_high: float = 0.5
    grid: int = 21  # points per grid
    images: int = 32  # held-out images


def logit_shift_and_scale(original: torch.Tensor, adjusted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The supplement's per-image fits (§6): ``original ≈ adjusted + shift`` and, separately,
    ``original ≈ adjusted * scale``, each by least squares over the classes.

    Args:
        original: ``(N, K)`` logits of the original images.
        adjusted: ``(N, K)`` logits of the brightness/sharpness-adjusted images.

    Returns:
        ``(shift, scale)``, each ``(N,)``: ``mean(original - adjusted)`` and
        ``<original, adjusted> / <adjusted, adjusted>`` (0 where ``adjusted`` is all zeros).
    """
    original, adjusted = original.double(), adjusted.double()
    shift = (original - adjusted).mean(1)
    norm = adjusted.square().sum(1)
    scale = torch.where(norm > 0, (original * adjusted).sum(1) / norm.clamp_min(1e-300), torch.zeros_like(norm))
    return shift, scale


def _spread(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0}


class _Fit(Probe):
    """What ``brightness-fit`` and ``sharpness-fit`` share (module docstring); subclasses set ``kind``."""

    kind = ""  # "brightness" or "sharpness"
    default_factors: tuple[float, ...] = ()

    options = FitOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    @property
    def probe_name(self) -> str:
        return f"{self.kind}-fit"

    def enhance(self, images: torch.Tensor, factor: float) -> torch.Tensor:
        fn = C.enhance_brightness if self.kind == "brightness" else C.enhance_sharpness
        return fn(images, factor)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        C.require_logit_space(ctx, self.probe_name)  # it searches shifts and scales of the logits
        factors = [float(f) for f in (o.factors or self.default_factors)]
        measure = C.MEASURES[self.kind]
        x, _ = C.load_images(ctx, o.images)
        logits = C.logits_of(ctx, x)
        noise = C.sample_noise(ctx, len(x))
        shifts = torch.linspace(o.shift_low, o.shift_high, o.grid).tolist()
        exps = torch.linspace(o.scale_low, o.scale_high, o.grid).tolist()
        total = len(shifts) + len(exps) + len(factors)
        done = 0
        grid = {}
        for name, values, apply in (("shift", shifts, lambda z, s: z + s), ("scale", exps, lambda z, e: z * 10.0**e)):
            recons = []
            for v in values:
                recons.append(C.invert(ctx, apply(logits, v), noise))
                done += 1
                C.report(ctx, f"probe {self.probe_name}", done, total)
            grid[name] = (values, recons, [float(measure(r).mean()) for r in recons])
        base = C.invert(ctx, logits, noise)
        rows, targets, fits = [], [], {"shift": [], "scale": []}
        for f in factors:
            xf = self.enhance(x, f)
            lf = C.logits_of(ctx, xf)
            target = C.invert(ctx, lf, noise)
            targets.append((xf[:1], target[:1]))
            t_measure = float(measure(target).mean())
            shift, scale = logit_shift_and_scale(logits, lf)
            sh, sc = _spread(shift), _spread(scale)
            row = {
                "factor": f,
                "logit_shift_mean": sh["mean"],
                "logit_shift_std": sh["std"],
                "logit_scale_mean": sc["mean"],
                "logit_scale_std": sc["std"],
                f"target_{self.kind}": t_measure,
            }
            for name, (values, recons, measures) in grid.items():
                dist = [float(C.rms(r, target).mean()) for r in recons]
                i_pix = min(range(len(values)), key=dist.__getitem__)
                i_mea = min(range(len(values)), key=lambda i: abs(measures[i] - t_measure))
                conv = (lambda v: v) if name == "shift" else (lambda v: 10.0**v)  # noqa: E731
                row[f"best_{name}_pixels"] = conv(values[i_pix])
                row[f"best_{name}_measure"] = conv(values[i_mea])
                row[f"rms_at_best_{name}"] = dist[i_pix]
                fits[name].append(recons[i_pix][:1])
            row["rms_unmanipulated"] = float(C.rms(base, target).mean())
            rows.append(row)
            done += 1
            C.report(ctx, f"probe {self.probe_name}", done, total)
        save_curves(
            ctx.out / "best_shift.png",
            factors,
            {
                "pixels": [r["best_shift_pixels"] for r in rows],
                self.kind: [r["best_shift_measure"] for r in rows],
            },
            xlabel=f"{self.kind} factor",
            ylabel="best-fit logit shift",
            title=f"{self.probe_name}: reconstruction grid search, shift",
        )
        for q in ("shift", "scale"):
            mean = [r[f"logit_{q}_mean"] for r in rows]
            std = [r[f"logit_{q}_std"] for r in rows]
            save_curves(
                ctx.out / f"logit_{q}.png",
                factors,
                {
                    "mean": mean,
                    "mean - std": [m - s for m, s in zip(mean, std)],
                    "mean + std": [m + s for m, s in zip(mean, std)],
                },
                xlabel=f"{self.kind} factor",
                ylabel=f"{q}: original = adjusted {'+' if q == 'shift' else 'x'} {q}",
                title=f"{self.probe_name}: per-image logit-space {q} (supplement §6)",
            )
        save_curves(
            ctx.out / "best_scale.png",
            factors,
            {
                "pixels": [r["best_scale_pixels"] for r in rows],
                self.kind: [r["best_scale_measure"] for r in rows],
            },
            xlabel=f"{self.kind} factor",
            ylabel="best-fit logit scale",
            title=f"{self.probe_name}: reconstruction grid search, scale",
        )
        save_rows(
            [
                torch.cat([t[0] for t in targets]),
                torch.cat([t[1] for t in targets]),
                torch.cat(fits["shift"]),
                torch.cat(fits["scale"]),
            ],
            ctx.out / "examples.png",
            scale=2,
        )
        numbers = {
            "factors": factors,
            "logit_shift": [
                {"factor": r["factor"], "mean": r["logit_shift_mean"], "std": r["logit_shift_std"]} for r in rows
            ],
            "logit_scale": [
                {"factor": r["factor"], "mean": r["logit_scale_mean"], "std": r["logit_scale_std"]} for r in rows
            ],
            "per_factor": rows,
            "slope_best_shift_vs_factor": C.fit_slope(factors, [r["best_shift_pixels"] for r in rows]),
            "slope_best_log10_scale_vs_factor": C.fit_slope(
                factors, [math.log10(r["best_scale_pixels"]) for r in rows]
            ),
            "slope_logit_shift_vs_factor": C.fit_slope(factors, [r["logit_shift_mean"] for r in rows]),
            "slope_logit_scale_vs_factor": C.fit_slope(factors, [r["logit_scale_mean"] for r in rows]),
            "grid": {
                "shift": [o.shift_low, o.shift_high],
                "log10_scale": [o.scale_low, o.scale_high],
                "points": o.grid,
            },
            "images": len(x),
        }
        lo, hi = rows[0], rows[-1]
        summary = (
            f"Per image in logit space (supplement §6), logits_original = logits_adjusted + shift gives mean shift "
            f"{lo['logit_shift_mean']:+.3g} at {self.kind} factor {lo['factor']:g} and {hi['logit_shift_mean']:+.3g} "
            f"at {hi['factor']:g}; logits_original = logits_adjusted x scale gives mean scale "
            f"{lo['logit_scale_mean']:.3g} and {hi['logit_scale_mean']:.3g}. Reconstruction grid search (extra): "
            f"best shift slope {numbers['slope_best_shift_vs_factor']:+.3g} per unit factor."
        )
        return C.finish(
            self.probe_name,
            numbers,
            {
                "logit shift (supplement)": "logit_shift.png",
                "logit scale (supplement)": "logit_scale.png",
                "best shift (reconstructions)": "best_shift.png",
                "best scale (reconstructions)": "best_scale.png",
                "examples": "examples.png",
            },
            summary,
            {
                "examples": f"columns: {self.kind} factors {', '.join(f'{f:g}' for f in factors)}."
                " Rows: enhanced input, its reconstruction, best-shift reconstruction"
                " of the original logits, best-scale reconstruction."
            },
            tables=[("Per factor", rows)],
        )


class BrightnessFit(_Fit):
    """The logit shift and scale that mimic an image brightness change (PIL ``ImageEnhance.Brightness`` factors),
    in logit space and by reconstruction (supplement §6, Figs. 9-16).

    Args:
        **options: fields of ``FitOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    kind = "brightness"
    default_factors = (0.5, 0.75, 1.0, 1.25, 1.5)
    description = "best-fit logit shift/scale against image brightness factors (supp. §6, Figs. 9-16)"


class SharpnessFit(_Fit):
    """The logit shift and scale that mimic an image sharpness change (PIL ``ImageEnhance.Sharpness`` factors),
    in logit space and by reconstruction (supplement §6, Figs. 9-16).

    Args:
        **options: fields of ``FitOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    kind = "sharpness"
    default_factors = (0.0, 0.5, 1.0, 2.0, 4.0)
    description = "best-fit logit shift/scale against image sharpness factors (supp. §6, Figs. 9-16)"
