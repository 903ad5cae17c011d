"""The entry point (`[project.entry-points.mtl_registry] ordinal = "mtl_ordinal_head.plugin"`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtl_ordinal_head.head import OrdinalHead
from mtl_registry.hookspecs import hookimpl

MTLREG_PLUGIN_API = 1


@hookimpl
def register_head_types(register: Callable[[Any], None]) -> None:
    register(OrdinalHead())
