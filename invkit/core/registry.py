"""Name registries for classifiers, inverters and probes.

Names are ``name.tag`` (``resnet152.tv_in1k``, ``robust_resnet50.l2_eps3``): the architecture or method, then
which weights or preset. A bare ``name`` means that name's default tag, the first one registered. Listing
takes shell wildcards (``resnet*``, ``*.tv_in1k``). Unknown names fail with the closest registered names. A name
that two plugins register is kept aside as a conflict: using it fails with ``AmbiguousNameError`` naming both
plugins, and every other name works as usual. (Design after timm's ``_registry.py``.)
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AmbiguousNameError, InvkitError, UnknownNameError
from ..utils.config import check_options

# Factory arguments that are not options, taken beside the declared ones (docs/plugins.md, sections 3 and 4).
FACTORY_ARGS = {"classifier": ("pretrained", "weights"), "inverter": ("classifier",), "probe": ()}


@dataclass(frozen=True)
class Entry:
    """One registered name.

    Attributes:
        name: the full ``name.tag``.
        factory: called with keyword arguments to build the object.
        kind: ``classifier``, ``inverter`` or ``probe``.
        plugin: name of the plugin that registered it (the entry-point name for installed plugins).
        description: one line shown by ``invkit list``.
        options: the dataclass (class or instance) declaring the options the factory takes, given as
            ``register(..., options=...)``; for a probe registered as its class, the class' ``options``. None:
            the factory gets every keyword unchecked.
    """

    name: str
    factory: Callable[..., Any]
    kind: str
    plugin: str
    description: str = ""
    options: Any = None

    def declared_options(self) -> Any:
        """The options dataclass of this name (see ``options``), or None when it declares none."""
        if self.options is not None:
            return self.options
        declared = getattr(self.factory, "options", None) if isinstance(self.factory, type) else None
        return declared if declared is not None and dataclasses.is_dataclass(declared) else None

    def checkpoint_legacy(self) -> dict[str, Any]:
        """Config fields added after checkpoints (or kept reconstructions) of this name were first written, with the
        value those were made with: the options dataclass's ``checkpoint_legacy`` ClassVar, ``{}`` when it has none.
        ``load_inverter``, ``build_inverter`` (resumed runs) and ``ReconCache`` read records through it."""
        return dict(getattr(self.declared_options(), "checkpoint_legacy", {}))

    def build(self, **kwargs: Any) -> Any:
        """Call the factory, its options checked first (``invkit.utils.config.check_options``) when it declares them.

        ``create_classifier``, ``create_inverter``, ``create_probe`` and ``load_classifier``/``load_inverter`` (with
        the values a ``config.json`` stores) build through here, so a plugin never checks option names or types.
        The factory's own arguments (``FACTORY_ARGS``: ``classifier``; ``pretrained``, ``weights``) pass unchecked.

        Raises:
            InputError: a key the options do not declare (with the closest names), or a value of the wrong type,
                NaN/inf, or (inverters and classifiers) a negative size or rate; nothing is built.
        """
        declared = self.declared_options()
        if declared is not None:
            kwargs = check_options(
                declared, kwargs, self.name, signs=self.kind != "probe", accept=FACTORY_ARGS.get(self.kind, ())
            )
        return self.factory(**kwargs)

    @property
    def base(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else ""


class Registry:
    """Maps ``name.tag`` to factories for one kind of object."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._defaults: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}  # name -> every plugin that registered it

    def conflicts(self) -> dict[str, list[str]]:
        """Names registered by more than one plugin, with those plugins in registration order."""
        return {k: list(v) for k, v in self._conflicts.items()}

    def check_name(self, name: str) -> None:
        """Raise ``InvkitError`` unless ``name`` is ``name`` or ``name.tag`` without wildcards or spaces."""
        if (
            not isinstance(name, str)
            or not name
            or name != name.strip()
            or name.count(".") > 1
            or any(c in name for c in "*?[] ")
        ):
            raise InvkitError(f"invalid {self.kind} name {name!r}: use 'name' or 'name.tag' without wildcards.")

    def register(
        self, name: str, factory: Callable[..., Any], *, plugin: str = "?", description: str = "", options: Any = None
    ) -> None:
        """Add ``name``; a name another plugin already registered becomes a conflict (see ``conflicts``).

        Raises:
            InvkitError: an invalid name, or ``options`` that is neither None nor a dataclass (class or instance).
        """
        self.check_name(name)
        if options is not None and not dataclasses.is_dataclass(options):
            raise InvkitError(
                f"the options registered for {self.kind} '{name}' must be a dataclass (its fields are the options), "
                f"got {type(options).__name__}."
            )
        if name in self._entries and self._entries[name].plugin != plugin:
            holders = self._conflicts.setdefault(name, [self._entries[name].plugin])
            if plugin not in holders:
                holders.append(plugin)
            return
        entry = Entry(
            name=name, factory=factory, kind=self.kind, plugin=plugin, description=description, options=options
        )
        self._entries[name] = entry
        self._defaults.setdefault(entry.base, name)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered full names matching a shell wildcard, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern) or n.split(".")[0] == pattern)

    def entries(self, pattern: str = "*") -> list[Entry]:
        """Entries matching a wildcard; a conflicting name shows every plugin that registered it."""
        out = []
        for n in self.names(pattern):
            entry = self._entries[n]
            if n in self._conflicts:
                entry = dataclasses.replace(entry, plugin=" & ".join(self._conflicts[n]) + " (conflict)")
            out.append(entry)
        return out

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except UnknownNameError:
            return False
        except AmbiguousNameError:
            return True
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, name: str) -> Entry:
        """The entry for a full name, or for a bare name's default tag.

        Raises:
            UnknownNameError: no plugin registered the name (with the closest names).
            AmbiguousNameError: several plugins registered it.
        """
        full = name if name in self._entries else self._defaults.get(name)
        if full is not None:
            if full in self._conflicts:
                raise AmbiguousNameError(self.kind, full, self._conflicts[full])
            return self._entries[full]
        # A name without a tag is both an entry and its own default: count every candidate once.
        candidates = list(dict.fromkeys([*self._entries, *self._defaults]))
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
        if not close:  # also match on the part before the tag: 'resnet15.tv_in1k' -> resnet152.*
            base = name.split(".", 1)[0]
            close = [self._defaults[b] for b in difflib.get_close_matches(base, list(self._defaults), n=3)]
        raise UnknownNameError(self.kind, name, list(dict.fromkeys(close)))

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.resolve(name).build(**kwargs)

    def infer_name(self, obj: Any) -> str | None:
        """The one registered name whose factory builds objects like ``obj``, or None when none or several do.

        A factory matches when it is ``obj``'s class (or a base of it), or when it is defined in the module
        that defines ``obj``'s class or, for a classifier, its ``network``'s class: the usual plugin layout of
        a factory function next to the class it builds. Used to name objects built without the registry.
        """
        modules = {type(obj).__module__}
        if getattr(obj, "network", None) is not None:
            modules.add(type(obj.network).__module__)
        hits = []
        for entry in self._entries.values():
            f = entry.factory
            if (isinstance(f, type) and isinstance(obj, f)) or getattr(f, "__module__", None) in modules:
                hits.append(entry.name)
        return hits[0] if len(hits) == 1 else None
