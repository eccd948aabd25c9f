"""The data set classes, and ``take``, which draws a batch from any of them.

Every data set yields ``(image, label)`` with ``image`` a float tensor ``(C, H, W)`` in [0, 1] and ``label`` an int
index into its ``classes``:

* ``ImageDataset`` — the base: ``classes``, ``num_classes``, ``image_shape``, ``labels()``.
* ``TensorImageDataset`` — uint8 images held in memory (or memory-mapped from the cache).
* ``FolderImageDataset`` — a folder in torchvision ``ImageFolder`` layout, decoded lazily; ``materialize``
  decodes it once into a memory-mapped uint8 array in the cache (``invkit.data.cache``).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import DataError, InputError
from .cache import CACHE_VERSION, _build_cached, _open_cached, cache_dir
from .images import IMAGE_EXTENSIONS, _fit, _image_size, decode_image, load_image, split_mode


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
    """Images held in memory as ``uint8 (N, C, H, W)``; item ``i`` is ``images[i] / 255`` (float ``(C, H, W)``
    in [0, 1]) and its label.

    Args:
        images: ``(N, C, H, W)`` uint8 pixels (0-255), N >= 1.
        labels: ``(N,)`` class indices into ``classes``.
        classes: the class names, in label order.
        name: what messages call the data set.

    Raises:
        InputError: ``images`` is not a 4-D uint8 tensor, or ``labels`` not one label per image.
        DataError: ``images`` holds no image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str = ""):
        where = f"data set '{name}'" if name else "TensorImageDataset"
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"{where}: images must be a uint8 tensor (N, C, H, W) in [0, 255], got {got}.")
        if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise InputError(f"{where}: labels must be a tensor of shape ({len(images)},), one per image, got {got}.")
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

    def relabel(self, mapping: Sequence[int], classes: Sequence[str]) -> TensorImageDataset:
        """The same images with label ``k`` replaced by ``mapping[k]`` and class list ``classes``."""
        return TensorImageDataset(self.images, torch.as_tensor(list(mapping))[self.targets], classes, self.name)


class FolderImageDataset(ImageDataset):
    """An ``ImageFolder``-layout directory: labels from the class-folder names (sorted), images decoded lazily.

    The split's colour mode is RGB when any of its files is a colour image (whatever file comes first) and
    greyscale only when every file is; it is read from the file headers on first use. ``materialize`` decodes
    the whole folder once into a uint8 array cache (see there). A file that cannot be decoded raises
    ``DataError`` naming it.
    """

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
        self.targets = torch.tensor([s[1] for s in self.samples])
        self._mode: str | None = None

    @property
    def mode(self) -> str:
        """``"RGB"`` if any file of the split is a colour image, else ``"L"`` (read from the headers once)."""
        if self._mode is None:
            self._mode = split_mode(p for p, _ in self.samples)
        return self._mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return load_image(path, self.mode), label

    def labels(self) -> list[int]:
        return self.targets.tolist()

    def relabel(self, mapping: Sequence[int], classes: Sequence[str]) -> FolderImageDataset:
        """The same files with label ``k`` replaced by ``mapping[k]`` and class list ``classes``."""
        out = copy.copy(self)
        out.samples = [(p, int(mapping[y])) for p, y in self.samples]
        out.targets = torch.tensor([y for _, y in out.samples])
        out.classes = list(classes)
        return out

    def fingerprint(self) -> str:
        """A hash of the folder, every file's relative path, size and ``st_mtime_ns``: changes when any file does."""
        h = hashlib.sha256(f"{CACHE_VERSION}|{self.root.resolve()}".encode())
        for p, _ in self.samples:
            st = p.stat()
            h.update(f"|{p.relative_to(self.root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:32]

    def materialize(self, size: int | None = None) -> TensorImageDataset:
        """Every image decoded once into a memory-mapped uint8 array ``(N, C, H, W)``.

        The array is ``<cache>/decoded/<key>.npy``, where the key hashes the folder, every file's path, size
        and modification time (ns) and ``size``: any changed, added or removed file makes a new cache, so an
        epoch never decodes a JPEG and never sees stale pixels. Images of another size than the first are
        resized (antialiased bilinear) to its size; for a ``size`` other than that, the images' own cache is
        built first and resized in chunks into a second one. A cache folder that cannot be written gives a
        ``CacheWarning`` and the images are decoded into memory.

        Args:
            size: side of the square images in the array, in pixels; None keeps the images' own size.

        Raises:
            DataError: a file that cannot be decoded (named).
        """
        key = hashlib.sha256(f"{self.fingerprint()}|{size}".encode()).hexdigest()[:32]
        path = cache_dir() / "decoded" / f"{key}.npy"
        array = _open_cached(path)
        if array is None:
            native = _image_size(self.samples[0][0])
            if size is not None and (size, size) != native:  # resize the images' own cache, in chunks
                base = self.materialize(None).images

                def fill(out: np.ndarray) -> None:
                    for i in range(0, len(base), 1024):
                        x = base[i : i + 1024].float() / 255.0
                        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                        out[i : i + 1024] = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()

                shape = (len(base), base.shape[1], size, size)
            else:

                def fill(out: np.ndarray) -> None:
                    for i, (p, _) in enumerate(self.samples):
                        out[i] = _fit(decode_image(p, self.mode), out.shape[-2:])

                shape = (len(self.samples), 3 if self.mode == "RGB" else 1, *native)
            array = _build_cached(path, shape, fill)
        return TensorImageDataset(torch.from_numpy(array), self.targets, self.classes, self.name)


def take(
    dataset: Dataset, n: int | None = None, seed: int = 0, per_class: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``n`` images of a data set into ``(images (n, C, H, W), labels (n,))``, picked by a seeded draw.

    Args:
        dataset: a data set of ``(image, label)`` items, images ``(C, H, W)`` of one shape (float in [0, 1] for
            invkit's data sets); ``per_class`` uses its ``labels()`` when it has one.
        n: how many (all when None or larger than the data set).
        seed: the draw's seed; the same seed gives the same images.
        per_class: draw an equal number from each class (in class order) instead of uniformly.

    Returns:
        ``images`` ``(n, C, H, W)`` as the data set gives them (in [0, 1] for invkit's data sets) and ``labels``
        ``(n,)`` int64. With ``per_class`` there may be fewer than ``n``: ``n // classes`` per class (at least
        one, and no more than a class has), cut to ``n``.

    Raises:
        InputError: ``n`` is not a whole number >= 1 (or None).
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
