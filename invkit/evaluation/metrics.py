"""Metrics for reconstructions: how close is x̂ = inverter(Φ(x)) to x, and what of x did the logits keep.

Every function takes batches of float images ``(N, C, H, W)`` in [0, 1] with 1 or 3 channels and returns one
value per image (a tensor ``(N,)``) unless it says otherwise; the bench averages them. Definitions:

* **PSNR** ``= 10 log10(1 / MSE)`` per image (data range 1), MSE over all pixels and channels. Identical
  images have MSE 0; PSNR is then capped at ``PSNR_CAP_DB`` (100 dB, i.e. MSE floored at 1e-10).
* **SSIM** as Wang, Bovik, Sheikh & Simoncelli 2004 (IEEE TIP 13(4), Eq. 13): an 11x11 Gaussian window with
  sigma 1.5, K1 = 0.01, K2 = 0.03, data range L = 1, the window applied without padding ("valid", as the
  authors' reference code), the SSIM map averaged over positions and channels. No multi-scale and no
  automatic down-sampling. Images smaller than 11 px use the largest odd window that fits.
* **LPIPS** (Zhang et al. 2018) through the ``lpips`` package, v0.1 linear heads on an ImageNet-trained
  AlexNet (or VGG-16) from torchvision. The backbone weights are only used when the torchvision file is
  in the torch hub cache with its published size and SHA-256 (``invkit.io.download``, which also fetches it when
  a download is allowed); otherwise the metric is "unavailable" and says which file to put where. It is never
  computed with a random backbone.
* **Classifier agreement** (the paper's iterative stability): top-1 agreement ``argmax Φ(x̂) == argmax Φ(x)``
  and the cosine between the logit vectors ``Φ(x̂)`` and ``Φ(x)``, over all images and split by whether the
  classifier got the original right.
* **Instance identification**: is the original x the nearest to x̂ among k images of x's class (x and k-1
  other held-out images of that class), by pixel L2 distance at the originals' resolution (or by another distance:
  LPIPS for the bench's ``id_lpips``)? Chance is 1/k. Ties are shared: a reconstruction at equal distance to x and
  t distractors scores 1/(t+1).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..io.download import KNOWN_FILES, download_allowed, fetch, file_matches, weights_status

PSNR_CAP_DB = 100.0  # PSNR of identical images (MSE floored at 10^-10)
SSIM_WINDOW = 11  # Gaussian window size (Wang et al. 2004)
SSIM_SIGMA = 1.5  # Gaussian window standard deviation
SSIM_K1, SSIM_K2 = 0.01, 0.03  # stabilising constants, C1 = (K1 L)^2, C2 = (K2 L)^2 with L = 1
LPIPS_MIN_SIZE = 64  # images are resized (bilinear) to at least this many pixels a side before LPIPS


def _check_pair(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.dim() != 4 or b.dim() != 4:
        raise InputError(f"{what}: expected two (N, C, H, W) batches, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if a.shape != b.shape:
        raise InputError(
            f"{what}: the two batches differ in shape, {tuple(a.shape)} vs {tuple(b.shape)}; resize "
            "the reconstructions to the originals first (invkit.data.resize)."
        )
    if a.shape[1] not in (1, 3):
        raise InputError(f"{what}: expected 1 or 3 channels, got {a.shape[1]}.")


# ------------------------------------------------------------------------------------------------ PSNR / SSIM
def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 1, capped at ``PSNR_CAP_DB``.

    Args:
        x: ``(N, C, H, W)`` images in [0, 1], C = 1 or 3.
        y: ``(N, C, H, W)`` images in [0, 1] of the same shape.

    Returns:
        ``(N,)`` PSNR in dB, at most ``PSNR_CAP_DB`` (100).

    Raises:
        InputError: the batches are not 4-D, differ in shape, or have other than 1 or 3 channels.
    """
    _check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10)))).float()


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """A normalised 2-D Gaussian ``(size, size)`` (sums to 1)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004, Gaussian window, no padding).

    Args:
        x: ``(N, C, H, W)`` images in [0, 1], C = 1 or 3.
        y: ``(N, C, H, W)`` images in [0, 1] of the same shape.

    Returns:
        ``(N,)`` SSIM in [-1, 1] (1 for identical images), averaged over positions and channels.

    Raises:
        InputError: the batches are not 4-D, differ in shape, or have other than 1 or 3 channels.
    """
    _check_pair(x, y, "ssim")
    n, c, h, w = x.shape
    size = min(SSIM_WINDOW, h, w)
    size -= 1 - size % 2  # odd
    win = gaussian_window(size, SSIM_SIGMA).to(x.device)[None, None].expand(c, 1, size, size)
    x, y = x.double(), y.double()

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).float()


