"""Which classifier an inverter checkpoint was trained for: what a run records, and whether a classifier is that one.

``invkit train`` records the classifier it trained against (``classifier_identity``: the absolute folder and the
SHA-256 of its weights, or the registry name); ``invkit bench`` reads it back from a checkpoint's ``config.json``
(``recorded_classifier``) to match inverter checkpoints to the classifiers under study (``_identity_matches``).
Both sides live here so that training and evaluation agree on one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.checkpoint import weights_digest
from .classifier import Classifier
from .resolve import is_checkpoint_spec


def classifier_identity(spec: str) -> dict[str, str]:
    """What an inverter checkpoint may record about the classifier it was trained for (see ``match``)."""
    if is_checkpoint_spec(spec) and Path(spec).expanduser().is_dir():
        return {"path": str(Path(spec).expanduser().resolve()), "weights_sha256": weights_digest(spec)}
    return {"name": spec}


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
