"""Distribution metrics between reconstructions and originals: FID and KID, computed by ``torchmetrics``.

Both compare the set of reconstructions with the set of originals as wholes (not image by image), in a feature
space: an evaluator classifier's penultimate features (``invkit.evaluation.evaluator``; always available) or the
standard Inception-V3 pool features (2048-d, torch-fidelity's port of the TensorFlow FID network, as torchmetrics
uses by default; only when its weights are already on disk).

* **FID** (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
  equilibrium"): ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` of the Gaussians fitted to the two sets
  of features; torchmetrics' ``FrechetInceptionDistance`` computes it (its matrix square root, in float64).
  **Minimum n**: the covariance of n feature vectors of dimension d has rank at most n - 1, so with n <= d it is
  singular and the square-root term is not a distance between full Gaussians; invkit refuses FID unless both sets
  hold at least d + 1 images (``fid_min_n``). Even above that FID is biased upwards at small n: compare values at
  the same n only.
* **KID** (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased squared MMD with the polynomial kernel
  ``k(a, b) = (a.b / d + 1)^3``, averaged over ``subsets`` random subsets of ``subset_size`` images of each set
  (torchmetrics' ``KernelInceptionDistance``), with the standard deviation over the subsets. Unbiased, so usable
  at small n (``subset_size`` is at most n, and n at least 2); the subsets are drawn with a seeded generator.

The features are computed once by the caller (the evaluator's forward pass that also gives its accuracy), and
handed to torchmetrics through a module that passes them through (``_Precomputed``): torchmetrics does the
statistics. ``ClassifierFeatures`` is the module for torchmetrics users who start from images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

KID_SUBSETS = 100  # subsets KID averages over (torchmetrics' default)
KID_SUBSET_SIZE = 1000  # images per subset, at most n (torchmetrics' default)
INCEPTION_URL = (  # torch-fidelity's Inception-V3 FID weights, which torchmetrics loads through torch.hub
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


def fid_min_n(dim: int) -> int:
    """The fewest images per set for FID in a ``dim``-dimensional feature space: ``dim + 1`` (a full-rank
    covariance needs n - 1 >= d)."""
    return dim + 1


def fid_refusal(n: int, dim: int) -> str | None:
    """Why FID cannot be computed from ``n`` images per set in ``dim`` dimensions (one line), or None."""
    if n >= fid_min_n(dim):
        return None
    return (
        f"FID needs at least {fid_min_n(dim)} images for {dim}-dimensional features (the covariance of n <= d "
        f"feature vectors is singular), got {n}; use -n {fid_min_n(dim)} or more, or read KID, which works at any n"
    )


class _Precomputed(nn.Module):
    """Hands features already computed to torchmetrics: its 'images' are ``(N, num_features)`` features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class ClassifierFeatures(nn.Module):
    """A classifier's layer as torchmetrics' ``feature`` extractor: images in [0, 1] -> ``(N, D)`` features.

    ``FrechetInceptionDistance(feature=ClassifierFeatures(clf), normalize=True)`` then takes float images in
    [0, 1] of any size (the classifier resizes them). ``num_features`` tells torchmetrics D without a dummy pass.

    Args:
        classifier: an ``invkit.Classifier``.
        layer: the layer (``Classifier.features``), by default the penultimate one.
        num_features: D; found with one image of the classifier's input size when not given.
    """

    def __init__(self, classifier: nn.Module, layer: str = "penultimate", num_features: int | None = None):
        super().__init__()
        self.classifier, self.layer = classifier, layer
        if num_features is None:
            example = torch.rand(1, *classifier.config.input_size)
            num_features = int(classifier.features(example, layer).shape[1])
        self.num_features = num_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float(), self.layer)


def _check_features(real: torch.Tensor, fake: torch.Tensor, what: str) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise InputError(
            f"{what}: expected two (N, D) feature tensors of the same D, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}."
        )
    if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
        raise InputError(f"{what}: the features hold NaN or inf; check the images and the evaluator.")


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to two sets of features (torchmetrics, float64).

    Args:
        real: ``(N, D)`` features of the originals.
        fake: ``(M, D)`` features of the reconstructions.

    Returns:
        FID >= 0 (up to rounding; 0 for identical sets), in squared feature units.

    Raises:
        InputError: the tensors are not ``(N, D)`` of one D, hold NaN/inf, or either set has fewer than D + 1
            images (``fid_refusal``).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(real, fake, "fid")
    reason = fid_refusal(min(len(real), len(fake)), real.shape[1])
    if reason:
        raise InputError(reason + ".")
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), reset_real_features=True)
    metric.update(real.detach().cpu().double(), real=True)
    metric.update(fake.detach().cpu().double(), real=False)
    return float(metric.compute())


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Kernel distance (unbiased squared MMD, cubic polynomial kernel) between two sets of features (torchmetrics).

    Args:
        real: ``(N, D)`` features of the originals.
        fake: ``(M, D)`` features of the reconstructions.
        subsets: random subsets averaged over.
        subset_size: images per subset; lowered to ``min(N, M)`` when larger.
        seed: seeds the subset draw (the global RNG is left as it was).

    Returns:
        ``(kid, kid_std, subset_size used)``: the mean over subsets (about 0 for sets from one distribution; it can
        be slightly negative, being unbiased) and the standard deviation over subsets (0 when the subsets are the
        whole sets).

    Raises:
        InputError: the tensors are not ``(N, D)`` of one D, hold NaN/inf, or either set has fewer than 2 images.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_features(real, fake, "kid")
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise InputError(f"KID needs at least 2 images in each set, got {len(real)} and {len(fake)}.")
    with warnings.catch_warnings():  # "will save all extracted features in buffer": they are small here
        warnings.simplefilter("ignore")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.detach().cpu().double(), real=True)
    metric.update(fake.detach().cpu().double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


# ------------------------------------------------------------------------------------------ Inception features
def inception_file() -> Path:
    """Where torchmetrics (through torch-fidelity and ``torch.hub``) looks for the Inception-V3 FID weights:
    ``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


def inception_status() -> tuple[bool, str]:
    """Whether Inception FID/KID can run offline, and a one-line reason when not. Never touches the network."""
    from .metrics import _sha256_matches

    try:
        import torch_fidelity  # noqa: F401 - torchmetrics' Inception network comes from it
    except ImportError:
        return False, "unavailable: torch-fidelity is not installed (pip install torch-fidelity)"
    path = inception_file()
    if not path.exists():
        return False, f"weights not present: download {INCEPTION_URL} and place it at {path}"
    if not _sha256_matches(path):
        return (
            False,
            f"unavailable: {path} does not have the SHA-256 its name promises; replace it with {INCEPTION_URL}",
        )
    return True, f"torchmetrics Inception-V3 pool features, 2048-d (weights {path.name})"


class InceptionFeatures:
    """The standard FID features: torchmetrics' Inception-V3 (torch-fidelity weights) 2048-d pool activations.

    Images in [0, 1] are scaled to bytes, grey ones repeated to 3 channels, and resized to 299 px by the network.

    Args:
        device: where the network runs.

    Raises:
        InputError: the weights are not on disk, or are not the published file (``inception_status``): never
            downloaded here.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        ok, message = inception_status()
        if not ok:
            raise InputError(f"inception FID: {message}.")
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.device = torch.device(device)
        self.model = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"]).to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """``(N, C, H, W)`` images in [0, 1] (C = 1 or 3) -> ``(N, 2048)`` float64 features on the CPU."""
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(self.device).float().clamp(0, 1)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            out.append(self.model((x * 255).round().to(torch.uint8)).double().cpu())
        return torch.cat(out)
