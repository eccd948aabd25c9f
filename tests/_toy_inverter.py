"""A tiny trainable inverter and classifier for the training-loop tests, registered at run time.

``toyinv.base`` is an MLP decoder (logits + noise -> image) trained with MSE against the real images, with an
EMA copy as its inference inverter, so the loop's save/resume paths for "trainer weights differ from the saved
weights" are exercised. ``toyclf.base`` is a 2-layer CNN with weights drawn from a fixed seed, so every process
builds the same classifier. ``toyfixed.base`` is an inverter with no training step.

Run as a script for the subprocess tests::

    python tests/_toy_inverter.py cli train --classifier toyclf.base --inverter toyinv.base ...
    python -m torch.distributed.run --nproc_per_node=2 tests/_toy_inverter.py cli train ...

In ``cli`` mode the script registers the toy plugin, runs ``invkit`` with the remaining arguments and, when
``TOY_HASH_DIR`` is set, writes ``hash_rank<R>.txt`` there: a SHA-256 of every tensor the run ended with.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import invkit
from invkit import Classifier, ClassifierConfig, Inverter, InverterTrainer, TrainingError
from invkit.core.inverter import Batch


# --------------------------------------------------------------------------------------------------- classifier
def make_classifier(pretrained: bool = True, weights: Any = None, **kw: Any) -> Classifier:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    cfg = ClassifierConfig(name="toyclf.base", num_classes=10, input_size=(1, 28, 28), mean=(0.5,), std=(0.5,))
    return Classifier(net, cfg)


# ----------------------------------------------------------------------------------------------------- inverter
@dataclass
class ToyConfig:
    num_classes: int = 10  # logit dimension
    channels: int = 1  # output channels
    resolution: int = 16  # output side
    noise_dim: int = 4  # noise appended to the logits
    hidden: int = 32  # MLP width


class ToyInverter(Inverter):
    trainable = True

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        c, r = config.channels, config.resolution
        self.net = nn.Sequential(
            nn.Linear(config.num_classes + config.noise_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, c * r * r),
        )

    def forward(self, logits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        c, r, _ = self.image_shape
        return torch.sigmoid(self.net(torch.cat([logits, noise], 1))).view(-1, c, r, r)

    def invert(self, logits, noise=None, generator=None):
        logits = self.check_logits(logits)
        noise = self.check_noise(noise, logits.shape[0], generator)
        with torch.no_grad():
            return self(logits.to(self.device), noise.to(self.device))

    def make_trainer(self, classifier, **options):
        return ToyTrainer(self, classifier, **options)


class ToyTrainer(InverterTrainer):
    """Adam on MSE; ``draws`` batches per step; ``nan_at_step`` injects a NaN; $TOY_STEP_DELAY slows steps."""

    OPTIONS = (
        "lr",
        "draws",
        "nan_at_step",
        "nan_weights_at_step",
        "collapse_at_step",
        "noise",
        "bf16",
        "channels_last",
        "g_lr",
    )

    def __init__(self, inverter: ToyInverter, classifier: Any, **options: Any):
        super().__init__(inverter, classifier)
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise TrainingError(f"toy trainer: unknown option(s) {', '.join(sorted(unknown))}.")
        self.draws = int(options.get("draws", 2))
        self.nan_at_step = options.get("nan_at_step")
        self.nan_weights_at_step = options.get("nan_weights_at_step")  # finite losses, NaN EMA weights
        self.collapse_at_step = options.get("collapse_at_step")  # EMA output constant (std 0) from this step on
        self.noise = float(options.get("noise", 1.0))
        self.step_delay = float(os.environ.get("TOY_STEP_DELAY", "0"))  # lets a test kill the run mid-way
        self.ema = copy.deepcopy(inverter).requires_grad_(False)
        self.opt = torch.optim.Adam(inverter.parameters(), lr=options.get("g_lr", options.get("lr", 1e-2)))
        self.module: nn.Module = inverter

    def train_step(self, next_batch: Callable[[], Batch], step: int) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for _ in range(self.draws):
            images, logits = next_batch()
            noise = torch.randn(len(images), self.inverter.noise_dim) * self.noise  # global RNG: resume restores it
            loss = F.mse_loss(self.module(logits, noise), images)
            if self.nan_at_step is not None and step >= int(self.nan_at_step):
                loss = loss * float("nan")
            loss.backward()
            total = total + loss.detach()
        self.opt.step()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.inverter.parameters()):
                e.lerp_(p, 0.5)
            if self.nan_weights_at_step is not None and step >= int(self.nan_weights_at_step):
                next(self.ema.parameters()).fill_(float("nan"))
            if self.collapse_at_step is not None and step >= int(self.collapse_at_step):
                self.ema.net[-1].weight.zero_()  # the same image whatever the logits: mode collapse
        if self.step_delay:
            time.sleep(self.step_delay)
        return {"mse_loss": float(total) / self.draws}

    def state_dict(self) -> dict[str, Any]:
        return {"ema": dict(self.ema.state_dict()), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])

    def inference_inverter(self) -> Inverter:
        return self.ema

    def distribute(self, wrap):
        self.module = wrap(self.inverter)


class FixedInverter(Inverter):
    """Returns grey images; has no training step (like ``optim``)."""

    def invert(self, logits, noise=None, generator=None):
        return torch.full((len(logits), *self.image_shape), 0.5)


def _toy_factory(classifier=None, **kw):
    if classifier is not None:
        kw.setdefault("num_classes", classifier.num_classes)
        kw.setdefault("channels", classifier.config.input_size[0])
    return ToyInverter(ToyConfig(**kw))


def _fixed_factory(classifier=None, **kw):
    if classifier is not None:
        kw.setdefault("num_classes", classifier.num_classes)
    return FixedInverter(ToyConfig(**kw))


class ToyPlugin:
    @invkit.hookimpl
    def register_classifiers(self, register):
        register("toyclf.base", make_classifier, description="tiny seeded CNN for the training tests")

    @invkit.hookimpl
    def register_inverters(self, register):
        register("toyinv.base", _toy_factory, description="tiny MLP decoder trained with MSE (tests)")
        register("toyfixed.base", _fixed_factory, description="inverter without a training step (tests)")


def register() -> None:
    pm = invkit.core.plugins.get_plugin_manager()
    if pm.get_plugin("toy") is None:
        invkit.register_plugin(ToyPlugin(), name="toy")


def tensor_hash(tree: Any) -> str:
    """SHA-256 over every floating-point tensor in a nested state (keys sorted), for comparing ranks.

    RNG states (uint8 tensors) are left out: each rank draws its own noise by design.
    """
    h = hashlib.sha256()

    def walk(obj: Any, key: str) -> None:
        if isinstance(obj, torch.Tensor):
            if not obj.is_floating_point():
                return
            h.update(key.encode())
            h.update(obj.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                walk(obj[k], f"{key}.{k}")
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{key}.{i}")
        elif isinstance(obj, float):
            h.update(f"{key}={obj!r}".encode())

    walk(tree, "")
    return h.hexdigest()


def _cli(argv: list[str]) -> int:
    import invkit.cli
    import invkit.cli.train as cli_train

    register()
    results = []
    original = cli_train.train_inverter

    def spy(*args: Any, **kwargs: Any):
        results.append(original(*args, **kwargs))
        return results[-1]

    cli_train.train_inverter = spy
    try:
        invkit.cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    hash_dir = os.environ.get("TOY_HASH_DIR")
    if hash_dir and results:
        t = results[-1].trainer
        groups = {"inverter": t.inverter.state_dict(), **t.state_dict()}
        rank = int(os.environ.get("RANK", "0"))
        with open(os.path.join(hash_dir, f"hash_rank{rank}.txt"), "w") as f:
            f.write(json.dumps({k: tensor_hash(v) for k, v in groups.items()}, indent=1, sort_keys=True) + "\n")
    return code


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "cli":
        sys.exit(_cli(sys.argv[2:]))
    sys.exit(f"unknown mode {sys.argv[1]}")
