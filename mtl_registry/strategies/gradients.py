"""Per-task gradients of shared parameters from one batched backward pass, not one per task.

The T task losses are stacked and back-propagated once with the T×T identity as batched
grad outputs (`is_grads_batched`, i.e. vmap over the backward graph): row t of every
result is ∂L_t/∂p. Dropout masks and every other forward state are shared by the rows, so
each row is exactly what a separate `L_t.backward()` would give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn


@dataclass(frozen=True)
class TaskGradients:
    """One gradient per task over `params`; all parameters together form one flat vector per task.

    Kept as one [T, *shape] tensor per parameter so nothing is copied into a giant vector:
    inner products over the flattened vector are sums of per-parameter inner products.
    """

    tasks: list[str]
    params: list[nn.Parameter]
    grads: list[torch.Tensor]

    @cached_property
    def gram(self) -> torch.Tensor:
        """G[i, j] = g_i · g_j over all `params`, in float64, moved to the CPU once (T×T)."""
        n = len(self.tasks)
        if not self.grads:
            return torch.zeros(n, n, dtype=torch.float64)
        flats = [g.reshape(n, -1) for g in self.grads]
        return torch.stack([(f @ f.T).double() for f in flats]).sum(0).cpu()

    @property
    def norms(self) -> torch.Tensor:
        """‖g_t‖ per task, from the Gram matrix's diagonal."""
        return self.gram.diagonal().clamp(min=0).sqrt()

    def combine(self, coefficients: torch.Tensor) -> list[torch.Tensor]:
        """Σ_t c_t g_t for each parameter: the update as a weighted sum of task gradients."""
        return [torch.tensordot(coefficients.to(g.device, g.dtype), g, dims=1) for g in self.grads]


def task_gradients(
    losses: Mapping[str, torch.Tensor], params: Sequence[nn.Parameter]
) -> TaskGradients:
    """Row t = ∂losses[t]/∂params, all rows in one backward. The graph is kept for later passes."""
    tasks = list(losses)
    params = [p for p in params if p.requires_grad]
    if not tasks or not params:
        return TaskGradients(tasks, params, [])
    stacked = torch.stack([losses[t] for t in tasks])
    eye = torch.eye(len(tasks), dtype=stacked.dtype, device=stacked.device)
    grads = torch.autograd.grad(
        stacked,
        params,
        grad_outputs=eye,
        is_grads_batched=True,
        retain_graph=True,
        allow_unused=True,
    )
    return TaskGradients(
        tasks,
        params,
        [
            torch.zeros((len(tasks), *p.shape), dtype=p.dtype, device=p.device) if g is None else g
            for p, g in zip(params, grads)
        ],
    )
