"""Strategies that only weight the losses: one backward pass over their weighted sum."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mtl_registry.strategies.base import SharedParameters, Strategy
from mtl_registry.strategies.gradients import TaskGradients


class EqualWeights(Strategy):
    """Every task's loss counts once."""

    name = "equal"

    def fill_gradients(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters, grads: TaskGradients
    ) -> None:
        torch.stack(list(losses.values())).sum().backward()

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.tasks, 1.0)


class UncertaintyWeights(Strategy):
    """Kendall et al. 2018: a learned log-variance s_t per task, 0.5·exp(-s_t)·L_t + 0.5·s_t."""

    name = "uncertainty"

    def __init__(self, tasks: list[str], options: Mapping[str, object] | None = None) -> None:
        super().__init__(tasks, options)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        s = self.log_vars
        return torch.stack(
            [
                0.5 * torch.exp(-s[i]) * losses[t] + 0.5 * s[i]
                for i, t in enumerate(self.tasks)
                if t in losses
            ]
        ).sum()

    def fill_gradients(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters, grads: TaskGradients
    ) -> None:
        self.combine(losses).backward()

    def weights(self) -> dict[str, float]:
        w = (0.5 * torch.exp(-self.log_vars.detach())).tolist()
        return dict(zip(self.tasks, w))
