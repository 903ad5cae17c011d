"""The ordinal module and its loss: one score and K−1 ordered thresholds.

Cumulative-link / CORAL (Cao, Mirjalili & Raschka 2020): P(y > k) = σ(s − θ_k) with one
score s shared by every threshold. CORAL proves rank consistency at the optimum; here the
thresholds are increasing by construction (θ_{k+1} = θ_k + softplus(δ_k)), so P(y > k) falls
with k for any weights, and P(y = k) = P(y > k−1) − P(y > k) is a true distribution.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mtl_registry.heads.base import HeadConfig, MLPHead

UNIT_GAP = math.log(math.e - 1)  # softplus(UNIT_GAP) == 1: thresholds start one apart


class OrdinalModule(nn.Module):
    """Pooled sentence vector → MLP → one score; output: K−1 logits s − θ_k."""

    def __init__(self, in_dim: int, levels: int, config: HeadConfig) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"an ordinal head needs at least 2 levels, got {levels}")
        self.score = MLPHead(in_dim, 1, config)
        self.first = nn.Parameter(torch.tensor(-(levels - 2) / 2))  # centred on a zero score
        self.gaps = nn.Parameter(torch.full((levels - 2,), UNIT_GAP))

    def thresholds(self) -> torch.Tensor:
        steps = torch.cumsum(F.softplus(self.gaps), 0)
        return torch.cat([self.first.view(1), self.first + steps])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) - self.thresholds()


def exceeds(targets: torch.Tensor, thresholds: int) -> torch.Tensor:
    """Level indices (B,) → the binary answers (B, K−1) to "is the level above k?"."""
    ks = torch.arange(thresholds, device=targets.device)
    return (targets.unsqueeze(1) > ks).float()


def coral_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the K−1 questions (CORAL's loss, unweighted)."""
    return F.binary_cross_entropy_with_logits(logits, exceeds(targets, logits.shape[1]))


def level_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(B, K−1) logits → (B, K) probabilities of each level; rows sum to one."""
    above = torch.sigmoid(logits.float())
    ones, zeros = above.new_ones(len(above), 1), above.new_zeros(len(above), 1)
    tail = torch.cat([ones, above, zeros], 1)  # P(y > k) for k = 0 .. K
    return (tail[:, :-1] - tail[:, 1:]).clamp_min(0.0)
