"""Finds head types and strategies: entry points of group `mtl_registry`, loaded one by one.

A plugin that fails to import, declares an unsupported plugin API or registers something
invalid is reported and skipped, so one broken package never takes the host down;
`MTLREG_STRICT_PLUGINS=1` turns that into an error. `MTLREG_LOAD_PLUGINS=dist-a,dist-b`
loads only those distributions (plus the built-in one), like simonw/llm's LLM_LOAD_PLUGINS.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Literal

import pluggy

from mtl_registry import hookspecs
from mtl_registry.errors import PluginError
from mtl_registry.heads.base import HeadType
from mtl_registry.plugin_specs import declared_api_version, validate_head_type, validate_strategy
from mtl_registry.registry.manifests import PluginRef
from mtl_registry.strategies.base import Strategy

HOST_DISTRIBUTION = "mtl-registry"
STRICT_ENV = "MTLREG_STRICT_PLUGINS"
LOAD_ENV = "MTLREG_LOAD_PLUGINS"


def canonical_name(distribution: str) -> str:
    """PEP 503 normalisation, so `My_Heads` and `my-heads` name the same distribution."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


@dataclass
class PluginInfo:
    """What the host knows about one plugin, for `mtlreg plugins`."""

    name: str
    distribution: str
    version: str
    status: Literal["loaded", "failed", "disabled"] = "loaded"
    error: str | None = None
    head_types: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    api_version: int | None = None
    entry_point: str | None = None
    location: str | None = None

    @property
    def ref(self) -> PluginRef:
        return PluginRef(name=self.distribution, version=self.version)


def _location(plugin: Any) -> str | None:
    """The file the plugin's code came from: tells an editable install from a site-packages one."""
    module = plugin if inspect.ismodule(plugin) else sys.modules.get(type(plugin).__module__)
    return getattr(module, "__file__", None)


