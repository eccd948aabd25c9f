"""The ``Classifier`` interface: a frozen network that maps images in [0, 1] to logits.

A classifier carries its own preprocessing config (after timm's ``PretrainedCfg``): the input size the
network expects, mean/std, interpolation, channel order. ``logits(images)`` takes float images in [0, 1] of
any size (a 64x64 Tiny ImageNet image, a 28x28 MNIST digit) and resizes and normalises them itself, so call
sites never hard-code a resolution. Gradients flow to the input (optimisation inversion, PGD and FGSM need
them); the weights are frozen.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("RGB", "BGR")


def _finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_preprocessing(c: Any, where: str) -> None:
    """Refuse a config no network could be fed with: ``InputError``, one line naming the field."""
    size = tuple(c.input_size)
    if len(size) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise InputError(f"{where}: 'input_size' must be 3 whole numbers above 0 (C, H, W), got {list(size)}.")
    if size[0] not in (1, 3):
        raise InputError(f"{where}: 'input_size' must have 1 or 3 channels, got {size[0]} in {list(size)}.")
    for key in ("mean", "std"):
        values = tuple(getattr(c, key))
        if len(values) != size[0] or not all(_finite_number(v) for v in values):
            raise InputError(
                f"{where}: '{key}' needs one finite number per input channel ({size[0]}), got {list(values)}."
            )
    if not all(v > 0 for v in c.std):
        raise InputError(f"{where}: 'std' values must be above 0 (they divide the input), got {list(c.std)}.")
    if c.interpolation not in INTERPOLATIONS:
        raise InputError(
            f"{where}: 'interpolation' must be one of {', '.join(INTERPOLATIONS)}, got {c.interpolation!r}."
        )
    if c.channel_order not in CHANNEL_ORDERS:
        raise InputError(f"{where}: 'channel_order' must be RGB or BGR, got {c.channel_order!r}.")
    names = c.label_names
    if names is not None and (len(names) != c.num_classes or not all(isinstance(n, str) for n in names)):
        raise InputError(
            f"{where}: 'label_names' must be {c.num_classes} strings, one per logit, got {len(names)} entries."
        )


@dataclass(frozen=True)
class ClassifierConfig:
    """How a classifier expects its input, and where it comes from.

    Raises:
        InputError: on construction (and in ``with_``), a field no network could be fed with: ``input_size`` not
            three whole numbers above 0 or with other than 1 or 3 channels, ``mean``/``std`` not one finite number
            per channel, a ``std`` not above 0, an unknown ``interpolation`` or ``channel_order``, or
            ``label_names`` not ``num_classes`` strings.
    """

    name: str  # registry name, ``name.tag``
    num_classes: int  # length of the logit vector
    input_size: tuple[int, int, int] = (3, 224, 224)  # (channels, height, width) the network takes
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # per-channel mean subtracted after scaling to [0, 1]
    std: tuple[float, ...] = (0.229, 0.224, 0.225)  # per-channel std divided by after the mean
    interpolation: str = "bilinear"  # resize mode: bilinear, bicubic or nearest
    channel_order: str = "RGB"  # "BGR" for networks trained on BGR input (tensorpack, caffe)
    label_names: tuple[str, ...] | None = None  # readable class names, if known
    source: str = ""  # where the weights come from (URL, hub id, paper)
    license: str = ""  # licence of the weights
    robust: bool = False  # adversarially trained
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # anything else

    def __post_init__(self) -> None:
        _check_preprocessing(self, f"classifier config '{self.name}'")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["label_names"] = list(self.label_names) if self.label_names is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "classifier config") -> ClassifierConfig:
        """The config ``to_dict`` wrote (a checkpoint's ``classifier_config``), checked field by field.

        Args:
            d: field name -> JSON value.
            where: who the values are for, starting an error message (``"'ckpt/config.json'"``).

        Raises:
            InputError: one line naming a field that is unknown, missing, of the wrong type or out of range.
        """
        from ..utils.config import check_fields

        if not isinstance(d, Mapping):
            raise InputError(f"{where}: the classifier config must be a JSON object, got {type(d).__name__}.")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise InputError(
                f"{where}: unknown classifier config field(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(fields)}."
            )
        missing = [n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # fmt: skip
        if missing:
            raise InputError(f"{where}: the classifier config lacks {', '.join(map(repr, missing))}.")
        d = check_fields(cls, d, where)  # types, NaN/inf, num_classes > 0
        for k in ("input_size", "mean", "std", "label_names"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        _check_preprocessing(types.SimpleNamespace(**{n: f.default for n, f in fields.items()} | d), where)
        return cls(**d)

    def with_(self, **changes: Any) -> ClassifierConfig:
        """A copy with ``changes`` (field name -> value) applied, checked like a new config.

        Raises:
            InputError: a changed field is refused (see the class docstring).
            TypeError: a key that is not a field.
        """
        return replace(self, **changes)


class Classifier(nn.Module):
    """A network plus its preprocessing. Subclass it, or wrap any ``nn.Module`` that returns logits.

    Args:
        network: maps a normalised ``(N, C, H, W)`` batch at ``config.input_size`` to ``(N, num_classes)``.
        config: the preprocessing config.
        init_kwargs: JSON-serialisable arguments that rebuild the network through the registry factory
            (stored in a checkpoint's ``config.json``).

    Attributes:
        registry_name: the ``name.tag`` whose factory rebuilds this classifier (set by ``create_classifier``
            and ``load_classifier``); empty for one built directly, then ``config.name`` stands for it.
        random_weights: True when a factory built it without trained weights (an in-house net without
            ``weights``, a published one with ``pretrained=False``); ``load_network_state`` sets it back to False.
            The commands warn before using such a classifier (``invkit.core.resolve.resolve_classifier``).
        checkpoint_dir: the checkpoint folder ``load_classifier`` read it from (None otherwise); tables and pages
            name the classifier by it (``invkit.core.naming.classifier_label``: ``smallcnn.base @ FOLDER``).
    """

    registry_name: str = ""
    random_weights: bool = False
    checkpoint_dir: Path | None = None

    def __init__(self, network: nn.Module, config: ClassifierConfig, init_kwargs: dict[str, Any] | None = None):
        super().__init__()
        self.network = network
        self.config = config
        self.init_kwargs = dict(init_kwargs or {})
        self.register_buffer("_mean", torch.tensor(config.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(config.std).view(1, -1, 1, 1), persistent=False)
        self.eval()
        self.requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def name(self) -> str:
        return self.config.name

    def train(self, mode: bool = True) -> Classifier:
        """In-house training flips the network to train mode explicitly; everything else stays in eval."""
        return super().train(mode)

    def check_images(self, images: torch.Tensor) -> None:
        """Raise ``InputError`` unless ``images`` is a float ``(N, C, H, W)`` tensor, C 1 or 3, H and W at least 8.

        The [0, 1] range is the caller's to keep: values are not checked.
        """
        if not isinstance(images, torch.Tensor):
            raise InputError(f"{self.name}: expected a torch.Tensor of images, got {type(images).__name__}.")
        if images.dim() == 3:
            raise InputError(
                f"{self.name}: expected a batch (N, C, H, W), got one image {tuple(images.shape)}; "
                "add a batch dimension with images.unsqueeze(0)."
            )
        if images.dim() != 4:
            raise InputError(f"{self.name}: expected images of shape (N, C, H, W), got {tuple(images.shape)}.")
        if not images.is_floating_point():
            raise InputError(
                f"{self.name}: expected float images in [0, 1], got {images.dtype}; divide uint8 images by 255."
            )
        if images.shape[1] not in (1, 3):
            raise InputError(
                f"{self.name}: expected 1 or 3 channels, got {images.shape[1]} "
                f"(shape {tuple(images.shape)}); is the batch channels-last?"
            )
        if images.shape[-1] < 8 or images.shape[-2] < 8:
            raise InputError(f"{self.name}: images of {images.shape[-2]}x{images.shape[-1]} are too small.")

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised batch the network takes, from images in [0, 1].

        Converts the channels (grey repeated to RGB, RGB averaged to grey), resizes with
        ``config.interpolation`` (antialiased for bilinear and bicubic), flips to BGR when ``config.channel_order``
        says so, then subtracts ``config.mean`` and divides by ``config.std``.

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1]; C is 1 or 3, H and W any size of at least 8.

        Returns:
            ``(N, *config.input_size)`` in the images' dtype, normalised: no longer in [0, 1].

        Raises:
            InputError: ``images`` is not such a batch (see ``check_images``).
        """
        self.check_images(images)
        c, h, w = self.config.input_size
        if images.shape[1] != c:
            images = images.expand(-1, 3, -1, -1) if c == 3 else images.mean(dim=1, keepdim=True)
        if tuple(images.shape[-2:]) != (h, w):
            mode = self.config.interpolation
            kw = {"align_corners": False, "antialias": True} if mode in ("bilinear", "bicubic") else {}
            images = F.interpolate(images, size=(h, w), mode=mode, **kw)
        if self.config.channel_order == "BGR":
            images = images.flip(1)
        return (images - self._mean.to(images.dtype)) / self._std.to(images.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images; gradients flow to ``images``.

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1]; C is 1 or 3, H and W any size of at least 8.

        Returns:
            ``(N, num_classes)`` raw (unnormalised) logits.

        Raises:
            InputError: ``images`` is not such a batch (see ``check_images``).
        """
        return self(images)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The predicted class of each image: the argmax of ``logits``.

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1]; C is 1 or 3, H and W any size of at least 8.

        Returns:
            ``(N,)`` int64 class indices in ``[0, num_classes)``.

        Raises:
            InputError: ``images`` is not such a batch (see ``check_images``).
        """
        return self(images).argmax(dim=1)

    # --------------------------------------------------------------------------------------------- features
    def features(self, images: torch.Tensor, layer: str = "penultimate", pooled: bool = True) -> torch.Tensor:
        """The activations of one layer of the network for a batch of images; gradients flow to ``images``.

        The images are preprocessed as for ``logits`` (resized, normalised), then the network runs only up to the
        layer (a forward hook copies its output and stops the pass: ``invkit.core.features``).

        Args:
            images: ``(N, C, H, W)`` float images in [0, 1]; C is 1 or 3, H and W any size of at least 8.
            layer: a module name of ``dict(self.network.named_modules())`` (``features.3``, ``fc``; see
                ``layer_names``), or ``"penultimate"``: the input of the last ``nn.Linear`` the forward pass calls
                (the classifier head's input: ``(N, 128)`` for smallcnn, ``(N, 8 * width)`` for resnet18s/vgg11s,
                ``(N, 2048)`` for ResNet-50/152), found once per classifier by running one image.
            pooled: average a ``(N, C, H, W)`` activation over H and W (``(N, L, D)`` tokens over L) to ``(N, C)``;
                False returns the activation with its own shape.

        Returns:
            ``(N, D)`` when pooled, else the layer's output as it is (``(N, C, H', W')`` for a convolution), in the
            images' dtype, unbounded (not in [0, 1]).

        Raises:
            InputError: ``images`` is not such a batch (see ``check_images``); no layer of that name (the message
                lists the nearest names); ``"penultimate"`` for a network that calls no ``nn.Linear``.
        """
        return self._activation(images, layer, pooled, logits=False)[0]

    def logits_and_features(
        self, images: torch.Tensor, layer: str = "penultimate", pooled: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits(images), features(images, layer, pooled))`` from one forward pass (see ``features``).

        Returns:
            ``(N, num_classes)`` logits and the layer's activations as ``features`` returns them.

        Raises:
            InputError: as ``features``.
        """
        acts, out = self._activation(images, layer, pooled, logits=True)
        return out, acts

    def layer_names(self) -> list[str]:
        """The usual ``layer`` values of ``features``: ``"penultimate"``, then the network's named modules of the
        first two levels (``features``, ``features.0``, ...; ``layer1``, ``layer1.0``, ...) in registration order.
        Any deeper name of ``self.network.named_modules()`` is accepted too."""
        from .features import layer_names

        return layer_names(self.network)

    def _activation(
        self, images: torch.Tensor, layer: str, pooled: bool, logits: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        from . import features as feats

        x = self.preprocess(images)
        if layer == feats.PENULTIMATE:
            if getattr(self, "_penultimate", None) is None:  # found once; not a submodule (object.__setattr__)
                object.__setattr__(self, "_penultimate", feats.penultimate_module(self.network, x, self.name))
            module, of_input = self._penultimate, True
        else:
            module, of_input = feats.find_module(self.network, layer, self.name), False
        acts, out = feats.capture(self.network, x, module, of_input=of_input, logits=logits)
        return (feats.pool(acts) if pooled else acts), out

    # ------------------------------------------------------------------------------------------- checkpoints
    def save(
        self,
        directory: str | os.PathLike,
        extra: dict[str, Any] | None = None,
        *,
        train_state: dict[str, Any] | None = None,
    ) -> Path:
        """Save as an invkit checkpoint folder (config.json + model.safetensors), written as one unit
        (``invkit.io.checkpoint.save_checkpoint``).

        ``config.json`` records the registry name ``load_classifier`` rebuilds the network with:
        ``registry_name``, else ``config.name`` when that is registered, else the name inferred from the plugin
        that registered the network's class (``Registry.infer_name``), else ``config.name`` as it is.

        Args:
            directory: the folder; created if missing.
            extra: more JSON fields for ``config.json``.
            train_state: the training state for resuming (``train_state.safetensors``), written in the same unit.
        """
        from ..io.checkpoint import save_checkpoint

        name = self.registry_name
        if not name:
            from .plugins import get_registry

            registry = get_registry("classifier")
            name = self.config.name
            if name not in registry:
                name = registry.infer_name(self) or name
        return save_checkpoint(
            directory,
            kind="classifier",
            name=name,
            config={"init_kwargs": self.init_kwargs, "classifier_config": self.config.to_dict()},
            state_dict=self.network.state_dict(),
            train_state=train_state,
            extra=extra,
        )

    def load_network_state(self, state: Mapping[str, Any], source: str) -> None:
        """Load weights into the network strictly, with a one-line error naming what does not fit.

        ``state`` may be a checkpoint dict as training scripts save it (``{"state_dict": ..., "epoch": ...}``)
        and its keys may share a prefix the network lacks (``module.`` from ``nn.DataParallel``): both are
        undone first (``invkit.io.state_dict``).

        Raises:
            CheckpointError: keys or shapes do not fit; names a few missing and unexpected keys.
        """
        from ..io.state_dict import load_strict, unwrap

        inner, _ = unwrap(state)
        if not isinstance(inner, Mapping):
            raise CheckpointError(f"{source} holds a {type(inner).__name__}, not a state dict.")
        tensors = {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
        load_strict(self.network, tensors, source, self.name)
        self.random_weights = False


def load_classifier(directory: str | os.PathLike) -> Classifier:
    """Rebuild a classifier from an invkit checkpoint folder, in eval mode.

    The registry name stored in ``config.json`` picks the factory, which is called with the stored
    ``init_kwargs`` and ``pretrained=False``; a stored ``classifier_config`` (labels, provenance, preprocessing)
    replaces the factory's, and the weights come from ``model.safetensors``.

    Args:
        directory: the checkpoint folder (config.json + model.safetensors), or ``demo:NAME`` or
            ``hf-hub:OWNER/NAME[@REVISION]`` (``invkit.io.locate.local_checkpoint``).

    Raises:
        CheckpointError: the folder or its ``config.json`` is missing, corrupt, unnamed or of an inverter; the
            factory cannot build the stored ``init_kwargs``; the stored classifier config is invalid or does not
            match the built network; ``model.safetensors`` is missing or corrupt, or its weights do not fit the
            network (wrong keys or shapes, integer dtypes, NaN/inf).
        UnknownNameError: the stored name is not registered (its plugin is not installed).
        AmbiguousNameError: several plugins registered the stored name.
    """
    from ..io.checkpoint import (
        build_from_config,
        check_weights,
        load_checkpoint_weights,
        read_checkpoint_config,
    )
    from ..io.locate import checkpoint_directory
    from .plugins import get_registry

    directory = checkpoint_directory(directory)  # demo:, hf-hub:, a run folder's newest checkpoint
    doc = read_checkpoint_config(directory, kind="classifier")
    entry = get_registry("classifier").resolve(doc["name"])
    cfg = doc.get("config", {})
    init_kwargs = cfg.get("init_kwargs", {})
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(
            f"'{directory}/config.json': 'init_kwargs' must be a JSON object; the checkpoint is corrupt."
        )
    clf = build_from_config(entry.build, doc, directory, pretrained=False, **init_kwargs)  # declared options checked
    if not isinstance(clf, Classifier):
        raise CheckpointError(f"registry name {doc['name']} did not build a Classifier")
    clf.registry_name = entry.name
    if "classifier_config" in cfg:  # keep labels, provenance and preprocessing stored with the weights
        where = f"'{Path(directory) / 'config.json'}'"
        try:
            stored = ClassifierConfig.from_dict(cfg["classifier_config"], where)
        except InputError as e:
            raise CheckpointError(f"{e} Fix that field, or save the classifier again.") from None
        built = clf.config
        if stored.num_classes != built.num_classes or stored.input_size[0] != built.input_size[0]:
            raise CheckpointError(
                f"{where}: its classifier config has {stored.num_classes} classes and {stored.input_size[0]} input "
                f"channels, but {entry.name} built from its init_kwargs has {built.num_classes} and "
                f"{built.input_size[0]}; the checkpoint is corrupt."
            )
        object.__setattr__(clf, "config", stored)
        clf._mean = torch.tensor(clf.config.mean).view(1, -1, 1, 1)  # the buffers follow the stored mean/std
        clf._std = torch.tensor(clf.config.std).view(1, -1, 1, 1)
    state = load_checkpoint_weights(directory)
    check_weights(state, clf.network, f"weights in '{directory}'")
    clf.load_network_state(state, f"weights in '{directory}'")
    clf.checkpoint_dir = Path(directory).expanduser().absolute()  # names it for people (invkit.core.naming)
    return clf.eval()
