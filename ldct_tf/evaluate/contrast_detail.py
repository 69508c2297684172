"""Detectability per lesion size and contrast: the contrast-detail picture of low-contrast
detectability (as CT physicists plot it for phantom inserts, e.g. the FDA's LCD_CT tool).

The test split's matched twin pairs are binned by lesion diameter (mm: ``2 radius_px *
spacing_mm``) and contrast magnitude (HU: the sign ignored) into ``n x n`` equal-width bins over
the `[lesion_test]` ranges, edges ``lo + k (hi - lo) / n`` (`ldct_tf.ct.lesions.lesion_bins`: a
lesion on an inner edge goes to the upper bin, one outside the range to the nearest end bin).

For every set and bin (`measure`):

- the CHO (`readings.cho_reading`: the overall CHO's ROIs, pooled covariance, half splits by unit
  and unit bootstrap, with Laguerre-Gauss channels of width 2/3 of the bin's mean diameter); a bin
  with fewer than `readings.MIN_CHO_PAIRS` units (test slices) gets none. Its bootstrap uses at
  most `BIN_RESAMPLES` resamples (the splits are the overall CHO's, so the point values are the same
  estimator): a bin's interval is wide anyway, and the cost per resample barely falls with the
  bin's size: 4 bins at the benchmark's 1000 resamples would add about 25 s per set (about 200 s
  for its 8 sets on 2 shared cores), at 300 about 5 s;
- the fraction localized by the scanning observer: the mean of the per-pair ``correct`` flags
  `readings.read_cases` already holds (not rescanned), with its interval over the bin's units.

Every set gets the same draws and splits in a bin (same seed, same units), as in the overall
study.
"""

from __future__ import annotations

import numpy as np

from ldct_tf.config import Config
from ldct_tf.ct.lesions import DEFAULT_BINS, lesion_bins
from ldct_tf.evaluate import bootstrap, readings
from ldct_tf.evaluate.claim_metrics import statistic
from ldct_tf.evaluate.sets import Slices

BIN_RESAMPLES = 300  # the CHO's bootstrap resamples per bin, at most (see the module docstring)


def twin_bins(test: Slices, pairs, diameter_range, contrast_range, n: int = DEFAULT_BINS
              ) -> list[dict]:
    """The ``n x n`` bins of the twin ``pairs``, diameters major: per bin ``diameter_mm`` and
    ``contrast_hu`` (its edges; contrast as a magnitude), ``members`` (indices into ``pairs``)
    and its lesions' ``mean_diameter_mm`` and ``mean_contrast_hu`` (None when empty)."""
    diameter_mm = np.array([2.0 * test.lesion[p][2] * test.spacing_mm[p] for p, _ in pairs])
    contrast_hu = np.abs([test.lesion[p][3] for p, _ in pairs])
    found = lesion_bins(diameter_mm, contrast_hu, tuple(diameter_range), tuple(contrast_range), n)
    return [{"diameter_mm": list(size), "contrast_hu": list(contrast),
             "members": np.array(members, np.int64),
             "mean_diameter_mm": float(diameter_mm[members].mean()) if members else None,
             "mean_contrast_hu": float(contrast_hu[members].mean()) if members else None}
            for (size, contrast), members in found.items()]


def measure(config: Config, test: Slices, sets: dict, cases: dict, n: int = DEFAULT_BINS
            ) -> dict | None:
    """The contrast-detail results of every set (metrics.json's ``contrast_detail``), from the
    images ``sets`` and the per-case readings ``cases`` of `readings.evaluate_sets`; None without
    twin pairs.

    Returns ``{"bins_per_axis", "diameter_mm_edges", "contrast_hu_edges", "dose_fraction",
    "cho": {"splits", "resamples", "min_units"}, "bins": [{"diameter_mm", "contrast_hu",
    "pairs", "units", "mean_diameter_mm", "mean_contrast_hu"}], "sets": {name: [per bin, in the
    order of "bins": {"cho": readings.cho_summary or None, "fraction_localized": {"value",
    "ci95"}}]}}``.
    """
    pairs = readings.twin_pairs(test)
    located = {name: cases[name]["fraction_localized"] for name in sets
               if "fraction_localized" in cases.get(name, {})}
    if not pairs or not located:
        return None
    cfg, lesion = config.evaluate, config.lesion_test
    bins = twin_bins(test, pairs, lesion.diameter_mm, lesion.contrast_hu, n)
    units = next(iter(located.values()))["clusters"]  # the pairs' units: the same in every set
    for b in bins:
        b["clusters"] = units.subset(b["members"])
    resamples = min(cfg.resamples, BIN_RESAMPLES)
    results = {name: [_bin_reading(sets[name], test, pairs, b, k, located[name], cfg, resamples)
                      for k, b in enumerate(bins)] for name in located}
    return {"bins_per_axis": n,
            "diameter_mm_edges": _edges(b["diameter_mm"] for b in bins),
            "contrast_hu_edges": _edges(b["contrast_hu"] for b in bins),
            "dose_fraction": config.data.simulated_dose_fraction,
            "cho": {"splits": cfg.cho_splits, "resamples": resamples,
                    "min_units": readings.MIN_CHO_PAIRS},
            "bins": [{**{key: b[key] for key in ("diameter_mm", "contrast_hu", "mean_diameter_mm",
                                                  "mean_contrast_hu")},
                      "pairs": len(b["members"]), "units": b["clusters"].n_units} for b in bins],
            "sets": results}


def _bin_reading(images, test: Slices, pairs, b: dict, k: int, located: dict, cfg,
                 resamples: int) -> dict:
    """One set's CHO and fraction localized in bin ``b`` (the ``k``-th)."""
    members, clusters = b["members"], b["clusters"]
    cho = readings.cho_reading(images, test, [pairs[m] for m in members], clusters, cfg,
                               resamples)
    return {"cho": readings.cho_summary(cho),
            "fraction_localized": _fraction_localized(located, members, clusters, k, cfg)}


def _fraction_localized(located: dict, members: np.ndarray, clusters, k: int, cfg) -> dict:
    """The bin's share of correctly localized pairs and its interval over the bin's units."""
    if not len(members):
        return {"value": None, "ci95": [None, None]}
    sub = {"cases": located["cases"][members], "clusters": clusters}
    rng = np.random.default_rng([cfg.seed, k])  # every set: the same draws in a bin
    low, high = bootstrap.interval(
        len(members), lambda i: statistic("fraction_localized", sub["cases"], i), cfg.resamples,
        rng, clusters=clusters)
    return {"value": statistic("fraction_localized", sub["cases"]), "ci95": [low, high]}


def _edges(ranges) -> list[float]:
    """The distinct edges of a bin axis, from its bins' (low, high) ranges."""
    ranges = list(dict.fromkeys(tuple(r) for r in ranges))
    return [low for low, _ in ranges] + [ranges[-1][1]]
