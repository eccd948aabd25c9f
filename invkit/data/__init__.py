"""Data: image folders, tarballs of them, Downsampled ImageNet npz batches, torchvision data sets and the embedded
default.

Every data set yields ``(image, label)`` with ``image`` a float tensor ``(C, H, W)`` in [0, 1]; ``load_dataset``
opens one from a name or a path. Folders and npz batches are decoded once into memory-mapped uint8 arrays in the
cache directory (``$INVKIT_CACHE`` or ``~/.cache/invkit``; nothing is ever unpacked into a repository), and labels
are matched to a classifier's logits by class name (``for_classifier``), never by folder order.

Modules, lowest first (each imports only those above it):

* ``cache`` — the cache directory, ``CacheWarning``, ``cache_lock``, the memory-mapped arrays of decoded images.
* ``images`` — decoding one image file (the one place user images are normalised: EXIF orientation, bit depths
  and float ranges, per-image resizing), a split's colour mode, ``resize``.
* ``datasets`` — ``ImageDataset``, ``TensorImageDataset``, ``FolderImageDataset`` (and its ``materialize``),
  ``stack_images``, ``take``.
* ``crops`` — the paper's crops (compare_gan's ``ImagenetDataset``): TF's distorted square crop for training,
  the centred square for evaluation (``distorted_crop``, ``center_crop``, ``CenterCropDataset``).
* ``archives`` — unpacking a ``.tar.gz`` / ``.tgz`` / ``.tar`` once into the cache.
* ``npz`` — Downsampled ImageNet npz batches (``load_npz_folder``).
* ``classes`` — matching labels to a model's classes by name (``match_classes``, ``for_classifier``).
* ``sources`` — ``load_dataset``: the embedded default, folders, archives, npz folders, torchvision data sets.

Every public name is re-exported here, so ``invkit.data.X`` works as before; code inside invkit imports from the
module that defines the name.
"""

from __future__ import annotations

from .archives import unpack_archive
from .cache import CACHE_VERSION, CacheWarning, cache_dir, cache_lock, cache_warning
from .classes import for_classifier, match_classes
from .datasets import FolderImageDataset, ImageDataset, TensorImageDataset, stack_images, take
from .images import GREY_MODES, IMAGE_EXTENSIONS, decode_image, image_size, load_image, resize, shown_path, split_mode
from .npz import CLASS_MAP_NAME, MAX_CLASSES, MAX_EXPANSION, NPZ_SPLITS, is_npz_folder, load_npz_folder
from .sources import DEFAULT, SPLITS, TORCHVISION_SETS, load_dataset, load_embedded

__all__ = [
    # cache
    "CACHE_VERSION",
    "CacheWarning",
    "cache_dir",
    "cache_lock",
    "cache_warning",
    # images
    "GREY_MODES",
    "IMAGE_EXTENSIONS",
    "decode_image",
    "image_size",
    "load_image",
    "resize",
    "shown_path",
    "split_mode",
    # datasets
    "FolderImageDataset",
    "ImageDataset",
    "TensorImageDataset",
    "stack_images",
    "take",
    # archives
    "unpack_archive",
    # npz
    "CLASS_MAP_NAME",
    "MAX_CLASSES",
    "MAX_EXPANSION",
    "NPZ_SPLITS",
    "is_npz_folder",
    "load_npz_folder",
    # classes
    "for_classifier",
    "match_classes",
    # sources
    "DEFAULT",
    "SPLITS",
    "TORCHVISION_SETS",
    "load_dataset",
    "load_embedded",
]
