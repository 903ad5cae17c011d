"""How task losses become gradients. The trainer knows only this interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class SharedParameters:
    """The encoder parameters every task shares, and the layer GradNorm measures on."""

    all: list[nn.Parameter]
    last_layer: list[nn.Parameter]


class Strategy(nn.Module, ABC):
    """Turns per-task losses into `.grad` on every parameter, once per step.

    A strategy may own learnable parameters (they get their own optimiser group), and
    reports the weight it gave each task so the step log can show it.
    """

    name: ClassVar[str]

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    @abstractmethod
    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None:
        """Fill `.grad` of the model (and of this strategy's own parameters)."""

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """The weight each task's loss has right now."""

    def after_step(self) -> None:
        """Hook for strategies that renormalise or update state after the optimiser step."""
