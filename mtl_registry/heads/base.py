"""What a head type is: the contract between the host and every head plugin."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from mtl_registry.encoder.backbone import Encoded


class HeadConfig(BaseModel):
    """Sizes of the head module; stored in the head manifest so it can be rebuilt."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pooling: Literal["mean", "cls"] = "mean"


class MLPHead(nn.Module):
    """Dropout → Linear(in→hidden) → GELU → LayerNorm(hidden) → Linear(hidden→out)."""

    def __init__(self, in_dim: int, out_dim: int, config: HeadConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(in_dim, config.hidden),
            nn.GELU(),
            nn.LayerNorm(config.hidden),
            nn.Linear(config.hidden, out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class HeadType(ABC):
    """Knows one kind of task. Stateless: everything learned lives in the module it builds.

    `level` says what the module reads: "sentence" heads get one pooled vector per text,
    "token" heads get every token state. `field` is the record key holding the labels.
    """

    name: ClassVar[str]
    level: ClassVar[Literal["sentence", "token"]]
    field: ClassVar[str]
    primary_metric: ClassVar[str]

    @abstractmethod
    def parse(self, value: Any, text: str) -> Any:
        """Validate one record's raw value; raise ValueError with a message naming the problem."""

    @abstractmethod
    def label_set(self, values: list[Any]) -> list[str]:
        """The module's output labels for this training data, in a stable order."""

    def check_labels(self, value: Any, labels: list[str]) -> None:
        """Raise ValueError if `value` uses a label outside `labels`."""
        unknown = sorted(set(self.labels_used(value)) - set(labels))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; known: {labels}")

    def labels_used(self, value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    def build(self, hidden_size: int, labels: list[str], config: HeadConfig) -> nn.Module:
        return MLPHead(hidden_size, len(labels), config)

    @abstractmethod
    def target(self, value: Any, labels: list[str], encoded: Encoded) -> torch.Tensor:
        """One example's training target."""

    def collate(self, targets: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(targets)

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(
        self, module: nn.Module, logits: torch.Tensor, encoded: list[Encoded], labels: list[str]
    ) -> list[dict[str, Any]]:
        """JSON-ready predictions, one per text."""

    @abstractmethod
    def metrics(
        self,
        golds: list[Any],
        preds: list[dict[str, Any]],
        encoded: list[Encoded],
        labels: list[str],
    ) -> dict[str, Any]:
        """Scores on held-out data; must include `primary_metric` (higher is better)."""

    @abstractmethod
    def is_correct(self, gold: Any, pred: dict[str, Any], encoded: Encoded) -> bool:
        """Whether one prediction is entirely right (for the every-task-right share)."""

    def warm_start(
        self, old: nn.Module, new: nn.Module, old_labels: list[str], new_labels: list[str]
    ) -> None:
        """Carry an older version's weights into a new module whose label list may differ.

        Tensors indexed by label (first dimension = number of labels) keep the rows of the
        labels both versions share; other tensors of the same shape are copied whole.
        """
        old_state, new_state = old.state_dict(), new.state_dict()
        rows = [(new_labels.index(x), old_labels.index(x)) for x in new_labels if x in old_labels]
        for name, dst in new_state.items():
            src = old_state.get(name)
            if src is None:
                continue
            per_label = (
                src.dim() >= 1
                and src.shape[0] == len(old_labels)
                and dst.shape[0] == len(new_labels)
                and src.shape[1:] == dst.shape[1:]
            )
            if per_label:
                for d, s in rows:
                    dst[d] = src[s]
            elif src.shape == dst.shape:
                dst.copy_(src)
        new.load_state_dict(new_state)

    def calibrate(
        self, module: nn.Module, logits: torch.Tensor, targets: torch.Tensor, labels: list[str]
    ) -> dict[str, Any]:
        """Tune decoding on dev data after training (e.g. thresholds). Returns what it chose."""
        return {}
