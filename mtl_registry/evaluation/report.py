"""Metric reports as JSON and Markdown."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n"}


def to_markdown(report: dict[str, Any], title: str = "Evaluation") -> str:
    """Summary table of every task, then per-label tables and confusion matrices."""
    lines = [f"# {title}", ""]
    for key in ("split", "encoder"):
        if key in report:
            lines.append(f"- {key}: `{report[key]}`")
    if report.get("heads"):
        lines.append("- heads: " + ", ".join(f"{t} v{v}" for t, v in report["heads"].items()))
    lines.append("")
    tasks = report["tasks"]
    lines += _table(
        ["task", "n", "scores"],
        [
            [t, m["n"], ", ".join(f"{k} {_fmt(v)}" for k, v in scalars(m).items())]
            for t, m in tasks.items()
        ],
    )
    joint = report.get("all_tasks_correct")
    if joint:
        lines += [f"Every task right: {joint['share']:.4f} of {joint['n']} texts.", ""]
    for task, m in tasks.items():
        for key, value in m.items():
            if key == "confusion_matrix":
                labels = value["labels"]
                lines += [f"## {task}: confusion matrix (rows gold, columns predicted)", ""]
                lines += _table(
                    ["gold \\ pred", *labels],
                    [[g, *row] for g, row in zip(labels, value["matrix"])],
                )
            elif (
                isinstance(value, dict)
                and value
                and all(isinstance(v, (int, float)) for v in value.values())
            ):
                lines += [f"## {task}: {key}", ""]
                lines += _table(["label", key], [[k, v] for k, v in value.items()])
    return "\n".join(lines)
