"""Gradient conflict instrumentation: how large each task's gradient is and whether tasks disagree.

Two tasks conflict at a step when the cosine between their gradients on the shared
parameters is negative: a step that helps one hurts the other to first order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from mtl_registry.strategies.gradients import TaskGradients


def pair_key(a: str, b: str) -> str:
    """Log key of a task pair ('/' cannot appear in a task name)."""
    return f"{a}/{b}"


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


@dataclass(frozen=True)
class GradientStats:
    """One step's per-task gradient norms and pairwise cosines, measured on `scope`."""

    scope: str
    tasks: list[str]
    norms: dict[str, float]
    cosines: dict[str, float | None]

    @classmethod
    def measure(cls, scope: str, grads: TaskGradients) -> GradientStats:
        gram, norms = grads.gram, grads.norms
        idx = {t: i for i, t in enumerate(grads.tasks)}
        cosines: dict[str, float | None] = {}
        for a, b in combinations(grads.tasks, 2):
            denom = float(norms[idx[a]] * norms[idx[b]])
            # a task with a zero gradient neither agrees nor conflicts: no cosine
            cosines[pair_key(a, b)] = float(gram[idx[a], idx[b]]) / denom if denom > 0 else None
        return cls(
            scope,
            list(grads.tasks),
            {t: float(norms[i]) for t, i in idx.items()} if grads.grads else {},
            cosines,
        )

    @property
    def conflicts(self) -> dict[str, bool]:
        return {k: c < 0 for k, c in self.cosines.items() if c is not None}

    def log_fields(self) -> dict[str, Any]:
        """Step-log fields; `grad_scope` says which shared parameters the numbers are over."""
        return {
            "grad_scope": self.scope,
            "grad_norm": {t: _sig(n) for t, n in self.norms.items()},
            "cosine": {k: None if c is None else round(c, 5) for k, c in self.cosines.items()},
            "conflict": self.conflicts,
        }


class ConflictTally:
    """Conflict rate per task pair over a run: the share of steps with a negative cosine."""

    def __init__(self) -> None:
        self.measured: Counter[str] = Counter()
        self.conflicting: Counter[str] = Counter()
        self.scopes: set[str] = set()

    def add(self, stats: GradientStats) -> None:
        self.scopes.add(stats.scope)
        for key, conflict in stats.conflicts.items():
            self.measured[key] += 1
            self.conflicting[key] += int(conflict)

    @property
    def rates(self) -> dict[str, float]:
        return {k: self.conflicting[k] / n for k, n in self.measured.items()}

    def summary(self) -> dict[str, Any]:
        return {
            "grad_scope": ", ".join(sorted(self.scopes)),
            "conflict_rate": {k: round(r, 4) for k, r in self.rates.items()},
            "steps_measured": dict(self.measured),
        }
