"""Head types: the contract (`HeadType`) and the built-in intent, sentiment and NER heads."""

from mtl_registry.heads.base import HeadConfig, HeadType, MLPHead

__all__ = ["HeadConfig", "HeadType", "MLPHead"]
