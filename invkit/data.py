"""Data: image folders, tarballs of them, torchvision data sets and the embedded default.

Every data set yields ``(image, label)`` with ``image`` a float tensor ``(C, H, W)`` in [0, 1]. Sources:

* ``"default"`` — a small MNIST subset shipped inside invkit (``invkit/assets``), so everything runs offline.
* a folder in torchvision ``ImageFolder`` layout (``<root>/<split>/<class>/<image>`` or ``<root>/<class>/...``).
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` of such a folder, unpacked once into the cache directory.
* ``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100`` — torchvision's format under ``root``; downloaded
  only when ``download=True``.

The cache directory is ``$INVKIT_CACHE`` or ``~/.cache/invkit``; nothing is ever unpacked into a repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .errors import DataError, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TORCHVISION_SETS = ("mnist", "fashionmnist", "cifar10", "cifar100")
DEFAULT = "default"
SPLITS = ("train", "test", "val")  # what load_dataset accepts (val: folders that call their test split so)


def cache_dir() -> Path:
    """``$INVKIT_CACHE`` or ``~/.cache/invkit``."""
    return Path(os.environ.get("INVKIT_CACHE", Path.home() / ".cache" / "invkit")).expanduser()


def cache_warning(where: Path, exc: BaseException) -> str:
    """The one-line warning for a cache that cannot be written (the run goes on without it)."""
    why = getattr(exc, "strerror", None) or str(exc)
    return (
        f"the invkit cache '{where}' cannot be written ({why}); going on without it (set INVKIT_CACHE to a "
        "writable folder to keep decoded data between runs)."
    )


class ImageDataset(Dataset):
    """A data set of ``(image in [0, 1], label)`` with class names and a known image shape."""

    classes: list[str]
    name: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self[0][0].shape)  # type: ignore[return-value]

    def labels(self) -> list[int]:
        return [int(self[i][1]) for i in range(len(self))]


class TensorImageDataset(ImageDataset):
    """Images held in memory as ``uint8 (N, C, H, W)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str = ""):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("images must be uint8 (N, C, H, W)")
        if len(images) == 0:
            raise DataError(f"data set '{name}' is empty.")
        self.images, self.targets = images, labels.long()
        self.classes, self.name = list(classes), name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float() / 255.0, int(self.targets[i])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def labels(self) -> list[int]:
        return self.targets.tolist()


