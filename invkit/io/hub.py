"""Checkpoints on the Hugging Face Hub: ``hf-hub:OWNER/NAME[@REVISION]`` in, a Hub-ready folder out.

Downloading and uploading go through ``huggingface_hub`` (the library every Hub client uses; invkit keeps no Hub
code of its own), so its cache, its offline mode and its login are the user's usual ones:

* ``hub_checkpoint(spec)`` returns the local folder of a spec: ``snapshot_download`` of the checkpoint's
  ``config.json`` and ``model.safetensors`` into huggingface_hub's own cache (``$HF_HUB_CACHE``, by default
  ``~/.cache/huggingface/hub``), or the cached snapshot without any network access when ``HF_HUB_OFFLINE=1``.
  ``REVISION`` is a branch, a tag or a commit (default ``main``). These variables, and ``$HF_ENDPOINT`` (a
  mirror), are read when a spec is resolved, not only when huggingface_hub is imported.
* ``write_model_card`` writes the ``README.md`` of a folder ``invkit export`` makes (YAML front matter rendered by
  huggingface_hub's ``ModelCard``); ``read_model_card`` reads it back.
* ``check_export_folder`` refuses a folder ``invkit export`` did not write (or whose files changed since), and
  ``upload_checkpoint`` publishes one with ``HfApi.upload_folder`` (needs the network and a login:
  ``hf auth login`` or ``$HF_TOKEN``).

Every failure is one ``CheckpointError`` (or ``OutputError`` for uploads) line saying what to do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import CheckpointError, InvkitError
from .checkpoint import CONFIG_NAME, weights_digest
from .weights import WEIGHTS_NAME

__all__ = [
    "CARD_NAME",
    "EXPORT_COMMAND",
    "EXPORT_FILES",
    "HUB_PREFIX",
    "check_export_folder",
    "hub_checkpoint",
    "hub_offline",
    "is_hub_spec",
    "parse_hub_spec",
    "read_model_card",
    "upload_checkpoint",
    "write_model_card",
]

HUB_PREFIX = "hf-hub:"  # as timm and open_clip spell it
CARD_NAME = "README.md"  # the model card: the Hub shows it as the repository's page
EXPORT_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)  # what invkit export writes, and all invkit push uploads
EXPORT_COMMAND = "invkit export"  # how export's files are listed in the folder's MANIFEST_NAME
_SPEC_FORM = "hf-hub:OWNER/NAME or hf-hub:OWNER/NAME@REVISION (a branch, tag or commit)"
_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's own reading of boolean variables


def is_hub_spec(spec: object) -> bool:
    """Whether ``spec`` is an ``hf-hub:`` spec (a string starting with ``hf-hub:``)."""
    return isinstance(spec, str) and spec.startswith(HUB_PREFIX)


def check_repo_id(repo_id: str, what: str) -> str:
    """``repo_id`` if it is ``OWNER/NAME`` as the Hub allows it (letters, digits, ``._-``; no ``--`` or ``..``).

    Raises:
        CheckpointError: it is not; the message names ``what`` (the spec as given) and the expected form.
    """
    if not _REPO_RE.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith((".", "-")):
        raise CheckpointError(f"'{what}' is not {_SPEC_FORM}; OWNER and NAME are letters, digits, '.', '_' and '-'.")
    return repo_id


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    """``hf-hub:OWNER/NAME[@REVISION]`` -> (``OWNER/NAME``, ``REVISION`` or None for the default branch).

    Raises:
        CheckpointError: not that form (no owner, an empty revision, characters the Hub refuses).
    """
    if not is_hub_spec(spec):
        raise CheckpointError(f"'{spec}' is not {_SPEC_FORM}.")
    repo_id, at, revision = spec[len(HUB_PREFIX) :].partition("@")
    check_repo_id(repo_id, spec)
    if at and (not revision or any(c.isspace() for c in revision)):
        raise CheckpointError(f"'{spec}' has an empty or blank revision after '@'; it is {_SPEC_FORM}.")
    return repo_id, (revision or None)


def hub_offline() -> bool:
    """Whether Hub downloads are off: ``$HF_HUB_OFFLINE`` (read now) when set, else huggingface_hub's own setting."""
    env = os.environ.get("HF_HUB_OFFLINE")
    if env is not None:
        return env.strip().upper() in _TRUE
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str | None:
    """``$HF_HUB_CACHE`` (or the older ``$HUGGINGFACE_HUB_CACHE``) read now; None: huggingface_hub's default."""
    return os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or None


def _endpoint() -> str | None:
    """``$HF_ENDPOINT`` read now (a mirror or a local Hub); None: huggingface_hub's default (huggingface.co)."""
    return os.environ.get("HF_ENDPOINT") or None


def _where_cached() -> str:
    from huggingface_hub import constants

    return _cache_dir() or constants.HF_HUB_CACHE


