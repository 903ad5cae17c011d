"""The plugin hooks. A plugin implements any of them with `@hookimpl`.

Each hook receives a `register` callback: call it once per thing you provide. The host
validates what you register and records which distribution it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "mtl_registry"
PLUGIN_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_head_types(register: Callable[[Any], None]) -> None:
    """Call register(head_type) for each HeadType instance this plugin provides."""


@hookspec
def register_strategies(register: Callable[[Any], None]) -> None:
    """Call register(strategy_class) for each loss-balancing Strategy subclass this plugin provides."""
