"""Bootstrap confidence intervals (percentile method) over cases: slices or matched pairs.

Paired comparisons (finetune minus pretrain) resample the same cases for both sets, so the
interval reflects the difference on shared cases, not the spread of each set.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

LEVEL = 0.95


def interval(n_cases: int, statistic: Callable[[np.ndarray], float], resamples: int,
             rng: np.random.Generator, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over resampled case indices."""
    values = []
    for _ in range(resamples):
        value = statistic(rng.integers(0, n_cases, n_cases))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def mean_with_interval(values, resamples: int, rng: np.random.Generator) -> dict:
    """``{"value": mean, "ci95": [low, high]}`` of per-case values."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"value": None, "ci95": [None, None]}
    low, high = interval(len(values), lambda i: values[i].mean(), resamples, rng)
    return {"value": float(values.mean()), "ci95": [low, high]}
