"""Shared set-up for benchmarks: a registry trained on the packaged encoder, machine facts."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from mtl_registry.data.mangaassist import generate
from mtl_registry.encoder import packaged_encoder_path
from mtl_registry.registry import Registry
from mtl_registry.training import TaskSpec, TrainConfig, train


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def trained_registry(root: Path, data_root: Path, epochs: int = 3) -> Registry:
    """The demo's joint model (intent + sentiment + ner) on the packaged encoder, reused."""
    registry = Registry(root)
    if registry.exists() and registry.active().heads:
        return registry
    corpus = data_root / "mangaassist"
    generate(corpus, seed=0)
    registry.init(packaged_encoder_path())
    specs = [TaskSpec(name=t, head_type=t, data=corpus) for t in ("intent", "sentiment", "ner")]
    train(registry, specs, TrainConfig(epochs=epochs), progress=False, reason="benchmark set-up")
    return registry
