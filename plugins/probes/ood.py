"""``ood``: reconstruct images of another data set through a classifier and inverter trained on the first.

Paper Fig. 10. The out-of-distribution images are resized and converted (grey/RGB) to the inverter's image
shape. Numbers, for the same number of in-distribution and OOD images: reconstruction error (RMS pixel
distance and SSIM between input and reconstruction), the classifier's mean top softmax probability, and the
OOD/in-distribution error ratio (> 1: the inverter reproduces unfamiliar images less faithfully).

OOD data: ``ctx.extra_data["ood"]`` (``invkit probe ood --ood-data PATH``); otherwise, for grey (MNIST-like)
data, FashionMNIST from the torchvision cache if present, else the Tiny ImageNet validation split in
``~/.cache/invkit-data/tinyimagenet64`` (converted to grey and resized); for RGB data, the embedded MNIST
subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from invkit import Probe, ProbeContext, ProbeResult
from invkit.data import load_dataset, take
from invkit.errors import DataError
from invkit.figures import save_rows
from invkit.metrics import ssim

from . import _common as C

TINY_IMAGENET = Path.home() / ".cache" / "invkit-data" / "tinyimagenet64"


def default_ood_data(ctx: ProbeContext):
    """The OOD data set used when none is given (see the module docstring)."""
    if "ood" in ctx.extra_data:
        return ctx.extra_data["ood"]
    grey = ctx.inverter.image_shape[0] == 1
    if not grey:
        return load_dataset("default", "test")
    try:
        return load_dataset("fashionmnist", "test")
    except DataError:
        pass
    if TINY_IMAGENET.is_dir():
        return load_dataset(TINY_IMAGENET, "val")
    raise DataError(
        "ood: no out-of-distribution data; pass --ood-data PATH (an image folder) or put FashionMNIST "
        "under the data root."
    )


@dataclass(frozen=True)
class OODOptions:
    show: int = 12  # columns in the figure


class OOD(Probe):
    description = "reconstruct another data set through a model trained on the first (Fig. 10)"

    def __init__(self, **options):
        self.options = C.resolve_options("ood", OODOptions(), options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = C.resolve_options("ood", self.options, ctx.options)
        ood = default_ood_data(ctx)
        x_in, _ = C.load_images(ctx)
        x_ood, _ = take(ood, len(x_in), seed=C.seed_from(ctx.generator))
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
            ctx,
            "ood",
            "ood",
            numbers,
            {"ood": "ood.png", "in distribution": "in_distribution.png"},
            summary,
            {
                "ood": "top: out-of-distribution inputs; bottom: reconstructions.",
                "in distribution": "the same for held-out in-distribution images.",
            },
        )
