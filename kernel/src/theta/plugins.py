"""The plugin manager: finds plugins through entry points and builds the registry.

Built-in features are plugins too, installed as their own distributions and found through
the same `theta` entry-point group as third-party ones; the kernel registers nothing by name.

Environment:
- `THETA_LOAD_PLUGINS`: comma-separated entry-point names; only these are loaded (an empty
  value loads none).
- `THETA_TRACE=1`: every hook call is logged to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy
from attrs import field, frozen

from theta import catalog, hookspecs
from theta.diffs import DiffRenderer
from theta.errors import PluginError, ThetaError
from theta.formats import CheckpointFormat
from theta.merges import MergeStrategy
from theta.updates import UpdateType

ENTRY_POINT_GROUP = "theta"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@frozen(kw_only=True)
class Kind:
    """One kind of registrable thing: the hook that registers it and the class it must be."""

    key: str
    hook: str
    base: type


KIND_NOUNS = {
    "formats": "checkpoint format",
    "update_types": "update type",
    "diff_renderers": "diff renderer",
    "merge_strategies": "merge strategy",
}
KINDS = (
    Kind(key="formats", hook="theta_register_formats", base=CheckpointFormat),
    Kind(key="update_types", hook="theta_register_update_types", base=UpdateType),
    Kind(key="diff_renderers", hook="theta_register_diff_renderers", base=DiffRenderer),
    Kind(key="merge_strategies", hook="theta_register_merge_strategies", base=MergeStrategy),
)


@frozen(kw_only=True)
class PluginRecord:
    """A plugin as `git theta plugins` shows it."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...] = ()
    error: str | None = None


@frozen(kw_only=True)
class Registration:
    name: str
    obj: Any
    plugin: str
    distribution: str


@frozen(kw_only=True)
class Registry:
    """Everything the loaded plugins registered, by kind and name.

    `problems` maps a plugin left out of the registry (its hook raised, it registered a bad
    object, or a name another plugin took first) to the reason.
    """

    entries: dict[str, dict[str, Registration]] = field(factory=dict)
    problems: dict[str, str] = field(factory=dict)
    load_errors: dict[str, tuple[str, str]] = field(factory=dict)

    def of(self, kind: str) -> dict[str, Any]:
        return {name: r.obj for name, r in self.entries.get(kind, {}).items()}

    @property
    def formats(self) -> dict[str, CheckpointFormat]:
        return self.of("formats")

    @property
    def update_types(self) -> dict[str, UpdateType]:
        return self.of("update_types")

    @property
    def diff_renderers(self) -> dict[str, DiffRenderer]:
        return self.of("diff_renderers")

    @property
    def merge_strategies(self) -> dict[str, MergeStrategy]:
        return self.of("merge_strategies")

    def owner(self, kind: str, name: str) -> str:
        return self.entries[kind][name].distribution

    def format(self, name: str, distribution: str | None = None) -> CheckpointFormat:
        """The format called `name`; `distribution` (from a metadata file) names the plugin to install."""
        return self.get("formats", name, distribution)

    def update_type(self, name: str) -> UpdateType:
        return self.get("update_types", name)

    def merge_strategy(self, name: str) -> MergeStrategy:
        return self.get("merge_strategies", name)

    def diff_renderer(self, name: str) -> DiffRenderer:
        return self.get("diff_renderers", name)

    def get(self, kind: str, name: str, distribution: str | None = None) -> Any:
        """The object of `kind` called `name`; an error naming the distribution to install when it is missing."""
        found = self.entries.get(kind, {}).get(name)
        if found is not None:
            return found.obj
        raise ThetaError(self.missing(kind, name, distribution))

    def missing(self, kind: str, name: str, distribution: str | None = None) -> str:
        """Why `name` is not available, and what to install: from the catalog the plugins declare."""
        what = KIND_NOUNS[kind]
        installed = ", ".join(sorted(self.entries.get(kind, {}))) or "none"
        wanted = distribution if distribution and not distribution.startswith("<") else catalog.provider(kind, name)
        broken = [
            f"plugin {plugin!r} ({dist}) is installed but failed: {reason}"
            for plugin, (dist, reason) in self.load_errors.items()
            if wanted is not None and dist == wanted
        ]
        if broken:
            return f"no {what} {name!r} is available: {'; '.join(broken)}. Installed: {installed}"
        if wanted is None:
            return (
                f"no {what} {name!r} is installed, and no known distribution provides it"
                f" (`git theta plugins` lists what is installed). Installed: {installed}"
            )
        return f"no {what} {name!r} is installed; install {wanted} (`pip install {wanted}`). Installed: {installed}"


