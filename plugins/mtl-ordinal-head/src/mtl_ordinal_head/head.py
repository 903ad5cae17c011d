"""`ordinal`: a customer-satisfaction rating (1..5) per message, read from the field `csat`."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mtl_ordinal_head.coral import OrdinalModule, coral_loss, level_probabilities
from mtl_ordinal_head.metrics import ordinal_metrics
from mtl_registry.encoder.backbone import Encoded
from mtl_registry.errors import DataError
from mtl_registry.heads.base import HeadConfig, HeadType


class OrdinalHead(HeadType):
    """Ordered levels, not classes: predicting 4 for a 5 is better than predicting 1.

    Labels are the levels as strings ("1".."5"), so the manifest keeps the scale.
    Subclass with another `name`, `field` and `scale` for other ratings
    (`scale = None` takes the lowest to highest level seen in training).
    """

    name = "ordinal"
    level = "sentence"
    field = "csat"
    primary_metric = "spearman"
    scale: ClassVar[tuple[int, int] | None] = (1, 5)

    def parse(self, value: Any, text: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer rating, got {value!r}")
        if self.scale and not self.scale[0] <= value <= self.scale[1]:
            raise ValueError(f"must be from {self.scale[0]} to {self.scale[1]}, got {value}")
        return value

    def label_set(self, values: list[Any]) -> list[str]:
        low, high = self.scale or (min(values), max(values))
        if high <= low:
            raise DataError(
                f"an ordinal head needs at least two levels; the data has only {low}",
                field=self.field,
            )
        return [str(v) for v in range(low, high + 1)]

    def labels_used(self, value: Any) -> list[str]:
        return [str(value)]

    def build(self, hidden_size: int, labels: list[str], config: HeadConfig) -> nn.Module:
        return OrdinalModule(hidden_size, len(labels), config)

    def target(self, value: int, labels: list[str], encoded: Encoded) -> torch.Tensor:
        return torch.tensor(labels.index(str(value)))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return coral_loss(logits, targets)

    def decode(
        self, module: nn.Module, logits: torch.Tensor, encoded: list[Encoded], labels: list[str]
    ) -> list[dict[str, Any]]:
        """`score`: thresholds passed (the median level); `expected`: the mean rating."""
        probs = level_probabilities(logits)
        above = torch.sigmoid(logits.float())
        picked = (above > 0.5).sum(1).tolist()
        expected = (int(labels[0]) + above.sum(1)).tolist()
        return [
            {
                "label": labels[k],
                "probability": round(row[k], 4),
                "score": int(labels[k]),
                "expected": round(e, 4),
                "distribution": {x: round(p, 4) for x, p in zip(labels, row)},
            }
            for row, k, e in zip(probs.tolist(), picked, expected)
        ]

    def metrics(
        self,
        golds: list[int],
        preds: list[dict[str, Any]],
        encoded: list[Encoded],
        labels: list[str],
    ) -> dict[str, Any]:
        return ordinal_metrics(
            golds,
            [p["score"] for p in preds],
            [p["expected"] for p in preds],
            [int(x) for x in labels],
        )

    def is_correct(self, gold: int, pred: dict[str, Any], encoded: Encoded) -> bool:
        return gold == pred["score"]
