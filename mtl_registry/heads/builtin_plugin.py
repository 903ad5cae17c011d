"""The built-in plugin: registered through the package's own entry point, like any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtl_registry.heads.intent import IntentHead
from mtl_registry.heads.ner import NerHead
from mtl_registry.heads.sentiment import SentimentHead
from mtl_registry.hookspecs import hookimpl
from mtl_registry.strategies import EqualWeights, GradNorm, PCGrad, UncertaintyWeights


@hookimpl
def register_head_types(register: Callable[[Any], None]) -> None:
    for head_type in (IntentHead(), SentimentHead(), NerHead()):
        register(head_type)


@hookimpl
def register_strategies(register: Callable[[Any], None]) -> None:
    for strategy in (EqualWeights, UncertaintyWeights, GradNorm, PCGrad):
        register(strategy)
