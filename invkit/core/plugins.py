"""Plugin discovery: one pluggy manager, fed by the ``invkit`` entry-point group.

``get_plugin_manager()`` loads every installed plugin once (built-in ones included, from invkit's own entry
points) and the three registries are filled lazily from the hooks. A plugin that fails to import or to
register, or whose ``register_*`` hook raises, is skipped with a warning naming it (and listed by
``failed_plugins``), so one broken third-party package never takes the whole tool down. A hook that raises
contributes none of its names: a half-registered plugin would be harder to understand than a missing one.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from .. import hookspecs
from ..errors import InputError, InvkitError, short_message
from .registry import Registry

ENTRY_POINT_GROUP = "invkit"


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from, for ``invkit plugins``."""

    name: str
    module: str
    distribution: str  # "name version", or "(registered at run time)"
    hooks: tuple[str, ...]


class _State:
    pm: pluggy.PluginManager | None = None
    registries: dict[str, Registry] = {}
    failed: dict[str, str] = {}
    dists: dict[str, str] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every entry-point plugin loaded."""
    if _State.pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break invkit
                _State.failed[ep.name] = f"failed to load: {type(exc).__name__}: {short_message(exc)}"
                warnings.warn(
                    f"invkit plugin '{ep.name}' ({ep.value}) failed to load and is skipped: {short_message(exc)}",
                    stacklevel=2,
                )
                continue
            try:
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - e.g. a hook with arguments its hookspec does not have
                _skip(ep.name, "could not be registered", exc)
                continue
            dist = getattr(ep, "dist", None)
            if dist is not None:
                _State.dists[ep.name] = f"{dist.metadata['Name']} {dist.version}"
        _State.pm = pm
    return _State.pm


def _skip(name: str, what: str, exc: BaseException) -> None:
    """Record a plugin that is left out, and warn naming it."""
    message = f"{type(exc).__name__}: {short_message(exc)}"
    _State.failed[name] = f"{what}: {message}" if name not in _State.failed else _State.failed[name]
    warnings.warn(f"invkit plugin '{name}' {what} and is skipped: {message}", stacklevel=3)


def call_hook_per_plugin(hook_name: str, **kwargs: Any) -> None:
    """Call ``hook_name`` on each plugin on its own; a plugin whose hook raises is skipped with a warning."""
    for impl in reversed(getattr(get_plugin_manager().hook, hook_name).get_hookimpls()):
        try:
            impl.function(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break unrelated commands
            _skip(impl.plugin_name, f"failed in its {hook_name} hook", exc)


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin module or object at run time (for library use and tests).

    Registries already built are rebuilt, so the new names show up at once.
    """
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    _State.registries.clear()


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _State.registries.clear()


def reset() -> None:
    """Forget every loaded plugin; the next lookup reloads the entry points (tests use this)."""
    _State.pm = None
    _State.registries = {}
    _State.failed = {}
    _State.dists = {}


def _fill(kind: str, hook_name: str) -> Registry:
    registry = Registry(kind)
    pm = get_plugin_manager()
    hook = getattr(pm.hook, hook_name)
    # Call each implementation on its own so that every name records which plugin registered it, and so that a
    # hook that raises (or registers an invalid name) is skipped whole, with a warning, without the others.
    for impl in reversed(hook.get_hookimpls()):
        names: list[tuple[str, Any, str, Any]] = []

        def register(name: str, factory: Any, description: str = "", options: Any = None, _names: list = names) -> None:
            registry.check_name(name)
            if not callable(factory):
                raise InvkitError(f"the factory registered for {kind} '{name}' is not callable")
            if options is not None and not dataclasses.is_dataclass(options):
                raise InvkitError(f"the options registered for {kind} '{name}' must be a dataclass (class or instance)")
            _names.append((name, factory, description, options))

        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break unrelated commands
            _skip(impl.plugin_name, f"failed in its {hook_name} hook", exc)
            continue
        for name, factory, description, options in names:
            registry.register(name, factory, plugin=impl.plugin_name, description=description, options=options)
    return registry


_REGISTER_HOOKS = {
    "classifier": "register_classifiers",
    "inverter": "register_inverters",
    "probe": "register_probes",
    "channel": "register_channels",
}


def get_registry(kind: str) -> Registry:
    """The registry of one kind of object, filled from the plugins' ``register_*`` hooks on first use.

    Args:
        kind: ``classifier``, ``inverter``, ``probe`` or ``channel`` (singular).

    Raises:
        InputError: any other ``kind``; the message names the four kinds.
    """
    if not isinstance(kind, str) or kind not in _REGISTER_HOOKS:
        raise InputError(
            f"unknown registry kind {kind!r}; use one of {', '.join(map(repr, _REGISTER_HOOKS))} (singular)."
        )
    if kind not in _State.registries:
        _State.registries[kind] = _fill(kind, _REGISTER_HOOKS[kind])
    return _State.registries[kind]


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with its module, distribution and the hooks it implements."""
    pm = get_plugin_manager()
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
        hooks = tuple(h.name for h in pm.get_hookcallers(plugin) or [])
        infos.append(PluginInfo(name, module, _State.dists.get(name, "(registered at run time)"), hooks))
    return sorted(infos, key=lambda i: i.name)


def failed_plugins() -> dict[str, str]:
    """Plugins left out (failed to import or register, or a hook raised), with what went wrong.

    Fills the four registries first, so that a ``register_*`` hook that raises is found too.
    """
    for kind in _REGISTER_HOOKS:
        get_registry(kind)
    return dict(_State.failed)


def plugin_cache_dir(plugin: str, *, create: bool = True) -> Path:
    """The folder where a plugin keeps downloads and files it derives: ``<cache>/plugins/<plugin>``.

    ``<cache>`` is invkit's cache, ``$INVKIT_CACHE`` or else ``~/.cache/invkit`` (docs/data.md), so one
    environment variable moves every plugin's files with invkit's own, and tests that point it at a
    temporary folder isolate plugins too.

    Args:
        plugin: the plugin's name (its entry-point name, e.g. ``prototypes``); letters, digits, ``.``, ``_``, ``-``.
        create: create the folder (and its parents) if missing.

    Raises:
        InvkitError: a name that is empty or would leave the cache (``/``, ``..``).
    """
    from ..data.cache import cache_dir

    if not plugin or plugin in (".", "..") or not all(c.isalnum() or c in "._-" for c in plugin):
        raise InvkitError(
            f"plugin cache name '{plugin}' is not a plain name; use the plugin's entry-point name "
            "(letters, digits, '.', '_', '-')."
        )
    folder = cache_dir() / "plugins" / plugin
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
