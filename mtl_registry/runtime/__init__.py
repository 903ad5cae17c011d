"""Loading the active heads for prediction and serving."""

from mtl_registry.runtime.predictor import HeadSet, Predictor, load_heads

__all__ = ["HeadSet", "Predictor", "load_heads"]
