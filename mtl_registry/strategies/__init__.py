"""Loss-balancing strategies, looked up by name through the plugin host."""

from mtl_registry.strategies.base import SharedParameters, Strategy
from mtl_registry.strategies.conflicts import ConflictTally, GradientStats
from mtl_registry.strategies.gradients import TaskGradients, task_gradients
from mtl_registry.strategies.gradnorm import GradNorm
from mtl_registry.strategies.pcgrad import PCGrad
from mtl_registry.strategies.simple import EqualWeights, UncertaintyWeights

__all__ = [
    "ConflictTally",
    "EqualWeights",
    "GradNorm",
    "GradientStats",
    "PCGrad",
    "SharedParameters",
    "Strategy",
    "TaskGradients",
    "UncertaintyWeights",
    "task_gradients",
]
