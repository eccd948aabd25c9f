"""Published ImageNet classifiers, registered through invkit's ``register_classifiers`` hook.

* ``resnet152``, ``inception_v3``, ``vit_b16``: torchvision and timm weights (``torchvision_timm``).
* ``robust_resnet50``: the adversarially trained ResNet-50s of Salman et al. 2020, MadryLab ``robustness``
  checkpoints (``robustness``).
* ``resnet152v2``: ResNet-152-V2 (pre-activation, He et al. 2016) with TF-slim's ``resnet_v2_152`` weights
  exported to ``.npz``/``.safetensors``: the standard ResNet the paper inverts (``tfslim_resnet_v2``).
* ``robust_resnet152``: the PGD-trained ResNet-152 of Xie et al. 2019, tensorpack ``R152.npz`` converted on
  load into torchvision's resnet152 (``tensorpack_r152``). A substitute for the paper's robust model (Qin et
  al. 2019's robust ResNet-152-V2, whose weights are not public): another architecture and training method.

Registering is cheap: torchvision and timm are imported, and weights read, only when a factory is called.
See docs/classifiers.md for tags, sources, licences and where to put downloaded files.
"""

from __future__ import annotations

from typing import Any

from invkit import hookimpl

from . import robustness, tensorpack_r152, tfslim_resnet_v2, torchvision_timm


@hookimpl
def register_classifiers(register: Any) -> None:
    torchvision_timm.register(register)
    robustness.register(register)
    tensorpack_r152.register(register)
    tfslim_resnet_v2.register(register)
