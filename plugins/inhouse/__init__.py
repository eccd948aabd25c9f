"""In-house trainable classifiers for small images: ``smallcnn.base`` (28-32 px), ``resnet18s.base`` (32-64 px) and
``vgg11s.base`` (28-64 px, used for independent evaluators).

They start from random weights (``base`` = the architecture, no published weights); train them with
``invkit train-classifier`` and load the result with ``invkit.load_classifier(folder)``. ``weights=PATH``
loads a state dict (safetensors, or a torch file read with ``weights_only=True``) into the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

import invkit
from invkit.core.classifier import Classifier, ClassifierConfig
from invkit.errors import InvkitError, WeightsNotFoundError
from invkit.io import load_weights_file

from .models import VGG11S, ResNet18S, SmallCNN

SOURCE = "trained with invkit train-classifier"


@dataclass(frozen=True)
class SmallNetOptions:
    """The options of ``smallcnn.base``, ``resnet18s.base`` and ``vgg11s.base`` besides ``pretrained`` and
    ``weights``, registered as their ``options``: invkit checks names and types (``invkit.check_options``) before the
    factory runs. The defaults are smallcnn's (resnet18s and vgg11s: 3 channels, 32 px, width 64)."""

    channels: int = 1  # input channels, 1 (grey) or 3 (RGB)
    num_classes: int = 10  # number of logits
    input_size: int = 28  # side of the square input in pixels, 8 or more
    width: int = 16  # channels of the first convolution
    mean: tuple[float, ...] | None = None  # per-channel mean (default 0.5 each)
    std: tuple[float, ...] | None = None  # per-channel standard deviation, above 0 (default 0.5 each)
    label_names: tuple[str, ...] | None = None  # readable class names, one per logit
    robust: bool = False  # whether the network is (to be) adversarially trained
    extra: dict[str, Any] | None = None  # more metadata for ClassifierConfig.extra


def _build(
    name: str,
    network_cls: Callable[..., nn.Module],
    *,
    pretrained: bool,
    weights: str | None,
    channels: int,
    num_classes: int,
    input_size: int,
    width: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    label_names: Sequence[str] | None,
    robust: bool,
    extra: dict[str, Any] | None,
) -> Classifier:
    # names, types and signs were checked by invkit against SmallNetOptions (invkit.create_classifier)
    if channels not in (1, 3):
        raise InvkitError(f"{name}: channels must be 1 or 3, got {channels}.")
    if input_size < 8:
        raise InvkitError(f"{name}: input_size {input_size} is too small; use 8 px or more.")
    init_kwargs = {"channels": channels, "num_classes": num_classes, "input_size": input_size, "width": width}
    network = network_cls(**init_kwargs)
    config = ClassifierConfig(
        name=name,
        num_classes=num_classes,
        input_size=(channels, input_size, input_size),
        mean=tuple(mean) if mean is not None else (0.5,) * channels,
        std=tuple(std) if std is not None else (0.5,) * channels,
        interpolation="bilinear",
        label_names=tuple(label_names) if label_names is not None else None,
        source=SOURCE,
        license="same as the training data",
        robust=robust,
        extra=dict(extra or {}),
    )
    clf = Classifier(network, config, init_kwargs=init_kwargs)
    clf.random_weights = True  # until weights are loaded: an in-house net has no published ones
    if weights is not None:
        if Path(weights).expanduser().is_dir():
            raise InvkitError(
                f"'{weights}' is a checkpoint folder; load it with invkit.load_classifier(folder) or "
                "pass the folder as the classifier instead of --weights."
            )
        clf.load_network_state(load_weights_file(weights), f"weights file '{weights}'")
    return clf


