"""Multi-label classification: a sigmoid per label, thresholds tuned per label on dev."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional as F

from mtl_registry.encoder.backbone import Encoded
from mtl_registry.heads.base import HeadConfig, HeadType, MLPHead

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MultiLabelModule(MLPHead):
    """The MLP plus its per-label thresholds, saved with the weights."""

    def __init__(self, in_dim: int, out_dim: int, config: HeadConfig) -> None:
        super().__init__(in_dim, out_dim, config)
        self.register_buffer("thresholds", torch.full((out_dim,), 0.5))


class SentimentHead(HeadType):
    name = "sentiment"
    level = "sentence"
    field = "sentiment"
    primary_metric = "micro_f1"

    def parse(self, value: Any, text: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"must be a list of label strings (empty = neutral), got {value!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"repeats a label: {value!r}")
        return value

    def label_set(self, values: list[Any]) -> list[str]:
        return sorted({label for v in values for label in v})

    def build(self, hidden_size: int, labels: list[str], config: HeadConfig) -> nn.Module:
        return MultiLabelModule(hidden_size, len(labels), config)

    def target(self, value: list[str], labels: list[str], encoded: Encoded) -> torch.Tensor:
        t = torch.zeros(len(labels))
        for label in value:
            t[labels.index(label)] = 1.0
        return t

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)

    def calibrate(
        self, module: nn.Module, logits: torch.Tensor, targets: torch.Tensor, labels: list[str]
    ) -> dict[str, Any]:
        probs = torch.sigmoid(logits.float()).numpy()
        gold = targets.numpy().astype(int)
        chosen = []
        for j in range(len(labels)):
            if gold[:, j].sum() == 0:  # nothing to tune on: keep the neutral default
                chosen.append(0.5)
                continue
            scores = [
                f1_score(gold[:, j], probs[:, j] >= t, zero_division=0) for t in THRESHOLD_GRID
            ]
            chosen.append(float(THRESHOLD_GRID[int(np.argmax(scores))]))
        module.thresholds.copy_(torch.tensor(chosen))
        return {"thresholds": dict(zip(labels, chosen))}

    def decode(
        self, module: nn.Module, logits: torch.Tensor, encoded: list[Encoded], labels: list[str]
    ) -> list[dict[str, Any]]:
        probs = torch.sigmoid(logits.float())
        on = probs >= module.thresholds
        out = []
        for row, flags in zip(probs.tolist(), on.tolist()):
            picked = sorted((p, label) for p, label, f in zip(row, labels, flags) if f)
            out.append(
                {
                    "labels": [
                        {"label": label, "score": round(p, 4)} for p, label in reversed(picked)
                    ],
                    "scores": {label: round(p, 4) for label, p in zip(labels, row)},
                }
            )
        return out

    def metrics(
        self,
        golds: list[list[str]],
        preds: list[dict[str, Any]],
        encoded: list[Encoded],
        labels: list[str],
    ) -> dict[str, Any]:
        gold = np.array([[label in g for label in labels] for g in golds], dtype=int)
        pred = np.array(
            [[label in {x["label"] for x in p["labels"]} for label in labels] for p in preds],
            dtype=int,
        )
        per_label = f1_score(gold, pred, average=None, zero_division=0)
        return {
            "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "per_label_f1": {label: float(f) for label, f in zip(labels, per_label)},
        }

    def is_correct(self, gold: list[str], pred: dict[str, Any], encoded: Encoded) -> bool:
        return set(gold) == {x["label"] for x in pred["labels"]}
