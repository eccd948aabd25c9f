"""Checkpoint folders by name: ``demo:NAME`` and ``hf-hub:OWNER/NAME[@REVISION]`` wherever a folder is accepted.

A classifier or inverter checkpoint is a folder (docs/checkpoints.md). Two prefixes name folders that work from
anywhere, without knowing where invkit is installed or where a cache is:

* ``demo:NAME`` — a demo checkpoint shipped inside the installed package (``invkit/assets/demo/NAME``, or
  ``$INVKIT_DEMO_DIR/NAME``): ``demo:classifier_standard``, ``demo:classifier_robust``, ``demo:biggan_standard``,
  ``demo:biggan_robust``, ``demo:dbrox_standard``, ``demo:dbrox_robust`` (``invkit.demo`` describes them).
* ``hf-hub:OWNER/NAME[@REVISION]`` — a checkpoint on the Hugging Face Hub, through huggingface_hub's cache
  (``invkit.io.hub.hub_checkpoint``).

``local_checkpoint(spec)`` is the one place both become a folder; the library's resolve and load functions, the
bench and every command call it, so a prefix means the same everywhere. Anything else is returned unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import CONFIG_NAME, checkpoint_folder
from .hub import HUB_PREFIX, hub_checkpoint, is_hub_spec
from .weights import WEIGHTS_NAME

__all__ = [
    "DEMO_DIR",
    "DEMO_PREFIX",
    "demo_dir",
    "demo_names",
    "has_prefix",
    "local_checkpoint",
    "spec_label",
]

DEMO_PREFIX = "demo:"
DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"  # invkit/assets/demo of the installed package


def demo_dir() -> Path:
    """Where the demo checkpoints are: ``$INVKIT_DEMO_DIR`` if set, else ``invkit/assets/demo`` of the package."""
    env = os.environ.get("INVKIT_DEMO_DIR")
    return Path(env).expanduser() if env else DEMO_DIR


def demo_names() -> list[str]:
    """The ``NAME`` of every ``demo:NAME``: the sub-folders of ``demo_dir()`` that hold a ``config.json``, sorted."""
    root = demo_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def has_prefix(spec: object) -> bool:
    """Whether ``spec`` is a ``demo:`` or ``hf-hub:`` name of a checkpoint folder."""
    return isinstance(spec, str) and (spec.startswith(DEMO_PREFIX) or is_hub_spec(spec))


def _demo_folder(spec: str) -> Path:
    name = spec[len(DEMO_PREFIX) :]
    folder = demo_dir() / name
    known = demo_names()
    if name not in known or "/" in name or name in (".", ".."):
        if not known:
            raise CheckpointError(
                f"'{spec}': there are no demo checkpoints in '{demo_dir()}'; reinstall invkit (or unset "
                "$INVKIT_DEMO_DIR)."
            )
        listed = ", ".join(f"{DEMO_PREFIX}{n}" for n in known)
        raise CheckpointError(f"unknown demo checkpoint '{spec}'; the demo checkpoints are {listed}.")
    if not (folder / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"'{spec}': '{folder}' has no {WEIGHTS_NAME}; reinstall invkit.")
    return folder


def local_checkpoint(spec: str) -> str:
    """The folder a checkpoint spec names: ``demo:NAME`` and ``hf-hub:...`` resolved, anything else unchanged.

    Args:
        spec: ``demo:NAME``, ``hf-hub:OWNER/NAME[@REVISION]``, or anything else (a folder, a registry name).

    Returns:
        The folder as a string (absolute for a prefix), or ``spec`` itself when it has no prefix.

    Raises:
        CheckpointError: an unknown demo name (the message lists them) or missing demo files; every failure of
            ``hub_checkpoint`` (malformed spec, not cached while offline, unknown repository or revision, not an
            invkit checkpoint).
    """
    if not isinstance(spec, str):
        return spec
    if spec.startswith(DEMO_PREFIX):
        return str(_demo_folder(spec))
    if spec.startswith(HUB_PREFIX):
        return str(hub_checkpoint(spec))
    return spec


def spec_label(spec: str) -> str:
    """A short name for a prefixed spec in tables and file names: ``demo:NAME`` -> ``NAME``, ``hf-hub:OWNER/NAME@R``
    -> ``NAME@R``; other specs unchanged."""
    if spec.startswith(DEMO_PREFIX):
        return spec[len(DEMO_PREFIX) :]
    if is_hub_spec(spec):
        return spec[len(HUB_PREFIX) :].split("/", 1)[-1]
    return spec


def checkpoint_directory(spec: str | os.PathLike) -> str | os.PathLike:
    """The folder ``load_classifier`` and ``load_inverter`` read for ``spec``: a ``demo:``/``hf-hub:`` spec made a
    folder (``local_checkpoint``), then a training run folder its newest checkpoint (``checkpoint_folder``, said in a
    note). Anything else comes back unchanged, for the reader to check.

    Raises:
        CheckpointError: as ``local_checkpoint`` and ``checkpoint_folder``.
    """
    return checkpoint_folder(local_checkpoint(spec) if isinstance(spec, str) else spec)
