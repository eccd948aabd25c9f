"""Store a checkpoint folder's weights in half precision (float16), for the size budget of issue 10.

Usage:

    python benchmarks/checkpoints/tinyimagenet64/to_half.py SRC_CHECKPOINT DST_FOLDER

Copies ``config.json`` and writes ``model.safetensors`` with every float32 tensor stored as float16 (integer
buffers such as BN counters are kept). invkit's loaders copy the stored values into the float32 model
(``load_state_dict`` casts), so the model computes in float32 from weights rounded to float16: about 3 significant
digits per weight. Whether that changes the numbers is checked by benching the float32 run folder and the
float16 copy on the same images (make_tinyimagenet.sh ``copy``); a value outside the float16 range is refused.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from invkit.io import atomic_save_safetensors

F16_MAX = torch.finfo(torch.float16).max


def to_half(src: Path, dst: Path) -> tuple[int, int]:
    """Write ``dst/model.safetensors`` (float16) and ``dst/config.json`` from checkpoint folder ``src``.

    Returns:
        Bytes of the float32 and of the float16 weights file.

    Raises:
        ValueError: a weight whose magnitude float16 cannot hold (it would become inf).
    """
    state = load_file(str(src / "model.safetensors"))
    half = {}
    for key, value in state.items():
        if value.dtype == torch.float32:
            if bool((value.abs() > F16_MAX).any()):
                raise ValueError(f"{src}: '{key}' holds values beyond float16's range; keep this one in float32.")
            value = value.half()
        half[key] = value.contiguous()
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "config.json", dst / "config.json")
    atomic_save_safetensors(dst / "model.safetensors", half)
    return (src / "model.safetensors").stat().st_size, (dst / "model.safetensors").stat().st_size


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage:")[1].split("Copies")[0].strip())
    before, after = to_half(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {before / 1e6:.2f} MB float32 -> {after / 1e6:.2f} MB float16")
