"""Scoring reconstructions with an independent *evaluator* classifier E, as model-inversion work does (Zhang et al.
2020, "The secret revealer"; Struppek et al. 2022, "Plug & Play attacks"): E was trained separately from the
classifier Φ whose logits were inverted, so a reconstruction cannot score well on it by exploiting Φ's quirks.

Per reconstruction x̂ of an original x with true label y, every function returns one value per image (an
``(N,)`` float32 tensor; 0/1 for proportions) so that intervals can be put on them; ``mean`` of each is the
reported number. f(.) is E's penultimate feature vector (``Classifier.features``), d_cos(a, b) = 1 - cos(a, b)
(in [0, 2]):

* ``orig_top1``: E's top-1 on x is y (``topk_correct``; how far E itself can be trusted);
* ``top1`` / ``top5``: E's top-1 / top-5 on x̂ contains y (``topk_correct``; top-k with k = min(5, classes));
* ``agreement``: argmax E(x̂) = argmax E(x) (``prediction_agreement``);
* ``feature_cosine``: d_cos(f(x̂), f(x)) (``cosine_distance``; 0 = same direction);
* ``id_accuracy``: x is the nearest to x̂ by d_cos among x and k-1 held-out images of its class, the same
  distractors as the bench's pixel identification (``feature_identification_hits``; ties shared; chance 1/k);
* ``knn_distance``: min d_cos(f(x̂), f(z)) over z in a held-out bank of images of class y, never the evaluated
  images nor their distractors (``knn_distance``, ``draw_heldout``: up to ``HELDOUT_PER_CLASS`` per class, seeded);
  NaN for an image whose class has no held-out image.

``BenchEvaluator`` computes E's logits and features of the originals, the distractors and the held-out bank once
per bench run (reading the images a batch at a time, keeping features only) and scores each pair's reconstructions
against them (one E forward per reconstruction, a block of images at a time), adding FID and KID in E's feature
space (``invkit.evaluation.distribution``). ``load_evaluators`` loads and checks the evaluators a bench is given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.classifier import Classifier
from ..data.datasets import ImageDataset
from ..errors import DataError, InputError, InvkitError
from .distribution import KID_SUBSET_SIZE, fid, fid_refusal, kid
from .sampling import _stack

INCEPTION_BATCH = 64  # reconstructions per Inception-V3 pass
HELDOUT_PER_CLASS = 20  # held-out images per class in the KNN bank (fewer when the split has fewer left)
METRICS = ("orig_top1", "top1", "top5", "agreement", "feature_cosine", "id_accuracy", "knn_distance")


# ------------------------------------------------------------------------------------------- per-image metrics
def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """1 where ``labels[i]`` is among the ``k`` largest logits of row i (k capped at the number of classes).

    Args:
        logits: ``(N, K)`` logits.
        labels: ``(N,)`` true class indices in ``[0, K)``.
        k: how many top classes count.

    Returns:
        ``(N,)`` float32 in {0, 1}.

    Raises:
        InputError: ``logits`` is not ``(N, K)`` for the ``N`` labels, or ``k < 1``.
    """
    if logits.dim() != 2 or labels.shape != (len(logits),) or k < 1:
        raise InputError(
            f"topk_correct: expected (N, K) logits, (N,) labels and k >= 1, got {tuple(logits.shape)}, "
            f"{tuple(labels.shape)} and k={k}."
        )
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels.to(top.device)[:, None]).any(dim=1).float()


def prediction_agreement(recon_logits: torch.Tensor, orig_logits: torch.Tensor) -> torch.Tensor:
    """1 where argmax of ``recon_logits[i]`` equals argmax of ``orig_logits[i]``: ``(N, K)`` twice -> ``(N,)``.

    Raises:
        InputError: the two tensors are not ``(N, K)`` of one shape.
    """
    if recon_logits.shape != orig_logits.shape or recon_logits.dim() != 2:
        raise InputError(
            f"prediction_agreement: expected two (N, K) logits of one shape, got {tuple(recon_logits.shape)} and "
            f"{tuple(orig_logits.shape)}."
        )
    return (recon_logits.argmax(1) == orig_logits.argmax(1)).float()


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - cos(a[i], b[i])`` per row: ``(N, D)`` twice -> ``(N,)`` float32 in [0, 2] (0: same direction).

    Raises:
        InputError: the two tensors are not ``(N, D)`` of one shape.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise InputError(f"cosine_distance: expected two (N, D) features of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")  # fmt: skip
    return (1 - F.cosine_similarity(a.double(), b.double(), dim=1)).float()


def _pairwise_cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` and ``(M, D)`` -> ``(N, M)`` of 1 - cos, in float64."""
    return 1 - F.normalize(a.double(), dim=-1) @ F.normalize(b.double(), dim=-1).T


