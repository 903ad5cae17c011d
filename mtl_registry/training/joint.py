"""Joint training runs, and publishing their result as one release."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtl_registry.data.records import data_fingerprint
from mtl_registry.evaluation.scoring import score_dirs
from mtl_registry.model import save_head
from mtl_registry.registry import DataRef, EncoderManifest, HeadDraft, HeadManifest, Registry
from mtl_registry.runtime.predictor import load_heads
from mtl_registry.training.config import TaskSpec, TrainConfig
from mtl_registry.training.trainer import JointTrainer


@dataclass
class JointRun:
    """A finished joint training run, before anything is published."""

    trainer: JointTrainer
    specs: list[TaskSpec]
    dev: dict[str, Any]
    test: dict[str, Any] | None
    run_dir: Path
    training: dict[str, Any]
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    encoder: EncoderManifest | None
    heads: list[HeadManifest]
    dev: dict[str, Any]
    test: dict[str, Any] | None
    run_dir: Path
    activated: bool = True


def run_joint(
    registry: Registry,
    specs: list[TaskSpec],
    config: TrainConfig,
    *,
    progress: bool = True,
    warm_from: dict[str, HeadManifest] | None = None,
) -> JointRun:
    """Train the active encoder with every task. `warm_from` starts heads from published ones."""
    trainer = JointTrainer(registry, specs, config)
    if warm_from:
        loaded = load_heads(registry, trainer.encoder, warm_from)
        for name, manifest in warm_from.items():
            task = trainer.model.tasks[name]
            task.head_type.warm_start(
                loaded.model.heads[name], trainer.model.heads[name], manifest.labels, task.labels
            )
    run_dir = registry.root / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    started = time.time()
    trainer.run(run_dir / "steps.jsonl", progress)
    calibration = trainer.calibrate()
    dev = score_dirs(trainer.model, trainer.dirs, trainer.task_dirs, "dev")
    test = score_dirs(trainer.model, trainer.dirs, trainer.task_dirs, "test")
    assert dev is not None  # dev is required by the trainer
    for name, report in (("dev", dev), ("test", test)):
        if report is not None:
            (run_dir / f"{name}_report.json").write_text(json.dumps(report, indent=2))
    training = {
        **config.model_dump(mode="json"),
        "seconds": round(time.time() - started, 1),
        "final_weights": trainer.strategy.weights(),
        "run": str(run_dir),
        "warm_start": {t: m.version for t, m in (warm_from or {}).items()},
        "gradient_conflicts": trainer.summary,
    }
    return JointRun(trainer, specs, dev, test, run_dir, training, calibration)


def publish_joint(
    registry: Registry,
    run: JointRun,
    *,
    activate: bool,
    reason: str,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """A new encoder and a new version of every head, published together as one release."""
    active = registry.active()
    model = run.trainer.model
    with tempfile.TemporaryDirectory(dir=registry.root) as tmp:
        run.trainer.encoder.save(Path(tmp) / "encoder")
        heads = []
        for s in run.specs:
            task = model.tasks[s.name]
            folder = Path(tmp) / "heads" / s.name
            save_head(model.heads[s.name], folder)
            metrics = {
                "dev": run.dev["tasks"][s.name],
                **({"test": run.test["tasks"][s.name]} if run.test else {}),
            }
            draft = HeadDraft(
                task=s.name,
                head_type=task.head_type.name,
                plugin=task.plugin,
                labels=task.labels,
                head_config=task.config.model_dump(),
                metrics=metrics,
                data=DataRef(path=str(s.data.resolve()), fingerprint=data_fingerprint(s.data)),
                training={
                    **run.training,
                    **(extra or {}),
                    "calibration": run.calibration.get(s.name, {}),
                },
                parent_version=active.heads.get(s.name),
            )
            heads.append((draft, folder))
        encoder, published = registry.publish(
            heads,
            encoder_dir=Path(tmp) / "encoder",
            encoder_parent=run.trainer.encoder.fingerprint,
            activate=activate,
            replace_active=True,
            reason=reason,
        )
    return TrainResult(encoder, published, run.dev, run.test, run.run_dir, activate)


def train(
    registry: Registry,
    specs: list[TaskSpec],
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    reason: str = "train",
) -> TrainResult:
    """Fine-tune the active encoder with every task, then publish and activate the result."""
    run = run_joint(registry, specs, config or TrainConfig(), progress=progress)
    return publish_joint(registry, run, activate=True, reason=reason)