# ------------------------------------------------------------------------------------------------------ LPIPS
LPIPS_BACKBONES = {  # lpips net -> the torchvision ImageNet weights it loads through torch.hub
    net: KNOWN_FILES[f"lpips-{net}"].url for net in ("alex", "vgg")
}


def lpips_backbone_file(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone: ``<torch.hub.get_dir()>/checkpoints/<file>``."""
    if net not in LPIPS_BACKBONES:
        raise InputError(f"LPIPS net '{net}' is not supported; use one of {', '.join(LPIPS_BACKBONES)}.")
    return KNOWN_FILES[f"lpips-{net}"].path()


def _sha256_matches(path: Path) -> bool:
    """Whether the backbone file has its published size and full SHA-256 (``invkit.io.download.KNOWN_FILES``)."""
    known = next((f for f in KNOWN_FILES.values() if f.filename == path.name), None)
    return known is not None and file_matches(path, known)


def lpips_status(net: str = "alex", download: bool = False) -> tuple[bool, str]:
    """Whether LPIPS (backbone ``net``: alex, vgg) can run with its real backbone: ``(True, "lpips v0.1 ...")``, or
    ``(False, "unavailable: ...")`` saying what to do. Looks only at the local file system unless a download is
    allowed (``download``, a command's ``--download``, or ``INVKIT_DOWNLOAD=1``): then a missing backbone is fetched
    first from its published URL, checked (``invkit.io.download.fetch``).

    Raises:
        InputError: ``net`` is not supported.
        DownloadError, OutputError: a download was allowed and failed (one line; nothing is left in the cache).
    """
    path = lpips_backbone_file(net)
    name = f"lpips-{net}"
    if download_allowed(download) and not path.exists():
        fetch(name, allowed=True)
    if path.exists() and _sha256_matches(path):
        return True, f"lpips v0.1 {net} (backbone {path.name})"
    return False, f"unavailable: LPIPS {net}: {weights_status(name)[1]}"


class LPIPS:
    """LPIPS distance per image, only ever with the pretrained backbone (see ``lpips_status``).

    LPIPS follows Zhang, Isola, Efros, Shechtman & Wang 2018 ("The unreasonable effectiveness of deep features as
    a perceptual metric", CVPR), computed by their ``lpips`` package (v0.1 linear heads). Images are resized so
    that their shorter side is at least ``LPIPS_MIN_SIZE`` (AlexNet's five layers need it), grey images are
    repeated to 3 channels, and both are scaled to [-1, 1] as the package expects.

    Args:
        net: the backbone, ``"alex"`` or ``"vgg"``.
        device: where the network runs.

    Raises:
        InputError: ``net`` is not supported, or its backbone weights are not in the torch hub cache or do not
            have the SHA-256 their file name promises (the message says which file to put where).
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        ok, message = lpips_status(net)
        if not ok:
            raise InputError(f"LPIPS {message}")
        import warnings

        import lpips

        with warnings.catch_warnings():  # lpips uses torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore")
            self.model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=False, verbose=False).to(device).eval()
        self.device = torch.device(device)
        self.net = net

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """LPIPS distance between ``x[i]`` and ``y[i]`` for each i.

        Args:
            x: ``(N, C, H, W)`` images in [0, 1], C = 1 or 3.
            y: ``(N, C, H, W)`` images in [0, 1] of the same shape.
            batch_size: image pairs per forward pass of the network.

        Returns:
            ``(N,)`` distances on the CPU (0 for identical images; lower is more similar).

        Raises:
            InputError: the batches are not 4-D, differ in shape, or have other than 1 or 3 channels.
        """
        _check_pair(x, y, "lpips")
        out = []
        for i in range(0, len(x), batch_size):
            a, b = (self._prep(t[i : i + batch_size]) for t in (x, y))
            out.append(self.model(a, b).flatten().float().cpu())
        return torch.cat(out)

    def _prep(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device).float()
        h, w = t.shape[-2:]
        if min(h, w) < LPIPS_MIN_SIZE:
            s = LPIPS_MIN_SIZE / min(h, w)
            t = F.interpolate(t, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        return t * 2 - 1


# -------------------------------------------------------------------------------------- classifier agreement
def classifier_agreement_per_image(
    recon_logits: torch.Tensor, orig_logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per image: top-1 agreement and logit cosine between Φ(x̂) and Φ(x), and whether Φ(x) is right (what
    ``classifier_agreement`` averages; the bench keeps them for its intervals).

    Args:
        recon_logits: ``(N, K)`` logits Φ(x̂) of the reconstructions.
        orig_logits: ``(N, K)`` logits Φ(x) of the originals.
        labels: ``(N,)`` true class indices of the originals.

    Returns:
        float32 ``(N,)`` tensors on the CPU: ``top1_agreement`` (1 where argmax Φ(x̂) = argmax Φ(x), else 0),
        ``logit_cosine`` (in [-1, 1]), ``accuracy`` (1 where Φ(x) is right), and ``top1_agreement_correct``,
        ``logit_cosine_correct``, ``top1_agreement_incorrect``, ``logit_cosine_incorrect``: the same values on the
        images whose original Φ got right (resp. wrong) and NaN on the others.

    Raises:
        InputError: the two logit tensors differ in shape or are not 2-D, or ``labels`` is not ``(N,)``.
    """
    if recon_logits.shape != orig_logits.shape or recon_logits.dim() != 2:
        raise InputError(
            f"classifier_agreement: logits of shape {tuple(recon_logits.shape)} and "
            f"{tuple(orig_logits.shape)}; expected two equal (N, classes) tensors."
        )
    if labels.shape != (len(orig_logits),):
        raise InputError(
            f"classifier_agreement: labels of shape {tuple(labels.shape)}; expected ({len(orig_logits)},)."
        )
    recon_logits, orig_logits = recon_logits.detach().cpu(), orig_logits.detach().cpu()
    agree = (recon_logits.argmax(1) == orig_logits.argmax(1)).float()
    cos = F.cosine_similarity(recon_logits.double(), orig_logits.double(), dim=1).float()
    correct = orig_logits.argmax(1) == labels.cpu()
    out = {"top1_agreement": agree, "logit_cosine": cos, "accuracy": correct.float()}
    nan = torch.tensor(math.nan)
    for suffix, mask in (("_correct", correct), ("_incorrect", ~correct)):
        out["top1_agreement" + suffix] = torch.where(mask, agree, nan)
        out["logit_cosine" + suffix] = torch.where(mask, cos, nan)
    return out


def classifier_agreement(
    recon_logits: torch.Tensor, orig_logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, float | int | None]:
    """Top-1 agreement and logit cosine between Φ(x̂) and Φ(x), overall and split by Φ(x) being right: the means
    of ``classifier_agreement_per_image`` over the images where each is defined.

    Args:
        recon_logits: ``(N, K)`` logits Φ(x̂) of the reconstructions.
        orig_logits: ``(N, K)`` logits Φ(x) of the originals.
        labels: ``(N,)`` true class indices of the originals.

    Returns:
        ``top1_agreement``, ``logit_cosine`` (means over all images), the same two with the suffixes
        ``_correct`` and ``_incorrect`` (None when that group is empty), ``n_correct``, ``n_incorrect`` and
        ``accuracy`` (of the classifier on the originals). Agreement and accuracy are fractions in [0, 1], the
        cosine is in [-1, 1].

    Raises:
        InputError: the two logit tensors differ in shape or are not 2-D, or ``labels`` is not ``(N,)``.
    """
    per_image = classifier_agreement_per_image(recon_logits, orig_logits, labels)
    n_correct = int(per_image["accuracy"].sum())
    out: dict[str, float | int | None] = {k: mean_defined(v) for k, v in per_image.items()}
    return out | {"n_correct": n_correct, "n_incorrect": len(per_image["accuracy"]) - n_correct}


# ------------------------------------------------------------------------------------ instance identification
def draw_distractors(labels: torch.Tensor, indices: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """For each ``indices[i]``, ``k - 1`` other indices of the same class in ``labels``, drawn without
    replacement by a seeded generator.

    Args:
        labels: ``(M,)`` the label of every image in the pool (e.g. a whole held-out split).
        indices: ``(N,)`` the images to be identified (positions in ``labels``).
        k: candidates per identification, the original included.
        seed: seed of the draw; the same seed, labels and indices give the same distractors.

    Returns:
        ``(N, k - 1)`` int64 positions in ``labels``, none equal to its row's ``indices[i]``.

    Raises:
        InputError: ``k < 2``, or a class of ``indices`` has fewer than ``k`` images in ``labels``.
    """
    if k < 2:
        raise InputError(f"instance identification needs k >= 2 candidates, got k={k}.")
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    out = torch.empty(len(indices), k - 1, dtype=torch.long)
    for row, i in enumerate(indices.tolist()):
        same = (labels == labels[i]).nonzero().flatten()
        same = same[same != i]
        if len(same) < k - 1:
            raise InputError(
                f"class {int(labels[i])} has only {len(same) + 1} held-out images; instance "
                f"identification with k={k} needs {k}. Use a smaller --id-k."
            )
        out[row] = same[torch.randperm(len(same), generator=g)[: k - 1]]
    return out


def identification_hits(
    recons: torch.Tensor,
    originals: torch.Tensor,
    distractors: torch.Tensor,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per reconstruction, 1 when its original is the nearest of the k candidates by pixel L2 distance, or by
    ``distance`` (e.g. an ``LPIPS`` instance: identification in LPIPS space).

    Args:
        recons: ``(N, C, H, W)`` reconstructions in [0, 1], already at the originals' size and channels (1 or 3).
        originals: ``(N, C, H, W)`` the images in [0, 1] they were reconstructed from.
        distractors: ``(N, k - 1, C, H, W)`` other images in [0, 1] of each original's class.
        distance: ``distance(a, b)`` -> ``(M,)`` distances between ``a[i]`` and ``b[i]`` for two ``(M, C, H, W)``
            batches (lower is nearer); None: pixel L2 at the given resolution.

    Returns:
        ``(N,)`` scores in [0, 1]: 1 (hit), 0 (a distractor is strictly nearer) or 1/(t+1) for a tie with t
        distractors.

    Raises:
        InputError: ``recons`` and ``originals`` are not 4-D, differ in shape or have other than 1 or 3 channels,
            or ``distractors`` is not ``(N, k - 1, C, H, W)`` for them.
    """
    _check_pair(recons, originals, "identification")
    if distractors.dim() != 5 or distractors.shape[0] != len(recons) or distractors.shape[2:] != recons.shape[1:]:
        raise InputError(
            f"identification: distractors of shape {tuple(distractors.shape)} do not fit "
            f"reconstructions {tuple(recons.shape)}; expected (N, k-1, C, H, W)."
        )
    if distance is None:
        r = recons.double().flatten(1)
        d_own = (r - originals.double().flatten(1)).norm(dim=1)
        d_other = (r[:, None] - distractors.double().flatten(2)).norm(dim=2)
    else:
        n, k1 = distractors.shape[:2]
        d_own = distance(recons, originals).double().cpu()
        d_other = distance(recons.repeat_interleave(k1, 0), distractors.flatten(0, 1)).double().cpu().view(n, k1)
    closer = (d_other < d_own[:, None]).sum(1)
    ties = (d_other == d_own[:, None]).sum(1)
    return torch.where(closer > 0, torch.zeros_like(d_own), 1.0 / (ties.double() + 1)).float()


# ---------------------------------------------------------------------------------------- time and memory
@dataclass
class Measurement:
    """Wall time and peak memory of a block (see ``measure``)."""

    seconds: float = 0.0
    peak_bytes: int | None = None  # peak above what was in use before; None when it cannot be measured
    peak_total_bytes: int | None = None  # the peak itself (CUDA or malloc bytes in use, or peak RSS)
    method: str = ""  # how peak_bytes was measured


class measure:  # noqa: N801 - used as a context manager, reads like a function
    """Time a block and measure its peak memory.

    On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
    before (tensors the block allocated on the device). On CPU with glibc (Linux): the bytes malloc has handed
    out and not yet freed (``mallinfo2``: ``uordblks + hblkhd``; PyTorch's CPU tensors come from malloc),
    sampled every millisecond by a background thread during the block, peak minus the value before. It counts
    memory reused from earlier freed blocks (unlike RSS), but can miss a peak shorter than a millisecond.
    Without glibc, the growth of the process' peak RSS (``ru_maxrss``, a lower bound) is reported. ``method``
    says which; ``peak_total_bytes`` is the peak itself.
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.001):
        self.device = torch.device(device)
        self.interval = interval
        self.result = Measurement()

    def __enter__(self) -> Measurement:
        import time

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.result.method = "cuda max_memory_allocated - allocated before"
        elif _malloc_in_use() is not None:
            self._base = _malloc_in_use()
            self.result.method = "peak malloc in use (glibc mallinfo2, sampled every 1 ms) - in use before"
            self._peak = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self._base = _ru_maxrss()
            self.result.method = "ru_maxrss growth (lower bound)" if self._base is not None else "unavailable"
        self._t0 = time.perf_counter()
        return self.result

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _malloc_in_use() or 0)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        import time

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.result.seconds = time.perf_counter() - self._t0
            self.result.peak_total_bytes = torch.cuda.max_memory_allocated(self.device)
            self.result.peak_bytes = max(0, self.result.peak_total_bytes - self._base)
            return
        self.result.seconds = time.perf_counter() - self._t0
        if self.result.method.startswith("peak malloc"):
            self._peak = max(self._peak, _malloc_in_use() or 0)
            self._stop.set()
            self._thread.join()
            self.result.peak_total_bytes = self._peak
            self.result.peak_bytes = max(0, self._peak - self._base)
        elif self._base is not None:
            self.result.peak_total_bytes = _ru_maxrss()
            self.result.peak_bytes = max(0, (self.result.peak_total_bytes or 0) - self._base)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _load_mallinfo2() -> Any:
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_mallinfo2 = _load_mallinfo2()


def _malloc_in_use() -> int | None:
    """Bytes malloc has handed out and not freed (small blocks + mmapped ones), or None without glibc."""
    if _mallinfo2 is None:
        return None
    m = _mallinfo2()
    return int(m.uordblks + m.hblkhd)


def _ru_maxrss() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    scale = 1 if os.uname().sysname == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def mean(values: torch.Tensor) -> float:
    """Mean of a per-image metric as a float (nan for an empty tensor)."""
    return values.float().mean().item() if values.numel() else math.nan


def mean_defined(values: torch.Tensor) -> float | None:
    """Mean of ``(N,)`` per-image values over the images where it is defined (not NaN), as a float; None when it is
    nowhere defined (an empty group: no value to report)."""
    defined = values[~torch.isnan(values)]
    return defined.float().mean().item() if defined.numel() else None
