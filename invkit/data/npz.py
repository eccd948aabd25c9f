"""Downsampled ImageNet (Chrabaszcz et al. 2017): a folder of npz batches as a memory-mapped uint8 data set.

A folder with ``train_data_batch_*.npz`` / ``val_data.npz`` (``is_npz_folder``) is read by ``load_npz_folder``:
the batches are checked (no pickles are loaded) and copied once into ``<cache>/decoded/``; class names are the
WordNet ids of ``map_clsloc.txt`` (``CLASS_MAP_NAME``) when the folder has one.

Nothing a file says is allocated before it is checked: the array headers are read first and must agree with the
sizes the zip directory records, a member that would expand more than ``MAX_EXPANSION`` times its compressed size
is refused (real images do not compress like that), labels above ``MAX_CLASSES`` are refused before any class
list is built, and ``data`` is copied into the cache a chunk of rows at a time, never loaded whole.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import CACHE_VERSION, _build_cached, _open_cached, cache_dir, save_cached_array
from .datasets import TensorImageDataset

NPZ_SPLITS = {
    "train": ("train_data_batch_*.npz", "train_data.npz"),
    "val": ("val_data.npz",),
    "test": ("val_data.npz",),
}

CLASS_MAP_NAME = "map_clsloc.txt"

MAX_EXPANSION = 100  # how many times its compressed size an array may expand to (above 64 MiB); images: ~1-3
MAX_CLASSES = 100_000  # the largest label an npz batch may hold (ImageNet-21k has 21,841 classes)
_ROWS = 4096  # rows of 'data' copied into the cache at a time


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


def _header(z: zipfile.ZipFile, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data offset)`` of array ``key`` of an npz, from its header alone, checked
    against the size the zip directory records and against decompression bombs."""
    info = z.getinfo(f"{key}.npy")
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise DataError(f"'{path}': '{key}' is in .npy format {version}, which invkit does not read; resave it.")
        shape, fortran, dtype = readers[version](f)
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"'{path}': '{key}' holds Python objects (a pickle), which invkit does not load.")
    size = offset + math.prod(shape) * dtype.itemsize
    if info.file_size != size:
        raise DataError(
            f"'{path}': '{key}' says it is {dtype} {tuple(shape)} ({size} bytes) but the file records "
            f"{info.file_size}; the file is corrupt."
        )
    if info.file_size > 64 << 20 and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise DataError(
            f"'{path}': '{key}' would expand from {info.compress_size} to {info.file_size} bytes, more than "
            f"{MAX_EXPANSION} times; image data does not compress like that, so it is not a Downsampled ImageNet "
            "batch (a decompression bomb?)."
        )
    return tuple(shape), dtype, fortran, offset


