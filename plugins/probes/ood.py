"""``ood``: reconstruct images of another data set through a classifier and inverter trained on the first.

Paper Fig. 10. The out-of-distribution images are resized and converted (grey/RGB) to the inverter's image
shape. Numbers, for the same number of in-distribution and OOD images: reconstruction error (RMS pixel
distance and SSIM between input and reconstruction), the classifier's mean top softmax probability, and the
OOD/in-distribution error ratio (> 1: the inverter reproduces unfamiliar images less faithfully).

OOD data: ``ctx.extra_data["ood"]`` (``invkit probe ood --ood-data PATH``); otherwise a data set shipped
inside invkit, so that the default gives the same numbers on every machine whatever its caches hold: for RGB
inverters the embedded MNIST subset (test split, converted to RGB and resized); for grey inverters the
*negatives* of the embedded MNIST train split (``255 - x``: white background, dark strokes), a covariate shift
that MNIST-trained networks are known to fail on (Hosseini et al. 2017, "On the limitation of convolutional
neural networks in recognizing negative images"). invkit ships no natural grey images (Tiny ImageNet may not be
redistributed), so a natural-image OOD set for grey inverters is given with ``--ood-data``.

Deviations from the paper: Fig. 10 uses natural images of other data sets; the default for grey inverters is
MNIST negatives (above) because it is the only OOD set that can ship inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass

from invkit import Probe, ProbeContext, ProbeResult
from invkit.data import ImageDataset, TensorImageDataset, load_embedded, take
from invkit.evaluation.metrics import ssim
from invkit.io import save_rows

from . import _common as C


def mnist_negatives() -> TensorImageDataset:
    """The embedded MNIST train split with every pixel inverted (``255 - x``), named ``default:train:negative``."""
    digits = load_embedded("train")
    return TensorImageDataset(255 - digits.images, digits.targets, digits.classes, name="default:train:negative")


def default_ood_data(ctx: ProbeContext) -> ImageDataset:
    """The OOD data set: ``ctx.extra_data["ood"]`` if given, else one shipped with invkit (module docstring).

    Never reads files outside the package, so the default is the same on every machine.
    """
    if "ood" in ctx.extra_data:
        return ctx.extra_data["ood"]
    if ctx.inverter.image_shape[0] == 1:
        return mnist_negatives()
    return load_embedded("test")


@dataclass(frozen=True)
class OODOptions:
    show: int = 12  # columns in the figure


class OOD(Probe):
    """Reconstruction error of out-of-distribution images against in-distribution ones, and the classifier's
    confidence on both (paper Fig. 10).

    Args:
        **options: fields of ``OODOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "reconstruct another data set through a model trained on the first (Fig. 10)"

    options = OODOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        ood = default_ood_data(ctx)
        x_in, _ = C.load_images(ctx)
        x_ood, _ = take(ood, len(x_in), seed=C.seed_from(ctx.generator), size=C.inverter_size(ctx))
        x_ood = C.to_inverter_shape(ctx, x_ood)
        out = {}
        recons = {}
        for k, (name, x) in enumerate((("in_distribution", x_in), ("ood", x_ood))):
            C.report(ctx, "probe ood", k, 2)
            logits = C.logits_of(ctx, x)
            recon = C.invert(ctx, logits)
            recons[name] = recon
            x_cmp = C.to_inverter_shape(ctx, x)
            out[name] = {
                "rms": float(C.rms(recon, x_cmp).mean()),
                "ssim": float(ssim(recon, x_cmp).mean()),
                "top_softmax": float(logits.softmax(1).max(1).values.mean()),
                "images": len(x),
            }
        C.report(ctx, "probe ood", 2, 2)
        n = min(o.show, len(x_in), len(x_ood))
        save_rows([x_ood[:n], recons["ood"][:n]], ctx.out / "ood.png", scale=2)
        save_rows([x_in[:n], recons["in_distribution"][:n]], ctx.out / "in_distribution.png", scale=2)
        numbers = {
            **out,
            "ood_data": getattr(ood, "name", type(ood).__name__),
            "rms_ratio_ood_to_in": out["ood"]["rms"] / max(out["in_distribution"]["rms"], 1e-12),
        }
        summary = (
            f"OOD images ({numbers['ood_data']}) are reconstructed with RMS error {out['ood']['rms']:.3f} "
            f"vs {out['in_distribution']['rms']:.3f} in distribution "
            f"({numbers['rms_ratio_ood_to_in']:.2f}x)."
        )
        return C.finish(
            "ood",
            numbers,
            {"ood": "ood.png", "in distribution": "in_distribution.png"},
            summary,
            {
                "ood": "top: out-of-distribution inputs; bottom: reconstructions.",
                "in distribution": "the same for held-out in-distribution images.",
            },
        )
