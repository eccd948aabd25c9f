"""What every probe needs: images, inversion with fixed noise, image measures and the result.

Options are not checked here: each probe declares its options dataclass as ``options`` and invkit checks
``--option`` keys and types against it (``invkit.Probe.options_for``, ``invkit.utils.config.check_options``); the
page is rendered by invkit from the result (``finish``).

Image measures (per image, on images in [0, 1], averaged over channels):

* **brightness** — mean intensity.
* **contrast** — standard deviation of the intensity (RMS contrast).
* **sharpness** — mean gradient magnitude: the mean over pixels of ``sqrt(dx^2 + dy^2)`` with forward
  differences (0 for a flat image). The Laplacian variance is reported beside it where a probe says so.

Distances between two images: **RMS** pixel distance (``sqrt(mean((a - b)^2))``, in [0, 1]) and **SSIM**
(``invkit.evaluation.metrics.ssim``). LPIPS needs AlexNet weights that invkit never downloads; probes report it only
when ``invkit.evaluation.metrics.lpips_status`` says it runs offline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from invkit import ProbeContext, ProbeResult
from invkit.core.channels import DEFAULT_CHANNEL, create_channel
from invkit.core.observation import describe, observation_of
from invkit.data import take
from invkit.errors import InputError
from invkit.evaluation.metrics import LPIPS, lpips_status
from invkit.utils.progress import Progress


# ------------------------------------------------------------------------------------------------ draws
def seed_from(generator: torch.Generator) -> int:
    """A seed drawn from the context's generator, for helpers that take an int seed."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())


# ------------------------------------------------------------------------------------------------ images
def load_images(ctx: ProbeContext, n: int | None = None, per_class: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (default ``ctx.num_images``) images of ``ctx.data``, drawn with ``ctx.generator``, with labels.

    The images are the ones the inverter is asked to reconstruct: the data images at the inverter's resolution
    (``Inverter.target_images``, the one definition shared with training and ``invkit bench``). The classifier,
    attacks and enhancements all act on these, and reconstructions are compared with them directly.
    """
    n = ctx.num_images if n is None else n
    images, labels = take(ctx.data, n, seed=seed_from(ctx.generator), per_class=per_class, size=inverter_size(ctx))
    return to_inverter_shape(ctx, images), labels


def inverter_size(ctx: ProbeContext) -> tuple[int, int]:
    """``(H, W)`` of the inverter's images: what ``take`` resizes each data image to (a folder of mixed sizes
    works; ``to_inverter_shape`` then only converts the channels)."""
    return tuple(ctx.inverter.image_shape[-2:])


def to_inverter_shape(ctx: ProbeContext, images: torch.Tensor) -> torch.Tensor:
    """``Inverter.target_images`` on the context's device: data images of another source (an OOD set) at the
    inverter's resolution; a no-op on what ``load_images`` returns."""
    return ctx.inverter.target_images(images.float()).to(ctx.device)


@torch.no_grad()
def logits_of(ctx: ProbeContext, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [ctx.classifier.logits(images[i : i + batch_size].to(ctx.device)) for i in range(0, len(images), batch_size)]
    )


def predict(ctx: ProbeContext, images: torch.Tensor) -> torch.Tensor:
    return logits_of(ctx, images).argmax(1)


def sample_noise(ctx: ProbeContext, n: int) -> torch.Tensor | None:
    """Noise for ``n`` reconstructions drawn from ``ctx.generator`` (None for a deterministic inverter)."""
    if ctx.inverter.noise_dim == 0:
        return None
    return torch.randn(n, ctx.inverter.noise_dim, generator=ctx.generator).to(ctx.device)


def observed(ctx: ProbeContext, logits: torch.Tensor) -> torch.Tensor:
    """What the inverter is given for ``logits``: its observation channel of them (``invkit.core.observation``;
    ``--channel``), the logits themselves for a ``logits`` inverter. A random channel (``noise``) draws from
    ``ctx.generator``.

    Raises:
        InputError: the inverter conditions on a classifier layer, not on logits: probes invert logits.
    """
    channel, layer = observation_of(ctx.inverter)
    if layer is not None:
        raise InputError(
            f"{getattr(ctx.inverter, 'registry_name', 'the inverter')} conditions on layer '{layer}', and the probes "
            "invert logits (or a channel of them); probe an inverter trained on a channel."
        )
    if channel == DEFAULT_CHANNEL:
        return logits
    return create_channel(channel, num_classes=logits.shape[1])(logits.cpu(), ctx.generator).to(logits.device)


def require_logit_space(ctx: ProbeContext, probe: str) -> None:
    """Refuse, in one line saying why, a probe that manipulates logits (shifts, scales, perturbs or interpolates
    them) for an inverter whose channel does not keep the logits' scale and offset (``Channel.logit_space``: adding
    a constant to every logit changes no probability); ``invkit probe all`` lists it as not run with this reason.

    Raises:
        InputError: the inverter observes such a channel, or a layer.
    """
    channel, layer = observation_of(ctx.inverter)
    if layer is None and create_channel(channel).logit_space:
        return
    raise InputError(
        f"{probe} manipulates logits, but the inverter observes {describe(channel, layer)}, which does not keep the "
        "logits' scale and offset (a shift of every logit changes no probability): it does not apply; probe an "
        "inverter trained on logits or noise:SIGMA."
    )


