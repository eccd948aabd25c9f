"""Published ImageNet classifiers, registered through invkit's ``register_classifiers`` hook.

* ``resnet152``, ``inception_v3``, ``vit_b16``: torchvision and timm weights (``torchvision_timm``).
* ``robust_resnet50``: the adversarially trained ResNet-50s of Salman et al. 2020, MadryLab ``robustness``
  checkpoints (``robustness``).
* ``robust_resnet152``: the PGD-trained ResNet-152 of Xie et al. 2019, tensorpack ``R152.npz`` converted on
  load into torchvision's resnet152 (``tensorpack_r152``).

Registering is cheap: torchvision and timm are imported, and weights read, only when a factory is called.
See docs/classifiers.md for tags, sources, licences and where to put downloaded files.
"""

from __future__ import annotations

from typing import Any

from invkit import hookimpl

from . import robustness, tensorpack_r152, torchvision_timm


@hookimpl
def register_classifiers(register: Any) -> None:
    torchvision_timm.register(register)
    robustness.register(register)
    tensorpack_r152.register(register)
