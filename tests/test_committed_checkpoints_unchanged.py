"""Every committed checkpoint loads and gives the outputs it gave when it was committed (issue 22).

Issue 22 added paper variants (compare_gan's upsampling, CBN path, discriminator, initialisation) as options of the
inverters, with the ``.paper`` presets switched to them. The committed checkpoints (the MNIST demo in
``invkit/assets/demo`` and the Tiny ImageNet runs in ``benchmarks/checkpoints/tinyimagenet64``, trained with
``biggan_proj.paper`` and ``dosovitskiy_brox.paper`` before that change) store configs without the new fields; they
must still rebuild the networks they were trained as. ``tests/data/committed_checkpoint_outputs.json`` holds their
outputs on fixed seeded inputs, computed before the change (``python tests/test_committed_checkpoints_unchanged.py
--write`` rewrites it; only do that for a deliberate change of a committed checkpoint; ``--add`` adds a newly
committed one and keeps every recorded output).

Each output is compared twice: a SHA-256 of its float32 bytes (bit-identical; checked where torch's version and
the CPU's instruction set match the recorded ones, since float sums may round differently elsewhere), and 64 of its
values plus its sum and mean absolute value within 1e-5 (checked everywhere).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).parent / "data" / "committed_checkpoint_outputs.json"
INVERTERS = [
    "invkit/assets/demo/biggan_robust",
    "invkit/assets/demo/biggan_standard",
    "invkit/assets/demo/dbrox_robust",
    "invkit/assets/demo/dbrox_standard",
    "benchmarks/checkpoints/tinyimagenet64/biggan_robust",
    "benchmarks/checkpoints/tinyimagenet64/biggan_standard",
    "benchmarks/checkpoints/tinyimagenet64/dbrox_robust",
    "benchmarks/checkpoints/tinyimagenet64/dbrox_standard",
    "benchmarks/checkpoints/tinyimagenet64/resume/biggan_robust",
    "benchmarks/checkpoints/tinyimagenet64/resume/biggan_standard",
]
# issue 25: dosovitskiy_brox per observation channel and layer, biggan_proj per channel (make_tinyimagenet.sh leakage)
LEAKAGE = ROOT / "benchmarks/checkpoints/tinyimagenet64/leakage"
INVERTERS += sorted(str(p.parent.relative_to(ROOT)) for p in LEAKAGE.glob("*/config.json"))
CLASSIFIERS = [
    "invkit/assets/demo/classifier_robust",
    "invkit/assets/demo/classifier_standard",
    "invkit/assets/demo/evaluator",
    "benchmarks/checkpoints/tinyimagenet64/classifier_robust",
    "benchmarks/checkpoints/tinyimagenet64/classifier_standard",
    "benchmarks/checkpoints/tinyimagenet64/evaluator",
]
RESUMABLE = [  # run folders with a training state: their discriminator is checked too
    "benchmarks/checkpoints/tinyimagenet64/resume/biggan_robust",
    "benchmarks/checkpoints/tinyimagenet64/resume/biggan_standard",
]


def _cpu_flags() -> str:
    """The CPU's float-relevant instruction sets (torch's dispatch level), so digests compare like with like."""
    return str(torch.backends.cpu.get_cpu_capability())


def _summary(out: torch.Tensor) -> dict:
    flat = out.detach().float().contiguous().flatten()
    idx = torch.linspace(0, flat.numel() - 1, 64).long()
    return {
        "shape": list(out.shape),
        "sha256": hashlib.sha256(flat.numpy().tobytes()).hexdigest(),
        "sum": float(flat.double().sum()),
        "mean_abs": float(flat.double().abs().mean()),
        "values": [float(v) for v in flat[idx]],
    }


def _inverter_output(folder: str) -> torch.Tensor:
    import invkit

    inv = invkit.load_inverter(ROOT / folder)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, inv.num_classes, generator=g) * 3  # or a layer's pooled activations: same width
    noise = torch.randn(4, inv.noise_dim, generator=g) if inv.noise_dim else None
    return inv.invert(logits, noise=noise)


def _classifier_output(folder: str) -> torch.Tensor:
    import invkit

    clf = invkit.load_classifier(ROOT / folder)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, *clf.config.input_size, generator=g)
    with torch.no_grad():
        return clf.logits(images)


def _discriminator_output(folder: str) -> torch.Tensor:
    """The resumable run's D (from its train_state) on fixed images in [0, 1] and logits, as its trainer feeds D."""
    from invkit_plugins.biggan_proj.model import Discriminator

    import invkit
    from invkit.io.checkpoint import latest_checkpoint
    from invkit.io.train_state import load_train_state

    inv = invkit.load_inverter(ROOT / folder)
    state = load_train_state(latest_checkpoint(ROOT / folder) / "train_state.safetensors")
    disc = Discriminator(inv.config)
    disc.load_state_dict(state["trainer"]["D"])
    disc.eval()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, inv.config.channels, inv.config.resolution, inv.config.resolution, generator=g)
    logits = torch.randn(4, inv.num_classes, generator=g) * 3
    with torch.no_grad():
        return disc(images * 2 - 1, logits)  # the range these runs trained D in


