"""Loss-balancing strategies, looked up by name through the plugin host."""

from mtl_registry.strategies.base import SharedParameters, Strategy
from mtl_registry.strategies.simple import EqualWeights, UncertaintyWeights

__all__ = ["EqualWeights", "SharedParameters", "Strategy", "UncertaintyWeights"]
