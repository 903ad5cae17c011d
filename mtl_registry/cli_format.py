"""Human-readable rendering of predictions, shared by the CLI and the demo."""

from __future__ import annotations

import json
from typing import Any

import click


def format_prediction(result: dict[str, Any]) -> str:
    lines = [click.style(result["text"], bold=True)]
    for task, pred in result["predictions"].items():
        if "label" in pred:
            shown = f"{pred['label']} ({pred['probability']:.2f})"
        elif "labels" in pred:
            shown = ", ".join(f"{x['label']} {x['score']:.2f}" for x in pred["labels"]) or "neutral"
        elif "entities" in pred:
            shown = (
                ", ".join(
                    f"{e['label']}={e['text']!r}@{e['start']}-{e['end']}" for e in pred["entities"]
                )
                or "none"
            )
        else:
            shown = json.dumps(pred)
        lines.append(f"  {task} v{result['versions']['heads'][task]}: {shown}")
    return "\n".join(lines)
