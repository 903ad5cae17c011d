"""Training options, stored with every head they produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mtl_registry.heads.base import HeadConfig


class TaskSpec(BaseModel):
    """A task to train: its name, its head type, and where its data lives."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    head_type: str
    data: Path


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = "uncertainty"
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0, description="encoder learning rate")
    head_lr: float = Field(1e-3, gt=0)
    strategy_lr: float = Field(1e-2, gt=0, description="for a strategy's own parameters")
    strategy_options: dict[str, Any] = Field(
        default_factory=dict, description="passed to the strategy, which validates them"
    )
    weight_decay: float = 0.01
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = 1.0
    max_length: int = Field(128, ge=8)
    eval_batch_size: int = 64
    seed: int = 0
    head: HeadConfig = Field(default_factory=HeadConfig)