def _read_npz(path: Path) -> tuple[int, int, np.ndarray]:
    """``(N, S, labels (N,))`` of one batch file, checked from the headers before anything large is read; no
    pickles are loaded."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n.removesuffix(".npy") for n in z.namelist()]
            if "data" not in names or "labels" not in names:
                raise DataError(
                    f"'{path}' has arrays {', '.join(names) or 'none'}; a Downsampled ImageNet batch has "
                    "'data' (N x 3*S*S uint8) and 'labels' (N, 1-based)."
                )
            shape, dtype, _, _ = _header(z, "data", path)
            side = int(round((shape[-1] / 3) ** 0.5)) if len(shape) == 2 else 0
            if len(shape) != 2 or dtype != np.uint8 or 3 * side * side != shape[1] or side == 0:
                raise DataError(
                    f"'{path}': 'data' is {dtype} {shape}; expected uint8 N x 3*S*S "
                    "(channel-planar RRR..GGG..BBB rows, S = 8, 16, 32 or 64)."
                )
            lshape, ldtype, _, _ = _header(z, "labels", path)
            if math.prod(lshape) != shape[0] or not np.issubdtype(ldtype, np.integer):
                raise DataError(f"'{path}': 'labels' must be {shape[0]} integers >= 1 (1-based class numbers).")
            with z.open("labels.npy") as f:
                labels = np.lib.format.read_array(f, allow_pickle=False).reshape(-1)
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError...
        raise DataError(
            f"cannot read '{path}' ({type(exc).__name__}: {exc}); it is not an npz batch without pickles."
        ) from None
    if len(labels) and (labels.min() < 1 or labels.max() > MAX_CLASSES):
        raise DataError(
            f"'{path}': 'labels' must be {shape[0]} integers from 1 to at most {MAX_CLASSES} (1-based class "
            f"numbers), found {int(labels.min())} to {int(labels.max())}."
        )
    return shape[0], side, labels


def _copy_data(path: Path, out: np.ndarray) -> None:
    """Copy the ``data`` rows of a batch checked by ``_read_npz`` into ``out`` ``(N, 3, S, S)``, a chunk of rows at
    a time."""
    n, row = len(out), int(np.prod(out.shape[1:]))
    try:
        with zipfile.ZipFile(path) as z:
            _, _, fortran, offset = _header(z, "data", path)
            with z.open("data.npy") as f:
                if fortran:  # column-major on disk: rows are not contiguous; checked to fit by _header
                    out[:] = np.lib.format.read_array(f, allow_pickle=False).reshape(out.shape)
                    return
                f.read(offset)
                for i in range(0, n, _ROWS):
                    k = min(_ROWS, n - i)
                    chunk = f.read(k * row)
                    if len(chunk) != k * row:
                        raise EOFError("the file ends early")
                    out[i : i + k] = np.frombuffer(chunk, dtype=np.uint8).reshape(k, *out.shape[1:])
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:  # not OSError: a full cache disk is the cache's
        raise DataError(f"cannot read '{path}' ({type(exc).__name__}: {exc}); the file is corrupt.") from None


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
        DataError: no batch for the split, a file that is not such a batch (named: also an array header that
            disagrees with the file, a member expanding more than ``MAX_EXPANSION`` times), batches of different
            image sizes or without images, or labels beyond ``map_clsloc.txt`` or ``MAX_CLASSES``.
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
    labels = _open_labels(labels_path) if array is not None else None
    if array is not None and labels is not None:  # a replaced or damaged cache is decoded again, never reused
        whole = array.ndim == 4 and array.shape[1] == 3 and labels.ndim == 1 and len(labels) == len(array)
        if not whole or labels.dtype.kind not in "iu" or labels.min(initial=0) < 0:
            array = labels = None
    if array is None or labels is None:
        counts, side, parts = [], None, []
        for f in files:  # a first pass for the shapes and labels: headers and labels only, no image data
            n, s, lab = _read_npz(f)
            if side is not None and s != side:
                raise DataError(f"'{f}' holds {s}x{s} images but the other batches of '{root}' {side}x{side}.")
            side = s
            counts.append(n)
            parts.append(lab.astype(np.int64) - 1)
        if not sum(counts):
            raise DataError(f"the '{split}' batches of '{root}' hold no images.")
        labels = np.concatenate(parts)
        _npz_classes(root, int(labels.max()) + 1)  # a label beyond map_clsloc.txt: refused before the copy

        def fill(out: np.ndarray) -> None:
            i = 0
            for f, n in zip(files, counts, strict=True):
                _copy_data(f, out[i : i + n].reshape(n, 3, side, side))
                i += n
            try:  # the labels go into place before the images: whoever finds the images finds their labels
                save_cached_array(labels_path, labels)
            except OSError:
                pass  # the warning about the image cache already said the cache is not writable

        array = _build_cached(cached, (sum(counts), 3, side, side), fill)
    classes = _npz_classes(root, int(labels.max()) + 1)
    images, targets = torch.from_numpy(array), torch.from_numpy(labels)
    return TensorImageDataset(images, targets, classes, name or f"{root.name}:{split}")


def _open_labels(path: Path) -> np.ndarray | None:
    """The cached labels of a batch folder, or None (missing or damaged: rebuilt)."""
    try:
        return np.load(path, allow_pickle=False) if path.exists() else None
    except (OSError, ValueError):
        return None


def _npz_classes(root: Path, k: int) -> list[str]:
    """WordNet ids in label order from ``map_clsloc.txt`` if present, else ``"1"`` ... ``"k"``.

    Raises:
        DataError: ``k`` is more than ``map_clsloc.txt`` lists, or more than ``MAX_CLASSES``; a malformed map.
    """
    path = root / CLASS_MAP_NAME
    if not path.exists():
        if k > MAX_CLASSES:
            raise DataError(f"'{root}' has label {k}; labels are 1-based class numbers up to {MAX_CLASSES}.")
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
    if k > len(by_label):
        raise DataError(f"'{root}' has label {k} but {CLASS_MAP_NAME} lists {len(by_label)} classes.")
    return [by_label[i + 1] for i in range(len(by_label))]