class PluginHost:
    """The pluggy manager plus the validated catalogue of what plugins registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._head_types: dict[str, tuple[HeadType, PluginInfo]] = {}
        self._strategies: dict[str, tuple[type[Strategy], PluginInfo]] = {}

    @property
    def strict(self) -> bool:
        return os.environ.get(STRICT_ENV, "") not in ("", "0")

    @staticmethod
    def chosen_distributions() -> set[str] | None:
        """The distributions `MTLREG_LOAD_PLUGINS` asks for; None when it is unset (load all)."""
        wanted = os.environ.get(LOAD_ENV)
        if wanted is None:
            return None
        return {canonical_name(n.strip()) for n in wanted.split(",") if n.strip()}

    def load_entry_points(self) -> None:
        chosen = self.chosen_distributions()
        for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else "0"
            if chosen is not None and canonical_name(dist) not in chosen | {HOST_DISTRIBUTION}:
                self.plugins.setdefault(
                    ep.name,
                    PluginInfo(
                        ep.name,
                        dist,
                        version,
                        status="disabled",
                        error=f"not listed in {LOAD_ENV}",
                        entry_point=ep.value,
                    ),
                )
                continue
            self._guarded(ep.name, dist, version, ep.load, entry_point=ep.value)

    def add_plugin(self, plugin: Any, name: str, distribution: str, version: str = "0") -> None:
        """Register an in-process plugin object or module (tests, notebooks): same checks as
        an installed one."""
        self._guarded(name, distribution, version, lambda: plugin)

    def _guarded(
        self,
        name: str,
        dist: str,
        version: str,
        load: Callable[[], Any],
        entry_point: str | None = None,
    ) -> None:
        taken = self.plugins.get(name)
        owner = taken.distribution if taken and self.pm.get_plugin(name) is not None else None
        info = PluginInfo(name=name, distribution=dist, version=version, entry_point=entry_point)
        self.plugins[f"{dist}:{name}" if owner else name] = info  # never hide the loaded one
        plugin = None
        try:
            if owner:
                raise PluginError(f"plugin name '{name}' is already taken by {owner}")
            plugin = load()
            info.location = _location(plugin)
            info.api_version = declared_api_version(plugin)
            self.pm.register(plugin, name=name)
            self._check_hooks(plugin)
            self._collect(name, info)
        except Exception as exc:  # a broken plugin is reported, never fatal by default
            if plugin is not None and self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
            for names, table in (
                (info.head_types, self._head_types),
                (info.strategies, self._strategies),
            ):
                for key in names:
                    if table.get(key, (None, None))[1] is info:
                        table.pop(key)
                names.clear()
            message = f"plugin '{name}' from {dist} {version} skipped: {info.error}"
            if self.strict:
                raise PluginError(message) from exc
            warnings.warn(message, stacklevel=2)

    def _check_hooks(self, plugin: Any) -> None:
        """A misspelt hook or a missing @hookimpl would otherwise do nothing, silently."""
        callers = self.pm.get_hookcallers(plugin) or []
        known = sorted(
            c.name
            for c in self.pm.hook.__dict__.values()
            if isinstance(c, pluggy.HookCaller) and c.has_spec()
        )
        unknown = sorted(c.name for c in callers if not c.has_spec())
        if unknown:
            raise PluginError(f"implements unknown hook(s) {unknown}; the hooks are {known}")
        if not callers:
            raise PluginError(
                f"implements no hook: mark one of {known} with "
                "@hookimpl from mtl_registry.hookspecs"
            )

    def _collect(self, name: str, info: PluginInfo) -> None:
        """Call this one plugin's hook implementations, attributing what they register to it."""

        def register_head_type(head_type: Any) -> None:
            spec = validate_head_type(head_type)
            self._claim(self._head_types, spec.name, head_type, info)
            info.head_types.append(spec.name)

        def register_strategy(strategy: Any) -> None:
            spec = validate_strategy(strategy)
            self._claim(self._strategies, spec.name, strategy, info)
            info.strategies.append(spec.name)

        for hook, register in (
            (self.pm.hook.register_head_types, register_head_type),
            (self.pm.hook.register_strategies, register_strategy),
        ):
            for impl in hook.get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=register)

    @staticmethod
    def _claim(table: dict[str, Any], key: str, value: Any, info: PluginInfo) -> None:
        if key in table:
            other = table[key][1]
            if other is info:
                raise PluginError(f"'{key}' is registered twice by {info.distribution}")
            raise PluginError(
                f"'{key}' is registered by both {other.distribution} and {info.distribution}"
            )
        table[key] = (value, info)

    def head_type(self, name: str, plugin: PluginRef | None = None) -> tuple[HeadType, PluginRef]:
        """The head type called `name`. `plugin` is the distribution a stored head recorded:
        when it is missing the error says what to install."""
        if name not in self._head_types:
            if plugin is not None:
                raise PluginError(
                    f"head type '{name}' comes from the plugin package {plugin.name} "
                    f"(version {plugin.version}), which is not installed: pip install {plugin.name}"
                )
            raise PluginError(f"unknown head type '{name}'; installed: {sorted(self._head_types)}")
        head_type, info = self._head_types[name]
        if plugin is not None and canonical_name(plugin.name) != canonical_name(info.distribution):
            warnings.warn(
                f"head type '{name}' was built with {plugin.name} {plugin.version}; "
                f"using the one from {info.distribution} {info.version}",
                stacklevel=2,
            )
        return head_type, info.ref

    def strategy(self, name: str) -> type[Strategy]:
        if name not in self._strategies:
            raise PluginError(f"unknown strategy '{name}'; installed: {sorted(self._strategies)}")
        return self._strategies[name][0]

    @property
    def head_type_names(self) -> list[str]:
        return sorted(self._head_types)

    @property
    def strategy_names(self) -> list[str]:
        return sorted(self._strategies)

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin the host saw, JSON-ready: what `mtlreg plugins` prints."""
        out = []
        for _, info in sorted(self.plugins.items()):
            heads = [
                validate_head_type(self._head_types[n][0]).model_dump() for n in info.head_types
            ]
            out.append(
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "status": info.status,
                    "error": info.error,
                    "api_version": info.api_version,
                    "entry_point": info.entry_point,
                    "location": info.location,
                    "head_types": heads,
                    "strategies": list(info.strategies),
                }
            )
        return out


@lru_cache(maxsize=1)
def host() -> PluginHost:
    """The process-wide host, loaded from installed entry points on first use.
    `host.cache_clear()` forgets it (and any in-process plugins): the next call reloads."""
    h = PluginHost()
    h.load_entry_points()
    return h
