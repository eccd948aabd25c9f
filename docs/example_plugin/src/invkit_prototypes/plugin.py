"""An example invkit plugin: one classifier, one inverter, one probe and one command.

* ``prototype.mnist`` — a classifier whose logits are negative squared distances to the ten class-mean
  images ("prototypes") of the MNIST subset shipped with invkit. No weights to download.
* ``prototype_mix.softmax`` — an inverter that returns the softmax(logits / T)-weighted mixture of those
  prototypes: a deterministic, training-free baseline that only knows the class posterior.
* ``logit-norm`` — a probe that compares the logit norms of originals and of their reconstructions.
* ``invkit prototypes`` — a command that writes the prototypes as a PNG grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import torch
from torch import nn

import invkit
from invkit.data import load_dataset, resize, take
from invkit.io import load_weights_file, save_curves, save_grid
from invkit.utils.progress import Progress


def class_prototypes() -> torch.Tensor:
    """(10, 1, 28, 28) mean image of each digit in invkit's embedded MNIST training subset, in [0, 1]."""
    images, labels = take(load_dataset("default", "train"))  # every image, as floats in [0, 1]
    return torch.stack([images[labels == c].mean(0) for c in range(10)])


# ------------------------------------------------------------------------------------------------ classifier
class PrototypeNet(nn.Module):
    """logit_c(x) = -||x - mu_c||^2 / d: nearest class mean as a linear-quadratic classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(10, 1, 28, 28))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x[:, None] - self.prototypes[None]).pow(2).flatten(2).mean(2)
        return -d * 100.0


@dataclass(frozen=True)
class PrototypeOptions:
    """prototype.mnist takes no options besides ``pretrained`` and ``weights``: invkit refuses any other."""


def make_classifier(pretrained: bool = True, weights: str | None = None) -> invkit.Classifier:
    """The factory: ``pretrained=False`` gives zero prototypes, ``weights`` a file holding ``prototypes``."""
    net = PrototypeNet()
    if weights is not None:
        state = load_weights_file(weights)  # safetensors, .npz or a state dict; refuses pickled code
        if "prototypes" not in state or tuple(state["prototypes"].shape) != (10, 1, 28, 28):
            raise invkit.CheckpointError(f"'{weights}' holds no (10, 1, 28, 28) tensor named 'prototypes'.")
        net.prototypes.copy_(state["prototypes"])
    elif pretrained:
        net.prototypes.copy_(class_prototypes())
    config = invkit.ClassifierConfig(
        name="prototype.mnist",
        num_classes=10,
        input_size=(1, 28, 28),
        mean=(0.0,),
        std=(1.0,),
        label_names=tuple(str(i) for i in range(10)),
        source="class means of invkit's embedded MNIST subset",
        license="CC BY-SA 3.0 (MNIST)",
    )
    return invkit.Classifier(net, config)


# -------------------------------------------------------------------------------------------------- inverter
@dataclass
class PrototypeMixConfig:
    num_classes: int = 10  # logit dimension; must be 10 (one prototype per digit)
    channels: int = 1  # output channels
    resolution: int = 28  # output size
    temperature: float = 1.0  # softmax temperature on the logits
    noise_dim: int = 0  # deterministic


class PrototypeMix(invkit.Inverter):
    """x̂ = sum_c softmax(z / T)_c * mu_c."""

    def __init__(self, config: PrototypeMixConfig):
        super().__init__(config)
        self.register_buffer("prototypes", class_prototypes())

    def invert(self, logits, noise=None, generator=None):
        logits = self.check_logits(logits)
        weights = torch.softmax(logits / self.config.temperature, dim=1)
        images = torch.einsum("nc,cxhw->nxhw", weights, self.prototypes.to(logits.dtype))
        return resize(images, self.config.resolution, self.config.channels).clamp(0, 1)


def make_inverter(classifier: invkit.Classifier | None = None, **config) -> PrototypeMix:
    """The factory: ``classifier`` gives the logit size; ``config`` holds PrototypeMixConfig fields (invkit has
    checked their names and types against PrototypeMixConfig, the options it is registered with)."""
    if classifier is not None:
        config.setdefault("num_classes", classifier.num_classes)
    if config.get("num_classes", 10) != 10:
        raise invkit.InputError("prototype_mix inverts 10-class (MNIST) logits only.")
    return PrototypeMix(PrototypeMixConfig(**config))


# ----------------------------------------------------------------------------------------------------- probe
@dataclass(frozen=True)
class LogitNormOptions:
    p: float = 2.0  # order of the vector norm of the logits (2: Euclidean)


class LogitNormProbe(invkit.Probe):
    """Do reconstructions carry as much logit mass as the originals?"""

    description = "logit norm of originals vs their reconstructions"
    options = LogitNormOptions()  # declared: `--option p=1` works; an unknown key or a wrong type never reaches run()

    def run(self, ctx: invkit.ProbeContext) -> invkit.ProbeResult:
        opts = self.options_for(ctx)  # LogitNormOptions with ctx.options applied, checked by invkit
        seed = int(torch.randint(0, 2**31, (1,), generator=ctx.generator))
        images, _ = take(ctx.data, ctx.num_images, seed=seed)
        with torch.no_grad():
            z = ctx.classifier.logits(images.to(ctx.device))
            recon = ctx.inverter.invert(z, generator=ctx.generator)
            z_hat = ctx.classifier.logits(recon)
        norms, norms_hat = z.norm(p=opts.p, dim=1).cpu(), z_hat.norm(p=opts.p, dim=1).cpu()
        ctx.progress(Progress("logit-norm", 1, 1))
        save_grid(
            torch.cat([images, resize(recon.cpu(), images.shape[-1], images.shape[1])]),
            ctx.out / "pairs.png",
            nrow=len(images),
        )
        order = norms.argsort()
        save_curves(
            ctx.out / "norms.png",
            list(range(len(order))),
            {"original": norms[order].tolist(), "reconstruction": norms_hat[order].tolist()},
            xlabel="image (sorted)",
            ylabel=f"||logits||_{opts.p:g}",
        )
        numbers = {
            "p": opts.p,
            "mean_norm": float(norms.mean()),
            "mean_norm_reconstruction": float(norms_hat.mean()),
            "ratio": float((norms_hat / norms).mean()),
        }
        return invkit.ProbeResult(  # invkit renders index.html from it (run_probe)
            probe=self.name,
            numbers=numbers,
            figures={"pairs": "pairs.png", "norms": "norms.png"},
            summary=f"reconstructions keep {numbers['ratio']:.0%} of the logit norm",
            captions={"pairs": "top: originals; bottom: their reconstructions", "norms": "sorted by original norm"},
        )


# ----------------------------------------------------------------------------------------------------- hooks
@invkit.hookimpl
def register_classifiers(register):
    register(
        "prototype.mnist",
        make_classifier,
        description="nearest class-mean MNIST classifier (example plugin)",
        options=PrototypeOptions,  # invkit checks option names and types against it: no check of our own
    )


@invkit.hookimpl
def register_inverters(register):
    register(
        "prototype_mix.softmax",
        make_inverter,
        description="softmax mixture of class prototypes (example)",
        options=PrototypeMixConfig,  # --option / config.json keys and types are checked against its fields
    )


@invkit.hookimpl
def register_probes(register):
    register("logit-norm", LogitNormProbe, description="logit norms of originals vs reconstructions (example)")


@invkit.hookimpl
def register_commands(cli):
    @cli.command("prototypes")
    @click.option("--out", default="prototypes.png", show_default=True, help="PNG file to write.")
    def prototypes_command(out: str) -> None:
        """Write the ten MNIST class prototypes of the example plugin as a PNG grid."""
        path = save_grid(class_prototypes(), Path(out), nrow=10, scale=4)
        click.echo(f"wrote {path}")
