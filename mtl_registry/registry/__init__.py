"""Versioned storage of encoders and heads, with active pointers and history."""

from mtl_registry.registry.manifests import (
    ActiveState,
    DataRef,
    EncoderManifest,
    HeadDraft,
    HeadManifest,
    HistoryEntry,
    PluginRef,
)
from mtl_registry.registry.store import HEAD_WEIGHTS, Registry

__all__ = [
    "HEAD_WEIGHTS",
    "ActiveState",
    "DataRef",
    "EncoderManifest",
    "HeadDraft",
    "HeadManifest",
    "HistoryEntry",
    "PluginRef",
    "Registry",
]
