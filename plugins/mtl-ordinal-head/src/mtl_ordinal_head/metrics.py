"""Ordinal scores: how far off (MAE), how well ordered (Spearman), how often exact or close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr


def spearman(gold: Sequence[float], predicted: Sequence[float]) -> float:
    """Rank correlation; 0.0 when a side is constant (scipy gives nan, and a nan primary
    metric would break best-checkpoint selection)."""
    a, b = np.asarray(gold, dtype=float), np.asarray(predicted, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def ordinal_metrics(
    gold: Sequence[int], predicted: Sequence[int], expected: Sequence[float], levels: list[int]
) -> dict[str, Any]:
    """`predicted`: the decided level per text; `expected`: the mean rating, used for ranking."""
    g, p = np.asarray(gold), np.asarray(predicted)
    error = np.abs(g - p)
    index = {level: i for i, level in enumerate(levels)}
    matrix = np.zeros((len(levels), len(levels)), dtype=int)
    for a, b in zip(g.tolist(), p.tolist()):
        matrix[index[a], index[b]] += 1
    return {
        "mae": float(error.mean()),
        "spearman": spearman(g, expected),
        "accuracy": float((error == 0).mean()),
        "within_one_accuracy": float((error <= 1).mean()),
        "confusion_matrix": {"labels": [str(v) for v in levels], "matrix": matrix.tolist()},
    }
