"""Held-out scores per task, and the share of texts where every task is right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_registry.data.prepared import DataDir, Split
from mtl_registry.model import MultiTaskModel


def score_split(model: MultiTaskModel, split: Split, tasks: list[str]) -> dict[str, Any]:
    """Metrics for `tasks` on the records of `split` that carry their labels."""
    preds = model.predict(split.encoded)
    result: dict[str, Any] = {"tasks": {}, "all_tasks_correct": None}
    correct_everywhere = [True] * len(split)
    carries_all = [True] * len(split)
    for name in tasks:
        task = model.tasks[name]
        golds = split.values(task.head_type.field)
        rows = [i for i, g in enumerate(golds) if g is not None]
        metrics = task.head_type.metrics(
            [golds[i] for i in rows],
            [preds[i][name] for i in rows],
            [split.encoded[i] for i in rows],
            task.labels,
        )
        result["tasks"][name] = {"n": len(rows), "data": str(split.path), **metrics}
        for i, gold in enumerate(golds):
            if gold is None:
                carries_all[i] = False
            elif not task.head_type.is_correct(gold, preds[i][name], split.encoded[i]):
                correct_everywhere[i] = False
    joint = [c for c, carries in zip(correct_everywhere, carries_all) if carries]
    if len(tasks) > 1 and joint:
        result["all_tasks_correct"] = {"n": len(joint), "share": sum(joint) / len(joint)}
    return result


def primary(model: MultiTaskModel, report: dict[str, Any]) -> dict[str, float]:
    """Each task's headline score (higher is better)."""
    return {
        name: float(m[model.tasks[name].head_type.primary_metric])
        for name, m in report["tasks"].items()
    }


def score_dirs(
    model: MultiTaskModel, dirs: dict[Path, DataDir], task_dirs: dict[str, Path], split: str
) -> dict[str, Any] | None:
    """Each task scored on its own directory's split; None when a directory lacks the split."""
    report: dict[str, Any] = {"split": split, "tasks": {}, "all_tasks_correct": None}
    for path, data_dir in dirs.items():
        if split not in data_dir.splits:
            return None
        part = score_split(
            model, data_dir.splits[split], [t for t, d in task_dirs.items() if d == path]
        )
        report["tasks"].update(part["tasks"])
        if len(dirs) == 1:
            report["all_tasks_correct"] = part["all_tasks_correct"]
    return report