class FolderImageDataset(ImageDataset):
    """An ``ImageFolder``-layout directory, decoded lazily. A corrupt image raises ``DataError`` naming it."""

    def __init__(self, root: Path, name: str = ""):
        self.root = Path(root)
        self.name = name or str(root)
        if not self.root.is_dir():
            raise DataError(f"data folder '{root}' does not exist.")
        class_dirs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not class_dirs:
            raise DataError(
                f"data folder '{root}' has no class sub-folders; expected <root>/<class>/<image> "
                "(torchvision ImageFolder layout)."
            )
        self.classes = [d.name for d in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        for label, d in enumerate(class_dirs):
            for f in sorted(d.rglob("*")):
                if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                    self.samples.append((f, label))
        if not self.samples:
            raise DataError(f"data folder '{root}' has class folders but no images ({', '.join(IMAGE_EXTENSIONS)}).")
        mode = _image_mode(self.samples[0][0])
        self.mode = "L" if mode in ("L", "1", "I;16", "I") else "RGB"
        self.targets = torch.tensor([s[1] for s in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return load_image(path, self.mode), label

    def labels(self) -> list[int]:
        return self.targets.tolist()

    def materialize(self, size: int | None = None) -> TensorImageDataset:
        """Decode every image into memory (cached on disk as safetensors, keyed by the file list)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        key = hashlib.sha256(("|".join(f"{p}:{p.stat().st_size}" for p, _ in self.samples) + f"|{size}").encode())
        path = cache_dir() / "decoded" / f"{key.hexdigest()[:24]}.safetensors"
        if path.exists():
            t = load_file(str(path))
            return TensorImageDataset(t["images"], t["labels"], self.classes, self.name)
        imgs = []
        for i in range(len(self)):
            x = self[i][0]
            if size is not None and x.shape[-1] != size:
                x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
            imgs.append((x * 255).round().clamp(0, 255).to(torch.uint8))
        images = torch.stack(imgs)
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"images": images, "labels": self.targets}, str(tmp))
            os.replace(tmp, path)
        except (OSError, SafetensorError) as exc:  # a read-only or full cache only costs the next run a decode
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            warnings.warn(cache_warning(path.parent, exc), stacklevel=2)
        return TensorImageDataset(images, self.targets, self.classes, self.name)


def _image_mode(path: Path) -> str:
    try:
        with Image.open(path) as im:
            return im.mode
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image '{path}' ({exc}); delete or replace the file.") from None


def load_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Read one image file as a float ``(C, H, W)`` tensor in [0, 1]."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot read image '{path}' ({type(exc).__name__}: {exc}); delete or replace the corrupt file."
        ) from None
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t.float() / 255.0


def unpack_archive(path: Path) -> Path:
    """Unpack a tarball once into the cache; return the unpacked folder."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = cache_dir() / "unpacked" / f"{path.name.split('.')[0]}-{key}"
    if (dest / ".complete").exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only cache: unpack into a temporary folder for this run only
        import tempfile

        warnings.warn(cache_warning(dest.parent, exc), stacklevel=2)
        tmp = dest = Path(tempfile.mkdtemp(prefix="invkit-unpacked-"))
    try:
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot unpack '{path}' ({exc}); the archive is corrupt or not a tar file.") from None
    if tmp == dest:
        return dest
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.replace(tmp, dest)
    (dest / ".complete").touch()
    return dest


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

    path = Path(__file__).parent / "assets" / "mnist_subset.safetensors"
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
        spec: ``"default"``/None, a folder, a tarball, or a torchvision data set name.
        split: ``train`` or ``test`` (``val`` is accepted for folders that call it so).
        root: where torchvision-format data sets live (default: ``<cache>/datasets``).
        download: let torchvision download a missing data set (needs the network).
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
            f"{name} not found under '{root}' ({exc}); pass --data-root to where it is, or --download when online."
        ) from None
    data = torch.as_tensor(np.asarray(ds.data))
    images = data[:, None] if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return TensorImageDataset(images.contiguous(), torch.as_tensor(ds.targets), list(ds.classes), f"{name}:{split}")


def take(
    dataset: Dataset, n: int | None = None, seed: int = 0, per_class: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``n`` images of a data set into ``(images (n, C, H, W), labels (n,))``, picked by a seeded draw.

    Args:
        n: how many (all when None or larger than the data set).
        seed: the draw's seed; the same seed gives the same images.
        per_class: draw an equal number from each class (in class order) instead of uniformly.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InputError(f"take: n must be a whole number of images >= 1 (or None for all), got {n!r}.")
    total = len(dataset)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(seed)
    if n is None or n >= total:
        idx = list(range(total))
    elif per_class:
        labels = torch.tensor(dataset.labels() if hasattr(dataset, "labels") else [dataset[i][1] for i in range(total)])
        classes = labels.unique().tolist()
        k = max(1, n // len(classes))
        idx = []
        for c in classes:
            members = (labels == c).nonzero().flatten()
            idx += members[torch.randperm(len(members), generator=g)[:k]].tolist()
        idx = idx[:n]
    else:
        idx = torch.randperm(total, generator=g)[:n].tolist()
    items = [dataset[i] for i in idx]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def resize(images: torch.Tensor, size: int | tuple[int, int], channels: int | None = None) -> torch.Tensor:
    """Resize a ``(N, C, H, W)`` batch in [0, 1] (antialiased bilinear) and convert channels if asked."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    if channels is not None and images.shape[1] != channels:
        images = images.expand(-1, 3, -1, -1) if channels == 3 else images.mean(1, keepdim=True)
    return images
