"""The per-split statistics of `ldct_tf.records.stats` (what ``stats.json`` reports).

`summary` of accumulated examples is checked against NumPy on the same arrays: example and label
counts, distinct series, and the HU distribution of LDCT and NDCT, which the module documents as
exact for the stored integer HU over [-1024, 3071] with values outside counted at the ends: the
population mean and SD (rounded to 2 decimals) and the nearest-rank percentiles (the smallest HU
with at least q % of the pixels at or below it). The noise figure is the mean over slices that have
soft tissue of `noise_index_hu` measured where the NDCT is uniform soft tissue. `merge` must not
depend on how examples were grouped or ordered.
"""

import math

import numpy as np
import pytest

from ldct_tf.evaluate.metrics import noise_index_hu, uniform_tissue_mask
from ldct_tf.records import schema as F
from ldct_tf.records import stats

HIST_LO, HIST_HI = -1024, 3071  # the documented histogram range, restated independently
QS = (1, 5, 25, 50, 75, 95, 99)


def _slice(rng, height, width, tissue):
    """(ldct, ndct) in HU: soft tissue with noise, or air and bone with no soft tissue at all;
    a few pixels outside the histogram range either way."""
    if tissue:
        ndct = rng.normal(50.0, 8.0, (height, width))
        ldct = ndct + rng.normal(0.0, 20.0, (height, width))
    else:
        ndct = np.where(rng.uniform(size=(height, width)) < 0.5,
                        rng.normal(-950.0, 30.0, (height, width)),
                        rng.normal(1200.0, 300.0, (height, width)))
        ldct = ndct + rng.normal(0.0, 40.0, (height, width))
    ndct[0, :3] = (-1500.0, 5000.0, 3071.4)
    ldct[0, :3] = (-3000.0, 3500.0, -1024.4)
    return ldct.astype(np.float32), ndct.astype(np.float32)


def _examples(rng):
    """(split, values) of 7 slices: two splits, both labels, repeated series, slices of two sizes
    and one split whose slices have no soft tissue."""
    plan = [("train", 1, "s1", 24, 20, True), ("train", 0, "s1", 24, 20, True),
            ("train", 1, "s2", 24, 20, False), ("train", 1, "s3", 16, 16, True),
            ("val", 0, "s4", 20, 20, False), ("val", 0, "s4", 20, 20, False),
            ("val", 1, "s5", 16, 16, False)]
    out = []
    for k, (split, label, series, h, w, tissue) in enumerate(plan):
        ldct, ndct = _slice(rng, h, w, tissue)
        out.append((split, {
            F.LDCT: ldct, F.NDCT: ndct, F.LABEL: label, F.HEIGHT: h, F.WIDTH: w,
            F.PIXEL_SPACING_MM: (0.8, 0.8), F.DOSE_FRACTION: 0.25, F.SERIES_KEY: series,
            F.SLICE_INDEX: k, F.LESION_ROW: h / 2, F.LESION_COL: w / 2,
            F.LESION_RADIUS_PX: 2.0, F.LESION_CONTRAST_HU: 30.0 * label, F.PAIR_ID: -1}))
    return out


def _accumulate(examples):
    acc = stats.empty()
    for values in examples:
        stats.add(acc, values)
    return acc


