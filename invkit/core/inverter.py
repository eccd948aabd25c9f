"""The ``Inverter`` interface: logits in, images in [0, 1] out.

An inverter is built for one classifier's logit dimension and one image shape. Learned inverters
(``biggan_proj``, ``dosovitskiy_brox``) also provide ``make_trainer``, which the core training loop
(``invkit.training.loop``) drives; optimisation inverters (``optim``) hold the classifier and need no training.
All of them save and load as checkpoint folders (config.json + model.safetensors).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import CheckpointError, InputError, TrainingError

Batch = tuple[torch.Tensor, torch.Tensor]
"""(images in [0, 1] at the inverter's resolution, logits the frozen classifier gave for them)."""


class Inverter(nn.Module, abc.ABC):
    """Base class of every inverter.

    Subclasses define a dataclass config (one comment per field, defaults = the method's paper) stored as
    ``self.config``; it must have the fields ``num_classes`` (logit dimension), ``channels`` and
    ``resolution`` (the output image), and ``noise_dim`` (0 for deterministic inverters).

    Attributes:
        registry_name: the ``name.tag`` that rebuilds this inverter (set by its factory).
        trainable: whether ``make_trainer`` is implemented: the one declaration that an inverter learns. invkit reads
            it before building (to refuse a learned inverter without a checkpoint) from the class the factory's
            return annotation names, else from an inverter built on the meta device (``invkit.core.resolve.
            is_learned``). ``factory.trainable`` on the registered factory is deprecated.
        checkpoint_dir: the checkpoint folder ``load_inverter`` read it from (None otherwise); tables and pages
            name the inverter by it (``invkit.core.naming.inverter_label``: ``biggan_proj.paper @ RUN/step_N (32x32,
            ch 16)``).
        channel: the observation channel spec of the classifier's logits this inverter inverts (``logits``, the
            paper's setting; ``topk:5``, ...; ``invkit.core.observation``). Recorded in config.json by ``save``.
        layer: the classifier layer whose globally pooled activations it inverts instead of a channel (its
            ``num_classes`` is then that layer's width), or None. Recorded in config.json by ``save``.
    """

    registry_name: str = ""
    checkpoint_dir: Path | None = None
    channel: str = "logits"  # invkit.core.channels.DEFAULT_CHANNEL
    layer: str | None = None
    trainable: ClassVar[bool] = False

    def forward(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``invert`` by default, so that calling the inverter (or the ``DistributedDataParallel`` that wraps it
        during distributed training) inverts; a subclass may define ``forward`` as its raw network instead."""
        return self.invert(logits, noise=noise, generator=generator)

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    # ------------------------------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    @property
    def noise_dim(self) -> int:
        return int(getattr(self.config, "noise_dim", 0))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (int(self.config.channels), int(self.config.resolution), int(self.config.resolution))

    def target_images(self, images: torch.Tensor) -> torch.Tensor:
        """The images this inverter is asked to reconstruct: data images at its resolution and channels.

        One definition for training, ``invkit bench`` and every probe (Teterwak et al. 2021 feed the classifier the
        64x64 images the inverter produces): the data image resized to ``image_shape`` (antialiased bilinear,
        ``invkit.data.resize``); the classifier's logits are computed from this image and reconstructions are
        scored against it.

        Args:
            images: ``(N, C, H, W)`` in [0, 1], any size and 1 or 3 channels.

        Returns:
            ``(N, *image_shape)`` float images in [0, 1] on the same device.
        """
        from ..data.images import resize

        c, h, w = self.image_shape
        return resize(images.float(), (h, w), channels=c)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    # ------------------------------------------------------------------------------------------ inversion
    @abc.abstractmethod
    def invert(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Reconstruct images from logits.

        Implementations check their input with ``check_logits`` and ``check_noise``, and their output with
        ``check_output`` (finite logits can still overflow inside a network).

        Args:
            logits: ``(N, num_classes)`` float logits of the classifier this inverter was built for, N >= 1.
            noise: ``(N, noise_dim)`` standard normal noise for stochastic inverters; when None it is drawn from
                N(0, 1) with ``generator`` (``sample_noise``). Leave it None for deterministic ones (``noise_dim`` 0).
            generator: seeds the noise (and any other randomness) for reproducible results.

        Returns:
            ``(N, channels, resolution, resolution)`` images in [0, 1].

        Raises:
            InputError: ``logits`` is not a float ``(N, num_classes)`` tensor with N >= 1, or holds NaN/inf;
                ``noise`` is not of shape ``(N, noise_dim)``; finite logits so large that the reconstruction
                overflows to NaN/inf (``check_output``).
        """

    def check_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Return ``logits`` unchanged if ``invert`` can use them.

        Args:
            logits: should be ``(N, num_classes)`` floating point, N >= 1, finite.

        Raises:
            InputError: not a tensor; a single vector (no batch dimension); another shape or logit dimension;
                an integer or bool dtype; an empty batch; NaN/inf values (the message names the rows).
        """
        if not isinstance(logits, torch.Tensor):
            raise InputError(f"{self.registry_name}: expected a tensor of logits, got {type(logits).__name__}.")
        if logits.dim() == 1:
            raise InputError(
                f"{self.registry_name}: expected a batch of logits (N, {self.num_classes}), got one "
                f"vector {tuple(logits.shape)}; use logits.unsqueeze(0)."
            )
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise InputError(
                f"{self.registry_name}: expected logits of shape (N, {self.num_classes}), got "
                f"{tuple(logits.shape)}; was this inverter trained for another classifier?"
            )
        if not logits.is_floating_point():
            raise InputError(f"{self.registry_name}: logits must be floating point, got {logits.dtype}.")
        if logits.shape[0] == 0:
            raise InputError(
                f"{self.registry_name}: the batch of logits is empty (0, {self.num_classes}); pass N >= 1 rows."
            )
        if not bool(torch.isfinite(logits).all()):
            rows = sorted({int(i) for i in (~torch.isfinite(logits)).nonzero()[:, 0].tolist()})
            raise InputError(
                f"{self.registry_name}: logits hold NaN/inf (row(s) {', '.join(map(str, rows[:5]))}"
                f"{', ...' if len(rows) > 5 else ''}); an image cannot be reconstructed from them."
            )
        return logits

    def check_output(self, images: torch.Tensor, logits: torch.Tensor, why: str = "") -> torch.Tensor:
        """Return ``images`` unchanged if every pixel is finite; else refuse the logits that made them.

        Finite logits far outside what a classifier gives (``1e30``) can overflow float32 inside a network and come
        out as a NaN image; returned as it is, that image would be scored, saved and reported with exit status 0.

        Args:
            images: the reconstructions ``invert`` is about to return, ``(N, C, H, W)``.
            logits: the logits they were made from, ``(N, num_classes)`` (named in the message by size).
            why: where the overflow happens, for the message (e.g. "its conditional batch-norm gains grow with
                the logits").

        Raises:
            InputError: some pixel is NaN/inf; the message names the rows and the largest logit.
        """
        bad = ~torch.isfinite(images.detach()).flatten(1).all(1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten().tolist()
            largest = float(logits.detach().abs().max())
            raise InputError(
                f"{self.registry_name}: logits as large as {largest:.3g} overflow its float32 arithmetic"
                f"{f' ({why})' if why else ''}: the reconstruction of row(s) {', '.join(map(str, rows[:5]))}"
                f"{', ...' if len(rows) > 5 else ''} is NaN/inf, not an image; a classifier's logits are many orders "
                "of magnitude smaller: check where these come from, or scale them down."
            )
        return images

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Standard normal noise ``(n, noise_dim)``, or None for a deterministic inverter."""
        if self.noise_dim == 0:
            return None
        device = generator.device if generator is not None else self.device
        return torch.randn(n, self.noise_dim, generator=generator, device=device).to(self.device)

    def check_noise(self, noise: torch.Tensor | None, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        """The noise ``invert`` uses: ``noise`` if it fits, else a fresh draw when it is None.

        Args:
            noise: ``(n, noise_dim)``, or None to draw standard normal noise with ``sample_noise``.
            n: the batch size (the number of logit vectors).
            generator: seeds the draw when ``noise`` is None.

        Returns:
            ``(n, noise_dim)`` noise, or None when ``noise`` is None and ``noise_dim`` is 0.

        Raises:
            InputError: ``noise`` is not a float tensor of shape ``(n, noise_dim)``, or holds NaN or inf.
        """
        if noise is None:
            return self.sample_noise(n, generator)
        if not isinstance(noise, torch.Tensor):
            raise InputError(f"{self.registry_name}: expected noise as a torch.Tensor, got {type(noise).__name__}.")
        if noise.dim() != 2 or noise.shape != (n, self.noise_dim):
            raise InputError(
                f"{self.registry_name}: expected noise of shape ({n}, {self.noise_dim}), got {tuple(noise.shape)}."
            )
        if not noise.is_floating_point():
            raise InputError(f"{self.registry_name}: expected float noise (standard normal), got {noise.dtype}.")
        if not bool(torch.isfinite(noise).all()):
            raise InputError(f"{self.registry_name}: the noise holds NaN or inf values.")
        return noise

    # ------------------------------------------------------------------------------------------ training
    def make_trainer(self, classifier: Any, **options: Any) -> InverterTrainer:
        """Everything needed to train this inverter against a frozen classifier (see ``InverterTrainer``).

        Learned inverters override it (and set ``trainable``); this default refuses.

        Args:
            classifier: the frozen classifier whose logits the inverter learns to invert.
            **options: trainer settings of the subclass (learning rates, loss weights, ...).

        Raises:
            TrainingError: always, here: the inverter has no training step (``optim`` inverts directly).
        """
        raise TrainingError(
            f"{self.registry_name or type(self).__name__} has no training step: it inverts "
            "directly with `invkit invert`/`invkit bench`, nothing to train."
        )

    # ------------------------------------------------------------------------------------------ checkpoints
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else dict(self.config)

    def save(
        self,
        directory: str | os.PathLike,
        *,
        train_state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Save as an invkit checkpoint folder (config.json + model.safetensors).

        ``config.json`` records the registry name (``registry_name``) that ``load_inverter`` rebuilds the
        inverter with; for an inverter built without the registry it is inferred from the plugin that
        registered its class (``Registry.infer_name``).

        Args:
            directory: the folder; created if missing. Files are replaced atomically.
            train_state: optional training state for resuming (``invkit.io.checkpoint.save_train_state``).
            extra: more JSON fields for ``config.json``.

        Raises:
            CheckpointError: no registry name is known and none can be inferred (nothing is written).
        """
        from ..io.checkpoint import save_checkpoint

        if not self.registry_name:
            from .plugins import get_registry

            inferred = get_registry("inverter").infer_name(self)
            if inferred is None:
                raise CheckpointError(
                    f"cannot save this {type(self).__name__}: it has no registry name, so the checkpoint could not "
                    "be loaded; build it with invkit.create_inverter(NAME, ...) or set inverter.registry_name = "
                    "'NAME.TAG' (see `invkit list inverters`)."
                )
            self.registry_name = inferred
        return save_checkpoint(
            directory,
            kind="inverter",
            name=self.registry_name,
            config=self.config_dict(),
            state_dict=self.state_dict(),
            train_state=train_state,
            extra={"channel": self.channel, "layer": self.layer} | dict(extra or {}),  # what it observes
        )


class InverterTrainer(abc.ABC):
    """Everything an inverter needs to learn: auxiliary networks (a discriminator), optimisers, EMA.

    The core loop (``invkit.training.loop.train_inverter``) owns data order, logits of the frozen classifier, devices,
    distributed set-up, checkpoints, resume, logging and NaN checks; the trainer owns the maths of one step.

    Contract:
        * ``train_step(next_batch, step)`` performs one optimiser step of the inverter. ``next_batch()``
          returns a fresh ``Batch`` each call (a GAN with 2 D steps per G step calls it for each D step and
          for the G step). It returns the step's scalar losses as floats.
        * ``state_dict()`` / ``load_state_dict()`` hold everything besides the inverter's own weights that an
          exact resume needs (other networks, optimiser states, EMA weights). Tensors and plain containers
          only: it is written with ``invkit.io.checkpoint.save_train_state``.
        * ``inference_inverter()`` is what gets saved as ``model.safetensors`` (the EMA copy for a GAN).
        * Under DDP the loop calls ``distribute(wrap)`` once before training; ``wrap(module)`` returns the
          module wrapped in ``DistributedDataParallel``. The trainer wraps what it trains and uses the
          wrapped modules in ``train_step`` so that gradients are averaged across ranks. For an ``Inverter``,
          ``wrap`` returns an ``invkit.training.distributed.DistributedInverter``: ``wrapped.invert(logits,
          noise)`` runs the inverter's ``invert`` through DDP, and ``wrapped(...)`` its ``forward`` (which is
          ``invert`` unless the subclass defines it), so a trainer uses the inverter API under DDP as without it.
        * Options: a trainer that takes options declares them as a dataclass instance in ``options`` (its fields
          and defaults); ``make_trainer`` passes them on with ``super().__init__(inverter, classifier,
          **options)``, which checks the names and types (``invkit.utils.config.check_options``: an unknown key
          with the closest names, ``g_lr="abc"``, NaN, a negative learning rate) and sets ``self.options`` to the
          dataclass with the given values applied.

    Attributes:
        options: the options dataclass instance (declared on the class: the defaults; after ``__init__``: the
            values this trainer runs with). None for a trainer that takes no options.
    """

    options: Any = None

    def __init__(self, inverter: Inverter, classifier: Any, **options: Any):
        """Keep the inverter and the classifier, and apply ``options`` (see the class docstring).

        Raises:
            InputError: an option the trainer's ``options`` do not declare (with the closest names; any option when
                it declares none), or a value of the wrong type, NaN/inf or a negative size or rate.
        """
        from ..utils.config import check_options

        self.inverter = inverter
        self.classifier = classifier
        where = f"{inverter.registry_name or type(inverter).__name__} trainer"
        if self.options is not None:
            self.options = dataclasses.replace(self.options, **check_options(self.options, options, where))
        elif options:
            raise InputError(f"{where} takes no options, got {', '.join(sorted(options))}.")

    @abc.abstractmethod
    def train_step(self, next_batch: Callable[[], Batch], step: int) -> dict[str, float]:
        """One optimisation step; returns scalar losses."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Training state besides the inverter's weights."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s output."""

    def inference_inverter(self) -> Inverter:
        return self.inverter

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:  # noqa: B027 - optional hook
        """Wrap trained modules for data-parallel training (see the class docstring)."""

    def sample_images(self, logits: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Images for the periodic sample grid: ``invert`` of the inference inverter in eval mode, without gradients.

        Args:
            logits: ``(N, num_classes)`` logits of the frozen classifier.
            noise: ``(N, noise_dim)`` standard normal noise, fixed across the run so grids compare; None for a
                deterministic inverter.

        Returns:
            ``(N, channels, resolution, resolution)`` images in [0, 1].
        """
        inv = self.inference_inverter()
        was_training = inv.training
        inv.eval()
        with torch.no_grad():
            out = inv.invert(logits, noise=noise)
        inv.train(was_training)
        return out


def load_inverter(
    directory: str | os.PathLike, classifier: Any = None, map_location: str | torch.device = "cpu"
) -> Inverter:
    """Rebuild an inverter from an invkit checkpoint folder.

    The registry name stored in ``config.json`` picks the factory, which is called with the stored config;
    the inverter's ``registry_name`` is that name (the full ``name.tag``). A field the stored config lacks takes
    the value its options dataclass lists in a ``checkpoint_legacy`` dict (a ClassVar) when there is one: the
    value checkpoints written before the field existed were trained with, whatever the preset's default is now.

    Args:
        directory: the checkpoint folder, or ``demo:NAME`` or ``hf-hub:OWNER/NAME[@REVISION]``
            (``invkit.io.locate.local_checkpoint``); an ``invkit train`` run folder means its newest checkpoint
            (``invkit.io.checkpoint.checkpoint_folder``, with a ``NewestCheckpointNote`` naming it).
        classifier: passed to the factory; needed by inverters that run the classifier (``optim``).
        map_location: device for the weights.

    Raises:
        CheckpointError: missing, corrupt or unnamed checkpoint, stored config values its options refuse, weights
            that do not fit; a run folder without a complete checkpoint.
        UnknownNameError: the stored name is not registered (its plugin is not installed).
    """
    from ..io.checkpoint import (
        build_from_config,
        check_weights,
        load_checkpoint_weights,
        read_checkpoint_config,
    )
    from ..io.locate import checkpoint_directory
    from ..io.state_dict import load_strict, strip_prefix
    from .plugins import get_registry

    directory = checkpoint_directory(directory)  # demo:, hf-hub:, a run folder's newest checkpoint
    doc = read_checkpoint_config(directory, kind="inverter")
    entry = get_registry("inverter").resolve(doc["name"])
    # Entry.build checks the stored values against the options the registration declares, as for --option
    # A field its config.json lacks was added later: the value it was trained with (the options' checkpoint_legacy)
    config = entry.checkpoint_legacy() | doc.get("config", {})
    inv = build_from_config(entry.build, doc, directory, classifier=classifier, **config)
    inv.registry_name = inv.registry_name or entry.name
    # what it observes of the classifier (invkit.core.observation); a checkpoint from before they were recorded: logits
    inv.channel, inv.layer = doc.get("channel") or "logits", doc.get("layer") or None
    state, _ = strip_prefix(load_checkpoint_weights(directory), inv.state_dict().keys())
    check_weights(state, inv, f"weights in '{directory}'")  # integer or NaN/inf weights would load silently
    load_strict(inv, state, f"'{Path(directory) / 'model.safetensors'}'", doc["name"])  # brief on what misfits
    inv.checkpoint_dir = Path(directory).expanduser().absolute()  # names it for people (invkit.core.naming)
    return inv.to(map_location).eval()