def hub_checkpoint(spec: str) -> Path:
    """The local folder of an ``hf-hub:`` checkpoint: downloaded into huggingface_hub's cache, or found there.

    Only ``config.json`` and ``model.safetensors`` are fetched (a training state or other files in the repository
    are left on the Hub). Nothing is downloaded when ``HF_HUB_OFFLINE=1`` (``hub_offline``); a snapshot already in
    the cache is used as it is, and a commit given as the revision is never looked up online.

    Args:
        spec: ``hf-hub:OWNER/NAME`` or ``hf-hub:OWNER/NAME@REVISION``.

    Returns:
        The snapshot folder (``.../models--OWNER--NAME/snapshots/COMMIT``), which holds ``config.json`` and
        ``model.safetensors``.

    Raises:
        CheckpointError: a malformed spec; offline and the repository or revision is not in the cache; an unknown
            repository (or a private or gated one without a login) or revision; the Hub cannot be reached and the
            snapshot is not cached; the snapshot lacks ``config.json`` or ``model.safetensors`` (not an invkit
            checkpoint). One line each, saying what to do.
    """
    repo_id, revision = parse_hub_spec(spec)
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    rev = f" (revision {revision})" if revision else ""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=_cache_dir(),
            local_files_only=offline,
            allow_patterns=[CONFIG_NAME, WEIGHTS_NAME],
            library_name="invkit",
            library_version=__version__,
            endpoint=_endpoint(),
        )
    except hub_errors.GatedRepoError:
        raise CheckpointError(
            f"{spec}: {repo_id} is gated; accept its terms on huggingface.co, then log in (`hf auth login` or "
            "$HF_TOKEN) and run again."
        ) from None
    except hub_errors.RepositoryNotFoundError:
        raise CheckpointError(
            f"{spec}: there is no Hugging Face repository {repo_id} (or it is private: log in with "
            "`hf auth login` or set $HF_TOKEN); check OWNER/NAME."
        ) from None
    except hub_errors.RevisionNotFoundError:
        raise CheckpointError(
            f"{spec}: {repo_id} has no revision '{revision}'; give one of its branches, tags or commits after '@', "
            "or drop '@...' for main."
        ) from None
    except hub_errors.LocalEntryNotFoundError:
        if offline:
            raise CheckpointError(
                f"{spec}: {repo_id}{rev} is not in the Hugging Face cache ({_where_cached()}) and HF_HUB_OFFLINE=1 "
                "forbids downloading it; run once without HF_HUB_OFFLINE (or on a machine with the network and "
                "copy its cache), or set HF_HUB_CACHE to the cache that holds it."
            ) from None
        raise CheckpointError(
            f"{spec}: the Hugging Face Hub cannot be reached and {repo_id}{rev} is not in the cache "
            f"({_where_cached()}); check the network (or $HF_ENDPOINT) and run again."
        ) from None
    except hub_errors.HfHubHTTPError as exc:
        from ..errors import short_message

        raise CheckpointError(f"{spec}: the Hugging Face Hub refused the download ({short_message(exc)}).") from None
    except InvkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. IncompleteSnapshotError (newer huggingface_hub), ValueError
        from ..errors import short_message

        raise CheckpointError(
            f"{spec}: cannot get {repo_id}{rev} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{short_message(exc)}); run again with the network, or clear its folder in the cache."
        ) from None
    folder = Path(folder)
    missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(
            f"{spec}: {repo_id}{rev} holds no {' and no '.join(missing)}, so it is not an invkit checkpoint (publish "
            "one with `invkit export` and `invkit push`); if it is one, its cached copy is incomplete: run again "
            "without HF_HUB_OFFLINE."
        )
    return folder


