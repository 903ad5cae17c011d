"""Which records go into each step. Every step holds examples of every task.

Tasks that share a data directory share records (a record carrying all labels teaches
all tasks at once); each directory gets an equal share of the batch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Group:
    """One data directory's training records and, per task, the records carrying its labels."""

    size: int
    task_rows: dict[str, list[int]]

    def __post_init__(self) -> None:
        self.task_sets = {t: set(rows) for t, rows in self.task_rows.items()}


class StepSampler:
    def __init__(self, groups: list[Group], batch_size: int, seed: int) -> None:
        self.groups = groups
        self.per_group = max(1, batch_size // len(groups))
        self.rng = random.Random(seed)
        self._order: list[list[int]] = [[] for _ in groups]

    @property
    def steps_per_epoch(self) -> int:
        return max(math.ceil(g.size / self.per_group) for g in self.groups)

    def _take(self, g: int, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if not self._order[g]:
                order = list(range(self.groups[g].size))
                self.rng.shuffle(order)
                self._order[g] = order
            out.append(self._order[g].pop())
        return out

    def step(self) -> list[tuple[int, int]]:
        """(group, record) pairs for one optimisation step."""
        chosen: list[tuple[int, int]] = []
        for g, group in enumerate(self.groups):
            picked = self._take(g, min(self.per_group, group.size))
            for task, rows in group.task_rows.items():
                if group.task_sets[task].isdisjoint(picked):  # guarantee the task is in this step
                    picked.append(self.rng.choice(rows))
            chosen += [(g, i) for i in dict.fromkeys(picked)]
        return chosen

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while True:
            yield self.step()
