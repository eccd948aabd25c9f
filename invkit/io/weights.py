"""Loading weight files safely: nothing is ever unpickled beyond tensors and plain containers.

``load_safetensors`` reads a safetensors file (a checkpoint folder's ``model.safetensors``, ``WEIGHTS_NAME``) and
refuses a pickle with a one-line ``CheckpointError`` saying how to convert it. ``load_weights_file`` reads published
weights: safetensors, a torch state dict (``torch.load(weights_only=True)``) or an ``.npz`` without pickled
objects; a pickle with code or Python objects raises ``UnsafeCheckpointError``.

Both check, before reading, that the path is a regular file (a FIFO or a device would hang the read:
``invkit.io.read.check_file``) and, after it, that every tensor holds numbers invkit computes with
(``check_tensor_dtypes``): a valid file of float8 tensors, complex numbers, strings, dates or objects is refused
with one line naming the tensor, not passed on to fail in the finite-weights check or ``torch.from_numpy``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CheckpointError, UnsafeCheckpointError, WeightsNotFoundError, short_message
from .read import check_file

WEIGHTS_NAME = "model.safetensors"

# The tensor dtypes weights, training states and saved images may hold: what invkit's models compute with and
# load_state_dict copies. float8, complex and the wide unsigned types are refused (torch cannot check them for
# NaN/inf or copy them into a float parameter on every build).
WEIGHT_DTYPES = frozenset(
    {
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.bool,
    }
)
_NUMPY_KINDS = {  # numpy dtype kinds that are no weights, in words
    "c": "complex numbers",
    "U": "strings",
    "S": "bytes",
    "M": "dates",
    "m": "time spans",
    "V": "raw records",
    "O": "Python objects",
}


def _refuse_dtype(path: Path, key: str, holds: str) -> CheckpointError:
    return CheckpointError(
        f"'{path}': '{key}' holds {holds}, not numbers invkit can load as weights (float16/32/64, bfloat16, integers "
        "or bool); it is not a weights file, or convert that tensor (e.g. to float32) and save it again."
    )


def check_tensor_dtypes(tensors: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Refuse tensors of a dtype outside ``WEIGHT_DTYPES`` (float8, complex, uint16/32/64), naming the first.

    Raises:
        CheckpointError: one line naming the file, the tensor and its dtype.
    """
    for key, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.dtype not in WEIGHT_DTYPES:
            raise _refuse_dtype(Path(path), str(key), str(value.dtype).replace("torch.", ""))


def _npz_tensors(path: Path, npz: Any) -> dict[str, torch.Tensor]:
    """The arrays of an open ``.npz`` as tensors; arrays of strings, dates, objects, complex numbers refused."""
    out = {}
    for key in npz.files:
        arr = npz[key]
        if arr.dtype.kind in _NUMPY_KINDS:
            raise _refuse_dtype(path, key, f"{_NUMPY_KINDS[arr.dtype.kind]} ({arr.dtype})")
        try:
            out[key] = torch.from_numpy(arr.copy())
        except TypeError:  # numbers torch has no dtype for (float128, ...)
            raise _refuse_dtype(path, key, f"numbers of dtype {arr.dtype}") from None
    check_tensor_dtypes(out, path)
    return out


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU.

    Returns:
        Tensor name -> tensor.

    Raises:
        CheckpointError: the file does not exist, is a folder, FIFO, device or socket, or unreadable, is a pickle
            (``torch.save``; the message says how to convert it), is not a readable safetensors file (corrupt or
            truncated), or holds a tensor of a dtype outside ``WEIGHT_DTYPES`` (float8, complex). One line each.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file '{path}' does not exist.")
    if path.is_dir():
        raise CheckpointError(
            f"'{path}' is a folder, but a safetensors weights file is expected; give the file in it "
            f"({WEIGHTS_NAME} for an invkit checkpoint folder)."
        )
    check_file(path, "weights file", CheckpointError, "replace it with the safetensors file")  # a FIFO would hang
    try:
        pickled = _looks_like_pickle(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file '{path}': {exc.strerror or exc}.") from None
    if pickled:
        raise CheckpointError(
            f"'{path}' is a pickle (torch.save) file, but a safetensors file is expected; "
            "convert it with `invkit convert-weights` or save it with safetensors."
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:  # TypeError: a dtype this torch lacks
        raise CheckpointError(
            f"'{path}' is not a readable safetensors file ({short_message(exc)}); it is corrupt or "
            "truncated: re-download or re-create it."
        ) from None
    check_tensor_dtypes(tensors, path)
    return tensors


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head == b"PK\x03\x04"


def load_weights_file(path: str | os.PathLike, *, what: str = "weights", flag: str = "--weights") -> dict[str, Any]:
    """Load published weights from safetensors, a torch state dict (``weights_only=True``) or an ``.npz``.

    A pickle that contains code or arbitrary objects is refused: ``torch.load(weights_only=True)`` only
    rebuilds tensors and plain containers. The format follows the suffix: ``.safetensors``, ``.npz``, else torch.

    Args:
        path: the weights file (``~`` is expanded).
        what: what the file is, for messages (``"resnet50.tv_in1k weights"``).
        flag: the CLI option that gave the path, for messages.

    Returns:
        Whatever mapping the file holds, on the CPU (callers pick the keys).

    Raises:
        WeightsNotFoundError: ``path`` does not exist or is a folder.
        UnsafeCheckpointError: a torch pickle with code or Python objects, or an ``.npz`` with pickled objects.
        CheckpointError: a FIFO, device or socket instead of a file; a corrupt or truncated file, a pickle named
            ``.safetensors``, or a torch file that holds something other than a mapping; a tensor or array that
            holds no numbers invkit computes with (float8, complex, strings, dates, objects: ``WEIGHT_DTYPES``).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"{what} file '{path}' does not exist; check the path given to {flag}.")
    if path.is_dir():
        raise WeightsNotFoundError(f"{what} path '{path}' is a folder; give {flag} the weights file itself.")
    check_file(path, f"{what} file", CheckpointError, f"give {flag} the weights file itself")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_safetensors(path)
    if suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                return _npz_tensors(path, npz)
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise UnsafeCheckpointError(
                    f"'{path}' holds pickled Python objects; invkit only loads plain numeric arrays from .npz files."
                ) from None
            raise CheckpointError(f"'{path}' is not a readable .npz file ({short_message(exc)}).") from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"'{path}' is not a readable .npz file ({short_message(exc)}); it is corrupt or truncated."
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            raise UnsafeCheckpointError(
                f"'{path}' is a pickle that contains code or Python objects, not just tensors; invkit refuses to "
                "load it. Re-save only the state dict (torch.save(model.state_dict())) or use safetensors."
            ) from None
        raise CheckpointError(
            f"'{path}' is not a readable weights file ({type(exc).__name__}); it is corrupt "
            "or not a PyTorch/safetensors/npz file."
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a state dict of tensors.")
    check_tensor_dtypes(obj, path)
    return dict(obj)
