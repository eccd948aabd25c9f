"""Class names: a data set's labels are matched to a model's logits by class name, never by folder order.

``match_classes`` renumbers a data set's labels to a model's class list (by readable names or other ids such as
WordNet ids); ``for_classifier`` does it against what a classifier records. ``_Relabeled`` wraps data sets that
cannot relabel themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .datasets import ImageDataset


class _Relabeled(ImageDataset):
    """Any data set with its labels mapped through ``mapping``."""

    def __init__(self, base: Dataset, mapping: Sequence[int], classes: Sequence[str]):
        self.base, self.mapping, self.classes = base, list(mapping), list(classes)
        self.name = getattr(base, "name", "")

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[i]
        return x, self.mapping[int(y)]

    def describe(self, i: int) -> str:
        return self.base.describe(i) if hasattr(self.base, "describe") else f"item {i}"

    def labels(self) -> list[int]:
        base = self.base.labels() if hasattr(self.base, "labels") else [self.base[i][1] for i in range(len(self))]
        return [self.mapping[int(y)] for y in base]


def match_classes(
    dataset: Dataset,
    names: Sequence[str] | None,
    num_classes: int | None = None,
    *,
    ids: Sequence[str] | None = None,
    owner: str = "the classifier",
) -> Dataset:
    """Renumber ``dataset``'s labels to the class list of a model, matching classes by name, never by order.

    A data class matches a model class when its name equals one of ``names`` (the readable names a classifier
    records) or of ``ids`` (other identifiers of the same classes, such as ImageNet WordNet ids). The result's
    label ``k`` means the model's class ``k``; a data set with fewer classes, or the same ones in another
    order, is mapped. A data set whose classes are all known in the same order is returned as it is. A data
    class whose name the model gives to two classes (timm calls ImageNet classes 134 and 517 both ``crane``) is
    refused, never mapped to one of them.

    Args:
        dataset: an ``ImageDataset`` (``classes``, ``labels()``); other data sets are returned unchanged.
        names: the model's class names, in logit order; None when it records none.
        num_classes: the model's number of logits (checked when it records no names).
        ids: other identifiers of the model's classes, in logit order.
        owner: how to call the model in messages.

    Raises:
        DataError: a data class the model does not know (the first few are named), a data class that names two
            or more of the model's classes (named, with the ids that tell them apart), or, for a model without
            recorded names, more data classes than it has logits.
    """
    classes = getattr(dataset, "classes", None)
    if classes is None:
        return dataset
    classes = list(classes)
    known = [list(x) for x in (names, ids) if x is not None]
    if not known:
        if num_classes is not None and len(classes) > num_classes:
            raise DataError(
                f"data '{getattr(dataset, 'name', '')}' has {len(classes)} classes but {owner} has {num_classes} "
                "outputs and records no class names; give data of the classes it was trained on."
            )
        return dataset  # nothing to check against: labels are taken as the model's class numbers
    lookups: list[dict[str, list[int]]] = []
    for k in known:
        lookup: dict[str, list[int]] = {}
        for i, c in enumerate(k):
            lookup.setdefault(c, []).append(i)
        lookups.append(lookup)
    mapping: list[int] = []
    missing: list[str] = []
    for c in classes:
        hits = sorted({i for lk in lookups for i in lk.get(c, [])})
        if not hits:
            missing.append(c)
        elif len(hits) > 1:
            raise _ambiguous(dataset, c, hits, names, ids, owner)
        else:
            mapping.append(hits[0])
    target = known[0]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:3]) + (", ..." if len(missing) > 3 else "")
        examples = ", ".join(repr(c) for c in target[:3]) + (", ..." if len(target) > 3 else "")
        raise DataError(
            f"{len(missing)} of the {len(classes)} classes of data '{getattr(dataset, 'name', '')}' ({shown}) are "
            f"not classes of {owner} ({examples}); give data whose class folders are named like its classes "
            "(labels are never matched by folder order)."
        )
    if mapping == list(range(len(target))):
        return dataset
    if len(set(mapping)) != len(mapping):
        raise DataError(f"two classes of data '{getattr(dataset, 'name', '')}' name the same class of {owner}.")
    if hasattr(dataset, "relabel"):
        return dataset.relabel(mapping, target)
    return _Relabeled(dataset, mapping, target)


def _ambiguous(
    dataset: Dataset, name: str, hits: list[int], names: Sequence[str] | None, ids: Sequence[str] | None, owner: str
) -> DataError:
    """The error for a data class whose name is the name (or id) of several of the model's classes."""
    told = [f"{i} ({ids[i]})" if ids is not None and i < len(ids) else str(i) for i in hits]
    rename = (
        f"rename the folder to the id of the class it holds ({' or '.join(ids[i] for i in hits)})"
        if ids is not None and all(i < len(ids) for i in hits) and len({ids[i] for i in hits}) == len(hits)
        else "the model's class names cannot tell them apart, so give data whose classes it names once"
    )
    return DataError(
        f"class '{name}' of data '{getattr(dataset, 'name', '')}' names {len(hits)} classes of {owner} "
        f"({', '.join(told)}); {rename}."
    )


def for_classifier(dataset: Dataset, classifier: Any) -> Dataset:
    """``match_classes`` against a classifier's recorded ``label_names`` (and ``extra["class_ids"]``).

    This is the one place where invkit pairs a classifier with labelled data (bench, probe, train,
    train-classifier call it), so that labels are never matched to logits by folder order.

    Raises:
        DataError: as ``match_classes``.
    """
    cfg = classifier.config
    ids = cfg.extra.get("class_ids") if isinstance(cfg.extra, dict) else None
    return match_classes(dataset, cfg.label_names, cfg.num_classes, ids=ids, owner=f"classifier {cfg.name}")