def smallcnn(
    pretrained: bool = True,
    weights: str | None = None,
    *,
    channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    width: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label_names: Sequence[str] | None = None,
    robust: bool = False,
    extra: dict[str, Any] | None = None,
) -> Classifier:
    """A small CNN for 28-32 px images (random weights unless ``weights`` is given; ``pretrained`` is unused:
    there are no published weights for an in-house net).

    Args:
        pretrained: unused.
        weights: a state-dict file (safetensors, or a torch file read with ``weights_only=True``) to load.
        channels: input channels, 1 (grey) or 3 (RGB).
        num_classes: number of logits.
        input_size: side of the square input in pixels, 8 or more; images of other sizes are resized to it.
        width: channels of the first convolution.
        mean: per-channel mean subtracted from the [0, 1] image, one per channel (default 0.5 each).
        std: per-channel standard deviation the image is divided by after the mean, one per channel, above 0
            (default 0.5 each: [0, 1] maps to [-1, 1]).
        label_names: readable class names, one per logit.
        robust: whether the network is (to be) adversarially trained; recorded in the config.
        extra: more metadata for ``ClassifierConfig.extra``.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size.

    Raises:
        InvkitError: ``channels`` is not 1 or 3; ``input_size`` is below 8; ``weights`` is a checkpoint folder.
            (An option that is not a ``SmallNetOptions`` field, or a count that is not a whole number above 0, is
            refused by ``invkit.create_classifier`` before this runs.)
        InputError: ``mean`` or ``std`` is not one finite number per channel, a ``std`` is not above 0, or
            ``label_names`` does not have one name per logit (``ClassifierConfig``).
        WeightsNotFoundError: the ``weights`` file does not exist.
        CheckpointError: the ``weights`` file is unreadable, holds no state dict, or its keys or shapes do not fit
            the network; ``UnsafeCheckpointError`` (a subclass) for a pickle that holds code or Python objects.
    """
    return _build(
        "smallcnn.base",
        SmallCNN,
        pretrained=pretrained,
        weights=weights,
        channels=channels,
        num_classes=num_classes,
        input_size=input_size,
        width=width,
        mean=mean,
        std=std,
        label_names=label_names,
        robust=robust,
        extra=extra,
    )


def resnet18s(
    pretrained: bool = True,
    weights: str | None = None,
    *,
    channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    width: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label_names: Sequence[str] | None = None,
    robust: bool = False,
    extra: dict[str, Any] | None = None,
) -> Classifier:
    """A ResNet-18 for 32-64 px images (3x3 stem, no max-pool; random weights unless ``weights`` is given).

    ResNet-18 of K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    with the small-image stem used for CIFAR (``models.ResNet18S``).

    Args:
        pretrained: unused: there are no published weights for an in-house net.
        weights: a state-dict file (safetensors, or a torch file read with ``weights_only=True``) to load.
        channels: input channels, 1 (grey) or 3 (RGB).
        num_classes: number of logits.
        input_size: side of the square input in pixels, 8 or more; images of other sizes are resized to it.
        width: channels of the first convolution (the first stage's; 64 is the standard ResNet-18).
        mean: per-channel mean subtracted from the [0, 1] image, one per channel (default 0.5 each).
        std: per-channel standard deviation the image is divided by after the mean, one per channel, above 0
            (default 0.5 each: [0, 1] maps to [-1, 1]).
        label_names: readable class names, one per logit.
        robust: whether the network is (to be) adversarially trained; recorded in the config.
        extra: more metadata for ``ClassifierConfig.extra``.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size.

    Raises:
        InvkitError: ``channels`` is not 1 or 3; ``input_size`` is below 8; ``weights`` is a checkpoint folder.
            (An option that is not a ``SmallNetOptions`` field, or a count that is not a whole number above 0, is
            refused by ``invkit.create_classifier`` before this runs.)
        InputError: ``mean`` or ``std`` is not one finite number per channel, a ``std`` is not above 0, or
            ``label_names`` does not have one name per logit (``ClassifierConfig``).
        WeightsNotFoundError: the ``weights`` file does not exist.
        CheckpointError: the ``weights`` file is unreadable, holds no state dict, or its keys or shapes do not fit
            the network; ``UnsafeCheckpointError`` (a subclass) for a pickle that holds code or Python objects.
    """
    return _build(
        "resnet18s.base",
        ResNet18S,
        pretrained=pretrained,
        weights=weights,
        channels=channels,
        num_classes=num_classes,
        input_size=input_size,
        width=width,
        mean=mean,
        std=std,
        label_names=label_names,
        robust=robust,
        extra=extra,
    )


