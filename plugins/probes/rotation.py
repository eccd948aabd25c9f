"""``rotation``: reconstruct 90°-rotated inputs and rotate the reconstructions back (supplement Fig. 17).

If the classifier's logits kept the orientation of the input, the counter-rotated reconstruction of a
rotated image would look like the reconstruction of the upright image. Numbers (means over images):
``rms_to_upright_recon`` and ``ssim_to_upright_recon`` compare the counter-rotated reconstruction with the
reconstruction of the upright image (same noise); ``rms_baseline_other_image`` is the RMS distance between
reconstructions of two different upright images, for scale; ``prediction_kept`` is how often the classifier
gives the rotated image the upright image's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.evaluation.metrics import ssim
from invkit.io import save_rows

from . import _common as C


@dataclass(frozen=True)
class RotationOptions:
    quarter_turns: int = 1  # rotate by 90° x this (counter-clockwise); 1 is the paper's 90°
    show: int = 12  # columns in the figure


class Rotation(Probe):
    """Whether counter-rotated reconstructions of 90°-rotated inputs match the reconstructions of the upright inputs
    (supplement Fig. 17).

    Args:
        **options: fields of ``RotationOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "90° rotated inputs, counter-rotated reconstructions (supp. Fig. 17); similarity to upright"

    options = RotationOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        x, _ = C.load_images(ctx)
        k = o.quarter_turns % 4
        x_rot = torch.rot90(x, k, dims=(-2, -1))
        noise = C.sample_noise(ctx, len(x))
        C.report(ctx, "probe rotation", 0, 2)
        logits, logits_rot = C.logits_of(ctx, x), C.logits_of(ctx, x_rot)
        recon = C.invert(ctx, logits, noise)
        recon_back = torch.rot90(C.invert(ctx, logits_rot, noise), -k, dims=(-2, -1))
        C.report(ctx, "probe rotation", 2, 2)
        other = recon.roll(1, dims=0)
        numbers = {
            "quarter_turns": k,
            "images": len(x),
            "rms_to_upright_recon": float(C.rms(recon_back, recon).mean()),
            "ssim_to_upright_recon": float(ssim(recon_back, recon).mean()),
            "rms_to_input": float(C.rms(recon_back, C.to_inverter_shape(ctx, x)).mean()),
            "rms_upright_recon_to_input": float(C.rms(recon, C.to_inverter_shape(ctx, x)).mean()),
            "rms_baseline_other_image": float(C.rms(recon, other).mean()) if len(x) > 1 else 0.0,
            "prediction_kept": float((logits_rot.argmax(1) == logits.argmax(1)).float().mean()),
        }
        n = min(o.show, len(x))
        save_rows([x[:n], recon[:n], x_rot[:n], recon_back[:n]], ctx.out / "rotation.png", scale=2)
        summary = (
            f"Counter-rotated reconstructions of {90 * k}°-rotated inputs are {numbers['rms_to_upright_recon']:.3f}"
            f" RMS from the upright reconstructions (two different images: "
            f"{numbers['rms_baseline_other_image']:.3f}); the class is kept for "
            f"{100 * numbers['prediction_kept']:.0f}% of images."
        )
        return C.finish(
            "rotation",
            numbers,
            {"rotation": "rotation.png"},
            summary,
            {
                "rotation": "rows: upright input, its reconstruction, rotated input, reconstruction of the "
                "rotated input rotated back."
            },
        )
