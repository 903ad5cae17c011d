"""Joint multi-task training and its loss-balancing strategies."""

from mtl_registry.training.config import TaskSpec, TrainConfig
from mtl_registry.training.trainer import TrainResult, train

__all__ = ["TaskSpec", "TrainConfig", "TrainResult", "train"]
