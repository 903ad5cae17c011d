"""The INT8 quality gate: every head scored fp32 vs INT8 on its own held-out data.

Each head is scored on the data recorded in its manifest (as `evaluate` does), read and
tokenised once for every candidate graph. A head whose primary metric falls by more
than `max_drop` on dev or on test fails the gate; the search then keeps node groups in
fp32, the ones that cost no speed first, then the encoder layers that move the failing
heads' logits most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtl_registry.data.prepared import DataDir, check_labels, load_data_dirs
from mtl_registry.encoder.backbone import SharedEncoder
from mtl_registry.evaluation.scoring import score_dirs
from mtl_registry.export.manifest import ExportError
from mtl_registry.model import Task
from mtl_registry.registry import HeadManifest


@dataclass
class HeldOut:
    """Each head's data directory, loaded and tokenised once."""

    dirs: dict[Path, DataDir]
    task_dirs: dict[str, Path]

    @classmethod
    def load(
        cls,
        encoder: SharedEncoder,
        tasks: dict[str, Task],
        manifests: dict[str, HeadManifest],
        data: dict[str, Path] | None = None,
        splits: tuple[str, ...] = ("dev", "test"),
    ) -> HeldOut:
        task_dirs = {}
        for name in sorted(tasks):
            m = manifests[name]
            source = (data or {}).get(name) or (Path(m.data.path) if m.data else None)
            if source is None:
                raise ExportError(
                    f"task '{name}': the INT8 gate needs held-out data, and none "
                    "is recorded in its manifest; pass --data {name}=DIR"
                )
            task_dirs[name] = Path(source).resolve()
        dirs = load_data_dirs(
            encoder, {n: (tasks[n].head_type, d) for n, d in task_dirs.items()}, required=splits
        )
        for split in splits:
            for n, d in task_dirs.items():
                check_labels(dirs[d].splits[split], tasks[n].head_type, tasks[n].labels)
        return cls(dirs, task_dirs)

    def scores(self, model: Any, split: str) -> dict[str, dict[str, Any]]:
        """Metrics per head of a model (PyTorch or ONNX) on `split`."""
        report = score_dirs(model, self.dirs, self.task_dirs, split)
        assert report is not None  # the split was required when loading
        return report["tasks"]

    def logits(self, model: Any, split: str = "dev") -> dict[str, list[torch.Tensor]]:
        """Raw logits per head and text (token heads cut to the text's tokens)."""
        out: dict[str, list[torch.Tensor]] = {t: [] for t in self.task_dirs}
        for path, data_dir in self.dirs.items():
            names = [t for t, d in self.task_dirs.items() if d == path]
            encoded = data_dir.splits[split].encoded
            rows: dict[str, list[torch.Tensor | None]] = {t: [None] * len(encoded) for t in names}
            for pairs, logits in model.batches(encoded):
                for name in names:
                    for (i, e), row in zip(pairs, logits[name]):
                        rows[name][i] = row[: len(e.input_ids)] if row.dim() > 1 else row
            for name in names:
                out[name] += [r.float().clone() for r in rows[name] if r is not None]
        return out


def primary(tasks: dict[str, Task], scores: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {n: float(scores[n][tasks[n].head_type.primary_metric]) for n in scores}


def compare(
    tasks: dict[str, Task],
    reference: dict[str, dict[str, Any]],
    candidate: dict[str, dict[str, Any]],
    max_drop: float,
) -> dict[str, dict[str, Any]]:
    """Per head: its primary metric fp32 and INT8, the change in points, and whether it passes."""
    ref, new = primary(tasks, reference), primary(tasks, candidate)
    return {
        n: {
            "metric": tasks[n].head_type.primary_metric,
            "level": tasks[n].head_type.level,
            "fp32": round(ref[n], 4),
            "int8": round(new[n], 4),
            "change_points": round(100 * (new[n] - ref[n]), 2),
            "passes": new[n] >= ref[n] - max_drop - 1e-9,
        }
        for n in sorted(ref)
    }


def logit_error(
    reference: dict[str, list[torch.Tensor]],
    candidate: dict[str, list[torch.Tensor]],
    heads: list[str],
) -> float:
    """Relative L2 error of the heads' logits: a smooth sensitivity measure for ranking."""
    total = 0.0
    for name in heads:
        ref = torch.cat([r.reshape(-1) for r in reference[name]])
        new = torch.cat([r.reshape(-1) for r in candidate[name]])
        total += float((new - ref).norm() / ref.norm().clamp(min=1e-12))
    return total


def search(
    cheap: list[str],
    layers: list[str],
    evaluate: Callable[[list[str]], dict[str, Any]],
    sensitivity: Callable[[list[str]], float],
    log: list[dict[str, Any]],
) -> list[str] | None:
    """The fp32 groups to keep so that every head passes, cheapest first.

    `cheap` groups cost no speed in fp32 (embedding lookups, token heads) and are given up
    first, one at a time. Then encoder layers, most sensitive first: `sensitivity(keep)`
    is the failing heads' logit error with only one layer quantised. `evaluate(keep)` gives
    the per-head comparison. Returns None when even every group in fp32 does not pass.
    """
    keep: list[str] = []

    def passes() -> bool:
        comparison = evaluate(keep)
        ok = all(c["passes"] for c in comparison.values())
        log.append(
            {
                "keep_fp32": list(keep),
                "passes": ok,
                "change_points": {n: c["change_points"] for n, c in comparison.items()},
            }
        )
        return ok

    for group in cheap:
        keep.append(group)
        if passes():
            return keep
    ranked = []
    for group in layers:
        err = sensitivity([*keep, *(g for g in layers if g != group)])
        ranked.append((err, group))
        log.append({"probe": f"only {group} int8", "dev_logit_error": round(err, 5)})
    for _, group in sorted(ranked, reverse=True):
        keep.append(group)
        if passes():
            return keep
    return None
