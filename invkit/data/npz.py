"""Downsampled ImageNet (Chrabaszcz et al. 2017): a folder of npz batches as a memory-mapped uint8 data set.

A folder with ``train_data_batch_*.npz`` / ``val_data.npz`` (``is_npz_folder``) is read by ``load_npz_folder``:
the batches are checked (no pickles are loaded) and copied once into ``<cache>/decoded/``; class names are the
WordNet ids of ``map_clsloc.txt`` (``CLASS_MAP_NAME``) when the folder has one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import CACHE_VERSION, _build_cached, _open_cached, cache_dir
from .datasets import TensorImageDataset

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
