"""Loading the active heads for prediction and serving, and swapping them live."""

from mtl_registry.runtime.predictor import HeadSet, RegistryWatcher, Runtime, load_heads

__all__ = ["HeadSet", "RegistryWatcher", "Runtime", "load_heads"]
