"""PCGrad (Yu et al. 2020): remove the conflicting component of each task's gradient.

For each task i, g_i^PC starts as g_i and, for every other task j in a random order, loses its
projection on the ORIGINAL g_j when g_i^PC · g_j < 0. The shared update is Σ_i g_i^PC. Every
g_i^PC stays a linear combination of the original gradients, so the update is Σ_t c_t g_t with
coefficients computed from the T×T Gram matrix alone, over the whole flattened shared gradient.
The encoder gets that update once per step; each head gets its own task's gradient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mtl_registry.strategies.base import SharedParameters, Strategy
from mtl_registry.strategies.gradients import TaskGradients


def pcgrad_coefficients(gram: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """c such that Σ_t c_t g_t is the PCGrad update, given G[i, j] = g_i · g_j.

    >>> gram = torch.tensor([[1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64)
    >>> pcgrad_coefficients(gram, torch.Generator().manual_seed(0)).tolist()
    [2.0, 1.25]
    """
    n = gram.shape[0]
    total = torch.zeros(n, dtype=gram.dtype)
    for i in range(n):
        c = torch.zeros(n, dtype=gram.dtype)
        c[i] = 1.0
        for j in torch.randperm(n, generator=generator).tolist():
            inner = float(gram[j] @ c)  # g_i^PC · g_j
            if j != i and inner < 0 and gram[j, j] > 0:
                c[j] -= inner / gram[j, j]
        total += c
    return total


class PCGrad(Strategy):
    """Gradient surgery on all shared parameters; per-task gradients from one batched backward."""

    name = "pcgrad"

    def __init__(self, tasks: list[str], options: Mapping[str, Any] | None = None) -> None:
        super().__init__(tasks, options)
        # seeded from the global generator, which the trainer seeds: the run's seed fixes the orders
        self.generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        self.coefficients = dict.fromkeys(self.tasks, 1.0)

    def probe(self, shared: SharedParameters) -> tuple[str, list[nn.Parameter]]:
        return "all_shared", shared.all

    def fill_gradients(
        self, losses: Mapping[str, torch.Tensor], shared: SharedParameters, grads: TaskGradients
    ) -> None:
        c = pcgrad_coefficients(grads.gram, self.generator)
        self.coefficients.update(zip(grads.tasks, c.tolist()))
        for p, g in zip(grads.params, grads.combine(c)):
            p.grad = g if p.grad is None else p.grad + g
        if shared.heads:  # a head is reached by its own task's loss only: the sum is per-task
            torch.autograd.backward(torch.stack(list(losses.values())).sum(), inputs=shared.heads)

    def weights(self) -> dict[str, float]:
        """Each task gradient's coefficient in the last shared update (1 when none conflict)."""
        return dict(self.coefficients)