class PluginManager:
    """Loads plugins and builds a `Registry`. Each instance is independent (tests make fresh ones)."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("theta")
        self._pm.add_hookspecs(hookspecs)
        self._records: dict[str, PluginRecord] = {}
        self._distributions: dict[str, tuple[str, str]] = {}
        self._registry: Registry | None = None
        self._trace = os.environ.get("THETA_TRACE", "") not in ("", "0")

    # -- loading ---------------------------------------------------------------------------

    def register(self, plugin: object, name: str, distribution: str = "<local>", version: str = "") -> None:
        """Register a plugin object (a module or an instance with hook implementations)."""
        self._pm.register(plugin, name=name)
        self._distributions[name] = (distribution, version)
        self._registry = None
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=name)
            raise PluginError(f"plugin {name!r} ({distribution}): {exc}") from None
        hooks = tuple(sorted(i.name for i in self._pm.get_hookcallers(plugin) or ()))
        self._records[name] = PluginRecord(name=name, distribution=distribution, version=version, hooks=hooks)

    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Import every plugin of the `theta` entry-point group that the allowlist admits.

        A plugin that fails to import is recorded with its error and skipped.
        """
        allow = os.environ.get("THETA_LOAD_PLUGINS")
        allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
        eps = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(eps, key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            if self._pm.get_plugin(ep.name) is not None:
                continue
            dist = ep.dist.name if ep.dist else "<unknown>"
            version = ep.dist.version if ep.dist else ""
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name, distribution=dist, version=version)
            except Exception as exc:
                self._records[ep.name] = PluginRecord(
                    name=ep.name, distribution=dist, version=version, error=f"{type(exc).__name__}: {exc}"
                )

    @property
    def records(self) -> list[PluginRecord]:
        return [self._records[k] for k in sorted(self._records)]

    # -- registry --------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        """Call every registration hook; a plugin that breaks a rule is left out, with the reason.

        Plugins are taken in name order; a name already registered by an earlier plugin makes
        the later one the one left out, so the result does not depend on installation order.
        """
        offered: dict[str, list[tuple[Kind, Registration]]] = {}
        problems: dict[str, str] = {}
        for kind in KINDS:
            for impl in getattr(self._pm.hook, kind.hook).get_hookimpls():
                if impl.plugin_name in problems:
                    continue
                collected = offered.setdefault(impl.plugin_name, [])
                try:
                    self._call(impl, kind.hook, self._registrar(kind, impl.plugin_name, collected))
                except PluginError as exc:
                    problems[impl.plugin_name] = str(exc)
                except Exception as exc:
                    problems[impl.plugin_name] = f"{kind.hook} raised {type(exc).__name__}: {exc}"
        entries: dict[str, dict[str, Registration]] = {kind.key: {} for kind in KINDS}
        for plugin in sorted(offered):
            if plugin in problems:
                continue
            taken = [(k, r) for k, r in offered[plugin] if r.name in entries[k.key]]
            if taken:
                kind, reg = taken[0]
                first = entries[kind.key][reg.name]
                problems[plugin] = (
                    f"{kind.base.__name__} {reg.name!r} is registered twice: by {first.distribution}"
                    f" (plugin {first.plugin!r}) and by {reg.distribution} (plugin {plugin!r}); the second is"
                    " left out: uninstall one of them"
                )
                continue
            for kind, reg in offered[plugin]:
                entries[kind.key][reg.name] = reg
        for plugin, reason in problems.items():
            print(f"theta: warning: plugin {plugin!r} is left out: {reason}", file=sys.stderr)
        load_errors = {r.name: (r.distribution, r.error) for r in self._records.values() if r.error is not None}
        load_errors.update({p: (self._distributions.get(p, ("<local>", ""))[0], why) for p, why in problems.items()})
        return Registry(entries=entries, problems=problems, load_errors=load_errors)

    def _registrar(self, kind: Kind, plugin_name: str, found: list[tuple[Kind, Registration]]) -> Callable[[Any], None]:
        distribution = self._distributions.get(plugin_name, ("<local>", ""))[0]

        def register(obj: Any) -> None:
            if not isinstance(obj, kind.base):
                raise PluginError(
                    f"plugin {plugin_name!r} ({distribution}) registered {obj!r} as one of the"
                    f" {kind.key}, but it is not a {kind.base.__name__}"
                )
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                raise PluginError(
                    f"plugin {plugin_name!r} ({distribution}) registered a {kind.base.__name__}"
                    f" with an invalid name {name!r} (lower-case letters, digits, '.', '_', '-')"
                )
            if any(k is kind and r.name == name for k, r in found):
                raise PluginError(
                    f"plugin {plugin_name!r} ({distribution}) registered {kind.base.__name__} {name!r} twice"
                )
            found.append((kind, Registration(name=name, obj=obj, plugin=plugin_name, distribution=distribution)))

        return register

    def _call(self, impl: pluggy.HookImpl, hook: str, register: Callable[[Any], None]) -> None:
        if self._trace:
            print(f"theta: trace: {hook} -> {impl.plugin_name}", file=sys.stderr)
        kwargs = {"register": register}
        impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})


def default_manager() -> PluginManager:
    """A manager with every installed plugin loaded."""
    manager = PluginManager()
    manager.load_entry_points()
    return manager
