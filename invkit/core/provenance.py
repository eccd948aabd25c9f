"""Which classifier an inverter checkpoint was trained for: what a run records, and whether a classifier is that one.

``invkit train`` records the classifier it trained against (``classifier_identity``: the absolute folder and the
SHA-256 of its weights, or the registry name; the absolute ``--weights`` file and its digest; the digest of the
network's weights) and a resume compares it with the classifier given then (``identity_mismatch``); ``invkit
bench`` reads it back from a checkpoint's ``config.json`` (``recorded_classifier``) to match inverter checkpoints
to the classifiers under study (``_identity_matches``).
Both sides live here so that training and evaluation agree on one definition.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..io.checkpoint import weights_digest
from ..io.locate import has_prefix, local_checkpoint
from .classifier import Classifier
from .resolve import is_checkpoint_spec


def classifier_identity(spec: str, classifier: Classifier | None = None, weights: str | None = None) -> dict[str, str]:
    """What an inverter checkpoint may record about the classifier it was trained for (see ``match``).

    Args:
        spec: the classifier as given: a checkpoint folder (recorded by absolute path and the ``weights_digest``
            of its ``model.safetensors``; ``demo:NAME`` and ``hf-hub:...`` by the folder they name) or a registry
            name.
        classifier: the classifier in use; adds ``network_sha256``, the digest of the weights it holds
            (``network_digest``), which is what a resume compares whatever the spec.
        weights: a ``--weights`` file; adds its absolute path (``weights_file``) and digest
            (``weights_file_sha256``).

    Returns:
        Strings only: ``path`` and ``weights_sha256``, or ``name``; and the optional fields above.
    """
    if has_prefix(spec):
        spec = local_checkpoint(spec)
    if is_checkpoint_spec(spec) and Path(spec).expanduser().is_dir():
        ident = {"path": str(Path(spec).expanduser().resolve()), "weights_sha256": weights_digest(spec)}
    else:
        ident = {"name": spec}
    if weights and Path(weights).expanduser().is_file():
        ident["weights_file"] = str(Path(weights).expanduser().resolve())
        ident["weights_file_sha256"] = weights_digest(Path(weights).expanduser())
    if classifier is not None:
        ident["network_sha256"] = network_digest(classifier.network)
    return ident


def network_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a network's weights and buffers (names, dtypes, shapes and values): 16 hex digits.

    The same weights give the same digest however they were loaded (a folder, a ``--weights`` file, a download).
    """
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def identity_mismatch(recorded: dict[str, Any], current: dict[str, str]) -> str | None:
    """How the classifier a checkpoint records differs from the one in use, or None when they agree or cannot be
    compared (a checkpoint that recorded only a registry name).

    Compared by content, the first pair both have: the network's weights (``network_sha256``), the classifier
    folder's weights file (``weights_sha256``), the ``--weights`` file (``weights_file_sha256``).
    """
    for key, what in (
        ("network_sha256", "its weights"),
        ("weights_sha256", "the weights in its folder"),
        ("weights_file_sha256", "its --weights file"),
    ):
        if isinstance(recorded.get(key), str) and key in current:
            if recorded[key] != current[key]:
                return f"{what} differ (digest {recorded[key]} then, {current[key]} now)"
            return None
    return None


def recorded_classifier(doc: dict[str, Any]) -> dict[str, str]:
    """The classifier an inverter checkpoint says it was trained for, from its ``config.json``.

    ``invkit train`` writes ``classifier`` (the registry name), ``classifier_identity`` (absolute folder and
    weights digest) and ``train_config.classifier`` (the spec it was given: a name or a checkpoint folder). A
    ``classifier`` dict with ``name``/``checkpoint``/``path``/``weights_sha256`` is read too. Empty when the
    checkpoint does not say.

    A relative folder recorded in a checkpoint was relative to the folder the run was started from, which is
    unknown here: it is kept as ``relpath`` and never resolved against the current folder (see
    ``_identity_matches``).
    """
    out: dict[str, str] = {}
    train_cfg = doc.get("train_config") if isinstance(doc.get("train_config"), dict) else {}
    extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}

    def folder(value: str) -> None:
        p = Path(value).expanduser()
        if p.is_absolute():
            out.setdefault("path", str(p.resolve()))
        else:
            out.setdefault("relpath", p.as_posix())

    values = (doc.get("classifier_identity"), doc.get("classifier"), extra.get("classifier"))
    for value in (*values, train_cfg.get("classifier")):
        if isinstance(value, str) and value:
            if has_prefix(value):
                continue  # demo:/hf-hub: as given; classifier_identity recorded the folder it named and its digest
            if is_checkpoint_spec(value):
                folder(value)
            else:
                out["name"] = value
        elif isinstance(value, dict):
            for k in ("name", "weights_sha256"):
                if isinstance(value.get(k), str):
                    out.setdefault(k, value[k])
            for k in ("checkpoint", "path"):
                if isinstance(value.get(k), str):
                    folder(value[k])
    return out


def _relpath_matches(relpath: str, path: str) -> bool:
    """Whether an absolute folder can be the one a relative path recorded elsewhere named: its last parts are
    the relative path's (``..`` and ``.`` parts dropped), e.g. ``/x/invkit/assets/demo/clf`` for
    ``invkit/assets/demo/clf``."""
    parts = [p for p in Path(relpath).parts if p not in ("..", ".")]
    return bool(parts) and list(Path(path).parts[-len(parts) :]) == parts


def _identity_matches(recorded: dict[str, str], spec: str, clf: Classifier) -> bool:
    """Whether a recorded classifier is this one: same weights digest, else same folder, else (for classifiers
    built from the registry) the same registry name."""
    ident = classifier_identity(spec)
    if "weights_sha256" in recorded and "weights_sha256" in ident:
        return recorded["weights_sha256"] == ident["weights_sha256"]
    if "path" in recorded and "path" in ident:
        return recorded["path"] == ident["path"]
    if "relpath" in recorded and "path" in ident:
        return _relpath_matches(recorded["relpath"], ident["path"])
    if "path" in recorded or "relpath" in recorded or "path" in ident:
        return False
    return "name" in recorded and recorded["name"].split(".")[0] == clf.config.name.split(".")[0]
