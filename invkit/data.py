"""Data: image folders, tarballs of them, torchvision data sets and the embedded default.

Every data set yields ``(image, label)`` with ``image`` a float tensor ``(C, H, W)`` in [0, 1]. Sources:

* ``"default"`` — a small MNIST subset shipped inside invkit (``invkit/assets``), so everything runs offline.
* a folder in torchvision ``ImageFolder`` layout (``<root>/<split>/<class>/<image>`` or ``<root>/<class>/...``).
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` of such a folder, unpacked once into the cache directory.
* a folder of Downsampled ImageNet npz batches (``train_data_batch_*.npz``, ``val_data.npz``; ``load_npz_folder``).
* ``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100`` — torchvision's format under ``root``; downloaded
  only when ``download=True``.

The cache directory is ``$INVKIT_CACHE`` or ``~/.cache/invkit``; nothing is ever unpacked into a repository.
Folders and npz batches are decoded once into memory-mapped uint8 arrays there (``materialize``), and labels are
matched to a classifier's logits by class name (``for_classifier``), never by folder order.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tarfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------------------------- decoding
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
CACHE_VERSION = 2  # bump when the decoding changes, so old caches are not reused


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written; the images are decoded into memory instead."""


def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb warning raised as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _unreadable(path: str | os.PathLike, exc: BaseException) -> DataError:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        why = f"it is too large to decode safely ({exc})"
    elif isinstance(exc, UnidentifiedImageError):
        why = "it is not an image file Pillow can read"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return DataError(f"cannot read image '{path}' ({why}); delete or replace the file.")


def split_mode(paths: Iterable[str | os.PathLike]) -> str:
    """``"RGB"`` if any of ``paths`` is a colour image, ``"L"`` if all are greyscale (headers only).

    Raises:
        DataError: a file that cannot be opened (named).
    """
    for p in paths:
        try:
            with _open(p) as im:
                if im.mode not in GREY_MODES:
                    return "RGB"
        except Exception as exc:  # Pillow raises many types for bad files; each becomes one line naming it
            raise _unreadable(p, exc) from None
    return "L"


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with _open(path) as im:
            return im.height, im.width
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _to_uint8(im: Image.Image, mode: str) -> np.ndarray:
    """Pixels of ``im`` as uint8 ``(H, W, C)``; high-bit-depth greyscale is rescaled, not clipped."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and (im.format == "PNG" or a.max(initial=0) > 255)):
            a = a / 65535.0 * 255.0  # 16-bit samples (Pillow reads 16-bit PNGs as I;16 or I)
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0  # float images in [0, 1]
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        arr = grey[..., None] if mode == "L" else np.repeat(grey[..., None], 3, axis=-1)
    else:
        arr = np.asarray(im.convert(mode), dtype=np.uint8)
        arr = arr[..., None] if arr.ndim == 2 else arr
    return arr


def decode_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Decode one image file into a uint8 ``(C, H, W)`` array (``C`` = 1 for ``"L"``, 3 for ``"RGB"``).

    16-bit greyscale (Pillow modes ``I;16``, ``I``) is scaled by 255/65535, so a 16-bit copy of an 8-bit image
    reads within 1/255 of it; greyscale files are replicated to RGB when ``mode`` is ``"RGB"``.

    Raises:
        DataError: naming the file, when it is not an image, truncated, corrupt, or larger than Pillow's
            decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    try:
        with _open(path) as im:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                arr = _to_uint8(im, mode)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... for bad files
        raise _unreadable(path, exc) from None
    return np.array(arr.transpose(2, 0, 1), order="C")  # a writable copy (Pillow arrays are read-only)


def load_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Read one image file as a float ``(C, H, W)`` tensor in [0, 1] (see ``decode_image``; same errors)."""
    return torch.from_numpy(decode_image(path, mode)).float() / 255.0