def feature_identification_hits(
    recon: torch.Tensor, originals: torch.Tensor, distractors: torch.Tensor
) -> torch.Tensor:
    """Per reconstruction, 1 when its original is the nearest of the k candidates by cosine distance of features
    (the same rule as ``metrics.identification_hits``, in a feature space instead of pixels).

    Args:
        recon: ``(N, D)`` features of the reconstructions.
        originals: ``(N, D)`` features of their originals.
        distractors: ``(N, k - 1, D)`` features of other images of each original's class.

    Returns:
        ``(N,)`` float32 in [0, 1]: 1 (hit), 0 (a distractor strictly nearer) or 1/(t+1) for a tie with t others.

    Raises:
        InputError: the shapes do not fit together.
    """
    if recon.shape != originals.shape or recon.dim() != 2 or distractors.dim() != 3 \
            or distractors.shape[0] != len(recon) or distractors.shape[2] != recon.shape[1]:  # fmt: skip
        raise InputError(
            f"feature_identification_hits: expected (N, D), (N, D) and (N, k-1, D), got {tuple(recon.shape)}, "
            f"{tuple(originals.shape)} and {tuple(distractors.shape)}."
        )
    r = F.normalize(recon.double(), dim=1)
    d_own = 1 - (r * F.normalize(originals.double(), dim=1)).sum(1)
    d_other = 1 - torch.einsum("nd,nkd->nk", r, F.normalize(distractors.double(), dim=2))
    closer = (d_other < d_own[:, None]).sum(1)
    ties = (d_other == d_own[:, None]).sum(1)
    return torch.where(closer > 0, torch.zeros_like(d_own), 1.0 / (ties.double() + 1)).float()


def knn_distance(
    recon: torch.Tensor, labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor
) -> torch.Tensor:
    """Cosine distance from each reconstruction's features to the nearest bank image of its original's class.

    Args:
        recon: ``(N, D)`` features of the reconstructions.
        labels: ``(N,)`` the originals' true classes.
        bank: ``(M, D)`` features of held-out images (never the originals themselves).
        bank_labels: ``(M,)`` their classes.

    Returns:
        ``(N,)`` float32 in [0, 2]; NaN where the bank holds no image of that class.

    Raises:
        InputError: the shapes do not fit together.
    """
    if recon.dim() != 2 or bank.dim() != 2 or recon.shape[1] != bank.shape[1] or labels.shape != (len(recon),) \
            or bank_labels.shape != (len(bank),):  # fmt: skip
        raise InputError(
            f"knn_distance: expected (N, D) features, (N,) labels, (M, D) bank and (M,) bank labels, got "
            f"{tuple(recon.shape)}, {tuple(labels.shape)}, {tuple(bank.shape)} and {tuple(bank_labels.shape)}."
        )
    d = _pairwise_cosine_distance(recon, bank)
    d[labels.cpu()[:, None] != bank_labels.cpu()[None, :]] = math.inf
    best = d.min(dim=1).values if len(bank) else torch.full((len(recon),), math.inf, dtype=torch.float64)
    return torch.where(torch.isinf(best), torch.full_like(best, math.nan), best).float()


