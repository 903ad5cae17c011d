"""GradNorm (Chen et al. 2018): task weights learnt so gradient norms follow training rates.

On a chosen shared layer W, G_t = ‖∇_W w_t·L_t‖. With r_t = L̃_t / mean(L̃), L̃_t = L_t / L_t(0),
the target is Ḡ·r_t^α (held constant), and the weights descend L_grad = Σ_t |G_t − Ḡ·r_t^α|:
a task whose loss falls slower than the others (large r_t) is pushed to a larger weight.

The network is updated by the weighted task loss Σ_t w_t·L_t only, and the weights by L_grad
only. Because w_t > 0, G_t = w_t·‖∇_W L_t‖ exactly, so L_grad needs only the per-task norms
(already measured by the batched probe), not a second-order graph through the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from mtl_registry.strategies.base import SharedParameters, Strategy
from mtl_registry.strategies.gradients import TaskGradients

MIN_WEIGHT = 1e-3  # weights are clamped here before renormalising, so they stay positive


class GradNormOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(1.5, ge=0, description="asymmetry: how hard slow tasks are pushed")
    layer: str = Field(
        "last",
        min_length=1,
        description="'last' (the encoder's top block) or an encoder parameter "
        "name prefix, e.g. 'encoder.layer.3'",
    )


class GradNorm(Strategy):
    """Learned positive task weights summing to the number of tasks, balanced by gradient norms."""

    name = "gradnorm"
    Options = GradNormOptions

    def __init__(self, tasks: list[str], options: Mapping[str, Any] | None = None) -> None:
        super().__init__(tasks, options)
        self.task_weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.initial_losses: dict[str, float] = {}

    def probe(self, shared: SharedParameters) -> tuple[str, list[nn.Parameter]]:
        if self.options.layer == "last":
            return "last_layer", shared.last_layer
        return self.options.layer, shared.layer(self.options.layer)

    def fill_gradients(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters, grads: TaskGradients
    ) -> None:
        tasks = grads.tasks
        w = self.task_weights[[self.tasks.index(t) for t in tasks]]
        task_losses = torch.stack([losses[t] for t in tasks])
        (w.detach() * task_losses).sum().backward()  # the network sees the weighted task loss only

        for t, value in zip(tasks, task_losses.tolist()):
            self.initial_losses.setdefault(t, value)
        detached = task_losses.detach().to(w.device)
        start = torch.tensor([self.initial_losses[t] for t in tasks], device=w.device)
        rate = detached / start.clamp(min=1e-12)
        relative = rate / rate.mean().clamp(min=1e-12)
        norms = w * grads.norms.to(w.device, w.dtype)  # G_t, differentiable in w only
        target = (norms.mean() * relative**self.options.alpha).detach()
        gradnorm_loss = (norms - target).abs().sum()
        (self.task_weights.grad,) = torch.autograd.grad(gradnorm_loss, self.task_weights)

    def after_step(self) -> None:
        """Keep the weights positive and summing to the number of tasks, as the paper does."""
        with torch.no_grad():
            self.task_weights.clamp_(min=MIN_WEIGHT)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.task_weights.detach().tolist()))