def _fit(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A uint8 ``(C, H, W)`` array resized (antialiased bilinear) to ``hw`` if it is not that size already."""
    if tuple(arr.shape[-2:]) == tuple(hw):
        return arr
    x = torch.from_numpy(arr).float()[None] / 255.0
    x = F.interpolate(x, size=tuple(hw), mode="bilinear", antialias=True, align_corners=False)[0]
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def _open_cached(path: Path) -> np.ndarray | None:
    """A complete cache array, memory-mapped copy-on-write, or None."""
    if not path.exists():
        return None
    try:
        return np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):  # a damaged cache file is rebuilt
        return None


def _build_cached(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
    """Create the uint8 array ``shape`` at ``path`` (written to a temporary file, then renamed) and fill it.

    When the cache folder cannot be written, warn (``CacheWarning``) and fill an in-memory array instead.
    """
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:
        warnings.warn(cache_warning(path.parent, exc), CacheWarning, stacklevel=3)
        out = np.empty(shape, dtype=np.uint8)
        fill(out)
        return out
    try:
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # e.g. the disk filled up: keep going without a cache
            warnings.warn(
                f"cannot finish the decoded-image cache '{path}' ({exc.strerror or exc}); decoding into memory.",
                CacheWarning,
                stacklevel=3,
            )
            mem = np.empty(shape, dtype=np.uint8)
            fill(mem)
            return mem
        raise
    return np.load(path, mmap_mode="c", allow_pickle=False)


def unpack_archive(path: Path) -> Path:
    """Unpack a ``.tar``/``.tar.gz``/``.tgz`` archive once into ``<cache>/unpacked/``; return the unpacked folder.

    An archive of the same path, size and modification time is unpacked only once. When the cache cannot be
    written, the archive is unpacked into a temporary folder for this run only, with a warning.

    Raises:
        DataError: the archive is corrupt, not a tar file, or holds members the ``data`` extraction filter
            refuses (absolute paths, links out of the folder).
    """
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
            torchvision data set not found under ``root``; npz batches ``load_npz_folder`` refuses.
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
            f"{name} not found under '{root}' ({exc}); pass --data-root to where it is, or --download when online."
        ) from None
    data = torch.as_tensor(np.asarray(ds.data))
    images = data[:, None] if data.dim() == 3 else data.permute(0, 3, 1, 2)
    # MNIST's classes are called "0 - zero" ... by torchvision; "0" ... "9" like the embedded digits and the
    # digit folders, so that a classifier trained on one of them matches the others by name
    classes = [str(i) for i in range(10)] if name == "mnist" else list(ds.classes)
    return TensorImageDataset(images.contiguous(), torch.as_tensor(ds.targets), classes, f"{name}:{split}")


# --------------------------------------------------------------------------------- Downsampled ImageNet (npz)
NPZ_SPLITS = {
    "train": ("train_data_batch_*.npz", "train_data.npz"),
    "val": ("val_data.npz",),
    "test": ("val_data.npz",),
}
CLASS_MAP_NAME = "map_clsloc.txt"


def _npz_files(root: Path, split: str) -> list[Path]:
    """The npz batches of ``split`` in ``root``, ``train_data_batch_2`` before ``train_data_batch_10``."""

    def number(p: Path) -> int:
        digits = "".join(ch for ch in p.stem.rsplit("_", 1)[-1] if ch.isdigit())
        return int(digits) if digits else 0

    files: list[Path] = []
    for pattern in NPZ_SPLITS.get(split, (f"{split}_data*.npz",)):
        files += sorted(root.glob(pattern), key=number)
    return files


def is_npz_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of Downsampled ImageNet npz batches (``train_data_batch_*.npz`` ...)."""
    return path.is_dir() and any(path.glob("*_data*.npz"))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``data (N, D)`` uint8 and ``labels (N,)`` of one batch file, checked; no pickles are loaded."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "data" not in z.files or "labels" not in z.files:
                raise DataError(
                    f"'{path}' has arrays {', '.join(z.files) or 'none'}; a Downsampled ImageNet batch has "
                    "'data' (N x 3*S*S uint8) and 'labels' (N, 1-based)."
                )
            data, labels = z["data"], np.asarray(z["labels"]).reshape(-1)
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (object arrays), OSError, EOFError...
        raise DataError(
            f"cannot read '{path}' ({type(exc).__name__}: {exc}); it is not an npz batch without pickles."
        ) from None
    side = int(round((data.shape[-1] / 3) ** 0.5)) if data.ndim == 2 else 0
    if data.ndim != 2 or data.dtype != np.uint8 or 3 * side * side != data.shape[1]:
        raise DataError(
            f"'{path}': 'data' is {data.dtype} {tuple(data.shape)}; expected uint8 N x 3*S*S "
            "(channel-planar RRR..GGG..BBB rows, S = 8, 16, 32 or 64)."
        )
    if len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=1) < 1:
        raise DataError(f"'{path}': 'labels' must be {len(data)} integers >= 1 (1-based class numbers).")
    return data, labels