def _compute() -> dict:
    outputs = {}
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order
    try:
        for folder in INVERTERS:
            outputs[f"inverter:{folder}"] = _summary(_inverter_output(folder))
        for folder in CLASSIFIERS:
            outputs[f"classifier:{folder}"] = _summary(_classifier_output(folder))
        for folder in RESUMABLE:
            outputs[f"discriminator:{folder}"] = _summary(_discriminator_output(folder))
    finally:
        torch.set_num_threads(n)
    return outputs


def _reference() -> dict:
    return json.loads(REFERENCE.read_text())


KEYS = (
    [f"inverter:{f}" for f in INVERTERS]
    + [f"classifier:{f}" for f in CLASSIFIERS]
    + [f"discriminator:{f}" for f in RESUMABLE]
)


@pytest.mark.parametrize("key", KEYS)
def test_committed_checkpoint_gives_its_recorded_outputs(key, one_thread):
    kind, folder = key.split(":", 1)
    ref = _reference()
    expected = ref["outputs"][key]
    fn = {"inverter": _inverter_output, "classifier": _classifier_output, "discriminator": _discriminator_output}
    got = _summary(fn[kind](folder))
    assert got["shape"] == expected["shape"]
    assert got["values"] == pytest.approx(expected["values"], abs=1e-5, rel=0)
    assert got["sum"] == pytest.approx(expected["sum"], abs=1e-3, rel=1e-6)
    assert got["mean_abs"] == pytest.approx(expected["mean_abs"], abs=1e-6, rel=1e-6)
    if ref["torch"] == torch.__version__ and ref["cpu_capability"] == _cpu_flags():
        assert got["sha256"] == expected["sha256"], f"{key}: outputs are not bit-identical to the recorded ones"


def test_reference_covers_every_committed_checkpoint_folder():
    """A checkpoint committed later gets a reference too (or this test names it)."""
    found = {
        str(p.parent.relative_to(ROOT))
        for base in ("invkit/assets/demo", "benchmarks/checkpoints/tinyimagenet64")
        for pattern in ("*/config.json", "leakage/*/config.json")
        for p in (ROOT / base).glob(pattern)
    }
    resume = ROOT / "benchmarks/checkpoints/tinyimagenet64/resume"  # run folders (bench-recon-cache/ holds no model)
    found |= {str(p.relative_to(ROOT)) for p in resume.iterdir() if (p / "train_config.json").is_file()}
    recorded = {key.split(":", 1)[1] for key in _reference()["outputs"]}
    assert found <= recorded, f"no recorded outputs for {sorted(found - recorded)}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--add"]:  # a newly committed checkpoint: its outputs added, every recorded one kept as it is
        doc = _reference()
        torch.set_num_threads(1)
        for key in KEYS:
            if key not in doc["outputs"]:
                kind, folder = key.split(":", 1)
                fn = {"inverter": _inverter_output, "classifier": _classifier_output}[kind]
                doc["outputs"][key] = _summary(fn(folder))
                print(f"added {key}")
        REFERENCE.write_text(json.dumps(doc, indent=1) + "\n")
        sys.exit(0)
    if sys.argv[1:] != ["--write"]:
        sys.exit(
            "usage: python tests/test_committed_checkpoints_unchanged.py --write  (rewrites the reference) | --add "
            "(adds the checkpoints it lacks)"
        )
    doc = {
        "made_by": "python tests/test_committed_checkpoints_unchanged.py --write",
        "torch": torch.__version__,
        "cpu_capability": _cpu_flags(),
        "machine": platform.machine(),
        "outputs": _compute(),
    }
    REFERENCE.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {REFERENCE} ({len(doc['outputs'])} outputs)")
