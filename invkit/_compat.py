"""Old module paths (invkit 0.1.0 had every module directly in ``invkit/``), importable after the move to subpackages.

``import invkit.checkpoint`` or ``from invkit.train import TrainConfig`` still work: the old name is an alias of
the module or package that now provides every public name the old module had (the same object, not a copy), with
a ``DeprecationWarning`` naming the new path. Private names, and patching a function through an old name that now
stands for a package (``invkit.train``, ``invkit.checkpoint``), do not carry over: patch the module that defines
the function. Nothing is imported until an old name is asked for, so ``import invkit`` stays as light as before.
tests/test_layering.py checks every public name of every 0.1 module against tests/data/api-0.1.json;
docs/architecture.md says where each part lives now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old module -> the module (or package) that now provides all of its public names
MOVED: dict[str, str] = {
    "invkit.adversarial": "invkit.core.adversarial",
    "invkit.bench": "invkit.evaluation.bench",
    "invkit.checkpoint": "invkit.io",
    "invkit.classifier": "invkit.core.classifier",
    "invkit.config": "invkit.utils.config",
    "invkit.figures": "invkit.io.figures",
    "invkit.interrupt": "invkit.training.interrupt",
    "invkit.inverter": "invkit.core.inverter",
    "invkit.memory": "invkit.utils.memory",
    "invkit.metrics": "invkit.evaluation.metrics",
    "invkit.outputs": "invkit.io.outputs",
    "invkit.plugins": "invkit.core.plugins",
    "invkit.probe": "invkit.core.probe",
    "invkit.progress": "invkit.utils.progress",
    "invkit.registry": "invkit.core.registry",
    "invkit.report": "invkit.evaluation.report",
    "invkit.resolve": "invkit.core.resolve",
    "invkit.state_dict": "invkit.io.state_dict",
    "invkit.train": "invkit.training",
    "invkit.train_classifier": "invkit.training.classifier",
    "invkit.train_report": "invkit.training.report",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        warnings.warn(
            f"{old} moved to {self.target}; import it from there (the old path will be removed in a later release).",
            DeprecationWarning,
            stacklevel=3,
        )
        # The import system returns what sys.modules holds under the name after exec_module: the real module.
        sys.modules[old] = importlib.import_module(self.target)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        moved = MOVED.get(fullname)
        return importlib.machinery.ModuleSpec(fullname, _Alias(moved)) if moved else None


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once (called by ``invkit/__init__``)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
