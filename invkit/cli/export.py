"""``invkit export`` and ``invkit push``: share a checkpoint on the Hugging Face Hub.

``export`` writes a Hub-ready folder (``invkit.evaluation.export``); ``push`` uploads such a folder with
huggingface_hub (``invkit.io.hub.upload_checkpoint``). Others then use it as ``hf-hub:OWNER/NAME`` wherever a
checkpoint folder is accepted (docs/checkpoints.md).
"""

from __future__ import annotations

from pathlib import Path

import click

from ._ui import console, err_console


@click.command("export")
@click.argument("source", metavar="RUN_OR_CHECKPOINT")
@click.argument("out", metavar="DIR", type=click.Path(file_okay=False))
@click.option(
    "--bench",
    "bench",
    default=None,
    type=click.Path(file_okay=False),
    help="An `invkit bench` --out folder: this checkpoint's numbers from its results.json go into the model card.",
)
@click.option(
    "--classifier",
    default=None,
    help="The classifier the inverter inverts (name, folder, demo:NAME or hf-hub:...): needed when the checkpoint "
    "does not record its weights, checked against its records otherwise; the card tells users to pass it.",
)
@click.option(
    "--license",
    "license_",
    default="other",
    show_default=True,
    help="The card's license: a Hub license id (apache-2.0, mit, cc-by-4.0, ...) or 'other'.",
)
@click.option("--repo", default=None, metavar="OWNER/NAME", help="Where it will be pushed, for the card's examples.")
def command(source: str, out: str, bench: str | None, classifier: str | None, license_: str, repo: str | None) -> None:
    """Write a Hub-ready folder DIR for a checkpoint: model.safetensors, config.json and a model card README.md.

    RUN_OR_CHECKPOINT is a classifier or inverter checkpoint folder (or demo:NAME, hf-hub:...), or an `invkit
    train` run folder, which stands for its newest checkpoint. Publish DIR with `invkit push DIR OWNER/NAME`
    (or `hf upload OWNER/NAME DIR`).
    """
    from ..evaluation.export import export_checkpoint

    result = export_checkpoint(source, out, bench=bench, classifier=classifier, license=license_, repo=repo)
    if result.run is not None:
        err_console.print(
            f"'{source}' is a training run folder: exporting its newest checkpoint '{result.checkpoint}'.",
            soft_wrap=True,
        )
    meta = result.metadata["invkit"]
    inverts = meta.get("inverts", {})
    what = f"{meta['kind']} {meta['name']}" + (f", inverts {inverts.get('name')}" if inverts else "")
    bench_note = f", {len(meta['bench'])} bench record(s)" if meta.get("bench") else ""
    console.print(f"exported {what} (weights {meta['weights_sha256']}{bench_note}): {Path(out)}", soft_wrap=True)
    console.print(f"publish it: invkit push {out} {repo or 'OWNER/NAME'}", soft_wrap=True)


@click.command("push")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("repo", metavar="OWNER/NAME")
@click.option("--revision", default=None, help="Branch to commit to (default: main).")
@click.option("--private", is_flag=True, help="Create the repository private (an existing one keeps its visibility).")
@click.option("--message", default=None, help="Commit message (default: 'Upload NAME with invkit VERSION').")
def push_command(folder: str, repo: str, revision: str | None, private: bool, message: str | None) -> None:
    """Upload DIR, written by `invkit export`, to the Hugging Face Hub repository OWNER/NAME (created if missing).

    Uploads only config.json, model.safetensors and README.md. Needs the network and a login with write access
    (`hf auth login` or HF_TOKEN); refuses a folder export did not write or whose weights changed since, and
    refuses to run with HF_HUB_OFFLINE=1.
    """
    from ..io.hub import upload_checkpoint

    url = upload_checkpoint(folder, repo, revision=revision, private=private, message=message)
    console.print(f"pushed {folder} to {repo}: {url}", soft_wrap=True)
    console.print(f"use it as hf-hub:{repo} wherever a checkpoint folder is accepted", soft_wrap=True)


commands = (command, push_command)  # both are listed by COMMAND_MODULES (invkit.cli)
