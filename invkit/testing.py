"""Conformance checks for plugin authors: the checks invkit runs on its own registrations, as functions.

A plugin's own test suite calls them with its registered names (the way packages use hypothesis' or timm's
test helpers); invkit's ``tests/test_conformance.py`` calls the same functions for every built-in name::

    import invkit.testing

    def test_my_inverter(tmp_path):
        invkit.testing.check_inverter("my_inverter.base", tmp_path)

    def test_my_probe(tmp_path):
        invkit.testing.check_probe("my-probe", tmp_path)

What each check verifies (docs/plugins.md, "Testing your plugin", lists the same):

* ``check_classifier``: the factory builds an ``invkit.Classifier`` with ``pretrained=False``; logits are
  ``(N, num_classes)``, finite and repeatable for images of the network's size and of other sizes and channel
  counts; weights are frozen while gradients reach the input; bad input raises ``InputError``; save/load
  round-trips the logits and the registry name.
* ``check_inverter``: images ``(N, *image_shape)`` in [0, 1]; the same generator seed gives the same images
  (and a stochastic inverter different ones for another seed); save/load round-trips the config, the
  registry name and the images; logits of the wrong shape or dtype raise ``InputError``; the inverter is
  trainable (``make_trainer``, given ``trainer_options``, returns an ``InverterTrainer`` whose ``train_step``
  returns finite losses and whose ``state_dict`` survives ``save_train_state``) or says why not (``TrainingError``).
  ``options`` go to the factory, ``trainer_options`` to ``make_trainer``.
* ``check_probe``: the probe runs on a tiny classifier and inverter through ``invkit.core.probe.run_probe`` (what
  ``invkit probe`` runs), returns a JSON-serialisable ``ProbeResult`` named after the probe, writes every
  figure it lists (invkit then renders ``index.html`` and writes ``results.json``), repeats its numbers for the
  same seed, and rejects an option it does not declare.

Every check raises ``ConformanceError`` (an ``AssertionError``, so test runners show it as a failure) with
one line saying what is wrong, and returns the object it checked for further tests of your own. The checks
use no network, no GPU and no files outside ``tmp_path``; with the default tiny classifier they take well
under a second for a small model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .core.classifier import Classifier, ClassifierConfig
from .core.inverter import Inverter, InverterTrainer
from .core.probe import Probe, ProbeContext, ProbeResult, declared_options, run_probe
from .errors import InputError, InvkitError, TrainingError

__all__ = [
    "ConformanceError",
    "check_classifier",
    "check_inverter",
    "check_probe",
    "tiny_classifier",
    "tiny_inverter",
    "tiny_ood_data",
    "TinyInverter",
]


class ConformanceError(AssertionError):
    """A registered classifier, inverter or probe breaks the plugin contract (docs/plugins.md)."""


def _require(ok: Any, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


def _raises(kind: type[BaseException], call: Callable[[], Any], what: str) -> BaseException:
    """Run ``call`` and return the ``kind`` exception it raised; ConformanceError when it raised none."""
    try:
        call()
    except kind as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the wrong exception is the finding
        raise ConformanceError(f"{what}: raised {type(exc).__name__} ({exc}), expected {kind.__name__}") from exc
    raise ConformanceError(f"{what}: raised nothing, expected {kind.__name__}")


def tiny_classifier(num_classes: int = 10, channels: int = 1, size: int = 28, seed: int = 0) -> Classifier:
    """A seeded two-layer CNN classifier (``tiny.conformance``) to build inverters and run probes on.

    Args:
        num_classes: logit dimension.
        channels: input channels (1 or 3).
        size: input side in pixels.
        seed: seeds the random weights (the same seed builds the same network).

    Returns:
        A frozen ``Classifier`` taking ``(N, channels, size, size)`` images in [0, 1] (any size is resized).
    """
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(channels, 4, 3, stride=2)
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, num_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    config = ClassifierConfig(
        name="tiny.conformance",
        num_classes=num_classes,
        input_size=(channels, size, size),
        mean=(0.5,) * channels,
        std=(0.5,) * channels,
    )
    return Classifier(net, config)


@dataclasses.dataclass
class TinyInverterConfig:
    """Config of ``TinyInverter``."""

    num_classes: int = 10  # logit dimension
    channels: int = 1  # output channels
    resolution: int = 32  # output side in pixels
    noise_dim: int = 4  # noise vector length (stochastic, so noise probes can run)


class TinyInverter(Inverter):
    """A seeded linear map of (logits, noise) to a sigmoid image: stochastic, smooth and instant; for probes."""

    registry_name = "tiny.conformance"

    def __init__(self, config: TinyInverterConfig, seed: int = 0):
        super().__init__(config)
        c, r = config.channels, config.resolution
        self.net = nn.Linear(config.num_classes + config.noise_dim, c * r * r)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def invert(
        self, logits: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images ``(N, channels, resolution, resolution)`` in (0, 1) from ``(N, num_classes)`` logits."""
        logits = self.check_logits(logits)
        z = self.check_noise(noise, len(logits), generator)
        h = logits if z is None else torch.cat([logits, z.to(logits.dtype)], 1)
        return torch.sigmoid(self.net(h)).view(len(logits), *self.image_shape)


