"""The design's comparison point: one fine-tuned encoder per task, run one after the other.

Each separate model is a registry of its own holding one task, trained with the same
`train` as the joint model (same encoder architecture, data, schedule and head), so the
only difference measured is one shared encoder pass versus one pass per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_registry.encoder.files import packaged_encoder_path
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TaskSpec, TrainConfig, train


def train_separate(
    root: Path,
    data: dict[str, Path],
    config: TrainConfig | None = None,
    *,
    head_types: dict[str, str] | None = None,
    encoder: Path | None = None,
    progress: bool = False,
) -> dict[str, Registry]:
    """One registry per task under `root/<task>`, each fine-tuned on that task alone.

    A registry that already has an active head is reused, so reruns skip training.
    """
    out = {}
    for task, data_dir in data.items():
        registry = Registry(root / task)
        if not (registry.exists() and registry.active().heads):
            registry.init(encoder or packaged_encoder_path())
            spec = TaskSpec(name=task, head_type=(head_types or {}).get(task, task), data=data_dir)
            train(
                registry,
                [spec],
                config or TrainConfig(),
                progress=progress,
                reason="separate-model baseline",
            )
        out[task] = registry
    return out


class SeparateModels:
    """Several single-task runtimes answering like one: each text goes through every model."""

    def __init__(self, runtimes: dict[str, Runtime]) -> None:
        self.runtimes = dict(runtimes)

    @classmethod
    def load(cls, registries: dict[str, Registry], **runtime_options: Any) -> SeparateModels:
        return cls({t: Runtime(r, **runtime_options) for t, r in registries.items()})

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        """Same output format as `Runtime.predict`; each model tokenises and encodes on its own."""
        merged: list[dict[str, Any]] = [
            {"text": t, "predictions": {}, "versions": {"encoders": {}, "heads": {}}} for t in texts
        ]
        for task, runtime in self.runtimes.items():
            for out, result in zip(merged, runtime.predict(texts, batch_size)):
                out["predictions"].update(result["predictions"])
                out["versions"]["encoders"][task] = result["versions"]["encoder"]
                out["versions"]["heads"].update(result["versions"]["heads"])
        return merged
