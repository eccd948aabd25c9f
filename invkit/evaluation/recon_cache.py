"""Resumable reconstructions: a pair's inversion survives an interruption, and a rerun that only adds metrics
reuses it.

Optimisation-based inversion costs seconds per image on a CPU (``optim`` on the Tiny ImageNet bench: 2.4 s per
image, 40 minutes per 1000), and ``Bench`` writes a pair's record only when the pair is finished. ``ReconCache``
keeps the reconstructions of one pair in one safetensors file (``RECON_CACHE_DIR``/``<slug>.safetensors`` under
``--out``, or under ``--recon-cache DIR``) as they are made, batch by batch, together with the random-number
generator states after the last batch: a run that stops mid-pair continues at the next batch, and its
reconstructions are bit-identical to those of an uninterrupted run (the generator handed to ``Inverter.invert`` and
the global torch generator are restored, so noise and jitter continue where they were).

The file is reused only for exactly the same inversion: its metadata records a digest of the inverter's targets
(the classifier's logits of the same images, bit for bit: a changed classifier, image draw or resolution changes
it), the inverter's registry name, ``config_dict()`` and weights' digest (``Pair.key``), the seed and the batch
size. Anything else is recomputed from the start (with a warning naming the field that differs), never mixed.

Two differences are not differences of the inversion, and a file is reused across them:

- where the folders are: ``Pair.key`` names the classifier and checkpoint folders by path and weights' digest, and
  the comparison keeps only the digests (a clone of the repository elsewhere reuses the committed files);
- a config field added to the inverter after the file was written: the file's recorded config lacks it, and it is
  read with the value the inverter's options list in ``checkpoint_legacy`` (as ``invkit.load_inverter`` reads old
  checkpoints). A lacking field without a legacy value, or whose legacy value is not the one asked for now, is a
  difference.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

RECON_CACHE_DIR = "recon-cache"  # under --out, unless --recon-cache names another folder
SAVE_EVERY_S = 10.0  # seconds between two saves while a pair runs (and always after its last batch)


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (hex, 16 characters)."""
    t = t.detach().contiguous().cpu()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass
class Partial:
    """What a cache file holds: the first ``len(recon)`` reconstructions ``(m, C, H, W)`` float in [0, 1], the
    generator states after them and the inversion seconds they took."""

    recon: torch.Tensor
    generator_state: torch.Tensor
    global_state: torch.Tensor
    seconds: float
    cuda_state: torch.Tensor | None = None


class ReconCache:
    """The cache file of one pair's inversion.

    Args:
        path: the safetensors file (its folder is made when the first batch is saved).
        identity: what the inversion is (strings); a file whose recorded identity differs is not reused.
    """

    def __init__(self, path: str | Path, identity: dict[str, str], legacy: dict[str, Any] | None = None):
        self.path = Path(path)
        self.identity = dict(identity)
        self.legacy = dict(legacy or {})  # config fields added later, with the value older files were made with

    @staticmethod
    def identity_of(pair_key: str, inverter_config: dict[str, Any], targets: torch.Tensor, seed: int, batch_size: int):
        """The identity fields of an inversion (see the module docstring)."""
        return {
            "pair": pair_key,
            "inverter_config": json.dumps(inverter_config, sort_keys=True, default=str),
            "targets": tensor_digest(targets),
            "n": str(len(targets)),
            "seed": str(seed),
            "batch_size": str(batch_size),
        }

    def load(self) -> Partial | None:
        """The reconstructions made so far, or None (no file, another inversion's file, or a damaged one: a warning
        says which, and the pair starts again)."""
        if not self.path.exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except Exception as exc:  # a truncated or foreign file: start again rather than fail the bench
            warnings.warn(f"reconstruction cache '{self.path}' is unreadable ({exc}); inverting again.", stacklevel=2)
            return None
        differs = [k for k, v in self.identity.items() if not self._same(k, meta.get(k), v)]
        if differs:
            warnings.warn(
                f"reconstruction cache '{self.path}' is of another inversion ({', '.join(differs)} differ); "
                "inverting again.",
                stacklevel=2,
            )
            return None
        recon = tensors.get("recon")
        ok = recon is not None and recon.dim() == 4 and recon.is_floating_point()
        ok = ok and 0 < len(recon) <= int(self.identity["n"]) and bool(torch.isfinite(recon).all())
        ok = ok and "generator_state" in tensors and "global_state" in tensors
        if not ok:
            warnings.warn(f"reconstruction cache '{self.path}' is damaged; inverting again.", stacklevel=2)
            return None
        return Partial(
            recon,
            tensors["generator_state"],
            tensors["global_state"],
            float(meta.get("seconds", "0")),
            tensors.get("cuda_state"),
        )

    def _same(self, field: str, recorded: str | None, wanted: str) -> bool:
        """Whether a file's recorded identity field is this inversion's (module docstring: paths and legacy)."""
        if recorded is None or recorded == wanted:
            return recorded == wanted
        if field == "pair":
            return _digests_only(recorded) == _digests_only(wanted)
        if field == "inverter_config":
            try:
                old, new = json.loads(recorded), json.loads(wanted)
            except ValueError:
                return False
            # the legacy table holds Python values: compare through the same JSON encoding as identity_of
            legacy = json.loads(json.dumps(self.legacy, default=str))
            return isinstance(old, dict) and isinstance(new, dict) and {**legacy, **old} == new
        return False

    def save(self, recon: torch.Tensor, generator: torch.Generator, seconds: float) -> None:
        """Write the reconstructions so far with the generators' states (atomically: a kill leaves the previous
        file).

        Raises:
            OutputError: the folder is not writable or the disk is full (``invkit.io.files``).
        """
        from ..io.files import atomic_save_safetensors, make_dirs

        make_dirs(self.path.parent)
        tensors = {
            "recon": recon.detach().float().cpu(),
            "generator_state": generator.get_state(),
            "global_state": torch.get_rng_state(),
        }
        if generator.device.type == "cuda":  # jitter on a GPU draws from its global generator
            tensors["cuda_state"] = torch.cuda.get_rng_state(generator.device)
        atomic_save_safetensors(self.path, tensors, metadata=self.identity | {"seconds": repr(float(seconds))})

    @staticmethod
    def restore(partial: Partial, generator: torch.Generator) -> None:
        """Put the generators back in the state they had after the cached batches.

        Raises:
            CheckpointError: a state that the generator refuses (a file from another torch build).
        """
        try:
            generator.set_state(partial.generator_state)
            torch.set_rng_state(partial.global_state)
            if partial.cuda_state is not None and generator.device.type == "cuda":
                torch.cuda.set_rng_state(partial.cuda_state, generator.device)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(f"the cached generator state does not fit this torch ({exc}).") from exc


def _digests_only(pair_key: str) -> str:
    """``Pair.key`` without the folders' paths: ``/a/clf@0123456789abcdef|optim|fresh`` -> ``@0123...|optim|fresh``."""
    return re.sub(r"[^|]*(@[0-9a-f]{16})(?=\||$)", r"\1", pair_key)
