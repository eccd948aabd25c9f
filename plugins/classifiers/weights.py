"""Where published weights come from: a file the user names, the local hub caches, or a download.

Resolution order for every published classifier (``resnet152.tv_in1k``, ``robust_resnet50.l2_eps3``, ...):

1. ``weights=PATH`` (``--weights PATH`` on the command line): safetensors, a torch state dict read with
   ``weights_only=True`` (pickles that would run code are refused), or an ``.npz`` of plain arrays.
2. The local caches, read without touching the network: torch hub's ``checkpoints/`` folder (where
   ``torchvision`` and ``torch.hub`` keep downloaded URLs) and the Hugging Face hub cache (where ``timm`` keeps
   its ``timm/<model>.<tag>`` repositories).
3. A download, only when the network is reachable (never with ``INVKIT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).
4. Otherwise ``WeightsNotFoundError``: one line naming the file expected, where to put it, and ``--weights``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from invkit.errors import CheckpointError, UnsafeCheckpointError, WeightsNotFoundError, short_message
from invkit.io import load_strict, load_weights_file, unwrap

DOCS = "docs/classifiers.md"
HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # what timm publishes in a timm/<name> repository


@dataclass(frozen=True)
class WeightsSource:
    """Where the published weights of one ``name.tag`` live.

    Attributes:
        url: a direct download URL (torchvision, GitHub releases, blob storage); its file name is what the
            torch hub cache holds.
        hf_hub_id: a Hugging Face repository (``timm/resnet152.a1h_in1k``) holding ``model.safetensors``.
        filename: the file name to look for in torch hub's ``checkpoints/`` folder; defaults to the URL's.
        page: where a person downloads the file by hand, if not ``url`` itself.
    """

    url: str | None = None
    hf_hub_id: str | None = None
    filename: str | None = None
    page: str | None = None

    @property
    def cache_name(self) -> str | None:
        if self.filename:
            return self.filename
        return Path(urlparse(self.url).path).name if self.url else None


# ------------------------------------------------------------------------------------------------- locations
def torch_hub_checkpoints() -> Path:
    """torch hub's ``checkpoints/`` folder (``$TORCH_HOME/hub/checkpoints``, by default under ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (not at import, as the hub does)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def offline() -> bool:
    """True when asked to stay offline or when the download hosts cannot be reached within two seconds."""
    for var in ("INVKIT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return not _reachable("huggingface.co") and not _reachable("download.pytorch.org")


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=2).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------- loading
def read_weights(path: str | os.PathLike, name: str) -> dict[str, Any]:
    """Read a weights file safely; a pickle with code is refused with the way to convert it."""
    try:
        return load_weights_file(path, what=f"{name} weights", flag="--weights")
    except UnsafeCheckpointError:
        raise UnsafeCheckpointError(
            f"'{path}' is a pickle that contains code or Python objects, not just tensors; invkit refuses to load "
            f"it. If you trust the file, convert it once with `invkit convert-weights --trust-pickle {path} "
            "OUT.safetensors` (in an environment you trust) and pass --weights OUT.safetensors."
        ) from None


def find_cached(source: WeightsSource) -> Path | None:
    """The weights file in a local cache, found without any network access, or None."""
    name = source.cache_name
    if name and (torch_hub_checkpoints() / name).is_file():
        return torch_hub_checkpoints() / name
    if source.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in HF_FILENAMES:
            found = try_to_load_from_cache(source.hf_hub_id, filename, cache_dir=str(hf_hub_cache()))
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    return None


def download(source: WeightsSource, name: str) -> Path:
    """Download into the cache the file would be found in next time."""
    try:
        if source.hf_hub_id:
            from huggingface_hub import hf_hub_download

            last: Exception | None = None
            for filename in HF_FILENAMES:
                try:
                    return Path(hf_hub_download(source.hf_hub_id, filename, cache_dir=str(hf_hub_cache())))
                except Exception as exc:  # noqa: BLE001 - the hub raises many kinds; try the next file name
                    last = exc
            raise last or RuntimeError("nothing to download")
        dest = torch_hub_checkpoints() / str(source.cache_name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        match = re.search(r"-([a-f0-9]{8,})\.", dest.name)  # torchvision's file names end in a hash prefix
        torch.hub.download_url_to_file(str(source.url), str(dest), hash_prefix=match.group(1) if match else None)
        return dest
    except Exception as exc:  # noqa: BLE001
        raise WeightsNotFoundError(
            f"{name}: downloading the pretrained weights failed ({type(exc).__name__}: {short_message(exc, 120)}); "
            f"{where_to_put(source)}, or pass --weights PATH (see {DOCS})."
        ) from None


def where_to_put(source: WeightsSource) -> str:
    if source.hf_hub_id:
        return (
            f"run `hf download {source.hf_hub_id} model.safetensors` while online, or download "
            f"https://huggingface.co/{source.hf_hub_id}/resolve/main/model.safetensors"
        )
    origin = f"(download link at {source.page})" if source.page else f"from {source.url}"
    return f"put {source.cache_name} {origin} into {torch_hub_checkpoints()}"


def resolve_weights(name: str, source: WeightsSource, weights: str | os.PathLike | None) -> tuple[dict, str]:
    """The raw contents of the weights file for ``name`` and the path they came from (see module docstring)."""
    if weights is not None:
        return read_weights(weights, name), str(weights)
    path = find_cached(source)
    if path is None:
        if offline():
            expected = f"{source.hf_hub_id}/model.safetensors" if source.hf_hub_id else source.cache_name
            raise WeightsNotFoundError(
                f"{name}: pretrained weights {expected} are not in the local caches and the network is off; "
                f"{where_to_put(source)}, or pass --weights PATH (see {DOCS})."
            )
        path = download(source, name)
    return read_weights(path, name), str(path)


# ------------------------------------------------------------------------------------------- state dict helpers
def plain_state(raw: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The flat state dict in a weights file as training scripts save it, unwrapped from a checkpoint dict
    (``{"state_dict": ..., "epoch": ...}``, ``{"model": ...}``; see ``invkit.io.state_dict``). A prefix every key
    shares (``module.``) is left for ``load_network``, which strips it against the network's own keys."""
    state, _ = unwrap(raw)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source} holds a {type(state).__name__}, not a state dict.")
    return tensors_only(state, source)


def tensors_only(state: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """Keep the tensors of a flat state dict, as float32 where floating; anything else is an error."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry '{k}' is a {type(v).__name__}, not a tensor; this is not a "
                "state dict of the expected layout."
            )
        out[k] = v.float() if v.is_floating_point() else v
    return out


def load_network(build: Any, state: Mapping[str, torch.Tensor], source: str, name: str) -> torch.nn.Module:
    """Build a network and load ``state`` into it strictly, without paying for a random initialisation.

    The network is built on the meta device and the loaded tensors are assigned to it; a network that keeps
    non-persistent buffers (which a state dict cannot fill) is built normally instead. A prefix every key
    shares and the network lacks (``module.`` from ``nn.DataParallel``, ``_orig_mod.`` from ``torch.compile``)
    is stripped first (``invkit.io.state_dict.load_strict``).

    Raises:
        CheckpointError: the keys or shapes do not fit; one line naming a few missing and unexpected keys.
    """
    with torch.device("meta"):
        net = build()
    load_strict(net, state, source, name, assign=True)
    if any(t.is_meta for t in list(net.parameters()) + list(net.buffers())):
        net = build()
        load_strict(net, state, source, name)
    return net.eval()
