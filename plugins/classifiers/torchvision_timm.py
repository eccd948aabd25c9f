"""ResNet-152, Inception-V3 and ViT-B/16 with torchvision's and timm's published ImageNet weights.

Tags follow timm's (``resnet152.a1h_in1k``); ``tv_in1k`` / ``tv2_in1k`` are torchvision's ``IMAGENET1K_V1`` /
``IMAGENET1K_V2`` weights, built with torchvision's own model. Everything a classifier needs to preprocess its
input (input size, mean/std, interpolation), its label names, source and licence is read from torchvision's
``Weights`` metadata or timm's ``pretrained_cfg``, never written out here. Networks are only built, and
torchvision/timm only imported, when a factory is called.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from invkit.core.classifier import INTERPOLATIONS, Classifier, ClassifierConfig
from invkit.errors import InputError, InvkitError

from .weights import WeightsSource, load_network, plain_state, resolve_weights

# registry name -> (torchvision builder, weights enum member) for torchvision's own weights
TORCHVISION_TAGS: dict[str, tuple[str, str]] = {
    "resnet152.tv_in1k": ("resnet152", "ResNet152_Weights.IMAGENET1K_V1"),
    "resnet152.tv2_in1k": ("resnet152", "ResNet152_Weights.IMAGENET1K_V2"),
    "inception_v3.tv_in1k": ("inception_v3", "Inception_V3_Weights.IMAGENET1K_V1"),
    "vit_b16.tv_in1k": ("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1"),
}
# the same weights in timm's table, which carries the licence torchvision's metadata lacks
TIMM_TWIN = {
    "resnet152.tv_in1k": "resnet152.tv_in1k",
    "resnet152.tv2_in1k": "resnet152.tv2_in1k",
    "inception_v3.tv_in1k": "inception_v3.tv_in1k",
}

# invkit family -> (timm architecture, timm pretrained tags with a 1000-class ImageNet head)
TIMM_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "resnet152": ("resnet152", ("a1h_in1k", "a1_in1k", "a2_in1k", "a3_in1k", "gluon_in1k")),
    "inception_v3": ("inception_v3", ("tf_in1k", "tf_adv_in1k", "gluon_in1k")),
    "vit_b16": (
        "vit_base_patch16_224",
        ("augreg2_in21k_ft_in1k", "augreg_in21k_ft_in1k", "augreg_in1k", "orig_in21k_ft_in1k", "sam_in1k"),
    ),
}
DEFAULT_TAGS = {"resnet152": "tv_in1k", "inception_v3": "tv_in1k", "vit_b16": "augreg2_in21k_ft_in1k"}
ADVERSARIAL = {"inception_v3.tf_adv_in1k"}  # weights trained on adversarial examples
MIN_SIZE = {"resnet152": 32, "inception_v3": 75}  # smallest input_size the network accepts; ViT is fixed

DESCRIPTIONS = {
    "resnet152.tv_in1k": "ResNet-152 (v1), torchvision IMAGENET1K_V1 weights (78.3% top-1)",
    "resnet152.tv2_in1k": "ResNet-152 (v1), torchvision IMAGENET1K_V2 weights (new training recipe, 82.3% top-1)",
    "inception_v3.tv_in1k": "Inception-V3 at 299 px, torchvision IMAGENET1K_V1 weights (ported from TensorFlow)",
    "inception_v3.tf_in1k": "Inception-V3 at 299 px, TensorFlow weights ported by timm",
    "inception_v3.tf_adv_in1k": "Inception-V3 at 299 px, TensorFlow's adversarially trained adv_inception_v3 (timm)",
    "inception_v3.gluon_in1k": "Inception-V3 at 299 px, GluonCV weights ported by timm",
    "vit_b16.tv_in1k": "ViT-B/16 at 224 px, torchvision IMAGENET1K_V1 weights",
}


def _description(name: str) -> str:
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    family, tag = name.split(".")
    arch = {"resnet152": "ResNet-152 (v1)", "vit_b16": "ViT-B/16 at 224 px", "inception_v3": "Inception-V3"}[family]
    return f"{arch}, timm weights {tag}"


@dataclass(frozen=True)
class ImageSizeOptions:
    """The option the published ImageNet classifiers take besides ``pretrained`` and ``weights`` (checked by invkit:
    ``invkit.check_options``; registered as their ``options``)."""

    input_size: int | None = None  # run the network at this square size in pixels (None: its published size)


def register(register: Any) -> None:
    """Register every torchvision and timm tag; the first one registered for a family is its default."""
    for family, default in DEFAULT_TAGS.items():
        names = [n for n in TORCHVISION_TAGS if n.startswith(family + ".")]
        names += [f"{family}.{tag}" for tag in TIMM_FAMILIES[family][1]]
        names.sort(key=lambda n: n != f"{family}.{default}")
        for name in names:
            register(name, functools.partial(create, name), description=_description(name), options=ImageSizeOptions)


# ----------------------------------------------------------------------------------------------- configs
def imagenet_label_names(num_classes: int, timm_cfg: Any = None) -> tuple[str, ...] | None:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(timm_cfg) if timm_cfg is not None else "imagenet-1k"
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return tuple(info.label_descriptions()) if info.num_classes() == num_classes else None


def imagenet_class_ids(num_classes: int, timm_cfg: Any = None) -> list[str] | None:
    """The WordNet ids (``n01440764`` ...) of the classes in logit order, or None when they are not ImageNet's.

    Stored as ``extra["class_ids"]`` so that data folders named by WordNet id (Tiny ImageNet, ImageNet's own
    folders, Downsampled ImageNet with ``map_clsloc.txt``) are matched to the logits by name
    (``invkit.data.for_classifier``).
    """
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(timm_cfg) if timm_cfg is not None else "imagenet-1k"
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return list(info.label_names()) if info.num_classes() == num_classes else None


def _torchvision_weights(name: str) -> Any:
    import torchvision.models as tvm

    enum_name, member = TORCHVISION_TAGS[name][1].split(".")
    return getattr(getattr(tvm, enum_name), member)


def pretrained_config(name: str, input_size: int | None = None) -> ClassifierConfig:
    """The preprocessing config of ``name``, derived from torchvision's or timm's metadata for its weights."""
    family = name.split(".")[0]
    if name in TORCHVISION_TAGS:
        w = _torchvision_weights(name)
        t = w.transforms()  # torchvision's ImageClassification preset: crop, resize, mean, std, interpolation
        size = int(t.crop_size[0])
        twin = _timm_cfg(TIMM_TWIN[name]) if name in TIMM_TWIN else None
        cfg = ClassifierConfig(
            name=name,
            num_classes=len(w.meta["categories"]),
            input_size=(3, size, size),
            mean=tuple(float(m) for m in t.mean),
            std=tuple(float(s) for s in t.std),
            interpolation=_interpolation(t.interpolation.value),
            label_names=tuple(w.meta["categories"]),
            source=w.url,
            license=(twin.license if twin is not None and twin.license else "bsd-3-clause (torchvision)"),
            robust=False,
            extra={
                "weights": TORCHVISION_TAGS[name][1],
                "resize_size": int(t.resize_size[0]),
                "recipe": w.meta.get("recipe", ""),
                "class_ids": imagenet_class_ids(len(w.meta["categories"])),
            },
        )
    else:
        pc = _timm_cfg(f"{TIMM_FAMILIES[family][0]}.{name.split('.')[1]}")
        cfg = ClassifierConfig(
            name=name,
            num_classes=pc.num_classes,
            input_size=tuple(pc.input_size),
            mean=tuple(float(m) for m in pc.mean),
            std=tuple(float(s) for s in pc.std),
            interpolation=_interpolation(pc.interpolation),
            label_names=imagenet_label_names(pc.num_classes, pc),
            source=f"https://huggingface.co/{pc.hf_hub_id}",
            license=pc.license or "",
            robust=name in ADVERSARIAL,
            extra={
                "timm_model": f"{pc.architecture}.{pc.tag}",
                "class_ids": imagenet_class_ids(pc.num_classes, pc),
                "crop_pct": pc.crop_pct,
                "origin_url": pc.origin_url or pc.url or "",
                "paper_ids": pc.paper_ids or "",
            },
        )
    if input_size is not None:
        cfg = cfg.with_(input_size=(3, input_size, input_size))
    return cfg


def _interpolation(mode: str) -> str:
    """A resize mode ``Classifier.preprocess`` has: timm's others (``random``, ``""``) become bicubic."""
    return mode if mode in INTERPOLATIONS else "bicubic"


