"""Resumable reconstructions: a pair's inversion survives an interruption, and a rerun that only adds metrics
reuses it.

Optimisation-based inversion costs seconds per image on a CPU (``optim`` on the Tiny ImageNet bench: 2.4 s per
image, 40 minutes per 1000), and ``Bench`` writes a pair's record only when the pair is finished. ``ReconCache``
keeps the reconstructions of one pair as they are made, in a folder ``<slug>/`` (under ``RECON_CACHE_DIR`` in
``--out``, or under ``--recon-cache DIR``) of numbered part files: ``part-<start>.safetensors`` holds the
reconstructions ``[start, stop)`` made since the previous part, the random-number generator states after them and
the inversion seconds so far. Parts are only ever added (one at least per block of images, ``BenchSettings.
block_size``, and every ``SAVE_EVERY_S`` seconds), never rewritten, and read back a block at a time: neither a save
nor a resume holds all of a pair's reconstructions in memory. A run that stops mid-pair continues after the last
part, and its reconstructions are bit-identical to those of an uninterrupted run (the generator handed to
``Inverter.invert`` and the global torch generator are restored, so noise and jitter continue where they were).

The single-file layout of earlier invkits, ``<slug>.safetensors`` beside the folder holding the first ``m``
reconstructions and the states after them (the committed ``benchmarks/checkpoints/tinyimagenet64/resume/
bench-recon-cache/``), is read as the part ``[0, m)`` when the folder has no first part of this inversion; the
run continues with ``<slug>/part-<m>.safetensors``. It is never written.

A part is reused only for exactly the same inversion: its metadata records a digest of the inverter's targets
(the classifier's logits of the same images, bit for bit: a changed classifier, image draw or resolution changes
it), the inverter's registry name, ``config_dict()`` and weights' digest (``Pair.key``), the seed and the batch
size. Anything else is recomputed from the start (with a warning naming the field that differs), never mixed; a
damaged part (unreadable, NaN, not following the previous one) ends what is reused, with a warning, and the parts
from there on are replaced as the inversion makes them again.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

RECON_CACHE_DIR = "recon-cache"  # under --out, unless --recon-cache names another folder
SAVE_EVERY_S = 10.0  # seconds between two saves while a pair runs (and always after a block's last batch)
PART_NAME = "part-{start:08d}.safetensors"  # a part file in <slug>/, named by its first image
_PART_RE = re.compile(r"^part-(\d{8,})\.safetensors$")


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (hex, 16 characters)."""
    t = t.detach().contiguous().cpu()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass
