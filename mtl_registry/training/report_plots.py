"""PNG plots of a training run, drawn from its step log: task weights, losses, conflict rates.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend
state), so plotting works headless and in threads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def read_steps(log_path: Path) -> list[dict[str, Any]]:
    """The optimisation-step entries of a step log (dev evaluations are skipped)."""
    with open(log_path, encoding="utf-8") as fh:
        return [e for e in map(json.loads, fh) if "loss" in e]


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _per_task_over_steps(
    steps: list[dict[str, Any]], field: str, title: str, ylabel: str, path: Path
) -> Path:
    fig, ax = _figure(title)
    tasks = sorted({t for e in steps for t in e.get(field, {})})
    for task in tasks:
        points = [(e["step"], e[field][task]) for e in steps if task in e.get(field, {})]
        ax.plot([s for s, _ in points], [v for _, v in points], label=task)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if tasks:
        ax.legend()
    fig.savefig(path)
    return path


def _conflict_rates(rates: dict[str, float], scope: str, title: str, path: Path) -> Path:
    fig, ax = _figure(title)
    pairs = sorted(rates)
    ax.bar(range(len(pairs)), [rates[p] for p in pairs])
    ax.set_xticks(range(len(pairs)), pairs)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"share of steps with negative cosine ({scope})")
    fig.savefig(path)
    return path


def write_plots(
    steps: list[dict[str, Any]], conflict_rate: dict[str, float], out_dir: Path, title: str = ""
) -> list[Path]:
    """weights.png, losses.png and conflicts.png in `out_dir`; returns their paths."""
    prefix = f"{title}: " if title else ""
    scope = ", ".join(sorted({e["grad_scope"] for e in steps if "grad_scope" in e})) or "n/a"
    return [
        _per_task_over_steps(
            steps, "weight", f"{prefix}task weights", "weight", out_dir / "weights.png"
        ),
        _per_task_over_steps(
            steps, "loss", f"{prefix}training loss", "loss", out_dir / "losses.png"
        ),
        _conflict_rates(
            conflict_rate,
            scope,
            f"{prefix}gradient conflict rate per task pair",
            out_dir / "conflicts.png",
        ),
    ]