def _timm_cfg(timm_name: str) -> Any:
    from timm.models import get_pretrained_cfg

    pc = get_pretrained_cfg(timm_name)
    if pc is None:
        raise InvkitError(f"timm has no pretrained config '{timm_name}'; the installed timm is too old or too new.")
    return pc


def weights_source(name: str) -> WeightsSource:
    if name in TORCHVISION_TAGS:
        return WeightsSource(url=_torchvision_weights(name).url)
    family, tag = name.split(".")
    pc = _timm_cfg(f"{TIMM_FAMILIES[family][0]}.{tag}")
    url = pc.url if pc.url and pc.url.endswith((".pth", ".safetensors", ".bin")) else None
    # timm keeps hub weights in the Hugging Face cache; older timm versions cached the .pth URL in torch hub
    return WeightsSource(url=url, hf_hub_id=pc.hf_hub_id)


# --------------------------------------------------------------------------------------------- networks
def build_network(name: str, num_classes: int) -> Any:
    """The bare network for ``name`` (random weights), as torchvision or timm builds it for those weights."""
    family = name.split(".")[0]
    if name in TORCHVISION_TAGS:
        import torchvision.models as tvm

        builder = getattr(tvm, TORCHVISION_TAGS[name][0])
        if family == "inception_v3":
            # torchvision turns transform_input on for these weights: ImageNet-normalised input is mapped to
            # the [-1, 1] range the ported TensorFlow weights expect. The auxiliary head is dropped.
            return builder(
                weights=None, num_classes=num_classes, aux_logits=False, transform_input=True, init_weights=False
            )
        return builder(weights=None, num_classes=num_classes)
    import timm

    return timm.create_model(TIMM_FAMILIES[family][0], pretrained=False, num_classes=num_classes)


