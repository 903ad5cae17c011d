"""Finds head types and strategies: entry points of group `mtl_registry`, loaded one by one.

A plugin that fails to import or to register is reported and skipped, so one broken
package never takes the host down; `MTLREG_STRICT_PLUGINS=1` turns that into an error.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from mtl_registry import hookspecs
from mtl_registry.errors import PluginError
from mtl_registry.heads.base import HeadType
from mtl_registry.registry.manifests import PluginRef
from mtl_registry.strategies.base import Strategy


@dataclass
class PluginInfo:
    """What the host knows about one plugin, for `mtlreg plugins`."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"
    error: str | None = None
    head_types: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)

    @property
    def ref(self) -> PluginRef:
        return PluginRef(name=self.distribution, version=self.version)


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
        return os.environ.get("MTLREG_STRICT_PLUGINS", "") not in ("", "0")

    def load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else "0"
            self._guarded(ep.name, dist, version, lambda ep=ep: ep.load())

    def add_plugin(self, plugin: Any, name: str, distribution: str, version: str = "0") -> None:
        """Register an in-process plugin object or module (tests, notebooks)."""
        self._guarded(name, distribution, version, lambda: plugin)

    def _guarded(self, name: str, dist: str, version: str, load: Any) -> None:
        info = PluginInfo(name=name, distribution=dist, version=version)
        self.plugins[name] = info
        plugin = None
        try:
            plugin = load()
            self.pm.register(plugin, name=name)
            self._collect(name, info)
        except Exception as exc:  # a broken plugin is reported, never fatal by default
            if plugin is not None and self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
            for kind, registry in (("head_types", self._head_types), ("strategies", self._strategies)):
                for key in getattr(info, kind):
                    registry.pop(key, None)
                getattr(info, kind).clear()
            message = f"plugin '{name}' from {dist} {version} skipped: {info.error}"
            if self.strict:
                raise PluginError(message) from exc
            warnings.warn(message, stacklevel=2)

    def _collect(self, name: str, info: PluginInfo) -> None:
        """Call this one plugin's hook implementations, attributing what they register to it."""

        def register_head_type(head_type: Any) -> None:
            if not isinstance(head_type, HeadType):
                raise PluginError(f"register_head_types got {head_type!r}, not a HeadType instance")
            self._claim(self._head_types, head_type.name, head_type, info)
            info.head_types.append(head_type.name)

        def register_strategy(strategy: Any) -> None:
            if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
                raise PluginError(f"register_strategies got {strategy!r}, not a Strategy subclass")
            self._claim(self._strategies, strategy.name, strategy, info)
            info.strategies.append(strategy.name)

        for hook, register in ((self.pm.hook.register_head_types, register_head_type),
                               (self.pm.hook.register_strategies, register_strategy)):
            for impl in hook.get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=register)

    @staticmethod
    def _claim(table: dict[str, Any], key: str, value: Any, info: PluginInfo) -> None:
        if key in table and table[key][1] is not info:
            other = table[key][1]
            raise PluginError(f"'{key}' is registered by both {other.distribution} and {info.distribution}")
        table[key] = (value, info)

    def head_type(self, name: str, plugin: PluginRef | None = None) -> tuple[HeadType, PluginRef]:
        if name not in self._head_types:
            if plugin is not None:
                raise PluginError(
                    f"head type '{name}' comes from the plugin package {plugin.name} "
                    f"(version {plugin.version}), which is not installed: pip install {plugin.name}"
                )
            raise PluginError(f"unknown head type '{name}'; installed: {sorted(self._head_types)}")
        head_type, info = self._head_types[name]
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


@lru_cache(maxsize=1)
def host() -> PluginHost:
    """The process-wide host, loaded from installed entry points on first use."""
    h = PluginHost()
    h.load_entry_points()
    return h

