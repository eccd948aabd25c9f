"""``mirror``: across noise samples, do reconstructions flip horizontally but not vertically? (paper §5.3)

Teterwak et al. observe that reconstructions of one logit vector under different noise samples are sometimes
horizontal mirror images of the original, never vertical ones: the classifier (trained with horizontal-flip
augmentation) keeps no left/right information, but does keep up/down. The probe measures it. For each of
``images`` held-out images ``x`` and each of ``samples`` noise draws, the reconstruction ``r`` is assigned to the
nearest (RMS pixel distance) of ``x``, ``hflip(x)`` (left/right mirror) and ``vflip(x)`` (up/down mirror).
Images whose three candidates are not distinct (``min`` of their pairwise RMS distances below
``min_asymmetry``: symmetric digits, a ``0`` or an ``8``) cannot show a flip and are not counted.

Numbers: ``hflip_rate`` and ``vflip_rate`` (share of the counted (image, sample) pairs nearest the horizontal
resp. vertical mirror; expected: clearly above 0 for horizontal, near 0 for vertical, when the classifier was
trained with horizontal flips), ``images_counted``, ``hflip_images_with_any`` (share of counted images with at
least one horizontally flipped sample), the mean RMS distances to the three candidates over all images, and
``deterministic_inverter`` (one sample per image then). ``intervals`` gives each of the three shares a 95% interval
and its n (``invkit.evaluation.stats``): images, not (image, sample) pairs, are the independent units, so the rates
get a bootstrap over the counted images of their per-image rates (Wilson when there is one sample per image), and
``hflip_images_with_any`` (0/1 per image) a Wilson interval.
A classifier trained without flip augmentation (the MNIST demo ones) is not expected to show it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invkit import Probe, ProbeContext, ProbeResult
from invkit.evaluation.stats import intervals
from invkit.io import save_grid

from . import _common as C


@dataclass(frozen=True)
class MirrorOptions:
    images: int = 32  # held-out images (logit vectors)
    samples: int = 8  # noise samples per image
    min_asymmetry: float = 0.05  # images with rms(x, flip(x)) below this are not counted for that flip
    show: int = 6  # figure rows


def nearest_flip(recon: torch.Tensor, original: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Which of the original (0), its horizontal mirror (1) and its vertical mirror (2) each reconstruction is
    nearest to, by RMS pixel distance; and how distinct those three candidates are.

    Args:
        recon: ``(S, C, H, W)`` reconstructions of one image.
        original: ``(1, C, H, W)`` the image they reconstruct.

    Returns:
        ``(S,)`` indices in {0, 1, 2}, and the smallest pairwise RMS distance among the three candidates.
    """
    candidates = [original, original.flip(-1), original.flip(-2)]
    dist = torch.stack([C.rms(recon, c.expand_as(recon)) for c in candidates], dim=1)
    distinct = min(float(C.rms(candidates[i], candidates[j])[0]) for i, j in ((0, 1), (0, 2), (1, 2)))
    return dist.argmin(1), distinct


class Mirror(Probe):
    """How often reconstructions under different noise samples are nearest the horizontal or the vertical mirror
    image of the original (paper §5.3).

    Args:
        **options: fields of ``MirrorOptions``.

    Raises:
        InputError: an option the options dataclass does not declare, or a value of the wrong type or not finite
            (checked by invkit against ``options``, when built and for ``ctx.options``).
    """

    description = "reconstructions across noise samples: horizontal vs vertical flips of the original (§5.3)"

    options = MirrorOptions()  # declared: invkit checks --option keys and types against it (Probe.options)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        x, _ = C.load_images(ctx, o.images)
        logits = C.logits_of(ctx, x)
        samples = o.samples if ctx.inverter.noise_dim else 1
        nearest, any_h = [], []
        dist = {"to_original": [], "to_hflip": [], "to_vflip": []}
        tiles = []
        for i in range(len(x)):
            C.report(ctx, "probe mirror", i, len(x))
            z = logits[i : i + 1].expand(samples, -1).contiguous()
            recon = C.invert(ctx, z, C.sample_noise(ctx, samples))
            xi = x[i : i + 1]
            which, distinct = nearest_flip(recon, xi)
            if distinct >= o.min_asymmetry:
                nearest.append(which)
                any_h.append(float((which == 1).any()))
            dist["to_original"].append(float(C.rms(recon, xi.expand_as(recon)).mean()))
            dist["to_hflip"].append(float(C.rms(recon, xi.flip(-1).expand_as(recon)).mean()))
            dist["to_vflip"].append(float(C.rms(recon, xi.flip(-2).expand_as(recon)).mean()))
            if i < o.show:
                tiles += [xi, xi.flip(-1), xi.flip(-2), recon]
        C.report(ctx, "probe mirror", len(x), len(x))
        save_grid(torch.cat(tiles), ctx.out / "mirror.png", nrow=samples + 3, scale=2)

        counted = torch.cat(nearest) if nearest else None
        numbers = {
            "hflip_rate": None if counted is None else float((counted == 1).float().mean()),
            "vflip_rate": None if counted is None else float((counted == 2).float().mean()),
            "images_counted": len(nearest),
            "hflip_images_with_any": sum(any_h) / len(any_h) if any_h else None,
            "rms_to_original": sum(dist["to_original"]) / len(x),
            "rms_to_hflip": sum(dist["to_hflip"]) / len(x),
            "rms_to_vflip": sum(dist["to_vflip"]) / len(x),
            "images": len(x),
            "samples": samples,
            "min_asymmetry": o.min_asymmetry,
            "deterministic_inverter": ctx.inverter.noise_dim == 0,
        }
        if nearest:  # per counted image: its share of samples per flip, and whether any sample is the h-mirror
            rates = torch.stack([torch.stack([(w == 1).float().mean(), (w == 2).float().mean()]) for w in nearest])
            per_image = {"hflip_rate": rates[:, 0], "vflip_rate": rates[:, 1]}
            found = intervals(per_image | {"hflip_images_with_any": torch.tensor(any_h)}, seed=0)
            numbers["intervals"] = {k: iv.as_dict() for k, iv in found.items()}

        def pct(v: float | None) -> str:
            return "n/a (no asymmetric image)" if v is None else f"{100 * v:.1f}%"

        def pct_ci(key: str) -> str:  # 12.5% [8.0%, 18.1%] (n=30 images)
            iv = numbers.get("intervals", {}).get(key)
            bounds = "–" if iv is None or iv["low"] is None else f"{100 * iv['low']:.1f}%, {100 * iv['high']:.1f}%"
            return pct(numbers[key]) + (f" [{bounds}] (n={iv['n']} images)" if iv else "")

        summary = (
            f"Of {samples} reconstructions per image ({numbers['images_counted']} asymmetric images), "
            f"{pct_ci('hflip_rate')} are nearest the horizontal mirror of the original and "
            f"{pct_ci('vflip_rate')} the vertical one (95% intervals over images). The paper: horizontal flips "
            "occur across noise "
            "samples, vertical ones do not (classifiers trained with horizontal-flip augmentation)."
        )
        return C.finish(
            "mirror",
            numbers,
            {"mirror": "mirror.png"},
            summary,
            {
                "mirror": f"per row: the image, its horizontal flip, its vertical flip, then {samples} "
                "reconstructions of its logits with different noise."
            },
        )
