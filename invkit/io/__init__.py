"""Input and output: atomic file writes, checkpoint folders, safe weight loading, output folders and figures.

Modules, lowest first (each imports only those above it):

* ``owned`` — what invkit may delete and overwrite: its temporary names (``remove_stale_temps`` deletes only
  those of writers that are gone), the list of the files each command wrote into its output folder and the run's
  inputs (``check_write``).
* ``files`` — atomic writes (``atomic_write_bytes`` / ``_text`` / ``_json``, ``atomic_save_safetensors``),
  ``make_dirs`` and one-line ``OutputError`` messages for outputs that cannot be written.
* ``read`` — reading back the files invkit wrote, checked as they are read: a regular file (``check_file``; never a
  FIFO or device), UTF-8 JSON not nested too deep, of the expected shape (``read_json``, ``parse_json``,
  ``check_shape``).
* ``weights`` — loading weight files safely (``load_safetensors``, ``load_weights_file``; no pickled code, only
  dtypes invkit computes with: ``check_tensor_dtypes``).
* ``train_state`` — the training state of a checkpoint, for ``--resume`` (``save_train_state``,
  ``load_train_state``).
* ``staged`` — a checkpoint folder written as one unit, complete or absent after a kill (``write_staged``,
  ``complete_staged``).
* ``checkpoint`` — checkpoint folders (``save_checkpoint``, ``read_checkpoint_config``, ``check_weights``,
  ``build_from_config``) and the digests that identify weights (``weights_digest``, ``spec_identity``).
* ``state_dict`` — state dicts as training scripts save them: wrappers, prefixes, strict loading.
* ``outputs`` — output folders (``claim_output``), resumes (``check_resume``), what a run records about its data
  and machine.
* ``figures`` — image grids, curves and self-contained HTML pages.
* ``hub`` — checkpoints on the Hugging Face Hub through huggingface_hub: ``hub_checkpoint`` (an ``hf-hub:`` spec
  to its folder in huggingface_hub's cache, offline with ``HF_HUB_OFFLINE=1``), the model card
  (``write_model_card``, ``read_model_card``), ``check_export_folder`` and ``upload_checkpoint`` (``invkit push``).
* ``download`` — the opt-in download of the published weights the metrics use (LPIPS backbones, FID's
  Inception-V3) into the torch hub cache, SHA-256 checked (``KNOWN_FILES``, ``weights_status``, ``fetch``,
  ``ensure_weights``); only with ``invkit download``, ``--download`` or ``INVKIT_DOWNLOAD=1``.
* ``locate`` — ``local_checkpoint``: ``demo:NAME`` and ``hf-hub:OWNER/NAME[@REVISION]`` to the folder they name,
  the one place every command and resolve function turns them into folders.

Every public name of invkit 0.1's ``invkit.checkpoint`` is re-exported here (``invkit.checkpoint`` is now an alias
of this package), with the names of ``state_dict``, ``outputs`` and ``figures`` that code outside ``invkit.io`` uses.
Code inside invkit imports from the module that defines the name.
"""

from __future__ import annotations

from .checkpoint import (
    CONFIG_NAME,
    build_from_config,
    check_weights,
    load_checkpoint_weights,
    read_checkpoint_config,
    save_checkpoint,
    spec_identity,
    weights_digest,
)
from .figures import html_table, img_tag, save_curves, save_grid, save_panels, save_rows, to_pil_grid, write_html_page
from .files import (
    TEMP_SUFFIX,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    json_safe,
    make_dirs,
    output_error,
    remove_stale_temps,
)
from .hub import check_export_folder, hub_checkpoint, read_model_card, upload_checkpoint, write_model_card
from .locate import local_checkpoint
from .outputs import check_resume, claim_output, dataset_fingerprint, input_paths, machine_info
from .owned import check_write, may_write
from .read import ANY, Required, check_file, check_shape, parse_json, read_json, try_read_json
from .staged import complete_staged, write_staged
from .state_dict import WRAPPER_KEYS, load_strict, shared_prefix, strip_prefix, unwrap
from .train_state import TRAIN_STATE_NAME, load_train_state, save_train_state
from .weights import WEIGHTS_NAME, check_tensor_dtypes, load_safetensors, load_weights_file

__all__ = [
    # files
    "TEMP_SUFFIX",
    "atomic_save_safetensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "json_safe",
    "make_dirs",
    "output_error",
    "remove_stale_temps",
    # read
    "ANY",
    "Required",
    "check_file",
    "check_shape",
    "parse_json",
    "read_json",
    "try_read_json",
    # weights
    "WEIGHTS_NAME",
    "check_tensor_dtypes",
    "load_safetensors",
    "load_weights_file",
    # train_state
    "TRAIN_STATE_NAME",
    "load_train_state",
    "save_train_state",
    # checkpoint
    "CONFIG_NAME",
    "build_from_config",
    "check_weights",
    "load_checkpoint_weights",
    "read_checkpoint_config",
    "save_checkpoint",
    "spec_identity",
    "weights_digest",
    # state_dict
    "WRAPPER_KEYS",
    "load_strict",
    "shared_prefix",
    "strip_prefix",
    "unwrap",
    # outputs
    "check_resume",
    "claim_output",
    "dataset_fingerprint",
    "input_paths",
    "machine_info",
    # owned
    "check_write",
    "may_write",
    # staged
    "complete_staged",
    "write_staged",
    # hub, locate
    "check_export_folder",
    "hub_checkpoint",
    "local_checkpoint",
    "read_model_card",
    "upload_checkpoint",
    "write_model_card",
    # figures
    "html_table",
    "img_tag",
    "save_curves",
    "save_grid",
    "save_panels",
    "save_rows",
    "to_pil_grid",
    "write_html_page",
]