def load_npz_folder(root: str | os.PathLike, split: str = "train", name: str = "") -> TensorImageDataset:
    """One split of Downsampled ImageNet (Chrabaszcz et al. 2017, "A downsampled variant of ImageNet as an
    alternative to the CIFAR datasets") from its published npz batches, as a memory-mapped uint8 data set.

    ``root`` holds ``train_data_batch_1.npz`` ... ``train_data_batch_10.npz`` (split ``train``) and
    ``val_data.npz`` (``val``/``test``). Each file has ``data``, an ``N x 3*S*S`` uint8 array whose rows are
    channel-planar (all red, then green, then blue values, each plane row-major), and ``labels``, 1-based.
    The batches are copied once into ``<cache>/decoded/<key>.npy`` (``(N, 3, S, S)``), keyed by every file's
    name, size and modification time; labels become 0-based. Class names are the WordNet ids of
    ``map_clsloc.txt`` (``n02119789 1 kit_fox`` per line, the label order of the batches) when that file is
    in ``root``, else ``"1"`` ... ``"K"``, which only a classifier recording the same names accepts.

    Raises:
        DataError: no batch for the split, a file that is not such a batch (named), batches of different
            image sizes, or labels beyond ``map_clsloc.txt``.
    """
    root = Path(root)
    files = _npz_files(root, split)
    if not files:
        want = " or ".join(NPZ_SPLITS.get(split, (f"{split}_data*.npz",)))
        raise DataError(f"'{root}' has no {want} for the '{split}' split of Downsampled ImageNet.")
    h = hashlib.sha256(f"{CACHE_VERSION}|npz|{root.resolve()}".encode())
    for f in files:
        st = f.stat()
        h.update(f"|{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    key = h.hexdigest()[:32]
    cached = cache_dir() / "decoded" / f"{key}.npy"
    labels_path = cache_dir() / "decoded" / f"{key}.labels.npy"
    array = _open_cached(cached)
    labels = np.load(labels_path, allow_pickle=False) if array is not None and labels_path.exists() else None
    if array is None or labels is None:
        counts, side = [], None
        for f in files:  # a first pass for the shape (np.load of an uncompressed npz member is cheap)
            data, lab = _read_npz(f)
            s = int(round((data.shape[1] / 3) ** 0.5))
            if side is not None and s != side:
                raise DataError(f"'{f}' holds {s}x{s} images but the other batches of '{root}' {side}x{side}.")
            side = s
            counts.append(len(data))
            del data, lab
        all_labels = np.empty(sum(counts), dtype=np.int64)

        def fill(out: np.ndarray) -> None:
            i = 0
            for f, n in zip(files, counts, strict=True):
                data, lab = _read_npz(f)
                out[i : i + n] = data.reshape(n, 3, side, side)
                all_labels[i : i + n] = lab.astype(np.int64) - 1
                i += n

        array = _build_cached(cached, (sum(counts), 3, side, side), fill)
        labels = all_labels
        try:
            np.save(labels_path, labels, allow_pickle=False)
        except OSError:
            pass  # the warning about the image cache already said the cache is not writable
    classes = _npz_classes(root, int(labels.max()) + 1)
    if int(labels.max()) >= len(classes):
        raise DataError(
            f"'{root}' has label {int(labels.max()) + 1} but {CLASS_MAP_NAME} lists {len(classes)} classes."
        )
    images, targets = torch.from_numpy(array), torch.from_numpy(labels)
    return TensorImageDataset(images, targets, classes, name or f"{root.name}:{split}")


def _npz_classes(root: Path, k: int) -> list[str]:
    """WordNet ids in label order from ``map_clsloc.txt`` if present, else ``"1"`` ... ``"k"``."""
    path = root / CLASS_MAP_NAME
    if not path.exists():
        return [str(i + 1) for i in range(k)]
    by_label: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2 or not parts[1].isdigit():
            raise DataError(f"'{path}' line {n} is not '<wnid> <label> <name>': {line[:60]!r}.")
        by_label[int(parts[1])] = parts[0]
    if sorted(by_label) != list(range(1, len(by_label) + 1)):
        raise DataError(f"'{path}' must number its classes 1 ... {len(by_label)}, once each.")
    return [by_label[i + 1] for i in range(len(by_label))]


# ------------------------------------------------------------------------------------------ class names
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
    order, is mapped. A data set whose classes are all known in the same order is returned as it is.

    Args:
        dataset: an ``ImageDataset`` (``classes``, ``labels()``); other data sets are returned unchanged.
        names: the model's class names, in logit order; None when it records none.
        num_classes: the model's number of logits (checked when it records no names).
        ids: other identifiers of the model's classes, in logit order.
        owner: how to call the model in messages.

    Raises:
        DataError: a data class the model does not know (the first few are named), or, for a model without
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
    lookups = [{c: i for i, c in enumerate(k)} for k in known]
    mapping: list[int] = []
    missing: list[str] = []
    for c in classes:
        hit = next((lk[c] for lk in lookups if c in lk), None)
        if hit is None:
            missing.append(c)
        else:
            mapping.append(hit)
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


def resize(images: torch.Tensor, size: int | tuple[int, int], channels: int | None = None) -> torch.Tensor:
    """Resize a ``(N, C, H, W)`` batch in [0, 1] (antialiased bilinear) and convert channels if asked."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    if channels is not None and images.shape[1] != channels:
        images = images.expand(-1, 3, -1, -1) if channels == 3 else images.mean(1, keepdim=True)
    return images
