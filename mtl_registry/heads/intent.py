"""Single-label classification on the pooled sentence vector."""

from __future__ import annotations

from typing import Any

import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from torch import nn
from torch.nn import functional as F

from mtl_registry.encoder.backbone import Encoded
from mtl_registry.heads.base import HeadType


class IntentHead(HeadType):
    name = "intent"
    level = "sentence"
    field = "intent"
    primary_metric = "accuracy"

    def parse(self, value: Any, text: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty string, got {value!r}")
        return value

    def label_set(self, values: list[Any]) -> list[str]:
        return sorted(set(values))

    def target(self, value: str, labels: list[str], encoded: Encoded) -> torch.Tensor:
        return torch.tensor(labels.index(value))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def decode(
        self, module: nn.Module, logits: torch.Tensor, encoded: list[Encoded], labels: list[str]
    ) -> list[dict[str, Any]]:
        probs = logits.float().softmax(-1)
        best = probs.max(-1)
        return [
            {"label": labels[i], "probability": round(p, 4)}
            for p, i in zip(best.values.tolist(), best.indices.tolist())
        ]

    def metrics(
        self,
        golds: list[str],
        preds: list[dict[str, Any]],
        encoded: list[Encoded],
        labels: list[str],
    ) -> dict[str, Any]:
        predicted = [p["label"] for p in preds]
        return {
            "accuracy": float(accuracy_score(golds, predicted)),
            "macro_f1": float(
                f1_score(golds, predicted, labels=labels, average="macro", zero_division=0)
            ),
            "confusion_matrix": {
                "labels": labels,
                "matrix": confusion_matrix(golds, predicted, labels=labels).tolist(),
            },
        }

    def is_correct(self, gold: str, pred: dict[str, Any], encoded: Encoded) -> bool:
        return gold == pred["label"]