@torch.no_grad()
def invert(
    ctx: ProbeContext, logits: torch.Tensor, noise: torch.Tensor | None = None, batch_size: int = 128
) -> torch.Tensor:
    """Reconstructions of ``logits`` (batched), through the inverter's observation channel (``observed``). Pass the
    same ``noise`` to compare manipulations fairly."""
    logits = observed(ctx, logits)
    if noise is None:
        noise = sample_noise(ctx, len(logits))
    out = []
    for i in range(0, len(logits), batch_size):
        z = None if noise is None else noise[i : i + batch_size]
        out.append(ctx.inverter.invert(logits[i : i + batch_size].to(ctx.device), noise=z, generator=ctx.generator))
    return torch.cat(out).float().clamp(0, 1)


def report(ctx: ProbeContext, task: str, done: int, total: int, **fields: Any) -> None:
    ctx.progress(Progress(task=task, completed=done, total=total, fields=fields))


# ------------------------------------------------------------------------------------------------ measures
def _gray(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=1, keepdim=True)


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean intensity per image ``(N,)``."""
    return images.float().flatten(1).mean(1)


def contrast(images: torch.Tensor) -> torch.Tensor:
    """RMS contrast per image ``(N,)``: the standard deviation of the (channel-averaged) intensity."""
    return _gray(images).flatten(1).std(1, unbiased=False)


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude per image ``(N,)`` (forward differences; 0 for a flat image)."""
    g = _gray(images)
    dx = g[..., :-1, 1:] - g[..., :-1, :-1]
    dy = g[..., 1:, :-1] - g[..., :-1, :-1]
    return (dx.square() + dy.square()).sqrt().flatten(1).mean(1)


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Variance of the 4-neighbour Laplacian per image ``(N,)`` (0 for a flat image)."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(_gray(images), k.to(images.device)).flatten(1).var(1, unbiased=False)


MEASURES = {"brightness": brightness, "contrast": contrast, "sharpness": sharpness}


def measure_all(images: torch.Tensor) -> dict[str, float]:
    return {name: float(fn(images).mean()) for name, fn in MEASURES.items()}


def rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance per image pair ``(N,)``."""
    return (a.float() - b.float()).square().flatten(1).mean(1).sqrt()


def pairwise(images: torch.Tensor, fn: Any) -> float:
    """Mean of ``fn`` over every unordered pair of images."""
    i, j = torch.triu_indices(len(images), len(images), offset=1)
    return float(fn(images[i], images[j]).mean()) if len(i) else 0.0


def lpips_or_none(device: torch.device) -> tuple[Any | None, str]:
    """``invkit.evaluation.metrics.LPIPS`` when its backbone is available offline, else None; and a line saying so."""
    ok, message = lpips_status("alex")
    return (LPIPS("alex", device=device) if ok else None), message


# ----------------------------------------------------------------------- image enhancement (PIL ImageEnhance)
def enhance_brightness(images: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black, i.e. ``images * factor`` clipped to [0, 1]."""
    return (images * factor).clamp(0, 1)


def enhance_sharpness(images: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ``ImageEnhance.Sharpness``: blend with PIL's SMOOTH-filtered image (1 < factor sharpens).

    The degenerate image is the 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13 applied inside, border pixels kept,
    as PIL does; the result is ``degenerate + factor * (image - degenerate)`` clipped to [0, 1].
    """
    c = images.shape[1]
    k = torch.ones(3, 3)
    k[1, 1] = 5.0
    k = (k / 13.0).to(images.device).expand(c, 1, 3, 3).contiguous()
    smooth = images.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(images.float(), k, groups=c)
    return (smooth + factor * (images - smooth)).clamp(0, 1)


# ------------------------------------------------------------------------------------------------ output
def fit_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y against x."""
    xt, yt = torch.tensor(list(x), dtype=torch.float64), torch.tensor(list(y), dtype=torch.float64)
    xc = xt - xt.mean()
    denom = float(xc.square().sum())
    return float((xc * (yt - yt.mean())).sum() / denom) if denom > 0 else 0.0


def finite(value: Any) -> Any:
    """Round floats for JSON and fail loudly if a number is NaN or infinite (a probe bug, never a result)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, torch.Tensor):
        return finite(value.tolist())
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"probe produced a non-finite number: {value}")
        return round(value, 6) + 0.0  # no -0.0 in the JSON
    return value


def finish(
    probe: str,
    numbers: dict[str, Any],
    figures: dict[str, str],
    summary: str,
    captions: Mapping[str, str] | None = None,
    tables: Sequence[tuple[str, list[dict[str, Any]]]] = (),
) -> ProbeResult:
    """The probe's result: its numbers rounded and checked finite (``finite``), its figures with their captions and
    tables. invkit renders the page (``index.html``) from it (``invkit.core.probe.run_probe``)."""
    return ProbeResult(
        probe=probe,
        numbers=finite(numbers),
        figures=dict(figures),
        summary=summary,
        captions=dict(captions or {}),
        tables={name: list(rows) for name, rows in tables},
    )
