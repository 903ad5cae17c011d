"""Baselines the multi-task design is compared against."""

from mtl_registry.baselines.separate import SeparateModels, train_separate

__all__ = ["SeparateModels", "train_separate"]
