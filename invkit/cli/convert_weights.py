"""``invkit convert-weights``: turn a published weights file into safetensors.

Reads a torch state dict (``torch.load(weights_only=True)``: tensors and plain containers only), an ``.npz`` of
plain arrays, or a safetensors file, and writes the tensors to ``DST.safetensors``, so any classifier that takes
``--weights`` reads the result. A checkpoint dict such as MadryLab's ``{"model": ..., "optimizer": ...,
"epoch": ...}`` or the PyTorch ImageNet example's ``{"state_dict": ..., "epoch": ...}`` is reduced to its state
dict (``--key``, or one of ``invkit.io.state_dict.WRAPPER_KEYS`` found automatically), and a prefix that a wrapper
gave every key (``module.`` from ``nn.DataParallel``/DDP, ``_orig_mod.`` from ``torch.compile``) is stripped
unless ``--keep-prefix``; other names are unchanged. A pickle that needs code to load is refused unless
``--trust-pickle`` is given, which runs that code: use it only on a file you trust, in an environment you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import torch

from ..errors import CheckpointError, UnsafeCheckpointError, WeightsNotFoundError, short_message
from ..io.files import atomic_save_safetensors
from ..io.outputs import claim_inputs
from ..io.state_dict import WRAPPER_KEYS, strip_prefix, unwrap
from ..io.weights import load_weights_file
from ._ui import console, err_console


def _load_trusted(path: Path) -> Any:
    """``torch.load`` with code execution allowed: only behind ``--trust-pickle``."""
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file '{path}' does not exist; check SRC.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted format is one line
        raise CheckpointError(
            f"'{path}' could not be loaded even as a full pickle ({type(exc).__name__}: {short_message(exc, 150)})."
        ) from None
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    return obj


def select_state(obj: Any, key: str | None, source: str) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """The tensors to write: from ``obj[key]``, else ``model``/``state_dict`` when present, else the top level.

    Returns the tensors, where they were taken from, and the names of entries that were dropped (not tensors).
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a dict of tensors.")
    where = "top level"
    if key is not None:
        if key not in obj:
            raise CheckpointError(f"{source} has no entry '{key}'; its entries are: {', '.join(map(str, obj))[:200]}.")
        obj, where = obj[key], f"'{key}'"
    else:
        obj, where = unwrap(obj)
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: {where} is a {type(obj).__name__}, not a dict of tensors.")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    dropped = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not tensors:
        raise CheckpointError(f"{source}: {where} holds no tensors; pick the state dict with --key.")
    return tensors, where, dropped


@click.command("convert-weights")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--key",
    default=None,
    help="Entry of a checkpoint dict that holds the state dict (default: the first of "
    f"{', '.join(WRAPPER_KEYS)} present, else the top level).",
)
@click.option(
    "--keep-prefix",
    is_flag=True,
    help="Keep a 'module.' / '_orig_mod.' prefix shared by every name (stripped by default).",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Load SRC with full unpickling, which can run code from the "
    "file. Only for a file you trust, in an environment you trust.",
)
def command(src: Path, dst: Path, key: str | None, trust_pickle: bool, keep_prefix: bool) -> None:
    """Convert SRC (torch state dict, .npz or .safetensors) to DST.safetensors, for --weights."""
    if dst.suffix != ".safetensors":
        raise click.BadParameter(f"'{dst}' must end in .safetensors", param_hint="DST")
    if trust_pickle:
        err_console.print(f"[yellow]--trust-pickle: loading '{src}' with full unpickling (runs code in it)[/yellow]")
        obj = _load_trusted(src)
    else:
        try:
            obj = load_weights_file(src, what="source weights", flag="SRC")
        except UnsafeCheckpointError:
            raise UnsafeCheckpointError(
                f"'{src}' is a pickle that contains code or Python objects, not just tensors; refused. If you trust "
                "the file, run this command again with --trust-pickle, in an environment you trust."
            ) from None
    tensors, where, dropped = select_state(obj, key, f"'{src}'")
    prefix = ""
    if not keep_prefix:
        tensors, prefix = strip_prefix(tensors)
    meta = {"converted_from": src.name, "taken_from": where} | ({"stripped_prefix": prefix} if prefix else {})
    with claim_inputs("invkit convert-weights", [src]):  # DST may not be SRC: refused in one line, SRC kept
        atomic_save_safetensors(dst, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    console.print(f"wrote {dst}: {len(tensors)} tensors, {n:,} values, from the {where} of {src}")
    if prefix:
        console.print(f"stripped the prefix '{prefix}' every name had (--keep-prefix keeps it)")
    if dropped:
        console.print(
            f"dropped {len(dropped)} non-tensor entries: {', '.join(dropped[:8])}{' ...' if len(dropped) > 8 else ''}"
        )
