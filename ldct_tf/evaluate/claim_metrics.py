"""The one table of the metrics the claims rest on, and the rules every reader of them shares.

Each `Metric` says how a set's value is read from ``metrics.json`` (`Metric.reading`), how it is
computed from per-case rows (`Metric.compute`: the rows `ldct_tf.evaluate.readings` measures, and
the columns of ``cases.npz`` that store them for a seed study, `Metric.stored`), which case it
resamples across seeds (`Metric.unit`), whether it is a claim, its direction and its digits.
The single-seed claims (`ldct_tf.evaluate.claims`), the seed study
(`ldct_tf.evaluate.seed_study`), ``cases.npz`` (`ldct_tf.evaluate.study.write_cases`) and the
report's bars all read this table, so a metric is added in one place: here.

Also the paired comparisons themselves (`COMPARISONS`) and the `verdict` of an interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ldct_tf.evaluate import localization, metrics

# (set a, set b, what a - b shows): the paired comparisons of the evaluation and the seed study.
COMPARISONS = (
    ("finetune", "finetune_control",
     "the attribution claim: what the activation map adds over the same fine-tune (init, data "
     "order, epochs, learning rate) with uniform weight"),
    ("finetune", "pretrain",
     "the whole fine-tune phase (more epochs, lesion-centred patches and the map) against plain "
     "MSE"),
    ("finetune_oracle", "finetune_control",
     "diagnostic: what weighting the true lesion disk adds over uniform weight (an upper bound "
     "for a map; never the method)"),
    ("finetune_pairs", "pretrain", "the paper's literal LDCT*A -> NDCT*A form against plain MSE"),
    ("ndct", "ldct",
     "the study's own check: full dose against the low-dose input on the same cases; a study "
     "that cannot tell these apart cannot tell denoisers apart"),
)

SET = "{set}"  # in `Metric.stored`: the set's own column; other columns are shared by every set


@dataclass(frozen=True)
class Metric:
    """One metric of the claims.

    - ``reading``: keys into a set's entry of ``metrics.json`` down to ``{"value", "ci95"}``
      (or, with ``interval``, to the value, its interval under the sibling key ``interval``);
    - ``compute``: the value from per-case rows (all of them, or a bootstrap draw with copies);
      None where the value is not a statistic of cases (the CHO reads its own paired study);
    - ``stored``: the ``cases.npz`` columns that hold those rows, in row order (``{set}.x``: the
      set's own; others shared); empty where ``cases.npz`` keeps no cases for it;
    - ``unit``: the kind of case its rows are ("slices", "pairs", "present": the bootstrap unit
      of each is its source test slice); a seed study resamples seeds *and* these cases when
      ``stored`` is given, seeds only otherwise;
    - ``better``: "higher", "lower" or "zero" (closest to 0 is best);
    - ``claim``: compared between sets (`COMPARISONS`) and summarised over seeds.
    """

    name: str
    title: str
    reading: tuple[str, ...]
    compute: Callable[[np.ndarray], float] | None
    unit: str | None
    better: str
    digits: int
    stored: tuple[str, ...] = ()
    interval: str | None = None
    claim: bool = True

    def entry(self, result: dict | None) -> dict | None:
        """``{"value", "ci95"}`` of this metric in one set's ``metrics.json`` entry, or None where
        it was not measured."""
        node = result
        for key in self.reading[:-1] if self.interval else self.reading:
            node = (node or {}).get(key)
        if self.interval:
            if not node or node.get(self.reading[-1]) is None:
                return None
            return {"value": node[self.reading[-1]],
                    "ci95": node.get(self.interval, [None, None])}
        return node if node and node.get("value") is not None else None

    def value(self, result: dict | None) -> float | None:
        """This metric's value in one set's ``metrics.json`` entry (None where not measured)."""
        entry = self.entry(result)
        return None if entry is None else entry["value"]

    def rows(self, cases: dict, name: str) -> np.ndarray | None:
        """Set ``name``'s per-case rows from ``cases.npz`` (None where they were not stored)."""
        keys = [column.format(set=name) for column in self.stored]
        if not keys or any(key not in cases for key in keys):
            return None
        columns = [np.asarray(cases[key], np.float64) for key in keys]
        return columns[0] if len(columns) == 1 else np.column_stack(columns)


def _mean(rows: np.ndarray) -> float:
    return float(np.mean(rows))


def _ratio_of_sums(rows: np.ndarray) -> float:
    return float(rows[:, 0].sum() / rows[:, 1].sum())


def _contrast_kept(rows: np.ndarray) -> float:
    return float(metrics.twin_contrast_kept(*rows.T))


def _invented(rows: np.ndarray) -> float:
    return float(metrics.twin_invented_contrast(*rows[:, 1:].T))


def _fraction_localized(rows: np.ndarray) -> float:
    return float(rows[:, 1].mean())


def _lroc_area(rows: np.ndarray) -> float:
    return localization.lroc_area(rows[:, 0], rows[:, 1] > 0.5, rows[:, 2])


def _scores_auc(rows: np.ndarray) -> float:
    """AUC of [present, absent] scores per twin pair (the CNN observers)."""
    return metrics.auc(np.concatenate([rows[:, 0], rows[:, 1]]),
                       np.concatenate([np.ones(len(rows)), np.zeros(len(rows))]))


# rows of the twin measures: m(img_p), m(img_a), m(ndct_p), m(ndct_a), sign; one per pair
_TWINS = (f"{SET}.twin_present_hu", f"{SET}.twin_absent_hu", "ndct.twin_present_hu",
          "ndct.twin_absent_hu", "pair_sign")

# diagnostic first, then fidelity (the order of the report)
METRICS = (
    Metric("contrast_kept", "contrast kept (twins)", ("contrast_kept",), _contrast_kept,
           "pairs", "higher", 3, stored=_TWINS),
    Metric("cho_auc", "CHO AUC", ("cho", "auc"), None, "pairs", "higher", 3,
           interval="auc_ci95"),
    Metric("lroc_area", "LROC area", ("lroc", "lroc_area"), _lroc_area, "pairs", "higher", 3),
    Metric("fraction_localized", "fraction localized", ("lroc", "fraction_localized"),
           _fraction_localized, "pairs", "higher", 3),
    Metric("cnn_observer_independent", "independent CNN observer AUC",
           ("cnn_observer_independent",), _scores_auc, "pairs", "higher", 3),
    Metric("invented_contrast", "contrast invented at sham", ("invented_contrast",), _invented,
           "pairs", "zero", 3, stored=_TWINS),
    Metric("contrast_recovery", "contrast recovery (ring)", ("contrast_recovery",),
           _ratio_of_sums, "present", "higher", 3,
           stored=(f"{SET}.lesion_contrast_hu", "ndct.lesion_contrast_hu")),
    Metric("psnr_abdomen", "PSNR dB, abdomen", ("abdomen", "psnr"), _mean, "slices", "higher", 2,
           stored=(f"{SET}.psnr_abdomen",)),
    Metric("ssim_abdomen", "SSIM, abdomen", ("abdomen", "ssim"), _mean, "slices", "higher", 4,
           stored=(f"{SET}.ssim_abdomen",)),
    Metric("classifier_auc", "map classifier AUC (not independent)", ("classifier_auc",),
           _scores_auc, "pairs", "higher", 3, claim=False),
)
BY_NAME = {m.name: m for m in METRICS}
CLAIM_METRICS = tuple(m.name for m in METRICS if m.claim)


def statistic(metric: str, rows: np.ndarray, idx: np.ndarray | None = None) -> float:
    """``metric`` of per-case ``rows``, or of the rows ``idx`` (a bootstrap draw, copies
    repeated)."""
    return BY_NAME[metric].compute(rows if idx is None else rows[idx])


def verdict(low: float, high: float) -> str:
    """What a 95 % interval of a difference says: "above 0", "below 0", "within noise" (it
    includes 0) or "not measurable" (no finite interval)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not measurable"
    return "above 0" if low > 0 else "below 0" if high < 0 else "within noise"
