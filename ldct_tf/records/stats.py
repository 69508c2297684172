"""Statistics of prepared records (``stats.json``): counts per split and label, HU distribution and
noise of LDCT and NDCT.

An accumulator that merges (so a Beam ``CombineFn`` can run it in parallel): exact HU histograms at
1 HU resolution over [-1024, 3071] (values outside are counted at the ends), from which mean, SD and
percentiles follow exactly for the stored int16 HU. Noise is the global noise index of each slice
(`ldct_tf.evaluate.metrics.noise_index_hu`: mode of the local SD in uniform soft tissue, located on
the NDCT), averaged over the slices that have soft tissue.
"""

from __future__ import annotations

import numpy as np

from ldct_tf.evaluate.metrics import noise_index_hu, uniform_tissue_mask
from ldct_tf.records import schema as F

HU_LOW, HU_BINS = -1024, 4096
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
IMAGES = (F.LDCT, F.NDCT)


def empty() -> dict:
    return {"examples": 0, "labels": {"0": 0, "1": 0}, "series": set(),
            **{key: {"hist": np.zeros(HU_BINS, np.int64), "noise_sum": 0.0, "noise_n": 0}
               for key in IMAGES}}


def add(acc: dict, values: dict) -> dict:
    """Add one example (a dict of record values, images as HU arrays)."""
    acc["examples"] += 1
    acc["labels"][str(int(values[F.LABEL]))] += 1
    acc["series"].add(values[F.SERIES_KEY])
    tissue = uniform_tissue_mask(values[F.NDCT])  # where both images' noise is measured
    for key in IMAGES:
        hu = np.clip(np.rint(values[key]).astype(np.int64) - HU_LOW, 0, HU_BINS - 1)
        acc[key]["hist"] += np.bincount(hu.ravel(), minlength=HU_BINS)
        noise = noise_index_hu(values[key], mask=tissue)
        if noise is not None:
            acc[key]["noise_sum"] += noise
            acc[key]["noise_n"] += 1
    return acc


def merge(accs) -> dict:
    out = empty()
    for acc in accs:
        out["examples"] += acc["examples"]
        for label in ("0", "1"):
            out["labels"][label] += acc["labels"][label]
        out["series"] |= acc["series"]
        for key in IMAGES:
            out[key]["hist"] += acc[key]["hist"]
            out[key]["noise_sum"] += acc[key]["noise_sum"]
            out[key]["noise_n"] += acc[key]["noise_n"]
    return out


def summary(acc: dict) -> dict:
    """JSON-able figures for one split."""
    out = {"examples": acc["examples"], "labels": dict(acc["labels"]),
           "series": len(acc["series"])}
    for key in IMAGES:
        out[key] = _hist_summary(acc[key]["hist"])
        n = acc[key]["noise_n"]
        out[key]["noise_index_hu"] = round(acc[key]["noise_sum"] / n, 2) if n else None
    return out


def _hist_summary(hist: np.ndarray) -> dict:
    total = int(hist.sum())
    if total == 0:
        return {"mean_hu": None, "sd_hu": None, "percentiles_hu": {}}
    values = np.arange(HU_BINS) + HU_LOW
    mean = float((hist * values).sum() / total)
    sd = float(np.sqrt((hist * (values - mean) ** 2).sum() / total))
    cumulative = np.cumsum(hist)
    percentiles = {f"p{q}": int(values[np.searchsorted(cumulative, q / 100.0 * total)])
                   for q in PERCENTILES}
    return {"mean_hu": round(mean, 2), "sd_hu": round(sd, 2), "percentiles_hu": percentiles}
