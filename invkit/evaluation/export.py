"""``invkit export``: a checkpoint (or a training run's newest one) as a folder ready for the Hugging Face Hub.

``export_checkpoint(source, out)`` writes into ``out``, as one unit (``invkit.io.staged``):

* ``model.safetensors`` and ``config.json``, byte for byte the checkpoint's (so ``hf-hub:OWNER/NAME`` loads exactly
  what was trained, and its ``weights_digest`` is the one results recorded);
* ``README.md``, the model card: YAML front matter (``library_name: invkit``, ``license``, ``tags`` and an
  ``invkit:`` block with the registry name, the weights digest, the classifier an inverter inverts with its
  weights digest, the data, the observation channel, the training steps and, given a bench folder, that
  checkpoint's numbers from its ``results.json``), then how to use it.

Nothing is uploaded here: ``invkit push`` (``invkit.io.hub.upload_checkpoint``) or ``hf upload`` publishes the
folder. The card's metadata is built by ``card_metadata`` so tests and tools can read the same fields.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import CheckpointError, InvkitError
from ..io.checkpoint import CONFIG_NAME, read_checkpoint_config, weights_digest
from ..io.hub import CARD_NAME, EXPORT_COMMAND, EXPORT_FILES, check_repo_id, is_hub_spec, write_model_card
from ..io.locate import has_prefix, local_checkpoint
from ..io.outputs import claim_output, input_paths
from ..io.read import read_json
from ..io.staged import write_staged
from ..io.weights import WEIGHTS_NAME

__all__ = ["CHANNEL", "ExportResult", "card_metadata", "export_checkpoint", "find_checkpoint"]

CHANNEL = "logits"  # what an inverter is conditioned on; the only observation channel invkit has so far
# Bench numbers copied into the card: the quality metrics (not the timings, which describe the bench's machine).
BENCH_FIELDS = (
    "psnr",
    "ssim",
    "lpips",
    "accuracy",
    "top1_agreement",
    "top1_agreement_correct",
    "top1_agreement_incorrect",
    "logit_cosine",
    "id_accuracy",
    "id_k",
    "n",
)


@dataclass
class ExportResult:
    """What ``export_checkpoint`` wrote.

    Attributes:
        folder: the export folder (``config.json``, ``model.safetensors``, ``README.md``).
        checkpoint: the checkpoint folder exported.
        run: the training run folder ``source`` named (its newest checkpoint was exported), or None.
        metadata: the model card's YAML front matter, as written.
    """

    folder: Path
    checkpoint: Path
    run: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)


def find_checkpoint(source: str) -> tuple[Path, Path | None]:
    """The checkpoint folder ``source`` names: itself, or the newest checkpoint of an ``invkit train`` run folder
    (the rule every command follows: ``invkit.io.checkpoint.checkpoint_folder``).

    Args:
        source: a checkpoint folder, ``demo:NAME``, ``hf-hub:...``, or a run folder (``OUT`` of ``invkit train``).

    Returns:
        (checkpoint folder, the run folder or None).

    Raises:
        CheckpointError: ``source`` is missing, a file, neither a checkpoint folder (``config.json``) nor a run
            folder, or a run folder without a complete checkpoint yet.
    """
    from ..io.checkpoint import checkpoint_folder, is_run_folder

    path = Path(local_checkpoint(source)).expanduser()
    what = "a checkpoint folder (config.json + model.safetensors) or an `invkit train` run folder"
    if not path.exists():
        raise CheckpointError(f"'{source}' does not exist; give {what}.")
    if not path.is_dir():
        raise CheckpointError(f"'{source}' is a file; give {what}.")
    if is_run_folder(path):
        return Path(checkpoint_folder(path, note=False)), path
    if (path / CONFIG_NAME).is_file():
        return path, None
    raise CheckpointError(f"'{source}' is neither {what.replace(' or ', ' nor ')}; it holds no {CONFIG_NAME}.")


def _portable(spec: str | None) -> str | None:
    """``spec`` if it names the same thing on any machine (a registry name, ``demo:``, ``hf-hub:``), else None."""
    if not isinstance(spec, str) or not spec:
        return None
    if has_prefix(spec):
        return spec
    from ..core.resolve import is_checkpoint_spec

    return None if is_checkpoint_spec(spec) else spec


def _short_data(data: Any) -> str | None:
    """The data a run used, as the card shows it: a data-set name as it is, a path by its last part."""
    if not isinstance(data, str) or not data:
        return None
    return Path(data).name if ("/" in data or "\\" in data) else data


def _classifier_block(doc: dict[str, Any], classifier: str | None) -> dict[str, Any]:
    """The card's ``inverts`` block: the classifier an inverter checkpoint was trained for, with its digests.

    From the checkpoint's records (``invkit.core.provenance.recorded_classifier`` and ``classifier_identity``),
    and from ``classifier`` when given, which must then be that classifier.
    """
    from ..core.provenance import _identity_matches, classifier_identity, identity_mismatch, recorded_classifier

    recorded = recorded_classifier(doc)
    ident = doc.get("classifier_identity") if isinstance(doc.get("classifier_identity"), dict) else {}
    train_cfg = doc.get("train_config") if isinstance(doc.get("train_config"), dict) else {}
    block: dict[str, Any] = {
        "name": doc.get("classifier") if isinstance(doc.get("classifier"), str) else recorded.get("name"),
        "spec": None if train_cfg.get("weights") else _portable(train_cfg.get("classifier")),  # a name + a file
        "weights_sha256": ident.get("weights_sha256") or recorded.get("weights_sha256"),
        "network_sha256": ident.get("network_sha256"),
    }
    if classifier is not None:
        from ..core.resolve import resolve_classifier

        clf = resolve_classifier(classifier)
        current = classifier_identity(classifier, clf)
        why = identity_mismatch({k: v for k, v in block.items() if v is not None}, current)
        if why is None and not (block["weights_sha256"] or block["network_sha256"]) and recorded:
            folder = local_checkpoint(classifier)  # only a folder or name recorded: compare those (provenance)
            if not _identity_matches(recorded, folder, clf):
                where = recorded.get("path") or recorded.get("relpath") or recorded.get("name")
                why = f"it was trained for {where}"
        if why is not None:
            raise CheckpointError(
                f"--classifier {classifier} is not the classifier this checkpoint was trained for: {why}; pass that "
                "classifier, or leave --classifier out."
            )
        block.update(
            name=clf.name,
            spec=_portable(classifier) or block["spec"],
            weights_sha256=current.get("weights_sha256") or block["weights_sha256"],
            network_sha256=current["network_sha256"],
        )
        if is_hub_spec(classifier) and "@" not in classifier:  # pin the commit this card was checked against
            block["spec"] = f"{classifier}@{Path(local_checkpoint(classifier)).name}"
    if not block["weights_sha256"] and not block["network_sha256"]:
        raise CheckpointError(
            "the checkpoint does not record the weights of the classifier it inverts (it predates invkit's "
            "records); pass --classifier SPEC, the classifier it was trained for, so the card can name it."
        )
    return {k: v for k, v in block.items() if v is not None}


def _bench_numbers(bench: str | os.PathLike, identity_digest: str, kind: str) -> list[dict[str, Any]]:
    """This checkpoint's records in a bench folder's ``results.json``, found by its weights digest.

    Raises:
        InvkitError: no ``results.json`` there, or one that is not a bench's, or no record of this checkpoint.
    """
    from .bench import RESULTS_NAME, RESULTS_SCHEMA

    path = Path(bench).expanduser() / RESULTS_NAME
    if not path.is_file():
        raise InvkitError(f"'{bench}' holds no {RESULTS_NAME}; give the --out folder of an `invkit bench` run.")
    doc = read_json(path, RESULTS_SCHEMA, "bench results", InvkitError, "give the --out folder of an invkit bench")
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    found = []
    for record in doc.get("results", []):
        clf_part, _, rest = record["key"].partition("|")
        part = rest.rpartition("|")[2] if kind == "inverter" else clf_part
        if not part.endswith(f"@{identity_digest}"):
            continue
        numbers = {k: record.get(k) for k in BENCH_FIELDS if k in record}
        entry = {"classifier": record.get("classifier_name") or record["classifier"], "inverter": record["inverter"]}
        entry |= {"data": _short_data(settings.get("data")), "seed": settings.get("seed")} | numbers
        found.append({k: v for k, v in entry.items() if v is not None})
    if not found:
        raise InvkitError(
            f"'{path}' has no results of this checkpoint (weights digest {identity_digest}); bench it first "
            f"(`invkit bench ... --checkpoint CHECKPOINT --out {bench}`) or leave --bench out."
        )
    return found


def card_metadata(
    checkpoint: str | os.PathLike,
    *,
    classifier: str | None = None,
    bench: str | os.PathLike | None = None,
    license: str = "other",
) -> dict[str, Any]:
    """The YAML front matter of the model card of ``checkpoint`` (see the module docstring).

    Returns:
        ``library_name`` (``invkit``), ``license``, ``tags`` and ``invkit``: ``kind``, ``name``,
        ``weights_sha256`` (of ``model.safetensors``, 16 hex digits), ``num_classes``, ``data``, ``steps``,
        ``invkit_version``; for an inverter also ``channel`` (``logits``) and ``inverts`` (the classifier:
        ``name``, ``spec`` when it names the same classifier anywhere, ``weights_sha256`` and/or
        ``network_sha256``); for a classifier ``accuracy`` when its training recorded it; and ``bench`` (a list of
        that checkpoint's bench records) when ``bench`` is given.

    Raises:
        CheckpointError: not a checkpoint; an inverter checkpoint that does not record its classifier's weights and
            no ``classifier``; a ``classifier`` that is not the one it was trained for.
        InvkitError: ``bench`` has no results of this checkpoint.
    """
    doc = read_checkpoint_config(checkpoint)
    kind, name = doc["invkit_kind"], doc["name"]
    cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    digest = weights_digest(checkpoint)
    block: dict[str, Any] = {"kind": kind, "name": name, "weights_sha256": digest}
    if kind == "inverter":
        train_cfg = doc.get("train_config") if isinstance(doc.get("train_config"), dict) else {}
        block |= {
            "channel": CHANNEL,
            "inverts": _classifier_block(doc, classifier),
            "num_classes": cfg.get("num_classes"),
            "resolution": cfg.get("resolution"),
            "data": _short_data(train_cfg.get("data")),
            "steps": doc.get("step") if isinstance(doc.get("step"), int) else None,
        }
    else:
        train = doc.get("train") if isinstance(doc.get("train"), dict) else {}
        clf_cfg = cfg.get("classifier_config") if isinstance(cfg.get("classifier_config"), dict) else {}
        metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
        block |= {
            "num_classes": clf_cfg.get("num_classes"),
            "input_size": clf_cfg.get("input_size"),
            "robust": clf_cfg.get("robust"),
            "data": _short_data(train["config"].get("data") if isinstance(train.get("config"), dict) else None),
            "steps": train.get("step") if isinstance(train.get("step"), int) else None,
            "accuracy": metrics.get("clean_accuracy"),
        }
    if bench is not None:
        block["bench"] = _bench_numbers(bench, digest, kind)
    block["invkit_version"] = __version__
    base = name.split(".")[0]
    tags = ["invkit", "model-inversion", "classifier-inversion", base, CHANNEL] if kind == "inverter" else []
    tags = tags or ["invkit", "image-classification", base]
    return {
        "library_name": "invkit",
        "license": license,
        "tags": tags,
        "invkit": {k: v for k, v in block.items() if v is not None},
    }


def _card_body(meta: dict[str, Any], repo: str | None) -> str:
    """The markdown under the front matter: what the checkpoint is, how to use it, its training and bench."""
    inv = meta["invkit"]
    hub = f"hf-hub:{repo}" if repo else "hf-hub:OWNER/NAME"
    lines = [f"# {repo.split('/')[-1] if repo else inv['name']}", ""]
    if inv["kind"] == "inverter":
        clf = inv["inverts"]
        clf_spec = clf.get("spec") or "CLASSIFIER"
        lines += [
            f"An [invkit](https://pypi.org/project/invkit/) inverter, `{inv['name']}`, that reconstructs images from "
            f"the {inv['channel']} of the classifier `{clf.get('name', '?')}`"
            + (f" (weights digest `{clf['weights_sha256']}`)." if clf.get("weights_sha256") else "."),
            "",
            "## Use",
            "",
            "```bash",
            "pip install invkit",
            f"invkit invert --classifier {clf_spec} --checkpoint {hub} IMAGES... --out recon",
            f"invkit bench --classifier {clf_spec} --inverter {inv['name'].split('.')[0]} --checkpoint {hub}",
            "```",
            "",
            "```python",
            "import invkit",
            f'clf = invkit.resolve_classifier("{clf_spec}")',
            f'inv = invkit.load_inverter("{hub}", classifier=clf)',
            "images = inv.invert(clf.logits(x))  # x: (N, C, H, W) in [0, 1]",
            "```",
        ]
        if not clf.get("spec"):
            lines += [
                "",
                "CLASSIFIER is the classifier checkpoint with the weights digest above (`invkit export` and `invkit "
                "push` publish a classifier checkpoint too).",
            ]
    else:
        lines += [
            f"An [invkit](https://pypi.org/project/invkit/) classifier checkpoint, `{inv['name']}`.",
            "",
            "## Use",
            "",
            "```bash",
            "pip install invkit",
            f"invkit bench --classifier {hub} --inverter optim",
            "```",
            "",
            "```python",
            "import invkit",
            f'clf = invkit.load_classifier("{hub}")',
            "```",
        ]
    rows = [("weights digest (`model.safetensors`)", inv["weights_sha256"])]
    rows += [(k, inv[k]) for k in ("channel", "num_classes", "resolution", "data", "steps", "accuracy") if k in inv]
    lines += ["", "## Checkpoint", "", "| field | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if inv.get("bench"):
        keys = ["classifier", "inverter", "data"] + [k for k in BENCH_FIELDS if any(k in r for r in inv["bench"])]
        lines += ["", "## Bench (`invkit bench`)", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        for r in inv["bench"]:
            cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Exported with invkit {__version__} (`invkit export`); `config.json` is the checkpoint's own."]
    return "\n".join(lines)


def export_checkpoint(
    source: str,
    out: str | os.PathLike,
    *,
    bench: str | os.PathLike | None = None,
    classifier: str | None = None,
    license: str = "other",
    repo: str | None = None,
) -> ExportResult:
    """Write a Hub-ready folder for a checkpoint: ``model.safetensors``, ``config.json`` and ``README.md``.

    Args:
        source: a checkpoint folder (classifier or inverter; also ``demo:NAME`` or ``hf-hub:...``), or an
            ``invkit train`` run folder, which stands for its newest complete checkpoint.
        out: the export folder; created if missing. Files in it that ``invkit export`` did not write are never
            replaced (``invkit.io.owned``); the three files are written as one unit.
        bench: an ``invkit bench`` ``--out`` folder whose ``results.json`` holds this checkpoint's numbers.
        classifier: the classifier an inverter checkpoint inverts (a spec); needed when the checkpoint does not
            record its classifier's weights, and checked against the records when it does.
        license: the card's ``license`` (a Hub license id such as ``apache-2.0``, or ``other``).
        repo: ``OWNER/NAME`` the folder will be pushed to, for the card's usage lines (else ``OWNER/NAME``).

    Returns:
        An ``ExportResult``.

    Raises:
        CheckpointError: ``source`` is not a checkpoint or run folder, or its files are corrupt; the classifier
            checks of ``card_metadata``; ``repo`` is not ``OWNER/NAME``.
        InvkitError: ``bench`` has no results of this checkpoint; another invkit process holds ``out``.
        OutputError: ``out`` cannot be written, or holds one of the three files written by something else.
    """
    if repo is not None:
        check_repo_id(repo, repo)
    checkpoint, run = find_checkpoint(source)
    doc = read_checkpoint_config(checkpoint)
    if doc["invkit_kind"] == "classifier":
        from ..core.classifier import load_classifier

        load_classifier(checkpoint)  # the weights fit the network: refuse a broken checkpoint before publishing it
    else:
        from ..core.inverter import load_inverter

        load_inverter(checkpoint)
    meta = card_metadata(checkpoint, classifier=classifier, bench=bench, license=license)
    body = _card_body(meta, repo)
    out = Path(out).expanduser()
    if out.resolve() == checkpoint.resolve() or checkpoint.resolve() in out.resolve().parents:
        raise CheckpointError(f"--out '{out}' is the checkpoint folder or inside it; export into a new folder.")
    writers = {
        CONFIG_NAME: lambda p: shutil.copyfile(checkpoint / CONFIG_NAME, p),
        WEIGHTS_NAME: lambda p: shutil.copyfile(checkpoint / WEIGHTS_NAME, p),
        CARD_NAME: lambda p: write_model_card(p, meta, body),
    }
    inputs = input_paths(str(checkpoint), bench)
    with claim_output(out, EXPORT_COMMAND, inputs=inputs, writes=EXPORT_FILES):
        write_staged(out, writers)
    return ExportResult(out, checkpoint, run, meta)
