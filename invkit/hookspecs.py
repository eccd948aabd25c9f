"""Every hook an invkit plugin can implement.

A plugin is a module (or object) with functions decorated by ``invkit.hookimpl`` whose names are the hooks
below. Installed packages announce their plugin module in the ``invkit`` entry-point group::

    [project.entry-points.invkit]
    my_plugin = "my_package.invkit_plugin"

invkit's own classifiers, inverters and probes are registered the same way; nothing is special-cased.
Hooks take a callback instead of returning values (the shape of simonw/llm's hookspecs), so that one
plugin can register any number of things and invkit records which plugin registered each one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("invkit")
hookimpl = pluggy.HookimplMarker("invkit")

Register = Callable[..., None]
"""``register(name, factory, description="", options=None)``: ``name`` is ``name.tag``; ``factory(**kwargs)`` builds
the object; ``options`` is the dataclass (class or instance) whose fields are the keyword options the factory takes,
checked by invkit before it is called (``invkit.check_options``; docs/hooks.md, "Options")."""


@hookspec
def register_classifiers(register: Register) -> None:
    """Register classifier factories.

    Called once, the first time any classifier is looked up or listed. Call
    ``register("name.tag", factory, description="...")`` once per classifier; ``factory`` receives the keyword
    arguments given to ``invkit.create_classifier`` (``pretrained``, ``weights``, ``checkpoint``, ...) and
    returns an ``invkit.Classifier``. Do not load weights here: only when the factory is called.
    """


@hookspec
def register_inverters(register: Register) -> None:
    """Register inverter factories.

    Called once, the first time any inverter is looked up or listed. ``factory(classifier=..., **config)``
    returns an ``invkit.Inverter`` sized for that classifier (its logit dimension and image shape);
    ``invkit.load_inverter`` calls it with the config stored in a checkpoint and sets ``registry_name`` to the
    stored name. An inverter that can be trained also implements ``Inverter.make_trainer`` (contract:
    docs/plugins.md) and sets ``trainable = True`` on its class, the one declaration (give the factory a return
    annotation naming that class, so invkit reads it without building).
    """


@hookspec
def register_probes(register: Register) -> None:
    """Register probe factories.

    Called once, the first time any probe is looked up or listed. ``factory(**options)`` returns an
    ``invkit.Probe``; its ``run`` receives the classifier, inverter, data and output folder. A probe that
    declares its options (a dataclass in ``Probe.options``) gets unknown ``--option`` keys refused for it.
    """


@hookspec
def register_channels(register: Register) -> None:
    """Register observation channels (``invkit.core.channels``): what an inverter sees of a classifier's output.

    Called once, the first time any channel is looked up or listed. ``register("name", factory,
    description="...", options=OptionsDataclass)``; ``factory(**options)`` returns an ``invkit.Channel``. A spec
    ``name:VALUE`` sets the first field of ``options``; invkit checks its type before the factory runs.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``invkit`` command line.

    Called once when the CLI starts, with the top-level ``click.Group``; use ``@cli.command()`` to add
    commands. A command should raise ``click.ClickException`` (one line) for bad input.
    """


HOOK_NAMES: tuple[str, ...] = (
    "register_classifiers",
    "register_inverters",
    "register_probes",
    "register_channels",
    "register_commands",
)
