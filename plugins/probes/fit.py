"""``brightness-fit`` and ``sharpness-fit``: which logit shift or scale mimics an image brightness/sharpness change?

Supplement §6, Figs. 9-16. For each enhancement factor ``f`` (PIL ``ImageEnhance.Brightness`` /
``ImageEnhance.Sharpness`` semantics, implemented in torch in ``_common``; ``f`` = 1 leaves the image as is)
the probe reconstructs the enhanced images, ``target = inverter(classifier(enhance(x, f)))``, and searches a
grid of logit shifts (``logits + s``) and scales (``logits * 10^e``) of the *original* logits for the one whose
reconstructions are closest to ``target``, the noise held fixed:

* ``*_pixels``: smallest mean RMS pixel distance to the target reconstructions;
* ``*_measure``: closest mean measure (brightness = mean intensity for ``brightness-fit``, sharpness = mean
  gradient magnitude for ``sharpness-fit``).

Beside the grid search it reports the least-squares fit in logit space, ``classifier(enhance(x, f)) ≈
a * classifier(x) + b`` per image (mean ``a`` and ``b``), which needs no inverter. Curves: best shift and best
scale against ``f``; a table per factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.figures import save_curves, save_rows

from . import _common as C


@dataclass(frozen=True)
class FitOptions:
    factors: tuple = ()  # enhancement factors; () uses the probe's defaults
    shift_low: float = -1.0  # logit shift grid
    shift_high: float = 1.0
    scale_low: float = -0.5  # log10 scale grid
    scale_high: float = 0.5
    grid: int = 21  # points per grid
    images: int = 32  # held-out images


def _logit_space_fit(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean over images of the least-squares (scale, shift) with b ≈ scale * a + shift."""
    ac = a - a.mean(1, keepdim=True)
    scale = (ac * (b - b.mean(1, keepdim=True))).sum(1) / ac.square().sum(1).clamp_min(1e-12)
    shift = b.mean(1) - scale * a.mean(1)
    return float(scale.mean()), float(shift.mean())


class _Fit(Probe):
    kind = ""  # "brightness" or "sharpness"
    default_factors: tuple = ()

    def __init__(self, **options):
        self.options = C.resolve_options(self.probe_name, FitOptions(), options)

    @property
    def probe_name(self) -> str:
        return f"{self.kind}-fit"

    def enhance(self, images: torch.Tensor, factor: float) -> torch.Tensor:
        fn = C.enhance_brightness if self.kind == "brightness" else C.enhance_sharpness
        return fn(images, factor)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = C.resolve_options(self.probe_name, self.options, ctx.options)
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
            a, b = _logit_space_fit(logits, lf)
            row = {"factor": f, f"target_{self.kind}": t_measure, "logit_fit_scale": a, "logit_fit_shift": b}
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
                "logit space": [r["logit_fit_shift"] for r in rows],
            },
            xlabel=f"{self.kind} factor",
            ylabel="best-fit logit shift",
            title=f"{self.probe_name}: shift",
        )
        save_curves(
            ctx.out / "best_scale.png",
            factors,
            {
                "pixels": [r["best_scale_pixels"] for r in rows],
                self.kind: [r["best_scale_measure"] for r in rows],
                "logit space": [r["logit_fit_scale"] for r in rows],
            },
            xlabel=f"{self.kind} factor",
            ylabel="best-fit logit scale",
            title=f"{self.probe_name}: scale",
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
            "per_factor": rows,
            "slope_best_shift_vs_factor": C.fit_slope(factors, [r["best_shift_pixels"] for r in rows]),
            "slope_best_log10_scale_vs_factor": C.fit_slope(
                factors, [math.log10(r["best_scale_pixels"]) for r in rows]
            ),
            "slope_logit_fit_shift_vs_factor": C.fit_slope(factors, [r["logit_fit_shift"] for r in rows]),
            "slope_logit_fit_scale_vs_factor": C.fit_slope(factors, [r["logit_fit_scale"] for r in rows]),
            "grid": {
                "shift": [o.shift_low, o.shift_high],
                "log10_scale": [o.scale_low, o.scale_high],
                "points": o.grid,
            },
            "images": len(x),
        }
        summary = (
            f"Across {self.kind} factors {factors[0]:g}..{factors[-1]:g} the best-fit logit shift moves with "
            f"slope {numbers['slope_best_shift_vs_factor']:+.3g} per unit factor and the best-fit log10 scale "
            f"with slope {numbers['slope_best_log10_scale_vs_factor']:+.3g} (pixel match)."
        )
        return C.finish(
            ctx,
            self.probe_name,
            self.probe_name,
            numbers,
            {"best shift": "best_shift.png", "best scale": "best_scale.png", "examples": "examples.png"},
            summary,
            {
                "examples": f"columns: {self.kind} factors {', '.join(f'{f:g}' for f in factors)}."
                " Rows: enhanced input, its reconstruction, best-shift reconstruction"
                " of the original logits, best-scale reconstruction."
            },
            tables=[("Per factor", rows)],
        )


class BrightnessFit(_Fit):
    kind = "brightness"
    default_factors = (0.5, 0.75, 1.0, 1.25, 1.5)
    description = "best-fit logit shift/scale against image brightness factors (supp. §6, Figs. 9-16)"


class SharpnessFit(_Fit):
    kind = "sharpness"
    default_factors = (0.0, 0.5, 1.0, 2.0, 4.0)
    description = "best-fit logit shift/scale against image sharpness factors (supp. §6, Figs. 9-16)"
