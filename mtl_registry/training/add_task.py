"""A new task joins: joint catch-up training with rehearsal and a regression gate, or a
cheap frozen-encoder head.

Joint mode trains the encoder, the existing heads (from their active versions, on the
data they were trained on) and the new head together, then compares every existing
task before and after on its held-out data. The result goes live as one release only if
no task fell by more than the tolerance (or with `force`, which the history records).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mtl_registry.data.records import data_fingerprint, split_path
from mtl_registry.errors import DataError, MtlRegError
from mtl_registry.evaluation.evaluate import evaluate
from mtl_registry.registry import HeadManifest, Registry
from mtl_registry.training.config import TaskSpec, TrainConfig
from mtl_registry.training.head_only import HeadTrainConfig, retrain_head
from mtl_registry.training.joint import TrainResult, publish_joint, run_joint


@dataclass
class AddTaskResult:
    task: str
    mode: str
    activated: bool
    gate: dict[str, Any]
    versions: dict[str, int]
    encoder: str | None
    report_path: Path | None


def rehearsal_specs(registry: Registry) -> tuple[list[TaskSpec], dict[str, HeadManifest]]:
    """The active tasks with the data their active versions were trained on, unchanged."""
    specs, manifests = [], {}
    for task, version in sorted(registry.active().heads.items()):
        m = registry.head_manifest(task, version)
        if m.data is None:
            raise MtlRegError(f"{task} v{version} records no training data to rehearse on")
        path = Path(m.data.path)
        if not split_path(path, "train").is_file():
            raise DataError(f"rehearsal data for '{task}' v{version} is missing", path=path)
        current = data_fingerprint(path)
        if current != m.data.fingerprint:
            raise DataError(
                f"rehearsal data for '{task}' v{version} changed since it was trained "
                f"(fingerprint {m.data.fingerprint}, now {current})",
                path=path,
            )
        specs.append(TaskSpec(name=task, head_type=m.head_type, data=path))
        manifests[task] = m
    return specs, manifests


def _held_out(specs: list[TaskSpec]) -> str:
    return "test" if all(split_path(s.data, "test").is_file() for s in specs) else "dev"


def add_task(
    registry: Registry,
    name: str,
    head_type: str,
    data: Path,
    *,
    mode: Literal["joint", "frozen"] = "joint",
    config: TrainConfig | None = None,
    tolerance: float = 1.0,
    force: bool = False,
    progress: bool = True,
) -> AddTaskResult:
    """Add task `name`. `tolerance` is in points (0–100 scale) of each task's primary metric."""
    active = registry.require().active()
    if name in active.heads:
        raise MtlRegError(f"task '{name}' already exists; use `mtlreg retrain-head {name}`")
    config = config or TrainConfig(strategy="gradnorm")
    if mode == "frozen":
        result = retrain_head(
            registry,
            name,
            data,
            HeadTrainConfig(
                epochs=max(config.epochs, 10), seed=config.seed, max_length=config.max_length
            ),
            activate=True,
            progress=progress,
            new_head_type=head_type,
        )
        return AddTaskResult(
            name,
            mode,
            True,
            {"checked": False, "reason": "encoder unchanged"},
            {**active.heads, name: result.manifest.version},
            active.encoder,
            None,
        )

    specs, manifests = rehearsal_specs(registry)
    split = _held_out(specs)
    before = evaluate(registry, {s.name: s.data for s in specs}, split) if specs else {"tasks": {}}
    run = run_joint(
        registry,
        [*specs, TaskSpec(name=name, head_type=head_type, data=data)],
        config,
        progress=progress,
        warm_from=manifests,
    )
    after = run.test if split == "test" and run.test else run.dev
    gate = regression_gate(
        run.trainer.model.tasks, before["tasks"], after["tasks"], tolerance, split
    )
    activate = gate["passed"] or force
    reason = f"add-task {name} ({config.strategy})"
    if force and not gate["passed"]:
        reason += f"; forced past the regression gate: {gate['summary']}"
    published: TrainResult = publish_joint(
        registry, run, activate=activate, reason=reason, extra={"add_task": name, "gate": gate}
    )
    report = run.run_dir / "add_task_report.json"
    report.write_text(
        json.dumps(
            {
                "task": name,
                "gate": gate,
                "new_task": after["tasks"][name],
                "activated": activate,
                "forced": force and not gate["passed"],
            },
            indent=2,
        )
    )
    return AddTaskResult(
        name,
        mode,
        activate,
        gate,
        {h.task: h.version for h in published.heads},
        published.encoder.fingerprint if published.encoder else None,
        report,
    )


def regression_gate(
    tasks: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    tolerance: float,
    split: str,
) -> dict[str, Any]:
    """Each existing task's headline score before and after, and which fell too far."""
    rows = {}
    for task, old in before.items():
        metric = tasks[task].head_type.primary_metric
        b, a = float(old[metric]), float(after[task][metric])
        rows[task] = {
            "metric": metric,
            "before": b,
            "after": a,
            "change_points": round((a - b) * 100, 2),
        }
    failed = {t: r for t, r in rows.items() if -r["change_points"] > tolerance}
    summary = "; ".join(
        f"{t} {r['metric']} fell {-r['change_points']:.2f} points "
        f"({r['before']:.4f} -> {r['after']:.4f})"
        for t, r in failed.items()
    )
    return {
        "checked": True,
        "split": split,
        "tolerance_points": tolerance,
        "tasks": rows,
        "failed": sorted(failed),
        "passed": not failed,
        "summary": summary or "no task fell more than the tolerance",
    }
