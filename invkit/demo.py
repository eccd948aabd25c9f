"""The demo checkpoints shipped inside invkit, and the bench that ``invkit bench`` runs with no arguments.

``invkit/assets/demo/`` holds six small checkpoint folders trained on MNIST by invkit's own commands
(``benchmarks/demo/make_demo.sh`` regenerates them): a standard and a PGD-robust ``smallcnn`` classifier,
and a ``biggan_proj`` and a ``dosovitskiy_brox`` inverter trained for each. ``optim`` needs no checkpoint.
The default bench runs both classifiers x (biggan_proj, dosovitskiy_brox, optim) on the embedded MNIST test
digits, offline, within three minutes on a 2-core CPU.

Each folder has a name that works wherever a checkpoint folder is accepted, from any working folder and after a
``pip install`` (``invkit.io.locate``): ``demo:classifier_standard``, ``demo:classifier_robust``,
``demo:biggan_standard``, ``demo:biggan_robust``, ``demo:dbrox_standard``, ``demo:dbrox_robust`` (``spec(name)``
builds one, ``names()`` lists them)::

    invkit invert --classifier demo:classifier_robust --checkpoint demo:biggan_robust IMAGES --out inv
    clf = invkit.load_classifier("demo:classifier_robust")
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError
from .io.locate import DEMO_DIR, DEMO_PREFIX  # noqa: F401 - DEMO_DIR: invkit/assets/demo; $INVKIT_DEMO_DIR replaces it

CLASSIFIERS = {"standard": "classifier_standard", "robust": "classifier_robust"}  # label -> folder
INVERTER_CHECKPOINTS = {  # inverter -> {classifier label -> folder}
    "biggan_proj": {"standard": "biggan_standard", "robust": "biggan_robust"},
    "dosovitskiy_brox": {"standard": "dbrox_standard", "robust": "dbrox_robust"},
}
INVERTERS = ("biggan_proj", "dosovitskiy_brox", "optim")  # in table order
# The independent evaluator of the demo bench (issue 21): a vgg11s MNIST classifier (99.25% clean top-1 on the MNIST
# test split), another architecture than the two smallcnn classifiers under study
# (benchmarks/demo/train_demo_classifiers.sh evaluator). Shipped like the other demo folders.
EVALUATOR = "evaluator"

# The default bench: small enough for <= 3 minutes on a 2-core CPU (optim dominates; see docs/bench.md).
N_IMAGES = 100  # held-out test digits, 10 per class
ID_K = 10  # instance identification among 10 digits of the same class
OPTIM_OPTIONS: dict[str, object] = {"steps": 200}  # optim's iterations per batch for the default bench


def demo_dir() -> Path:
    """Where the demo checkpoints are: ``$INVKIT_DEMO_DIR`` if set, else ``invkit/assets/demo``."""
    env = os.environ.get("INVKIT_DEMO_DIR")
    return Path(env).expanduser() if env else DEMO_DIR


def folder(name: str) -> Path:
    """The folder of the demo checkpoint ``name`` (``classifier_robust``, ...)."""
    return demo_dir() / name


def spec(name: str) -> str:
    """The spec of the demo checkpoint ``name`` that works anywhere: ``demo:NAME`` (``spec("biggan_robust")``)."""
    return f"{DEMO_PREFIX}{name}"


def names() -> list[str]:
    """The demo checkpoint folders, classifiers first: ``classifier_standard``, ``classifier_robust``,
    ``evaluator``, ``biggan_standard``, ..., ``dbrox_robust``."""
    return all_folders()


def all_folders() -> list[str]:
    return [*CLASSIFIERS.values(), EVALUATOR] + [f for m in INVERTER_CHECKPOINTS.values() for f in m.values()]


def missing() -> list[str]:
    """Demo folders that are absent or incomplete (no config.json or model.safetensors)."""
    return [
        f
        for f in all_folders()
        if not ((folder(f) / "config.json").is_file() and (folder(f) / "model.safetensors").is_file())
    ]


def require() -> None:
    """Raise a one-line ``CheckpointError`` naming the missing demo checkpoints and how to make them."""
    gone = missing()
    if gone:
        raise CheckpointError(
            f"the demo checkpoints {', '.join(gone)} are missing from {demo_dir()}; reinstall invkit, or regenerate "
            "them with `bash benchmarks/demo/make_demo.sh` from a source checkout."
        )


def default_settings(**overrides: object):
    """``BenchSettings`` of the no-argument ``invkit bench``: both demo classifiers x all three inverters, scored
    by the demo evaluator (``demo:evaluator``; an ``evaluators`` override replaces it)."""
    from .evaluation.settings import BenchSettings

    require()
    classifiers = [str(folder(f)) for f in CLASSIFIERS.values()]
    labels = {str(folder(f)): label for label, f in CLASSIFIERS.items()}
    cmap = {
        f"{folder(CLASSIFIERS[label])}|{inv}": str(folder(f))
        for inv, per in INVERTER_CHECKPOINTS.items()
        for label, f in per.items()
    }
    settings = BenchSettings(
        classifiers=classifiers,
        inverters=list(INVERTERS),
        data="default",
        n=N_IMAGES,
        id_k=ID_K,
        inverter_options={"optim": dict(OPTIM_OPTIONS)},
        classifier_labels=labels,
        checkpoint_map=cmap,
        checkpoints=list(cmap.values()),
        evaluators=[str(folder(EVALUATOR))],
    )
    for k, v in overrides.items():
        setattr(settings, k, v)
    return settings
