"""``noise-resample``: one logit vector, several noise samples (supplement Figs. 1-2).

The BigGAN-projection inverter is stochastic: the logits fix what the classifier kept, the noise fills in
the rest. Each row of the figure is one held-out image, then reconstructions of its logits with
``samples`` independent noise vectors. The paper only showed pictures; the numbers here say how much the
samples differ (mean pairwise RMS pixel distance and SSIM, LPIPS when its weights are available offline) and
how often the classifier still gives every sample the original's predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.evaluation.metrics import ssim
from invkit.io import save_grid

from . import _common as C


@dataclass(frozen=True)
class NoiseResampleOptions:
    rows: int = 4  # held-out images (logit vectors), one figure row each
    samples: int = 8  # noise samples per logit vector (supplement Figs. 1-2 show 8)


class NoiseResample(Probe):
    """Diversity of reconstructions of one logit vector under several noise samples, and whether each keeps the
    original's class (supplement Figs. 1-2).

    Args:
        **options: fields of ``NoiseResampleOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "one logit vector, 8 noise samples (supp. Figs. 1-2); diversity across samples"

    options = NoiseResampleOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        images, _ = C.load_images(ctx, o.rows)
        logits = C.logits_of(ctx, images)
        pred = logits.argmax(1)
        lp, lp_message = C.lpips_or_none(ctx.device)
        tiles, div_rms, div_ssim, div_lpips, kept = [], [], [], [], []
        for r in range(len(images)):
            C.report(ctx, "probe noise-resample", r, len(images))
            recon = C.invert(ctx, logits[r : r + 1].expand(o.samples, -1).contiguous(), C.sample_noise(ctx, o.samples))
            tiles += [C.to_inverter_shape(ctx, images[r : r + 1]), recon]
            div_rms.append(C.pairwise(recon, C.rms))
            div_ssim.append(C.pairwise(recon, ssim))
            if lp is not None:
                div_lpips.append(C.pairwise(recon, lp))
            kept.append(float((C.predict(ctx, recon) == pred[r]).float().mean()))
        C.report(ctx, "probe noise-resample", len(images), len(images))
        save_grid(torch.cat(tiles), ctx.out / "samples.png", nrow=o.samples + 1, scale=2)
        numbers = {
            "diversity_rms": sum(div_rms) / len(div_rms),
            "diversity_ssim": sum(div_ssim) / len(div_ssim),
            "diversity_metric": "mean pairwise RMS pixel distance (0 = identical samples) and mean pairwise SSIM "
            "(1 = identical); LPIPS: " + lp_message,
            "same_class_as_original": sum(kept) / len(kept),
            "deterministic_inverter": ctx.inverter.noise_dim == 0,
            "rows": len(images),
            "samples": o.samples,
        }
        if lp is not None:
            numbers["diversity_lpips"] = sum(div_lpips) / len(div_lpips)
        summary = (
            f"{o.samples} noise samples per logit vector differ by {numbers['diversity_rms']:.3f} RMS "
            f"(SSIM {numbers['diversity_ssim']:.3f}); {100 * numbers['same_class_as_original']:.0f}% keep "
            "the original's predicted class."
        )
        return C.finish(
            "noise-resample",
            numbers,
            {"samples": "samples.png"},
            summary,
            {
                "samples": f"first column: held-out image; then {o.samples} reconstructions of its logits "
                "with different noise."
            },
        )
