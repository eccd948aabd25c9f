"""Sources: ``load_dataset`` opens a data set from a name or a path (what ``--data`` takes).

* ``"default"`` — a small MNIST subset shipped inside invkit (``invkit/assets``), so everything runs offline
  (``load_embedded``).
* a folder in torchvision ``ImageFolder`` layout (``<root>/<split>/<class>/<image>`` or ``<root>/<class>/...``).
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` of such a folder, unpacked once into the cache directory
  (``invkit.data.archives``).
* a folder of Downsampled ImageNet npz batches (``train_data_batch_*.npz``, ``val_data.npz``; ``invkit.data.npz``).
* ``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100`` — torchvision's format under ``root``; downloaded
  only when ``download=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, short_message
from .archives import unpack_archive
from .cache import cache_dir
from .datasets import FolderImageDataset, ImageDataset, TensorImageDataset
from .npz import is_npz_folder, load_npz_folder

TORCHVISION_SETS = ("mnist", "fashionmnist", "cifar10", "cifar100")

DEFAULT = "default"

SPLITS = ("train", "test", "val")  # what load_dataset accepts (val: folders that call their test split so)


def _find_split(root: Path, split: str) -> Path:
    """``root/split`` if it exists; a lone top folder is descended into (``x.tar.gz`` -> ``x/``)."""
    entries = [d for d in root.iterdir() if not d.name.startswith(".")]
    splits = ("train", "val", "valid", "test")
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in splits:
        inner = entries[0]
        if any(d.is_dir() for d in inner.iterdir()):
            root = inner
    aliases = {"test": ("test", "val", "valid"), "val": ("val", "test", "valid"), "train": ("train",)}
    for s in aliases.get(split, (split,)):
        if (root / s).is_dir():
            return root / s
    subdirs = [d.name for d in root.iterdir() if d.is_dir()]
    if any(s in subdirs for s in splits):
        raise DataError(f"'{root}' has no '{split}' split (found: {', '.join(sorted(subdirs))}).")
    return root


def load_embedded(split: str = "test") -> TensorImageDataset:
    """The MNIST subset shipped with invkit (see ``invkit/assets/README.md`` for attribution)."""
    from safetensors.torch import load_file

    path = Path(__file__).parents[1] / "assets" / "mnist_subset.safetensors"
    t = load_file(str(path))
    split = "test" if split in ("val", "test") else "train"
    return TensorImageDataset(
        t[f"{split}_images"], t[f"{split}_labels"], [str(i) for i in range(10)], name=f"default:{split}"
    )


def load_dataset(
    spec: str | os.PathLike | None = None,
    split: str = "test",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> ImageDataset:
    """Open a data set.

    Args:
        spec: ``"default"``/None, a folder, a tarball, a folder of Downsampled ImageNet npz batches (or one of its
            files), or a torchvision data set name.
        split: ``train`` or ``test`` (``val`` is accepted for folders that call it so).
        root: where torchvision-format data sets live (default: ``<cache>/datasets``).
        download: let torchvision download a missing data set (needs the network).

    Returns:
        A data set of ``(image, label)`` items: ``image`` a float ``(C, H, W)`` tensor in [0, 1], ``label`` an int
        index into its ``classes``. Folder images are decoded when an item is read (a corrupt file raises
        ``DataError`` then).

    Raises:
        DataError: an unknown split; a path that does not exist, a file that is not a tar archive (or npz batch),
            an empty folder or a corrupt archive; a folder without the split, class folders or images; a
            torchvision data set not found under ``root``; npz batches ``load_npz_folder`` refuses; class folders
            ``FolderImageDataset`` refuses (a link loop, two class folders that are one, one image in two classes,
            a name that is not UTF-8).
        OutputError: the cache's disk fills up (or its quota) while an archive is unpacked.
        InputError: no ``INVKIT_CACHE`` and no home folder, where the cache is needed.
    """
    if split not in SPLITS:  # a typo ("tset") must not silently give the train split
        raise DataError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}.")
    if spec is None or str(spec) == DEFAULT:
        return load_embedded(split)
    name = str(spec).lower()
    if name in TORCHVISION_SETS and not Path(spec).exists():
        return _torchvision_dataset(name, split, Path(root) if root else cache_dir() / "datasets", download)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"data path '{spec}' does not exist; give a folder, a .tar.gz, 'default' or one of "
            f"{', '.join(TORCHVISION_SETS)}."
        )
    if path.is_file() and path.suffix == ".npz":
        return load_npz_folder(path.parent, split, name=f"{path.parent.name}:{split}")
    if is_npz_folder(path):
        return load_npz_folder(path, split, name=f"{path.name}:{split}")
    if path.is_file():
        if not any(path.name.endswith(s) for s in (".tar.gz", ".tgz", ".tar")):
            raise DataError(f"data path '{spec}' is a file but not a .tar.gz/.tgz/.tar archive of an image folder.")
        path = unpack_archive(path)
    if not any(path.iterdir()):
        raise DataError(f"data folder '{spec}' is empty.")
    folder = _find_split(path, split)
    return FolderImageDataset(folder, name=f"{Path(spec).name}:{split}")


def _torchvision_dataset(name: str, split: str, root: Path, download: bool) -> TensorImageDataset:
    from torchvision import datasets

    cls = {
        "mnist": datasets.MNIST,
        "fashionmnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
    except RuntimeError as exc:
        raise DataError(
            f"{name} not found under '{root}' ({short_message(exc)}); pass --data-root to where it is, or --download "
            "when online."
        ) from None
    data = torch.as_tensor(np.asarray(ds.data))
    images = data[:, None] if data.dim() == 3 else data.permute(0, 3, 1, 2)
    # MNIST's classes are called "0 - zero" ... by torchvision; "0" ... "9" like the embedded digits and the
    # digit folders, so that a classifier trained on one of them matches the others by name
    classes = [str(i) for i in range(10)] if name == "mnist" else list(ds.classes)
    return TensorImageDataset(images.contiguous(), torch.as_tensor(ds.targets), classes, f"{name}:{split}")