def draw_heldout(
    labels: torch.Tensor, exclude: torch.Tensor, per_class: int = HELDOUT_PER_CLASS, seed: int = 0
) -> torch.Tensor:
    """Up to ``per_class`` indices per class of ``labels`` not in ``exclude``, drawn with a seeded generator.

    Args:
        labels: ``(M,)`` the label of every image of the split.
        exclude: indices never drawn (the evaluated images and their distractors), any shape.
        per_class: the most drawn per class (all that are left when fewer).
        seed: seed of the draw.

    Returns:
        ``(L,)`` int64 sorted indices into ``labels``.
    """
    g = torch.Generator().manual_seed(seed + 1)  # another stream than the image and distractor draws
    free = torch.ones(len(labels), dtype=torch.bool)
    free[exclude.flatten().long()] = False
    out = []
    for c in labels.unique().tolist():
        pool = ((labels == c) & free).nonzero().flatten()
        out.append(pool[torch.randperm(len(pool), generator=g)[:per_class]])
    return torch.cat(out).sort().values if out else torch.zeros(0, dtype=torch.long)


def mean_of(values: torch.Tensor) -> float | None:
    """The mean of the finite values of a per-image metric (None when there are none)."""
    finite = values[torch.isfinite(values)]
    return finite.double().mean().item() if finite.numel() else None


# --------------------------------------------------------------------------------------------- evaluators
def load_evaluators(
    specs: list[str], classifiers: dict[str, Classifier], dataset: ImageDataset, device: torch.device
) -> dict[str, Classifier]:
    """The evaluators of a bench by label, each checked: not one of the studied classifiers, and numbering the
    data's classes as the bench does.

    Args:
        specs: evaluator classifier specs (registry names or checkpoint folders, ``demo:``/``hf-hub:`` resolved).
        classifiers: the bench's classifiers by spec.
        dataset: the bench's data, labelled by the classifiers' class names (``Bench._match_classes``).
        device: where the evaluators run.

    Returns:
        label (the folder's name, or the registry name; ``#2`` appended on a clash) -> classifier in eval mode.

    Raises:
        InvkitError: an evaluator that is one of the classifiers (same spec, or a folder with the same weights).
        DataError: an evaluator whose class names do not fit the data, or that numbers them otherwise.
        CheckpointError, UnknownNameError, WeightsNotFoundError: as ``resolve_classifier``.
    """
    from ..core.resolve import is_checkpoint_spec, resolve_classifier
    from ..data.classes import for_classifier
    from ..io.checkpoint import spec_identity

    studied = {spec_identity(c): c for c in classifiers}
    digests = {i.rpartition("@")[2]: c for i, c in studied.items() if i and "@" in i}
    out: dict[str, Classifier] = {}
    for spec in specs:
        ident = spec_identity(spec) or spec
        same = studied.get(ident) or (digests.get(ident.rpartition("@")[2]) if "@" in ident else None)
        if same is not None:
            raise InvkitError(
                f"evaluator '{spec}' is one of the classifiers under study ('{same}'); an evaluator must be trained "
                "independently: pass another classifier to --evaluator."
            )
        clf = resolve_classifier(spec).to(device).eval()
        matched = for_classifier(dataset, clf)
        if matched.labels() != dataset.labels():
            raise DataError(
                f"evaluator '{spec}' numbers the classes of the data differently from the classifiers; give it the "
                "same class names (label_names) as the classifiers."
            )
        base = Path(spec).name if is_checkpoint_spec(spec) else spec
        label, i = base, 2
        while label in out:
            label, i = f"{base}#{i}", i + 1
        out[label] = clf
    return out


