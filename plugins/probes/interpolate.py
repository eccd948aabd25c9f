"""``logit-interpolate`` and ``noise-interpolate``: linear paths in logit space and in noise space.

Paper Figs. 5 and 9, supplement Figs. 3-6. Each figure row is one path: reconstructions of
``(1 - t) a + t b`` for ``t`` in ``steps`` evenly spaced values from 0 to 1. ``logit-interpolate`` walks between
the logits of two held-out images of different classes with the noise held fixed; ``noise-interpolate``
walks between two noise vectors with the logits held fixed.

Smoothness along a path, from the RMS pixel distances ``d_i`` between neighbouring reconstructions and the
distance ``D`` between the two ends:

* ``max_step_ratio`` = ``max_i d_i / (D / (steps - 1))``: 1 when every step changes the image equally, large
  when the image jumps somewhere along the path.
* ``path_length_ratio`` = ``sum_i d_i / D``: 1 for a straight path in pixel space, larger for a detour.

Both are averaged over paths whose ends differ (``D`` > 1e-6); ``degenerate_paths`` counts the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.errors import InputError
from invkit.io import save_curves, save_grid

from . import _common as C


@dataclass(frozen=True)
class InterpolateOptions:
    pairs: int = 4  # paths, one figure row each
    steps: int = 9  # images along each path, ends included


def _path_numbers(paths: list[torch.Tensor]) -> tuple[dict, list[list[float]]]:
    max_ratio, length_ratio, steps_all, degenerate = [], [], [], 0
    for p in paths:
        d = C.rms(p[1:], p[:-1])
        end = float(C.rms(p[:1], p[-1:]))
        steps_all.append(d.tolist())
        if end <= 1e-6:
            degenerate += 1
            continue
        max_ratio.append(float(d.max()) / (end / (len(p) - 1)))
        length_ratio.append(float(d.sum()) / end)
    mean = lambda v: sum(v) / len(v) if v else 1.0  # noqa: E731
    return {
        "max_step_ratio": mean(max_ratio),
        "path_length_ratio": mean(length_ratio),
        "mean_step_rms": float(sum(sum(s) for s in steps_all) / sum(len(s) for s in steps_all)),
        "degenerate_paths": degenerate,
    }, steps_all


def _write(
    ctx: ProbeContext,
    name: str,
    paths: list[torch.Tensor],
    steps: list[list[float]],
    extra: dict,
    summary_what: str,
    caption: str,
) -> ProbeResult:
    n = len(paths[0])
    save_grid(torch.cat(paths), ctx.out / "paths.png", nrow=n, scale=2)
    save_curves(
        ctx.out / "steps.png",
        [i + 0.5 for i in range(n - 1)],
        {f"path {i}": s for i, s in enumerate(steps)},
        xlabel="step along the path (t * (steps - 1))",
        ylabel="RMS distance to previous image",
        title=f"{name}: step sizes",
    )
    numbers, _ = _path_numbers(paths)
    numbers.update(extra)
    summary = (
        f"{summary_what}: the largest step is {numbers['max_step_ratio']:.2f}x an even step and the path "
        f"is {numbers['path_length_ratio']:.2f}x the straight distance (1 = perfectly smooth)."
    )
    return C.finish(
        name,
        numbers,
        {"paths": "paths.png", "step sizes": "steps.png"},
        summary,
        {"paths": caption, "step sizes": "RMS pixel distance between neighbouring reconstructions."},
    )


class LogitInterpolate(Probe):
    """Reconstructions along linear paths between the logits of two images of different classes, noise fixed,
    and the smoothness of each path (paper Figs. 5 and 9).

    Args:
        **options: fields of ``InterpolateOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            the drawn images are all of one class.
    """

    description = "linear interpolation between two logit vectors (Figs. 5, 9); smoothness along the path"

    options = InterpolateOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        C.require_logit_space(ctx, "logit-interpolate")  # the path is taken in logit space
        images, labels = C.load_images(ctx, max(2 * o.pairs, 16))
        logits = C.logits_of(ctx, images)
        # pair image i with the next image of another class, so that the path crosses a class boundary
        starts, ends, used = [], [], set()
        for i in range(len(images)):
            if len(starts) == o.pairs or i in used:
                continue
            for j in range(i + 1, len(images)):
                if j not in used and labels[j] != labels[i]:
                    starts.append(i), ends.append(j), used.update((i, j))
                    break
        if not starts:
            raise InputError("logit-interpolate needs images of at least two classes in --data.")
        t = torch.linspace(0, 1, o.steps, device=logits.device)[:, None]
        paths, switches = [], []
        for k, (i, j) in enumerate(zip(starts, ends)):
            C.report(ctx, "probe logit-interpolate", k, len(starts))
            z = C.sample_noise(ctx, 1)
            path_logits = (1 - t) * logits[i] + t * logits[j]
            recon = C.invert(ctx, path_logits, None if z is None else z.expand(o.steps, -1).contiguous())
            paths.append(recon)
            cls = C.predict(ctx, recon)
            switches.append(int((cls[1:] != cls[:-1]).sum()))
        C.report(ctx, "probe logit-interpolate", len(starts), len(starts))
        extra = {"class_switches_per_path": sum(switches) / len(switches), "pairs": len(paths), "steps": o.steps}
        _, steps = _path_numbers(paths)
        return _write(
            ctx,
            "logit-interpolate",
            paths,
            steps,
            extra,
            "Between the logits of two images",
            "each row: reconstructions along (1-t)·logits(a) + t·logits(b), same noise throughout.",
        )


class NoiseInterpolate(Probe):
    """Reconstructions along linear paths between two noise vectors, logits fixed, and the smoothness of each path
    (supplement Figs. 3-6).

    Args:
        **options: fields of ``InterpolateOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not
            finite (checked by invkit against ``options``, when built and for ``ctx.options``); in ``run``,
            the inverter is deterministic (``noise_dim`` 0).
    """

    description = "linear interpolation between two noise vectors (supp. Figs. 3-6); smoothness along the path"

    options = InterpolateOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        if ctx.inverter.noise_dim == 0:
            raise InputError(
                f"noise-interpolate needs a stochastic inverter; {ctx.inverter.registry_name} has no "
                "noise (noise_dim 0)."
            )
        images, _ = C.load_images(ctx, o.pairs)
        logits = C.logits_of(ctx, images)
        t = torch.linspace(0, 1, o.steps, device=logits.device)[:, None]
        paths = []
        for k in range(len(images)):
            C.report(ctx, "probe noise-interpolate", k, len(images))
            za, zb = C.sample_noise(ctx, 2)
            paths.append(C.invert(ctx, logits[k : k + 1].expand(o.steps, -1).contiguous(), (1 - t) * za + t * zb))
        C.report(ctx, "probe noise-interpolate", len(images), len(images))
        _, steps = _path_numbers(paths)
        return _write(
            ctx,
            "noise-interpolate",
            paths,
            steps,
            {"pairs": len(paths), "steps": o.steps},
            "Between two noise vectors",
            "each row: one image's logits, noise along (1-t)·z_a + t·z_b.",
        )
