"""The plugin hooks. A plugin implements any of them with `@hookimpl`.

Each hook receives a `register` callback: call it once per thing you provide. The host
validates what you register (`mtl_registry.plugin_specs`) and records which distribution
it came from. A plugin states the API it was written for with a module attribute
`MTLREG_PLUGIN_API = 1`; without one the host assumes 1. See docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "mtl_registry"
PLUGIN_API_VERSION = 1
"""The plugin API this host implements; bumped when a hook or the HeadType contract changes
incompatibly."""
SUPPORTED_PLUGIN_API_VERSIONS = frozenset({1})
"""The declared versions this host still loads; anything else is refused."""
API_VERSION_ATTRIBUTE = "MTLREG_PLUGIN_API"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_head_types(register: Callable[[Any], None]) -> None:
    """Call register(head_type) for each HeadType instance this plugin provides."""


@hookspec
def register_strategies(register: Callable[[Any], None]) -> None:
    """Call register(strategy_class) for each loss-balancing Strategy subclass provided."""
