"""Joint multi-task training, head-only retraining, and adding tasks."""

from mtl_registry.training.config import TaskSpec, TrainConfig
from mtl_registry.training.joint import TrainResult, train

__all__ = ["TaskSpec", "TrainConfig", "TrainResult", "train"]