class BenchEvaluator:
    """One evaluator's view of a bench run: what it computed once, and the scores of each pair.

    Built from tensors (this constructor) or read from the data a batch at a time (``from_data``, what a bench
    does: only features are kept). A pair's reconstructions are scored at once (``score``) or a block at a time
    (``add`` each block, then ``finish``), to the same values.

    Args:
        classifier: the evaluator E.
        originals: ``(N, C, H, W)`` the evaluated images in [0, 1], at the data's resolution (E resizes).
        labels: ``(N,)`` their true classes.
        distractors: ``(N, k - 1, C, H, W)`` uint8 distractors of instance identification (``Bench.distractors``).
        dataset: the bench's data, for the held-out bank.
        heldout: ``(L,)`` indices into ``dataset`` of the held-out bank (``draw_heldout``).
        batch_size: images per E forward pass.
        seed: seeds KID's subsets.
        distractor_idx: ``(N, k - 1)`` dataset indices of ``distractors`` (``Bench.distractor_idx``): each image
            is then embedded once however often it was drawn.
    """

    def __init__(
        self,
        classifier: Classifier,
        originals: torch.Tensor,
        labels: torch.Tensor,
        distractors: torch.Tensor,
        dataset: ImageDataset,
        heldout: torch.Tensor,
        batch_size: int = 64,
        seed: int = 0,
        distractor_idx: torch.Tensor | None = None,
    ):
        self.classifier, self.batch_size, self.seed = classifier, batch_size, seed
        self.labels = labels.cpu()
        self.orig_logits, self.orig_features = self.embed(originals)
        k = distractors.shape[1]
        flat = distractors.flatten(0, 1)
        inverse = torch.arange(len(flat))
        if distractor_idx is not None:  # an image drawn as a distractor of several originals runs through E once
            unique, inverse = torch.unique(distractor_idx.flatten(), return_inverse=True)
            first = torch.empty(len(unique), dtype=torch.long)
            first[inverse] = torch.arange(len(inverse))  # any position of each image (they hold the same pixels)
            flat = flat[first]
        feats = torch.cat(
            [self.embed(flat[i : i + batch_size].float() / 255.0)[1] for i in range(0, len(flat), batch_size)]
        )
        self._set_rest(feats, inverse.view(len(originals), k), dataset, heldout)

    @classmethod
    def from_data(
        cls,
        classifier: Classifier,
        dataset: ImageDataset,
        indices: torch.Tensor,
        labels: torch.Tensor,
        distractor_idx: torch.Tensor,
        heldout: torch.Tensor,
        batch_size: int = 64,
        seed: int = 0,
    ) -> BenchEvaluator:
        """The evaluator of a bench, reading its images from ``dataset`` ``batch_size`` at a time: only E's logits
        and features are kept (``(N, K)``, ``(N, D)``, and ``(U, D)`` for the U distinct distractors), never the
        images. The same batches, and so the same values, as the constructor given the stacked images.

        Args:
            classifier, heldout, batch_size, seed: as the constructor's.
            dataset: the bench's data (images in [0, 1]; distractors read as uint8 like ``Bench.distractors``).
            indices: ``(N,)`` dataset indices of the evaluated images (``Bench.indices``), ``labels`` their classes.
            distractor_idx: ``(N, k - 1)`` dataset indices of their distractors (``Bench.distractor_idx``).

        Raises:
            DataError: images of different sizes (``invkit.data.stack_images``).
        """
        self = cls.__new__(cls)
        self.classifier, self.batch_size, self.seed = classifier, batch_size, seed
        self.labels = labels.cpu()
        chunks = [self.embed(_stack(dataset, indices[i : i + batch_size])) for i in range(0, len(indices), batch_size)]
        self.orig_logits, self.orig_features = (torch.cat([c[i] for c in chunks]) for i in (0, 1))
        unique, inverse = torch.unique(distractor_idx.flatten(), return_inverse=True)
        feats = [
            self.embed(_stack(dataset, unique[i : i + batch_size], dtype=torch.uint8).float() / 255.0)[1]
            for i in range(0, len(unique), batch_size)
        ]
        self._set_rest(torch.cat(feats), inverse.view(distractor_idx.shape), dataset, heldout)
        return self

    def _set_rest(self, features: torch.Tensor, inverse: torch.Tensor, dataset: ImageDataset, heldout: torch.Tensor):
        """E's features ``(U, D)`` of the distinct distractors, ``(N, k - 1)`` which of them each one is, the bank."""
        self._distractor_unique, self._distractor_inverse = features, inverse
        self._recon: list[tuple[torch.Tensor, torch.Tensor]] = []  # E's logits and features of a pair's blocks
        bs = self.batch_size
        bank = [self.embed(_stack(dataset, heldout[i : i + bs]))[1] for i in range(0, len(heldout), bs)]
        self.bank = torch.cat(bank) if bank else torch.zeros(0, self.orig_features.shape[1])
        all_labels = torch.tensor(dataset.labels())
        self.bank_labels = all_labels[heldout] if len(heldout) else torch.zeros(0, dtype=torch.long)

    @property
    def distractor_features(self) -> torch.Tensor:
        """``(N, k - 1, D)`` E's features of every original's distractors (made on each access)."""
        return self._distractor_unique[self._distractor_inverse]

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E's ``(N, K)`` logits and ``(N, D)`` penultimate features of ``(N, C, H, W)`` images in [0, 1], on the
        CPU in float32, one forward pass per batch."""
        device = next((p.device for p in self.classifier.parameters()), torch.device("cpu"))
        logits, feats = [], []
        for i in range(0, len(images), self.batch_size):
            lg, ft = self.classifier.logits_and_features(images[i : i + self.batch_size].to(device).float())
            logits.append(lg.float().cpu())
            feats.append(ft.float().cpu())
        return torch.cat(logits), torch.cat(feats)

    def add(self, recon: torch.Tensor) -> None:
        """E's logits and features of the next block of a pair's reconstructions (``(m, C, H, W)`` in [0, 1]; every
        block but the last a multiple of ``batch_size`` images, so that E sees the batches ``score`` would)."""
        self._recon.append(self.embed(recon))

    def finish(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Every evaluator metric of the blocks given to ``add`` since the last ``finish`` (the N reconstructions).

        Returns:
            ``(summary, per_image)``: per-image ``(N,)`` float32 tensors under the names of ``METRICS``, and their
            means under the same names plus ``n``, ``knn_n`` (images whose class had held-out images), ``id_k``,
            ``feature_dim``, ``heldout_per_class``, ``fid`` (None with ``fid_status`` saying why when there are
            too few images), ``kid``, ``kid_std`` and ``kid_subset_size``.

        Raises:
            InputError: the blocks do not add up to the N originals.
        """
        blocks, self._recon = self._recon, []
        if sum(len(lg) for lg, _ in blocks) != len(self.labels):
            raise InputError(
                f"BenchEvaluator.finish: {sum(len(lg) for lg, _ in blocks)} reconstructions were added for "
                f"{len(self.labels)} originals; add one per original."
            )
        logits, feats = torch.cat([lg for lg, _ in blocks]), torch.cat([ft for _, ft in blocks])
        bs, n = self.batch_size, len(feats)
        rows = [slice(i, i + bs) for i in range(0, n, bs)]  # (N, k - 1, D) and (N, M) never at once: per batch
        per_image = {
            "orig_top1": topk_correct(self.orig_logits, self.labels, 1),
            "top1": topk_correct(logits, self.labels, 1),
            "top5": topk_correct(logits, self.labels, 5),
            "agreement": prediction_agreement(logits, self.orig_logits),
            "feature_cosine": cosine_distance(feats, self.orig_features),
            "id_accuracy": torch.cat([self._identification(feats[r], r) for r in rows]),
            "knn_distance": torch.cat(
                [knn_distance(feats[r], self.labels[r], self.bank, self.bank_labels) for r in rows]
            ),
        }
        summary: dict[str, Any] = {name: mean_of(v) for name, v in per_image.items()}
        summary |= {
            "n": n,
            "knn_n": int(torch.isfinite(per_image["knn_distance"]).sum()),
            "id_k": self._distractor_inverse.shape[1] + 1,
            "feature_dim": feats.shape[1],
            "heldout_per_class": HELDOUT_PER_CLASS,
            "layer": "penultimate",
        }
        summary.update(distribution_scores(self.orig_features, feats, self.seed))
        return summary, per_image

    def _identification(self, feats: torch.Tensor, rows: slice) -> torch.Tensor:
        distractors = self._distractor_unique[self._distractor_inverse[rows]]
        return feature_identification_hits(feats, self.orig_features[rows], distractors)

    def score(self, recon: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``finish`` of ``recon``, all N ``(N, C, H, W)`` reconstructions in [0, 1] of the originals at once."""
        self._recon = [self.embed(recon)]
        return self.finish()


def distribution_scores(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """FID and KID of two ``(N, D)`` feature sets as a bench records them: ``fid`` (None when ``fid_refusal``
    refuses it), ``fid_status`` (why not, or what it rests on), ``kid``, ``kid_std``, ``kid_subset_size`` (None
    below 2 images) and ``n``."""
    n, dim = min(len(real), len(fake)), real.shape[1]
    reason = fid_refusal(n, dim)
    out: dict[str, Any] = {"n": n, "fid": None if reason else fid(real, fake)}
    out["fid_status"] = reason or f"n = {n} per set, {dim}-d features"
    # subsets of half the images (at most torchmetrics' 1000), so that they differ and kid_std says how much KID moves
    # with the draw; subsets of all n images would all be the same set (kid_std 0)
    size = min(KID_SUBSET_SIZE, max(2, n // 2))
    out["kid"], out["kid_std"], out["kid_subset_size"] = (
        kid(real, fake, subset_size=size, seed=seed) if n >= 2 else (None, None, None)
    )
    return out


class BenchEvaluation:
    """Everything a bench run scores with besides its classifiers: one ``BenchEvaluator`` per evaluator and, when
    its weights are on disk, the standard Inception features (``invkit.evaluation.distribution``).

    Built once per bench run (``Bench._evaluation_of_run``) from its data, image and distractor indices, read a batch
    at a time (``BenchEvaluator.from_data``: features kept, not images); the held-out bank is drawn here (seeded by
    the bench's seed). A pair's reconstructions are given a block at a time (``add``), then scored (``finish``).
    """

    def __init__(self, bench: Any):
        from .distribution import InceptionFeatures, inception_status

        s = bench.settings
        labels = torch.tensor(bench.dataset.labels())
        exclude = torch.cat([bench.indices.flatten(), bench.distractor_idx.flatten()])
        self.heldout = draw_heldout(labels, exclude, HELDOUT_PER_CLASS, s.seed)
        data = (bench.dataset, bench.indices, bench.labels, bench.distractor_idx, self.heldout, s.batch_size, s.seed)
        self.evaluators = {label: BenchEvaluator.from_data(clf, *data) for label, clf in bench.evaluators.items()}
        self.seed = s.seed
        self.inception_ok, self.inception_message = inception_status()
        self.inception = InceptionFeatures(bench.device) if self.inception_ok else None
        self.inception_real = None
        if self.inception is not None:  # batch_size originals at a time, as the stacked originals were
            bs, idx = s.batch_size, bench.indices
            real = [self.inception(_stack(bench.dataset, idx[i : i + bs]), bs) for i in range(0, len(idx), bs)]
            self.inception_real = torch.cat(real)
        self.reset()

    def reset(self) -> None:
        """Forget the blocks added since the last ``finish`` (those of a pair that stopped midway)."""
        self._pending: list[torch.Tensor] = []  # reconstructions not yet through Inception (fewer than 64)
        self._inception_fake: list[torch.Tensor] = []
        for ev in self.evaluators.values():
            ev._recon = []

    def add(self, recon: torch.Tensor) -> None:
        """The next block of a pair's ``(m, C, H, W)`` reconstructions in [0, 1]: through every evaluator, and
        through Inception 64 at a time counted from the pair's first image (the rest waits for the next block)."""
        for ev in self.evaluators.values():
            ev.add(recon)
        if self.inception is not None:
            waiting = torch.cat([*self._pending, recon.cpu()])
            whole = len(waiting) // INCEPTION_BATCH * INCEPTION_BATCH
            if whole:
                self._inception_fake.append(self.inception(waiting[:whole], INCEPTION_BATCH))
            self._pending = [waiting[whole:]]

    def finish(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``({"evaluators": {LABEL: summary}, "inception": {...}}, {"eval:LABEL:METRIC": (N,) tensor})`` of the
        blocks given to ``add`` (``BenchEvaluator.finish``)."""
        scores: dict[str, Any] = {"evaluators": {}}
        per_image: dict[str, torch.Tensor] = {}
        for label, ev in self.evaluators.items():
            scores["evaluators"][label], tensors = ev.finish()
            per_image |= {f"eval:{label}:{name}": t for name, t in tensors.items()}
        inception: dict[str, Any] = {"status": self.inception_message}
        if self.inception is not None:
            rest = torch.cat(self._pending) if self._pending else torch.zeros(0)
            fake = self._inception_fake + ([self.inception(rest, INCEPTION_BATCH)] if len(rest) else [])
            self._pending, self._inception_fake = [], []
            inception |= distribution_scores(self.inception_real, torch.cat(fake), self.seed)
        scores["inception"] = inception
        return scores, per_image

    def score(self, recon: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The scores of a pair's ``(N, C, H, W)`` reconstructions in [0, 1] given at once (``add``, ``finish``)."""
        self.reset()
        self.add(recon)
        return self.finish()
