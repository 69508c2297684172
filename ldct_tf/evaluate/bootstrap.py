"""Bootstrap confidence intervals (percentile method) that resample the unit of independence.

The test split is made of matched twins: each test slice gives ``lesion_test.pairs_per_slice``
pairs (the slice with a lesion and without it, same anatomy). Values measured on the slices of one
pair, or on the pairs of one slice, share anatomy and are not independent: resampling slices as if
they were would make intervals too narrow. So every interval resamples *units* (`Clusters`: one
unit = one test slice and all its twins) and a statistic is recomputed on the cases of the drawn
units, copies included.

Paired comparisons (finetune minus control) resample the same units for both sets, so the interval
reflects the difference on shared cases, not the spread of each set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Clusters:
    """Cases grouped into independent units: ``members[u]`` are the case indices of unit ``u``."""

    members: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, unit_of_case: Sequence[Hashable]) -> "Clusters":
        """Units from each case's unit key (cases with equal keys form one unit), in first-seen
        order."""
        order: dict[Hashable, list[int]] = {}
        for i, key in enumerate(unit_of_case):
            order.setdefault(key, []).append(i)
        return cls(tuple(np.array(v, dtype=np.int64) for v in order.values()))

    @classmethod
    def singletons(cls, n_cases: int) -> "Clusters":
        """Every case its own unit (independent cases)."""
        return cls(tuple(np.array([i], dtype=np.int64) for i in range(n_cases)))

    def subset(self, cases: np.ndarray) -> "Clusters":
        """The units of ``cases`` only, each case renumbered by its position in ``cases`` (a
        group of the cases, e.g. one lesion sign, resampled by the same units)."""
        unit_of = {int(c): u for u, members in enumerate(self.members) for c in members}
        return Clusters.of([unit_of[int(c)] for c in cases])

    @property
    def n_units(self) -> int:
        return len(self.members)

    @property
    def n_cases(self) -> int:
        return int(sum(len(m) for m in self.members))

    def cases(self, units: np.ndarray | None = None) -> np.ndarray:
        """Case indices of ``units`` (all units when None), copies repeated."""
        units = np.arange(self.n_units) if units is None else units
        if len(units) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([self.members[u] for u in units])

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """A bootstrap draw: as many units as there are, with replacement."""
        return rng.integers(0, self.n_units, self.n_units)


def percentile_interval(values, level: float = LEVEL) -> tuple[float, float]:
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def bias_corrected_interval(values, point: float, level: float = LEVEL) -> tuple[float, float]:
    """Bias-corrected percentile interval (Efron 1987, BC without acceleration): the percentiles
    are shifted by ``z0 = Phi^-1(share of values below point)``, so an estimator whose bootstrap
    replicates run systematically low (the CHO: a resample holds fewer distinct slices to train
    its template on) gets an interval centred on its point value, not on the replicates."""
    from scipy import stats

    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if values.size == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    below = (np.sum(values < point) + 0.5 * np.sum(values == point)) / values.size
    z0 = stats.norm.ppf(np.clip(below, 0.5 / values.size, 1.0 - 0.5 / values.size))
    z = stats.norm.ppf(0.5 + level / 2.0)
    low, high = np.percentile(values, 100.0 * stats.norm.cdf([2 * z0 - z, 2 * z0 + z]))
    return float(low), float(high)


def interval(n_cases: int, statistic: Callable[[np.ndarray], float], resamples: int,
             rng: np.random.Generator, level: float = LEVEL,
             clusters: Clusters | None = None) -> tuple[float, float]:
    """Percentile interval of ``statistic(case indices)`` over bootstrap draws of the units of
    ``clusters`` (default: every case its own unit)."""
    clusters = clusters or Clusters.singletons(n_cases)
    if clusters.n_cases != n_cases:
        raise ValueError(f"clusters hold {clusters.n_cases} cases, the statistic {n_cases}")
    return percentile_interval(
        [statistic(clusters.cases(clusters.draw(rng))) for _ in range(resamples)], level)


def mean_with_interval(values, resamples: int, rng: np.random.Generator,
                       clusters: Clusters | None = None) -> dict:
    """``{"value": mean, "ci95": [low, high]}`` of per-case values, resampling ``clusters``."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"value": None, "ci95": [None, None]}
    low, high = interval(len(values), lambda i: values[i].mean(), resamples, rng,
                         clusters=clusters)
    return {"value": float(values.mean()), "ci95": [low, high]}