class Partial:
    """What a cache holds: the first ``count`` reconstructions, the generator states after them and the inversion
    seconds they took.

    ``recon`` holds them all ``(count, C, H, W)`` float (as made, before clamping) when read by ``ReconCache.load``;
    ``ReconCache.open`` leaves it None and ``read`` reads rows from the part files (``parts``: path, first and
    last-plus-one image of each, in order).
    """

    recon: torch.Tensor | None
    generator_state: torch.Tensor
    global_state: torch.Tensor
    seconds: float
    cuda_state: torch.Tensor | None = None
    count: int = 0
    parts: list[tuple[Path, int, int]] = field(default_factory=list)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Reconstructions ``[start, stop)`` (``0 <= start < stop <= count``), ``(stop - start, C, H, W)`` float,
        read from only the parts that hold them (safetensors slices: a part is not loaded whole).

        Raises:
            CheckpointError: a part file that went missing or changed since ``open`` checked it.
        """
        if self.recon is not None:
            return self.recon[start:stop]
        from safetensors import safe_open

        chunks = []
        for path, a, b in self.parts:
            if b <= start or a >= stop:
                continue
            try:
                with safe_open(str(path), framework="pt") as f:
                    chunks.append(f.get_slice("recon")[max(start, a) - a : min(stop, b) - a])
            except Exception as exc:  # noqa: BLE001 - any read failure of a file checked a moment ago
                raise CheckpointError(
                    f"reconstruction cache part '{path}' cannot be read any more ({exc}); run the bench again."
                ) from exc
        return torch.cat(chunks)


class ReconCache:
    """The cache of one pair's inversion: the part files in ``<slug>/`` (and an older ``<slug>.safetensors``).

    Args:
        path: ``<folder>/<slug>.safetensors``: the single file of earlier invkits (read, never written); the parts
            go to the folder ``<folder>/<slug>/`` (``folder``), made when the first part is saved.
        identity: what the inversion is (strings); a file whose recorded identity differs is not reused.
        legacy: config fields added to the inverter later, with the value older files were made with.
    """

    def __init__(self, path: str | Path, identity: dict[str, str], legacy: dict[str, Any] | None = None):
        self.path = Path(path)
        self.folder = self.path.with_suffix("")
        self.identity = dict(identity)
        self.legacy = dict(legacy or {})  # config fields added later, with the value older files were made with
        self._cleared_from: int | None = None

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

    def part_path(self, start: int) -> Path:
        """The part file whose first reconstruction is image ``start``."""
        return self.folder / PART_NAME.format(start=start)

    # ------------------------------------------------------------------------------------------ reading
    def open(self) -> Partial | None:
        """The reconstructions made so far, as an index of checked parts (``Partial.read`` reads them), or None
        (nothing kept, another inversion's files, or a damaged first part: a warning says which, and the pair
        starts again). Each part is loaded and checked one at a time (whole, finite, following the previous one)."""
        first = self._part(self.part_path(0), 0, quiet=self.path.exists())
        if first is None and self.path.exists():
            first = self._part(self.path, 0)
        if first is None:
            return None
        done, shape = first
        while done.count < int(self.identity["n"]):
            path = self.part_path(done.count)
            if not path.exists():
                break
            nxt = self._part(path, done.count, shape=shape)
            if nxt is None:
                break
            done = replace(nxt[0], parts=done.parts + nxt[0].parts)
        return done

    def load(self) -> Partial | None:
        """As ``open``, with every reconstruction made so far read into ``Partial.recon`` (for inspection and small
        runs: it holds them all in memory)."""
        done = self.open()
        if done is not None:
            done.recon = done.read(0, done.count)
        return done

    def _part(
        self, path: Path, start: int, quiet: bool = False, shape: tuple[int, ...] | None = None
    ) -> tuple[Partial, tuple[int, ...]] | None:
        """One part file (or the single file of earlier invkits) starting at image ``start``, checked, with its
        reconstructions' ``(C, H, W)``; None with a warning when it is not usable (no warning for a missing file,
        nor with ``quiet`` for another inversion's). ``shape``: the ``(C, H, W)`` of the parts before it."""
        if not path.exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except Exception as exc:  # a truncated or foreign file: start again rather than fail the bench
            warnings.warn(f"reconstruction cache '{path}' is unreadable ({exc}); inverting again.", stacklevel=3)
            return None
        differs = [k for k, v in self.identity.items() if not self._same(k, meta.get(k), v)]
        if differs:
            if not quiet:
                warnings.warn(
                    f"reconstruction cache '{path}' is of another inversion ({', '.join(differs)} differ); "
                    "inverting again.",
                    stacklevel=3,
                )
            return None
        recon = tensors.get("recon")
        ok = recon is not None and recon.dim() == 4 and recon.is_floating_point() and len(recon) > 0
        ok = ok and start + len(recon) <= int(self.identity["n"]) and bool(torch.isfinite(recon).all())
        ok = ok and (shape is None or tuple(recon.shape[1:]) == shape)
        ok = ok and meta.get("start", "0") == str(start)  # a part follows the one before it
        ok = ok and "generator_state" in tensors and "global_state" in tensors
        if not ok:
            warnings.warn(
                f"reconstruction cache '{path}' is damaged; inverting again from image {start}.", stacklevel=3
            )
            return None
        stop = start + len(recon)
        states = (tensors["generator_state"], tensors["global_state"], float(meta.get("seconds", "0")))
        return Partial(None, *states, tensors.get("cuda_state"), stop, [(path, start, stop)]), tuple(recon.shape[1:])

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

    # ------------------------------------------------------------------------------------------ writing
    def save(self, recon: torch.Tensor, generator: torch.Generator, seconds: float, start: int = 0) -> None:
        """Add the part ``[start, start + len(recon))`` with the generators' states after it (atomically: a kill
        leaves the parts before). The first save of this ``ReconCache`` removes the parts from ``start`` on that an
        earlier run left (another inversion's, or a damaged one's followers), so that they are never chained on.

        Args:
            recon: ``(m, C, H, W)`` float reconstructions of images ``start`` to ``start + m - 1``.
            generator: the generator handed to ``Inverter.invert``, in its state after them.
            seconds: inversion seconds of images ``0`` to ``start + m - 1``, over every run that made them.
            start: the first image of the part (0, or where the previous part ends).

        Raises:
            OutputError: the folder is not writable or the disk is full, or a stale part is not this command's to
                remove (``invkit.io.files``, ``invkit.io.owned.check_write``).
        """
        from ..io.files import atomic_save_safetensors, make_dirs

        make_dirs(self.folder)
        if self._cleared_from is None or start < self._cleared_from:
            self._remove_parts_from(start)
            self._cleared_from = start
        tensors = {
            "recon": recon.detach().float().cpu(),
            "generator_state": generator.get_state(),
            "global_state": torch.get_rng_state(),
        }
        if generator.device.type == "cuda":  # jitter on a GPU draws from its global generator
            tensors["cuda_state"] = torch.cuda.get_rng_state(generator.device)
        meta = self.identity | {"seconds": repr(float(seconds)), "start": str(start), "stop": str(start + len(recon))}
        atomic_save_safetensors(self.part_path(start), tensors, metadata=meta)

    def _remove_parts_from(self, start: int) -> None:
        from ..io.owned import check_write, output_error

        for path in sorted(self.folder.iterdir()):
            m = _PART_RE.match(path.name)
            if m and int(m.group(1)) >= start and path.is_file():
                check_write(path)
                try:
                    path.unlink()
                except OSError as exc:
                    raise output_error(path, exc) from exc

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
