"""Adversarially trained ResNet-50s in the MadryLab ``robustness`` checkpoint layout.

Salman, Ilyas, Engstrom, Kapoor, Madry, "Do Adversarially Robust ImageNet Models Transfer Better?" (NeurIPS
2020) released ImageNet ResNet-50s trained with PGD at L2 eps in {0, 0.01, ..., 3, 5} and Linf eps in
{0.5, 1, 2, 4, 8}/255 (github.com/microsoft/robust-models-transfer, MIT licence), trained and saved with the
``robustness`` library (github.com/MadryLab/robustness, MIT licence).

The ``.ckpt`` file is ``torch.save`` of a dict (``robustness/train.py``)::

    {"model": AttackerModel wrapped in DataParallel, state dict, "optimizer": ..., "schedule": ...,
     "epoch": int, "amp": None}

whose ``model`` keys are ``module.normalizer.new_mean`` / ``new_std`` (shape (3, 1, 1), the ImageNet mean/std
the model normalises with), ``module.model.<torchvision resnet50 key>``, and copies of both under
``module.attacker.normalize.`` and ``module.attacker.model.``. Old checkpoints call ``model`` ``state_dict``.
The network is torchvision's resnet50 (``robustness/imagenet_models/resnet.py`` has the same module names);
the normaliser buffers become the classifier's mean/std. The files hold only tensors, numbers and None, so
``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from invkit.core.classifier import Classifier, ClassifierConfig
from invkit.errors import CheckpointError, InputError
from invkit.io import strip_prefix

from .torchvision_timm import ImageSizeOptions
from .weights import WeightsSource, load_network, resolve_weights, tensors_only

BASE_URL = "https://robustnessws4285631339.blob.core.windows.net/public-models/robust_imagenet/"
PAGE = "https://github.com/microsoft/robust-models-transfer#download-our-robust-imagenet-models"
LICENSE = "MIT (microsoft/robust-models-transfer; training code MadryLab/robustness, MIT)"
PAPER = "Salman et al. 2020, Do Adversarially Robust ImageNet Models Transfer Better? (arXiv:2007.08489)"

# tag -> (file name in the release, threat model, eps as the paper states it); l2_eps3 first: the default
TAGS: dict[str, tuple[str, str, str]] = {
    "l2_eps3": ("resnet50_l2_eps3.ckpt", "L2", "3"),
    "linf_eps4": ("resnet50_linf_eps4.0.ckpt", "Linf", "4/255"),
    "l2_eps0": ("resnet50_l2_eps0.ckpt", "L2", "0"),
    "l2_eps0_01": ("resnet50_l2_eps0.01.ckpt", "L2", "0.01"),
    "l2_eps0_03": ("resnet50_l2_eps0.03.ckpt", "L2", "0.03"),
    "l2_eps0_05": ("resnet50_l2_eps0.05.ckpt", "L2", "0.05"),
    "l2_eps0_1": ("resnet50_l2_eps0.1.ckpt", "L2", "0.1"),
    "l2_eps0_25": ("resnet50_l2_eps0.25.ckpt", "L2", "0.25"),
    "l2_eps0_5": ("resnet50_l2_eps0.5.ckpt", "L2", "0.5"),
    "l2_eps1": ("resnet50_l2_eps1.ckpt", "L2", "1"),
    "l2_eps5": ("resnet50_l2_eps5.ckpt", "L2", "5"),
    "linf_eps0_5": ("resnet50_linf_eps0.5.ckpt", "Linf", "0.5/255"),
    "linf_eps1": ("resnet50_linf_eps1.0.ckpt", "Linf", "1/255"),
    "linf_eps2": ("resnet50_linf_eps2.0.ckpt", "Linf", "2/255"),
    "linf_eps8": ("resnet50_linf_eps8.0.ckpt", "Linf", "8/255"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # robustness/datasets.py ImageNet: the normaliser's defaults
IMAGENET_STD = (0.229, 0.224, 0.225)


def register(register: Any) -> None:
    for tag, (_, norm, eps) in TAGS.items():
        kind = "standard training, eps 0" if eps == "0" else f"PGD-trained, {norm} eps {eps}"
        register(
            f"robust_resnet50.{tag}",
            functools.partial(create, tag),
            description=f"ResNet-50, {kind} (Salman et al. 2020, robustness .ckpt)",
            options=ImageSizeOptions,  # input_size; invkit checks names and types
        )


def config(tag: str, input_size: int | None = None) -> ClassifierConfig:
    from .torchvision_timm import imagenet_class_ids, imagenet_label_names

    filename, norm, eps = TAGS[tag]
    size = input_size or 224
    return ClassifierConfig(
        name=f"robust_resnet50.{tag}",
        num_classes=1000,
        input_size=(3, size, size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        label_names=imagenet_label_names(1000),
        source=BASE_URL + filename,
        license=LICENSE,
        robust=eps != "0",
        extra={
            "class_ids": imagenet_class_ids(1000),
            "threat_model": norm,
            "eps": eps,
            "paper": PAPER,
            "download_page": PAGE,
            "eval_transform": "Resize(256) + CenterCrop(224)",
        },
    )


def unwrap(raw: dict[str, Any], source: str) -> tuple[dict[str, torch.Tensor], tuple | None, tuple | None]:
    """A torchvision resnet50 state dict and the normaliser's mean/std from a robustness checkpoint.

    Also accepts the ``model`` dict on its own (for example after ``invkit convert-weights``) and a plain
    torchvision state dict.
    """
    sd = raw
    for key in ("model", "state_dict"):
        if isinstance(raw.get(key), dict):
            sd = raw[key]
            break
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    mean = std = None
    for prefix in ("module.normalizer.", "normalizer."):
        if prefix + "new_mean" in sd and prefix + "new_std" in sd:
            mean = tuple(float(x) for x in sd[prefix + "new_mean"].flatten())
            std = tuple(float(x) for x in sd[prefix + "new_std"].flatten())
    for prefix in ("module.model.", "model."):
        if any(k.startswith(prefix) for k in sd):
            # module.attacker.model.* is the same network again (the attacker shares it); it is not needed
            return tensors_only({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}, source), mean, std
    sd = strip_prefix(sd)[0]  # a plain torchvision state dict, perhaps saved from nn.DataParallel
    if "fc.weight" in sd and "conv1.weight" in sd:
        return tensors_only(sd, source), mean, std
    sample = ", ".join(list(sd)[:3]) or "no tensors"
    raise CheckpointError(f"{source} is not a robustness checkpoint (no 'module.model.' keys; found {sample}).")


def create(tag: str, pretrained: bool = True, weights: str | None = None, input_size: int | None = None) -> Classifier:
    """``robust_resnet50.<tag>``: torchvision resnet50 with the weights of a robustness checkpoint.

    Args:
        tag: which release (``l2_eps3``, ``linf_eps4``, ...).
        pretrained: False builds random weights.
        weights: a local ``.ckpt`` (``--weights PATH``), or its ``model`` dict as safetensors.
        input_size: run at this square size in pixels (32 or more) instead of 224.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size.

    Raises:
        InputError: ``input_size`` below 32. (Another keyword argument, or an ``input_size`` that is not a whole
            number, is refused by ``invkit.create_classifier`` before this runs.)
        WeightsNotFoundError: ``weights`` is missing or a folder; the weights are in no local cache and the
            network is off, or the download failed.
        UnsafeCheckpointError: the weights file is a pickle that holds code or Python objects (a
            ``CheckpointError``).
        CheckpointError: the weights file is unreadable, is not a robustness checkpoint (nor a torchvision resnet50
            state dict), has a normaliser without 3 channels, or its keys or shapes do not fit resnet50.
    """
    import torchvision

    if input_size is not None and int(input_size) < 32:
        raise InputError(f"robust_resnet50.{tag}: input_size={input_size} is below 32.")
    input_size = int(input_size) if input_size is not None else None
    cfg = config(tag, input_size)
    if pretrained or weights is not None:
        filename = TAGS[tag][0]
        source = WeightsSource(url=BASE_URL + filename, filename=filename, page=PAGE)
        raw, path = resolve_weights(cfg.name, source, weights)
        state, mean, std = unwrap(raw, path)
        if mean is not None and std is not None:
            if len(mean) != 3 or len(std) != 3:
                raise CheckpointError(f"{path}: the normaliser has {len(mean)} channels, not 3.")
            cfg = cfg.with_(mean=mean, std=std)
        cfg = cfg.with_(extra={**cfg.extra, "weights_file": str(path)})
        network = load_network(torchvision.models.resnet50, state, path, cfg.name)
    else:
        network = torchvision.models.resnet50().eval()
    clf = Classifier(network, cfg, init_kwargs={"input_size": input_size} if input_size else {})
    clf.random_weights = not (pretrained or weights is not None)
    return clf