def network_state(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A published state dict for torchvision/timm, minus the Inception auxiliary head invkit does not use."""
    state = plain_state(raw, source)  # unwrapped; a shared prefix such as 'module.' is stripped at load
    return {k: v for k, v in state.items() if ".AuxLogits." not in f".{k}"}


def create(name: str, pretrained: bool = True, weights: str | None = None, input_size: int | None = None) -> Classifier:
    """Build ``name`` with its published weights (``weights=PATH`` first, then the caches, then a download).

    Args:
        name: the registry name, ``family.tag``.
        pretrained: False builds random weights (tests, ``invkit.load_classifier``).
        weights: a local weights file (``--weights PATH``).
        input_size: run the convolutional networks at this square size in pixels instead of the published one.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size.

    Raises:
        InvkitError: the installed timm has no pretrained config for a timm tag. (Another keyword argument, or an
            ``input_size`` that is not a whole number, is refused by ``invkit.create_classifier`` before this runs.)
        InputError: ``input_size`` for ViT-B/16 (fixed size), or below the smallest the network accepts (32 px for
            ResNet-152, 75 px for Inception-V3).
        WeightsNotFoundError: ``weights`` is missing or a folder; the weights are in no local cache and the
            network is off, or the download failed.
        UnsafeCheckpointError: the weights file is a pickle that holds code or Python objects (a
            ``CheckpointError``).
        CheckpointError: the weights file is unreadable, holds no state dict of tensors, or its keys or shapes do
            not fit the network.
    """
    family = name.split(".")[0]
    if input_size is not None:
        if family not in MIN_SIZE:
            raise InputError(
                f"{name} runs at its fixed input size only (its position embedding is 14x14 "
                f"patches); drop input_size={input_size}."
            )
        if int(input_size) < MIN_SIZE[family]:
            raise InputError(
                f"{name}: input_size={input_size} is below the smallest size the network accepts ({MIN_SIZE[family]})."
            )
        input_size = int(input_size)
    cfg = pretrained_config(name, input_size)
    if pretrained or weights is not None:
        raw, path = resolve_weights(name, weights_source(name), weights)
        cfg = cfg.with_(extra={**cfg.extra, "weights_file": str(path)})
        network = load_network(lambda: build_network(name, cfg.num_classes), network_state(raw, path), path, name)
    else:
        network = build_network(name, cfg.num_classes).eval()
    init_kwargs = {"input_size": input_size} if input_size is not None else {}
    clf = Classifier(network, cfg, init_kwargs=init_kwargs)
    clf.random_weights = not (pretrained or weights is not None)
    return clf