def _nearest_rank(sorted_values, q):
    rank = -(-q * sorted_values.size // 100)  # ceil(q n / 100), in integers
    return int(sorted_values[max(rank, 1) - 1])


def _reference(examples):
    """The expected summary, from NumPy on the same arrays."""
    out = {"examples": len(examples),
           "labels": {str(v): sum(1 for e in examples if e[F.LABEL] == v) for v in (0, 1)},
           "series": len({e[F.SERIES_KEY] for e in examples})}
    for key in (F.LDCT, F.NDCT):
        hu = np.concatenate([np.clip(np.round(e[key].astype(np.float64)), HIST_LO, HIST_HI)
                             .ravel() for e in examples])
        ordered = np.sort(hu)
        noises = [noise_index_hu(e[key], mask=uniform_tissue_mask(e[F.NDCT])) for e in examples]
        noises = [n for n in noises if n is not None]
        out[key] = {"mean_hu": float(hu.mean()), "sd_hu": float(hu.std()),
                    "percentiles_hu": {f"p{q}": _nearest_rank(ordered, q) for q in QS},
                    "noise_index_hu": float(np.mean(noises)) if noises else None}
    return out


def _assert_summary(got, want):
    for key in ("examples", "labels", "series"):
        assert got[key] == want[key], key
    for key in (F.LDCT, F.NDCT):
        for figure in ("mean_hu", "sd_hu"):
            assert got[key][figure] == pytest.approx(want[key][figure], abs=0.005 + 1e-9)
            assert got[key][figure] == round(got[key][figure], 2)  # reported to 2 decimals
        assert got[key]["percentiles_hu"] == want[key]["percentiles_hu"]
        if want[key]["noise_index_hu"] is None:
            assert got[key]["noise_index_hu"] is None
        else:
            assert got[key]["noise_index_hu"] == pytest.approx(want[key]["noise_index_hu"],
                                                               abs=0.005 + 1e-9)


def test_summary_per_split_matches_numpy():
    examples = _examples(np.random.default_rng(0))
    for split in ("train", "val"):
        values = [v for s, v in examples if s == split]
        got = stats.summary(_accumulate(values))
        _assert_summary(got, _reference(values))


def test_summary_noise_is_the_mean_over_slices_with_soft_tissue():
    examples = [v for s, v in _examples(np.random.default_rng(1)) if s == "train"]
    got = stats.summary(_accumulate(examples))
    with_tissue = [noise_index_hu(v[F.LDCT], mask=uniform_tissue_mask(v[F.NDCT]))
                   for v in examples]
    assert sum(n is not None for n in with_tissue) == 3  # the air-and-bone slice has none
    want = np.mean([n for n in with_tissue if n is not None])
    assert got[F.LDCT]["noise_index_hu"] == pytest.approx(want, abs=0.005 + 1e-9)
    # the LDCT carries more noise than its NDCT, as simulated
    assert got[F.LDCT]["noise_index_hu"] > got[F.NDCT]["noise_index_hu"]


def test_out_of_range_hu_count_at_the_ends():
    ldct = np.array([[-5000.0, -1024.4, -1023.6, 0.4], [3070.6, 3071.4, 3500.0, 40000.0]],
                    np.float32)
    values = {F.LDCT: ldct, F.NDCT: ldct, F.LABEL: 0, F.SERIES_KEY: "s"}
    got = stats.summary(stats.add(stats.empty(), values))[F.LDCT]
    clipped = np.clip(np.round(ldct.astype(np.float64)), HIST_LO, HIST_HI).ravel()
    assert got["mean_hu"] == pytest.approx(clipped.mean(), abs=0.005 + 1e-9)
    assert got["sd_hu"] == pytest.approx(clipped.std(), abs=0.005 + 1e-9)
    assert got["percentiles_hu"]["p1"] == HIST_LO and got["percentiles_hu"]["p99"] == HIST_HI
    assert got["percentiles_hu"]["p50"] == _nearest_rank(np.sort(clipped), 50)
    assert got["noise_index_hu"] is None


def test_percentiles_are_nearest_rank():
    """The q-th percentile of 1..n is ceil(q n / 100) when a histogram bin holds each value."""
    n = 150
    ramp = (np.arange(1, n + 1, dtype=np.float32) - 1024.0 + 100.0).reshape(10, 15)
    values = {F.LDCT: ramp, F.NDCT: ramp, F.LABEL: 1, F.SERIES_KEY: "s"}
    got = stats.summary(stats.add(stats.empty(), values))[F.NDCT]["percentiles_hu"]
    for q in QS:
        assert got[f"p{q}"] == math.ceil(q * n / 100) - 1024 + 100, q


def test_empty_summary():
    got = stats.summary(stats.empty())
    assert got["examples"] == 0 and got["labels"] == {"0": 0, "1": 0} and got["series"] == 0
    for key in (F.LDCT, F.NDCT):
        assert got[key] == {"mean_hu": None, "sd_hu": None, "percentiles_hu": {},
                            "noise_index_hu": None}


def _assert_same_acc(a, b):
    assert a["examples"] == b["examples"] and a["labels"] == b["labels"]
    assert a["series"] == b["series"]
    for key in (F.LDCT, F.NDCT):
        np.testing.assert_array_equal(a[key]["hist"], b[key]["hist"])
        assert a[key]["noise_n"] == b[key]["noise_n"]
        assert a[key]["noise_sum"] == pytest.approx(b[key]["noise_sum"], rel=1e-12)


def test_merge_equals_one_accumulator_fed_everything():
    examples = [v for _, v in _examples(np.random.default_rng(2))]
    whole = _accumulate(examples)
    first, second = _accumulate(examples[:3]), _accumulate(examples[3:])
    snapshot = {k: first[k]["hist"].copy() for k in (F.LDCT, F.NDCT)}

    for merged in (stats.merge([first, second]), stats.merge([second, first]),
                   stats.merge([stats.empty(), second, stats.empty(), first])):
        _assert_same_acc(merged, whole)
        assert stats.summary(merged) == stats.summary(whole)
    for key in (F.LDCT, F.NDCT):  # merging leaves its inputs as they were
        np.testing.assert_array_equal(first[key]["hist"], snapshot[key])


def test_merge_of_per_example_accumulators_in_any_order():
    """As prepare's Beam combiner runs it: one accumulator per example, merged in any grouping."""
    examples = [v for _, v in _examples(np.random.default_rng(3))]
    whole = _accumulate(examples)
    singles = [stats.add(stats.empty(), v) for v in examples]
    order = np.random.default_rng(4).permutation(len(singles))
    shuffled = [singles[i] for i in order]
    nested = stats.merge([stats.merge(shuffled[:2]), stats.merge(shuffled[2:5]),
                          stats.merge(shuffled[5:])])
    for merged in (stats.merge(singles), nested):
        _assert_same_acc(merged, whole)
        _assert_summary(stats.summary(merged), _reference(examples))
