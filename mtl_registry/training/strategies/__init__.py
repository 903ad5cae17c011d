"""Loss-balancing strategies, looked up by name through the plugin host."""

from mtl_registry.training.strategies.base import SharedParameters, Strategy
from mtl_registry.training.strategies.simple import EqualWeights, UncertaintyWeights

__all__ = ["EqualWeights", "SharedParameters", "Strategy", "UncertaintyWeights"]