# ------------------------------------------------------------------------------------------------- model card
def write_model_card(path: str | os.PathLike, metadata: dict[str, Any], body: str) -> None:
    """Write a model card: YAML front matter (``metadata``) then the markdown ``body``, atomically.

    The YAML is rendered by huggingface_hub's ``ModelCardData`` (the Hub's own reader of that block), so keys the
    Hub knows (``library_name``, ``license``, ``tags``) are spelt as it expects.

    Raises:
        OutputError: the file cannot be written (``invkit.io.files.atomic_write_text``).
    """
    from huggingface_hub import ModelCardData

    from .files import atomic_write_text

    data = ModelCardData(**metadata)
    atomic_write_text(path, f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")


def read_model_card(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The YAML front matter (as a dict) and the markdown body of a model card ``README.md``, read by
    huggingface_hub's ``ModelCard`` (as the Hub reads it).

    Raises:
        CheckpointError: the file is missing or unreadable, or has no ``---`` front matter holding a YAML mapping.
    """
    from huggingface_hub import ModelCard

    path = Path(path)
    if not path.is_file():  # ModelCard.load would take a missing path for a repository name and go online
        raise CheckpointError(f"the model card '{path}' is missing; export again.")
    try:
        card = ModelCard.load(path)
    except Exception as exc:  # noqa: BLE001 - UnicodeDecodeError, yaml's errors, ValueError: all "not a card"
        raise CheckpointError(f"cannot read the model card '{path}' ({type(exc).__name__}); export again.") from None
    meta = card.data.to_dict()
    if not meta:
        raise CheckpointError(f"'{path}' has no YAML front matter between '---' lines; it is not a model card.")
    return meta, card.text


def check_export_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """Refuse a folder ``invkit export`` did not write, or whose files changed since; return its card's metadata.

    Checks: the folder exists; its list of invkit's files (``.invkit-files``) says ``invkit export`` wrote each of
    ``config.json``, ``model.safetensors`` and ``README.md``, and they are there; the card's front matter says
    ``library_name: invkit`` and records the digest of this ``model.safetensors``.

    Raises:
        CheckpointError: one line naming what is wrong and saying to run ``invkit export`` (again).
    """
    from .owned import _read_manifest

    folder = Path(folder).expanduser()
    redo = "make one with `invkit export RUN_OR_CHECKPOINT DIR`"
    if not folder.is_dir():
        raise CheckpointError(f"'{folder}' is not a folder; push uploads a folder made by invkit export: {redo}.")
    owners = _read_manifest(folder.resolve()) or {}
    missing = [f for f in EXPORT_FILES if not (folder / f).is_file()]
    not_ours = [f for f in EXPORT_FILES if owners.get(f) != EXPORT_COMMAND]
    if missing or not_ours:
        what = f"lacks {', '.join(missing)}" if missing else f"has {', '.join(not_ours)} not written by invkit export"
        raise CheckpointError(f"'{folder}' {what}, so invkit export did not make it; {redo}.")
    meta, _ = read_model_card(folder / CARD_NAME)
    recorded = (meta.get("invkit") or {}).get("weights_sha256") if isinstance(meta.get("invkit"), dict) else None
    if meta.get("library_name") != "invkit" or not isinstance(recorded, str):
        raise CheckpointError(f"'{folder / CARD_NAME}' is not the model card invkit export wrote; {redo}.")
    actual = weights_digest(folder / WEIGHTS_NAME)
    if actual != recorded:
        raise CheckpointError(
            f"'{folder / WEIGHTS_NAME}' changed since invkit export (digest {actual}, the card says {recorded}); "
            "export the checkpoint again."
        )
    try:
        json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise CheckpointError(f"'{folder / CONFIG_NAME}' is not valid JSON any more; export again.") from None
    return meta


def upload_checkpoint(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
) -> str:
    """Publish a folder made by ``invkit export`` to the Hub repository ``repo_id`` (created if missing).

    Only ``config.json``, ``model.safetensors`` and ``README.md`` are uploaded (never invkit's list of files or its
    lock). The login is huggingface_hub's: ``hf auth login`` or ``$HF_TOKEN``. Needs the network; nothing here
    can be checked without it beyond the refusals below, which all happen before any network access.

    Args:
        folder: the folder ``invkit export`` wrote.
        repo_id: ``OWNER/NAME`` on the Hub.
        revision: the branch to commit to (default ``main``).
        private: create the repository private (an existing one keeps its visibility).
        message: the commit message (default: ``Upload NAME with invkit VERSION``).

    Returns:
        The URL of the commit.

    Raises:
        CheckpointError: ``folder`` is not an export folder (``check_export_folder``); ``repo_id`` is not
            ``OWNER/NAME``.
        OutputError: ``HF_HUB_OFFLINE`` is set; not logged in or no write access; the Hub cannot be reached or
            refuses the upload.
    """
    from ..errors import OutputError, short_message

    check_repo_id(repo_id, repo_id)
    meta = check_export_folder(folder)
    if hub_offline():
        raise OutputError(
            f"HF_HUB_OFFLINE is set, and pushing to {repo_id} needs the network; unset it and run again "
            f"(or upload '{folder}' later with `hf upload {repo_id} {folder}`)."
        )
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hub_errors

    name = (meta.get("invkit") or {}).get("name", "checkpoint")
    api = HfApi(library_name="invkit", library_version=__version__, endpoint=_endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(Path(folder).expanduser()),
            revision=revision,
            allow_patterns=list(EXPORT_FILES),
            commit_message=message or f"Upload {name} with invkit {__version__}",
        )
    except hub_errors.LocalTokenNotFoundError:
        raise OutputError("not logged in to the Hugging Face Hub; run `hf auth login` or set $HF_TOKEN.") from None
    except hub_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise OutputError(
                f"the Hub refused the upload to {repo_id} (HTTP {status}): log in with a token that may write there "
                "(`hf auth login` or $HF_TOKEN)."
            ) from None
        raise OutputError(f"the Hub refused the upload to {repo_id} ({short_message(exc)}).") from None
    except OSError as exc:  # connection errors (httpx's are OSErrors only in part: see the next clause)
        raise OutputError(f"cannot reach the Hugging Face Hub to push {repo_id} ({short_message(exc)}).") from None
    except Exception as exc:  # noqa: BLE001 - httpx connection and timeout errors
        if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise OutputError(f"cannot reach the Hugging Face Hub to push {repo_id} ({short_message(exc)}).") from None
        raise
    return str(getattr(info, "commit_url", info))