def tiny_inverter(classifier: Classifier, resolution: int = 32, noise_dim: int = 4, seed: int = 0) -> TinyInverter:
    """A ``TinyInverter`` for ``classifier``'s logits and channels (unregistered; for ``check_probe``)."""
    c = classifier.config.input_size[0]
    config = TinyInverterConfig(classifier.num_classes, c, resolution, noise_dim)
    return TinyInverter(config, seed).eval()


def tiny_ood_data(channels: int = 3, size: int = 32, n: int = 24) -> Any:
    """Seeded random colour blobs, a stand-in out-of-distribution data set (``ctx.extra_data["ood"]``)."""
    from .data.datasets import TensorImageDataset

    g = torch.Generator().manual_seed(1)
    images = (torch.rand(n, channels, size, size, generator=g) * 255).to(torch.uint8)
    return TensorImageDataset(images, torch.zeros(n, dtype=torch.long), ["blob"], name="blobs")


def _images(n: int, channels: int, size: int, seed: int, width: int | None = None) -> torch.Tensor:
    shape = (n, channels, size, width or size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ classifiers
def check_classifier(name: str, tmp_path: str | Path, **factory_kwargs: Any) -> Classifier:
    """Check a registered classifier (see the module docstring for the list).

    Args:
        name: the registered ``name.tag`` (or bare name).
        tmp_path: an empty folder for the save/load round trip.
        **factory_kwargs: more factory arguments; ``pretrained=False`` is passed unless given.

    Returns:
        The classifier built with random weights.

    Raises:
        ConformanceError: the first broken rule, in one line.
    """
    from .core.classifier import load_classifier
    from .core.factory import create_classifier
    from .core.plugins import get_registry

    entry = get_registry("classifier").resolve(name)
    clf = create_classifier(name, **({"pretrained": False} | factory_kwargs))
    _require(isinstance(clf, Classifier), f"{name}: the factory returned {type(clf).__name__}, not invkit.Classifier")
    _require(clf.registry_name == entry.name, f"{name}: registry_name is '{clf.registry_name}', not '{entry.name}'")
    clf.eval()
    c, h, w = clf.config.input_size
    k = clf.num_classes
    labels = clf.config.label_names
    _require(labels is None or len(labels) == k, f"{name}: {len(labels or ())} label_names for {k} classes")
    for x in (_images(2, c, h, 1, width=w), _images(2, 3 if c == 1 else 1, 64, 1), _images(2, c, 32, 1, width=40)):
        with torch.no_grad():
            z, again = clf.logits(x), clf.logits(x)
        _require(z.shape == (2, k), f"{name}: logits of {tuple(x.shape)} images have shape {tuple(z.shape)}")
        _require(torch.isfinite(z).all(), f"{name}: logits of {tuple(x.shape)} images are not finite")
        _require(torch.equal(z, again), f"{name}: the same images gave different logits (is it in eval mode?)")
    _require(
        not any(p.requires_grad for p in clf.parameters()), f"{name}: weights must be frozen (requires_grad False)"
    )
    x = _images(2, c, h, 2).requires_grad_(True)
    clf.logits(x).sum().backward()
    _require(x.grad is not None and torch.isfinite(x.grad).all(), f"{name}: no finite gradient reaches the input")
    _raises(InputError, lambda: clf.logits((_images(1, c, h, 3) * 255).to(torch.uint8)), f"{name} on uint8 images")
    _raises(InputError, lambda: clf.logits(_images(1, c, h, 3)[0]), f"{name} on one image without a batch axis")

    folder = Path(tmp_path) / f"classifier-{entry.name}"
    clf.save(folder)
    loaded = load_classifier(folder)
    _require(loaded.registry_name == entry.name, f"{name}: loaded as '{loaded.registry_name}', not '{entry.name}'")
    x = _images(2, c, h, 4)
    with torch.no_grad():
        _require(torch.equal(loaded.logits(x), clf.logits(x)), f"{name}: logits changed across save/load")
    return clf


# -------------------------------------------------------------------------------------------------- inverters
def _invert(inv: Inverter, logits: torch.Tensor, seed: int) -> torch.Tensor:
    # Learned inverters run without autograd; optimisation inverters need it.
    context = torch.no_grad() if inv.trainable else torch.enable_grad()
    with context:
        return inv.invert(logits, generator=torch.Generator().manual_seed(seed))


def check_inverter(
    name: str,
    tmp_path: str | Path,
    classifier: Classifier | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    train_steps: int = 1,
) -> Inverter:
    """Check a registered inverter (see the module docstring for the list).

    Args:
        name: the registered ``name.tag`` (or bare name).
        tmp_path: an empty folder for the save/load round trip.
        classifier: the classifier to build it for; default ``tiny_classifier()`` (10 classes, 1x28x28).
        options: factory options (``invkit.create_inverter(name, **options)``: config fields, what ``--option``
            gives an inverter built from its name), e.g. a reduced width so that the check stays fast.
        trainer_options: options of a trainable inverter's trainer (``inverter.make_trainer(classifier,
            **trainer_options)``: what ``invkit train --option`` passes besides the config fields), e.g. a smaller
            learning rate; refused (``ConformanceError``) for an inverter that is not trainable.
        train_steps: ``train_step`` calls made on a trainable inverter (0: only build the trainer).

    Returns:
        The inverter built for ``classifier`` (after the ``train_steps`` steps of the trainable check).

    Raises:
        ConformanceError: the first broken rule, in one line.
    """
    from .core.factory import create_inverter
    from .core.inverter import load_inverter
    from .core.plugins import get_registry

    entry = get_registry("inverter").resolve(name)
    clf = classifier if classifier is not None else tiny_classifier()
    inv = create_inverter(name, classifier=clf, **dict(options or {}))
    _require(isinstance(inv, Inverter), f"{name}: the factory returned {type(inv).__name__}, not invkit.Inverter")
    _require(inv.registry_name == entry.name, f"{name}: registry_name is '{inv.registry_name}', not '{entry.name}'")
    _require(inv.num_classes == clf.num_classes, f"{name}: built for {inv.num_classes} logits, not {clf.num_classes}")
    _require(inv.trainable or not trainer_options, f"{name}: trainer_options given, but it is not trainable")
    inv.eval()
    c, h, w = clf.config.input_size
    x = _images(2, c, h, 1)
    with torch.no_grad():
        # what the inverter inverts: logits, or what its optional targets(images) gives (optim.robust: penultimate)
        logits = inv.targets(x) if hasattr(inv, "targets") else clf.logits(x)
    out = _invert(inv, logits, seed=1)
    _require(out.shape == (2, *inv.image_shape), f"{name}: images {tuple(out.shape)}, not (2, *{inv.image_shape})")
    _require(torch.isfinite(out).all(), f"{name}: images are not finite")
    _require(out.min() >= 0 and out.max() <= 1, f"{name}: images outside [0, 1] ({out.min():.3g}..{out.max():.3g})")
    _require(torch.equal(_invert(inv, logits, seed=1), out), f"{name}: the same generator seed gave other images")
    if inv.noise_dim:
        other = _invert(inv, logits, seed=2)
        _require(not torch.equal(other, out), f"{name}: noise_dim > 0 but another seed gave the same images")

    folder = Path(tmp_path) / f"inverter-{entry.name}"
    inv.save(folder)
    stored = json.loads((folder / "config.json").read_text())["name"]
    _require(stored == entry.name, f"{name}: config.json records the name '{stored}', not '{entry.name}'")
    loaded = load_inverter(folder, classifier=clf)
    _require(loaded.registry_name == entry.name, f"{name}: loaded as '{loaded.registry_name}', not '{entry.name}'")
    _require(loaded.config == inv.config, f"{name}: config changed across save/load")
    _require(torch.equal(_invert(loaded, logits, seed=1), out), f"{name}: images changed across save/load")

    k = logits.shape[1]
    _raises(InputError, lambda: inv.invert(torch.randn(2, k + 3)), f"{name} on logits of the wrong size")
    _raises(InputError, lambda: inv.invert(torch.randn(k)), f"{name} on one logit vector without a batch axis")
    _raises(InputError, lambda: inv.invert(torch.zeros(2, k, dtype=torch.long)), f"{name} on integer logits")
    _check_trainable(name, inv, clf, train_steps, folder / "train_state.safetensors", dict(trainer_options or {}))
    return inv


def _check_trainable(
    name: str, inv: Inverter, clf: Classifier, train_steps: int, state_path: Path, trainer_options: dict[str, Any]
) -> None:
    if not inv.trainable:
        exc = _raises(TrainingError, lambda: inv.make_trainer(clf), f"{name}.make_trainer (trainable is False)")
        _require(str(exc).strip(), f"{name}: make_trainer's TrainingError must say why it cannot be trained")
        return
    from .io.train_state import load_train_state, save_train_state

    trainer = inv.make_trainer(clf, **trainer_options)
    _require(isinstance(trainer, InverterTrainer), f"{name}: make_trainer returned {type(trainer).__name__}")
    _require(isinstance(trainer.inference_inverter(), Inverter), f"{name}: inference_inverter() is not an Inverter")
    c, r, _ = inv.image_shape
    images = _images(4, c, r, 5)
    with torch.no_grad():
        batch = (images, clf.logits(images))
    inv.train()
    for step in range(train_steps):
        losses = trainer.train_step(lambda: batch, step)
        _require(isinstance(losses, dict) and losses, f"{name}: train_step returned {losses!r}, not a dict of losses")
        bad = {k: v for k, v in losses.items() if not isinstance(v, int | float) or not torch.isfinite(torch.tensor(v))}
        _require(not bad, f"{name}: train_step returned non-finite or non-float losses {bad}")
    inv.eval()
    try:
        save_train_state(state_path, trainer.state_dict())
    except TypeError as exc:
        raise ConformanceError(f"{name}: trainer.state_dict() cannot be saved without pickle ({exc})") from None
    trainer.load_state_dict(load_train_state(state_path))


# ----------------------------------------------------------------------------------------------------- probes
def check_probe(
    name: str,
    tmp_path: str | Path,
    classifier: Classifier | None = None,
    inverter: Inverter | None = None,
    *,
    data: Any = None,
    extra_data: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    num_images: int = 8,
    repeat: bool = True,
) -> ProbeResult:
    """Check a registered probe by running it (see the module docstring for the list).

    Args:
        name: the registered probe name.
        tmp_path: an empty folder; the probe writes into ``tmp_path/<name>/`` (and ``<name>-again/``).
        classifier: default ``tiny_classifier()``.
        inverter: default ``tiny_inverter(classifier)`` (stochastic, so noise probes run too).
        data: held-out data set; default the MNIST subset shipped with invkit (``load_dataset("default")``).
        extra_data: ``ctx.extra_data``; default ``{"ood": tiny_ood_data()}``.
        options: ``ctx.options`` (keep the probe small: fewer images, levels, steps).
        num_images: ``ctx.num_images``.
        repeat: run a second time with the same seed and require the same numbers.

    Returns:
        The first run's result.

    Raises:
        ConformanceError: the first broken rule, in one line.
    """
    from .core.factory import create_probe
    from .core.plugins import get_registry
    from .data.sources import load_dataset

    entry = get_registry("probe").resolve(name)
    probe = create_probe(name)
    _require(isinstance(probe, Probe), f"{name}: the factory returned {type(probe).__name__}, not invkit.Probe")
    _require(probe.name == entry.name, f"{name}: probe.name is '{probe.name}', not '{entry.name}'")
    _require(isinstance(probe.description, str), f"{name}: description must be a one-line string")
    clf = classifier if classifier is not None else tiny_classifier()
    inv = inverter if inverter is not None else tiny_inverter(clf)
    data = data if data is not None else load_dataset("default", "test")
    extra = dict(extra_data) if extra_data is not None else {"ood": tiny_ood_data()}
    opts = dict(options or {})

    def run(folder: Path) -> ProbeResult:
        folder.mkdir(parents=True, exist_ok=True)
        ctx = ProbeContext(
            classifier=clf,
            inverter=inv,
            data=data,
            out=folder,
            generator=torch.Generator().manual_seed(0),
            num_images=num_images,
            extra_data=extra,
            options=dict(opts),
        )
        return run_probe(probe, ctx)

    folder = Path(tmp_path) / entry.name
    result = run(folder)
    _require(isinstance(result, ProbeResult), f"{name}: run() returned {type(result).__name__}, not ProbeResult")
    _require(result.probe == entry.name, f"{name}: ProbeResult.probe is '{result.probe}', not '{entry.name}'")
    try:
        json.dumps(result.numbers, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{name}: numbers are not JSON-serialisable ({exc})") from None
    missing = [f for f in result.figures.values() if not (folder / f).is_file()]
    _require(not missing, f"{name}: figures listed but not written: {', '.join(missing)}")
    _require((folder / "index.html").is_file(), f"{name}: no index.html after run_probe")
    doc = json.loads((folder / "results.json").read_text())
    _require(doc.get("probe") == entry.name, f"{name}: results.json does not hold this probe's result")
    if repeat:
        again = run(Path(tmp_path) / f"{entry.name}-again")
        same = json.dumps(again.numbers, sort_keys=True, default=str) == json.dumps(
            result.numbers, sort_keys=True, default=str
        )
        _require(same, f"{name}: the same seed gave other numbers (draw every random number from ctx.generator)")
    declared = declared_options(probe)
    if declared is not None:
        bogus = "no_such_option_" + "x" * 3
        ctx = ProbeContext(clf, inv, data, Path(tmp_path), torch.Generator().manual_seed(0), options={bogus: 1})
        _raises(InvkitError, lambda: run_probe(probe, ctx, write=False), f"{name} given an undeclared option")
    return result