def vgg11s(
    pretrained: bool = True,
    weights: str | None = None,
    *,
    channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    width: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label_names: Sequence[str] | None = None,
    robust: bool = False,
    extra: dict[str, Any] | None = None,
) -> Classifier:
    """A VGG-11 with batch norm for 28-64 px images (global-average-pooled head; random weights unless ``weights``
    is given).

    VGG-11 (configuration "A") of K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", ICLR 2015, with batch norm after every convolution and the three fully connected layers
    replaced by global average pooling and one linear layer (``models.VGG11S``). invkit trains it as an *evaluator*:
    a network of another architecture than the classifiers under study, that scores their reconstructions.

    Args:
        pretrained: unused: there are no published weights for an in-house net.
        weights: a state-dict file (safetensors, or a torch file read with ``weights_only=True``) to load.
        channels: input channels, 1 (grey) or 3 (RGB).
        num_classes: number of logits.
        input_size: side of the square input in pixels, 8 or more; images of other sizes are resized to it.
        width: channels of the first convolution (64 is the published VGG-11).
        mean: per-channel mean subtracted from the [0, 1] image, one per channel (default 0.5 each).
        std: per-channel standard deviation the image is divided by after the mean, one per channel, above 0
            (default 0.5 each: [0, 1] maps to [-1, 1]).
        label_names: readable class names, one per logit.
        robust: whether the network is (to be) adversarially trained; recorded in the config.
        extra: more metadata for ``ClassifierConfig.extra``.

    Returns:
        The classifier, in eval mode; it takes ``(N, C, H, W)`` images in [0, 1] of any size.

    Raises:
        InvkitError: ``channels`` is not 1 or 3; ``input_size`` is below 8; ``weights`` is a checkpoint folder.
        InputError: ``mean`` or ``std`` is not one finite number per channel, a ``std`` is not above 0, or
            ``label_names`` does not have one name per logit (``ClassifierConfig``).
        WeightsNotFoundError: the ``weights`` file does not exist.
        CheckpointError: the ``weights`` file is unreadable, holds no state dict, or its keys or shapes do not fit
            the network; ``UnsafeCheckpointError`` (a subclass) for a pickle that holds code or Python objects.
    """
    return _build(
        "vgg11s.base",
        VGG11S,
        pretrained=pretrained,
        weights=weights,
        channels=channels,
        num_classes=num_classes,
        input_size=input_size,
        width=width,
        mean=mean,
        std=std,
        label_names=label_names,
        robust=robust,
        extra=extra,
    )


DEMO = Path(invkit.__file__).parent / "assets" / "demo"
DEMO_TAGS = {  # registry tag -> checkpoint folder under invkit/assets/demo (benchmarks/demo/train_demo_classifiers.sh)
    "mnist": "classifier_standard",
    "mnist_robust": "classifier_robust",
}


def _demo_factory(tag: str) -> Callable[..., Classifier]:
    def factory(pretrained: bool = True, weights: str | None = None, **kwargs: Any) -> Classifier:
        if pretrained and weights is None:
            if kwargs:
                raise InvkitError(
                    f"smallcnn.{tag} is a trained MNIST checkpoint and takes no options "
                    f"({', '.join(kwargs)}); use smallcnn.base to build a new network."
                )
            folder = DEMO / DEMO_TAGS[tag]
            if not (folder / "model.safetensors").exists():
                raise WeightsNotFoundError(
                    f"the demo checkpoint '{folder}' is missing; reinstall invkit or "
                    "run benchmarks/demo/train_demo_classifiers.sh."
                )
            clf = invkit.load_classifier(folder)
        else:
            clf = smallcnn(pretrained=False, weights=weights, **kwargs)
        object.__setattr__(clf, "config", clf.config.with_(name=f"smallcnn.{tag}"))
        return clf

    return factory


@invkit.hookimpl
def register_classifiers(register: Callable[..., None]) -> None:
    register(
        "smallcnn.base",
        smallcnn,
        description="small CNN for 28-32 px images (train: invkit train-classifier)",
        options=SmallNetOptions,
    )
    register(
        "smallcnn.mnist",
        _demo_factory("mnist"),
        options=SmallNetOptions,  # with pretrained=False it builds a smallcnn.base from these
        description="smallcnn trained on MNIST, standard training (demo checkpoint shipped with invkit)",
    )
    register(
        "smallcnn.mnist_robust",
        _demo_factory("mnist_robust"),
        options=SmallNetOptions,  # with pretrained=False it builds a smallcnn.base from these
        description="smallcnn trained on MNIST with PGD, Linf eps 0.2 (demo checkpoint shipped with invkit)",
    )
    register(
        "resnet18s.base",
        resnet18s,
        description="ResNet-18, 3x3 stem, no max-pool, for 32-64 px (train: invkit train-classifier)",
        options=SmallNetOptions,
    )
    register(
        "vgg11s.base",
        vgg11s,
        description="VGG-11 with batch norm, pooled head, for 28-64 px (train: invkit train-classifier; evaluators)",
        options=SmallNetOptions,
    )
