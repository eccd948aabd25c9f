"""The data set classes, and ``take``, which draws a batch from any of them.

Every data set yields ``(image, label)`` with ``image`` a float tensor ``(C, H, W)`` in [0, 1] and ``label`` an int
index into its ``classes``:

* ``ImageDataset`` — the base: ``classes``, ``num_classes``, ``image_shape``, ``labels()``.
* ``TensorImageDataset`` — uint8 images held in memory (or memory-mapped from the cache).
* ``FolderImageDataset`` — a folder in torchvision ``ImageFolder`` layout, decoded lazily; ``materialize``
  decodes it once into a memory-mapped uint8 array in the cache (``invkit.data.cache``).

``stack_images`` (and ``take``, which draws a batch from any of them) stacks images one at a time, each resized on
its own when a size is asked for; images of mixed sizes without one are refused, naming two of them, never
squeezed to the first one's size.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import DataError, InputError
from .cache import CACHE_VERSION, _build_cached, _open_cached, cache_dir
from .images import IMAGE_EXTENSIONS, decode_image, image_size, load_image, resize, shown_path, split_mode


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

    def describe(self, i: int) -> str:
        """How messages name item ``i`` (a file name for folders)."""
        return f"item {i} of data '{self.name}'"


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
    ``DataError`` naming it. Items are each at their file's own size (``stack_images``, ``take`` and
    ``materialize`` bring them to one).

    Class folders may be links to folders elsewhere; links to folders inside a class folder are not entered.

    Raises:
        DataError: the folder is missing or has no class folders or images; a class folder whose name is not
            UTF-8, that links to the data folder or above it (a loop), or that is the same folder as another;
            one image file (through a link) in two classes. Each names the folder or files.
    """

    def __init__(self, root: Path, name: str = ""):
        self.root = Path(root)
        self.name = name or str(root)
        if not self.root.is_dir():
            raise DataError(f"data folder '{shown_path(root)}' does not exist.")
        class_dirs = _class_folders(self.root)
        if not class_dirs:
            raise DataError(
                f"data folder '{shown_path(root)}' has no class sub-folders; expected <root>/<class>/<image> "
                "(torchvision ImageFolder layout)."
            )
        self.classes = [d.name for d in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        owner: dict[str, tuple[Path, int]] = {}  # the real file behind every image, to find one in two classes
        for label, d in enumerate(class_dirs):
            real_d = os.path.realpath(d)
            for f in _image_files(d):
                real = os.path.realpath(f) if f.is_symlink() else os.path.join(real_d, os.path.relpath(f, d))
                first, first_label = owner.setdefault(real, (f, label))
                if first_label != label:
                    raise DataError(
                        f"'{shown_path(f)}' and '{shown_path(first)}' are the same file (one is a link) in two class "
                        "folders, so the image would carry two labels; remove one of them."
                    )
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

    def describe(self, i: int) -> str:
        return f"'{shown_path(self.samples[i][0])}'"

    def relabel(self, mapping: Sequence[int], classes: Sequence[str]) -> FolderImageDataset:
        """The same files with label ``k`` replaced by ``mapping[k]`` and class list ``classes``."""
        out = copy.copy(self)
        out.samples = [(p, int(mapping[y])) for p, y in self.samples]
        out.targets = torch.tensor([y for _, y in out.samples])
        out.classes = list(classes)
        return out

    def fingerprint(self) -> str:
        """A hash of the folder, every file's relative path, size and ``st_mtime_ns``: changes when any file does."""
        h = hashlib.sha256(f"{CACHE_VERSION}|".encode() + os.fsencode(self.root.resolve()))
        for p, _ in self.samples:  # file names as bytes: names that are not UTF-8 hash too
            st = p.stat()
            h.update(b"|" + os.fsencode(p.relative_to(self.root)) + f":{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:32]

    def materialize(self, size: int | None = None) -> TensorImageDataset:
        """Every image decoded once into a memory-mapped uint8 array ``(N, C, H, W)``.

        The array is ``<cache>/decoded/<key>.npy``, where the key hashes the folder, every file's path, size
        and modification time (ns) and ``size``: any changed, added or removed file makes a new cache, so an
        epoch never decodes a JPEG and never sees stale pixels. With ``size``, each image is resized on its own
        (antialiased bilinear) to ``size`` x ``size`` as it is decoded (from the images' own cache, in chunks,
        when that exists), so a folder of mixed sizes works and one full-size image is in memory at a time.
        Without ``size`` every image must have the first one's size. Two processes or threads building the
        same array build it once (``invkit.data.cache._build_cached``). A cache folder that cannot be written
        gives a ``CacheWarning`` and the images are decoded into memory.

        Args:
            size: side of the square images in the array, in pixels; None keeps the images' own size.

        Raises:
            DataError: a file that cannot be decoded (named); without ``size``, images of different sizes (two
                named).
        """
        fingerprint = self.fingerprint()
        path = self._cache_path(fingerprint, size)
        array = _open_cached(path)
        if array is not None:  # a cache file of other images (replaced, damaged) is decoded again, never reused
            hw = (size, size) if size is not None else image_size(self.samples[0][0])
            if len(array) != len(self.samples) or array.ndim != 4 or tuple(array.shape[-2:]) != tuple(hw):
                array = None
        if array is None:
            own = _open_cached(self._cache_path(fingerprint, None)) if size is not None else None
            if own is not None and tuple(own.shape[-2:]) != (size, size):  # resize the images' own cache, in chunks
                base = torch.from_numpy(own)

                def fill(out: np.ndarray) -> None:
                    for i in range(0, len(base), 1024):
                        x = base[i : i + 1024].float() / 255.0
                        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                        out[i : i + 1024] = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()

                shape = (len(base), base.shape[1], size, size)
            else:
                hw = (size, size) if size is not None else image_size(self.samples[0][0])

                def fill(out: np.ndarray) -> None:
                    for i, (p, _) in enumerate(self.samples):
                        x = decode_image(p, self.mode, size)
                        if x.shape[-2:] != hw:
                            raise _mixed_sizes(
                                self,
                                (0, hw),
                                (i, x.shape[-2:]),
                                "give a size to resize each image to (invkit "
                                "train-classifier --input-size), or bring the images to one size",
                            )
                        out[i] = x

                shape = (len(self.samples), 3 if self.mode == "RGB" else 1, *hw)
            array = _build_cached(path, shape, fill)
        return TensorImageDataset(torch.from_numpy(array), self.targets, self.classes, self.name)

    @staticmethod
    def _cache_path(fingerprint: str, size: int | None) -> Path:
        key = hashlib.sha256(f"{fingerprint}|{size}".encode()).hexdigest()[:32]
        return cache_dir() / "decoded" / f"{key}.npy"


def _class_folders(root: Path) -> list[Path]:
    """The class folders of ``root``, sorted; a link that would repeat images under another label is refused."""
    real_root = root.resolve()
    seen: dict[Path, Path] = {}
    folders = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        try:
            d.name.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(
                f"class folder '{shown_path(d)}' has a name that is not UTF-8 text; class names are recorded in "
                "checkpoints and matched to a classifier's class names, so rename the folder."
            ) from None
        real = d.resolve()
        if real == real_root or real in real_root.parents:
            raise DataError(
                f"'{shown_path(d)}' is a link to '{shown_path(real)}', which holds the data folder itself: as a class "
                "folder it would repeat every image under another label; remove the link."
            )
        if real in seen:
            raise DataError(
                f"class folders '{shown_path(seen[real])}' and '{shown_path(d)}' are the same folder (one is a "
                "link), so its images would carry two labels; remove the link."
            )
        seen[real] = d
        folders.append(d)
    return folders


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted; links to files are read, links to folders are not entered (a link
    back up the tree would loop)."""
    found = []
    for top, _, names in os.walk(folder):  # followlinks=False
        for name in names:
            f = Path(top) / name
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                found.append(f)
    return sorted(found)


def _describe(dataset: Dataset, i: int) -> str:
    """How messages name item ``i`` of any data set (a file for folders, also through ``Subset``)."""
    if isinstance(dataset, torch.utils.data.Subset):
        return _describe(dataset.dataset, int(dataset.indices[i]))
    if hasattr(dataset, "describe"):
        return dataset.describe(i)
    return f"item {i}"


def _mixed_sizes(
    dataset: Dataset, first: tuple[int, Sequence[int]], other: tuple[int, Sequence[int]], hint: str
) -> DataError:
    """The error for two images of different shapes where one size is needed; ``hint`` says what to do."""
    same_channels = len(first[1]) == len(other[1]) == 3 and first[1][0] == other[1][0]

    def size(shape: Sequence[int]) -> str:  # H x W, with the channels only when those differ
        return "x".join(str(int(v)) for v in (shape[-2:] if same_channels else shape))

    return DataError(
        f"data '{getattr(dataset, 'name', '')}' mixes image sizes: {_describe(dataset, first[0])} is "
        f"{size(first[1])}, {_describe(dataset, other[0])} is {size(other[1])}; {hint}."
    )


def stack_images(
    dataset: Dataset,
    indices: Sequence[int] | torch.Tensor,
    size: int | tuple[int, int] | None = None,
    *,
    dtype: torch.dtype | None = None,
    hint: str = "pass a size to resize each image to, or bring the images to one size",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``indices`` of ``dataset`` stacked into ``(images (n, C, H, W), labels (n,))``, one image at a time.

    Each image is read, resized on its own when ``size`` is given (antialiased bilinear, ``resize``; channels
    unchanged) and copied into the result before the next is read, so memory holds the result and one image.

    Args:
        dataset: ``(image, label)`` items, images ``(C, H, W)`` (float in [0, 1] for invkit's data sets).
        indices: which items, in order (at least one).
        size: ``(H, W)`` or one side: resize every image to it; None: every image must have the first one's shape.
        dtype: of the result; ``torch.uint8`` stores ``round(255 * image)`` (lossless for images read from 8-bit
            files, a quarter of float32's memory); None keeps the images' dtype.
        hint: what the error for mixed sizes tells the user to do.

    Raises:
        DataError: ``size`` is None and two images differ in shape (both named: files for folders).
        InputError: ``indices`` is empty.
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise InputError("stack_images: no images to stack (indices is empty).")
    out: torch.Tensor | None = None
    labels = torch.empty(len(indices), dtype=torch.long)
    for k, i in enumerate(indices):
        x, y = dataset[i]
        if size is not None:
            x = resize(x[None].float(), size)[0]
        if out is None:
            first = (i, tuple(x.shape))
            out = torch.empty((len(indices), *x.shape), dtype=dtype or x.dtype)
        elif tuple(x.shape) != tuple(out.shape[1:]):
            raise _mixed_sizes(dataset, first, (i, tuple(x.shape)), hint)
        out[k] = (x * 255).round().clamp(0, 255) if out.dtype == torch.uint8 and x.is_floating_point() else x
        labels[k] = int(y)
        del x  # before the next image is read
    return out, labels


def take(
    dataset: Dataset,
    n: int | None = None,
    seed: int = 0,
    per_class: bool = False,
    size: int | tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``n`` images of a data set into ``(images (n, C, H, W), labels (n,))``, picked by a seeded draw.

    Args:
        dataset: a data set of ``(image, label)`` items, images ``(C, H, W)`` (float in [0, 1] for invkit's data
            sets); ``per_class`` uses its ``labels()`` when it has one.
        n: how many (all when None or larger than the data set).
        seed: the draw's seed; the same seed gives the same images.
        per_class: draw an equal number from each class (in class order) instead of uniformly.
        size: ``(H, W)`` or one side to resize each image to on its own (``stack_images``); None: the images'
            own size, which must then be one size.

    Returns:
        ``images`` ``(n, C, H, W)`` as the data set gives them (in [0, 1] for invkit's data sets) and ``labels``
        ``(n,)`` int64. With ``per_class`` there may be fewer than ``n``: ``n // classes`` per class (at least
        one, and no more than a class has), cut to ``n``.

    Raises:
        InputError: ``n`` is not a whole number >= 1 (or None).
        DataError: ``size`` is None and the drawn images differ in size (two named).
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
    return stack_images(dataset, idx, size)
