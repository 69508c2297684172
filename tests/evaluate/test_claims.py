"""The claim rules in one table (`claim_metrics`) and the paired comparisons built on them
(`claims`): each metric's reading and formula, the verdict of an interval, what a comparison
resolves, on per-case values made here with known answers."""

import math

import numpy as np
import pytest

from ldct_tf.config import Config
from ldct_tf.evaluate import bootstrap, claims
from ldct_tf.evaluate.claim_metrics import BY_NAME, CLAIM_METRICS, METRICS, statistic, verdict


@pytest.mark.parametrize("low, high, expected", [
    (0.1, 0.3, "above 0"),
    (-0.3, -0.1, "below 0"),
    (-0.1, 0.2, "within noise"),
    (0.0, 0.2, "within noise"),  # an interval touching 0 does not exclude it
    (-0.2, 0.0, "within noise"),
    (0.0, 0.0, "within noise"),
    (float("nan"), 0.2, "not measurable"),
    (-0.1, float("inf"), "not measurable"),
])
def test_verdict_of_an_interval(low, high, expected):
    assert verdict(low, high) == expected


@pytest.mark.parametrize("low, high, phrase", [
    (0.1, 0.3, "cho auc: finetune higher than finetune_control by +0.2 (95 % CI +0.1 to +0.3)"),
    (-0.3, -0.1, "cho auc: finetune lower than finetune_control by +0.2"),
    (-0.1, 0.3, "finetune minus finetune_control = +0.2 is within noise (95 % CI -0.1 to +0.3 "
                "includes 0)"),
    (float("nan"), float("nan"), "cho auc: finetune vs finetune_control not measurable"),
])
def test_verdict_sentence_names_the_metric_both_sets_and_the_interval(low, high, phrase):
    assert phrase in claims._verdict("cho_auc", "finetune", "finetune_control", 0.2, low, high)


def test_the_oracle_is_labelled_a_diagnostic_in_verdicts():
    sentence = claims._verdict("contrast_kept", "finetune_oracle", "finetune_control", 0.1, 0.05,
                               0.2)
    assert sentence.startswith("contrast kept: oracle (diagnostic) higher than finetune_control")


@pytest.mark.parametrize("low, high, expected", [
    (-0.1, 0.1, 2.8 / 1.96 * 0.1),  # half-width 0.1 = 1.96 SE; 80 % power at 5 %: 2.8 SE
    (0.2, 0.6, 2.8 / 1.96 * 0.2),
    (0.3, 0.3, 0.0),
    (float("nan"), 0.1, None),
    (-float("inf"), 0.1, None),
])
def test_resolvable_difference_is_2_8_standard_errors(low, high, expected):
    got = claims._resolvable(low, high)
    assert got is None if expected is None else got == pytest.approx(expected)


# --- the table: each metric's formula and where its value is read ------------------------------

def _twin_rows(rng, n, kept, invented):
    """Rows of the twin measures: m(img_p), m(img_a), m(ndct_p), m(ndct_a), sign."""
    sign = rng.choice([-1.0, 1.0], n)
    contrast = rng.uniform(20, 60, n)
    ndct_a = rng.normal(40, 5, n)
    ndct_p = ndct_a + sign * contrast
    absent = ndct_a + sign * contrast * invented
    return np.column_stack([absent + sign * contrast * kept, absent, ndct_p, ndct_a, sign])


FORMULAS = {  # written from the definitions in the evaluation's conventions
    "contrast_kept": lambda r: np.sum(r[:, 4] * (r[:, 0] - r[:, 1]))
    / np.sum(r[:, 4] * (r[:, 2] - r[:, 3])),
    "invented_contrast": lambda r: np.sum(r[:, 4] * (r[:, 1] - r[:, 3]))
    / np.sum(r[:, 4] * (r[:, 2] - r[:, 3])),
    "contrast_recovery": lambda r: r[:, 0].sum() / r[:, 1].sum(),
    "psnr_abdomen": np.mean, "ssim_abdomen": np.mean,
    "fraction_localized": lambda r: r[:, 1].mean(),
    # P(present rated above absent and localized), ties one half
    "lroc_area": lambda r: np.mean([[c * (1.0 if p > a else 0.5 if p == a else 0.0)
                                     for a in r[:, 2]] for p, c in zip(r[:, 0], r[:, 1])]),
    # Mann-Whitney: P(present score above absent score), ties one half
    "cnn_observer_independent": lambda r: np.mean([[1.0 if p > a else 0.5 if p == a else 0.0
                                                    for a in r[:, 1]] for p in r[:, 0]]),
}
FORMULAS["classifier_auc"] = FORMULAS["cnn_observer_independent"]


def _rows(metric, rng, n=30):
    if metric in ("contrast_kept", "invented_contrast"):
        return _twin_rows(rng, n, 0.6, 0.1)
    if metric == "contrast_recovery":
        return np.column_stack([rng.uniform(10, 30, n), rng.uniform(30, 50, n)])
    if metric in ("psnr_abdomen", "ssim_abdomen"):
        return rng.normal(35, 1, n)
    if metric in ("fraction_localized", "lroc_area"):
        return np.column_stack([rng.normal(1, 1, n), rng.integers(0, 2, n),
                                rng.normal(0, 1, n)]).astype(np.float64)
    return np.column_stack([rng.normal(1, 1, n), rng.normal(0, 1, n)])  # the observers' scores


@pytest.mark.parametrize("metric", [m.name for m in METRICS if m.compute is not None])
def test_statistic_matches_the_formula_on_all_cases_and_on_a_draw(metric):
    rng = np.random.default_rng(3)
    rows = _rows(metric, rng)
    assert statistic(metric, rows) == pytest.approx(FORMULAS[metric](rows), rel=1e-12)
    draw = rng.integers(0, len(rows), len(rows))  # a bootstrap draw, copies repeated
    assert statistic(metric, rows, draw) == pytest.approx(FORMULAS[metric](rows[draw]),
                                                          rel=1e-12)


METRICS_JSON_SET = {  # one set's entry of metrics.json, as `evaluate.study` writes it
    "contrast_kept": {"value": 0.61, "ci95": [0.5, 0.7], "pairs": 30},
    "cho": {"dprime": 1.2, "auc": 0.81, "auc_ci95": [0.75, 0.86]},
    "lroc": {"lroc_area": {"value": 0.55, "ci95": [0.5, 0.6]},
             "fraction_localized": {"value": 0.7, "ci95": [0.6, 0.8]}},
    "cnn_observer_independent": {"value": 0.66, "ci95": [0.6, 0.7]},
    "invented_contrast": {"value": 0.02, "ci95": [-0.01, 0.05], "tolerance": 0.1},
    "contrast_recovery": {"value": 0.58, "ci95": [0.5, 0.66]},
    "abdomen": {"psnr": {"value": 35.2, "ci95": [35.0, 35.4]},
                "ssim": {"value": 0.91, "ci95": [0.9, 0.92]}},
    "classifier_auc": None,
}
EXPECTED_VALUES = {"contrast_kept": 0.61, "cho_auc": 0.81, "lroc_area": 0.55,
                   "fraction_localized": 0.7, "cnn_observer_independent": 0.66,
                   "invented_contrast": 0.02, "contrast_recovery": 0.58, "psnr_abdomen": 35.2,
                   "ssim_abdomen": 0.91, "classifier_auc": None}


@pytest.mark.parametrize("metric", [m.name for m in METRICS])
def test_each_metric_is_read_from_its_place_in_metrics_json(metric):
    assert BY_NAME[metric].value(METRICS_JSON_SET) == EXPECTED_VALUES[metric]
    assert BY_NAME[metric].value({"abdomen": None, "cho": None}) is None  # NDCT: no fidelity


def test_the_cho_entry_carries_its_own_interval():
    assert BY_NAME["cho_auc"].entry(METRICS_JSON_SET) == {"value": 0.81, "ci95": [0.75, 0.86]}


def test_stored_columns_rebuild_the_rows_of_a_set():
    rng = np.random.default_rng(5)
    twins = _twin_rows(rng, 12, 0.5, 0.0)
    cases = {"net.twin_present_hu": twins[:, 0], "net.twin_absent_hu": twins[:, 1],
             "ndct.twin_present_hu": twins[:, 2], "ndct.twin_absent_hu": twins[:, 3],
             "pair_sign": twins[:, 4], "net.psnr_abdomen": np.arange(5.0)}
    np.testing.assert_array_equal(BY_NAME["contrast_kept"].rows(cases, "net"), twins)
    np.testing.assert_array_equal(BY_NAME["psnr_abdomen"].rows(cases, "net"), np.arange(5.0))
    assert BY_NAME["contrast_recovery"].rows(cases, "net") is None  # not stored for this set
    assert BY_NAME["cho_auc"].rows(cases, "net") is None  # the CHO keeps no cases


def test_claim_metrics_are_the_table_in_order_without_the_map_classifier():
    assert CLAIM_METRICS == ("contrast_kept", "cho_auc", "lroc_area", "fraction_localized",
                             "cnn_observer_independent", "invented_contrast",
                             "contrast_recovery", "psnr_abdomen", "ssim_abdomen")
    assert all(m.better in ("higher", "lower", "zero") for m in METRICS)
    assert all(m.unit in ("slices", "pairs", "present") for m in METRICS if m.stored)


# --- a paired comparison on cases with known answers -------------------------------------------

def _set(rows_by_metric, clusters):
    return {metric: {"cases": rows, "clusters": clusters[metric]}
            for metric, rows in rows_by_metric.items()}


@pytest.fixture(scope="module")
def compared():
    rng = np.random.default_rng(9)
    n_pairs, n_slices = 24, 24
    twins = _twin_rows(rng, n_pairs, 0.5, 0.0)
    better = twins.copy()  # keeps 0.3 more of every lesion than ``twins``
    better[:, 0] += 0.3 * (twins[:, 2] - twins[:, 3])
    psnr = rng.normal(35.0, 0.5, n_slices)
    # a slice and its twin pair form one unit: 12 units of 2 pairs
    pair_units = bootstrap.Clusters.of(np.repeat(np.arange(n_pairs // 2), 2))
    clusters = {"contrast_kept": pair_units, "invented_contrast": pair_units,
                "psnr_abdomen": bootstrap.Clusters.singletons(n_slices)}
    cases = {"finetune": _set({"contrast_kept": better, "invented_contrast": better,
                               "psnr_abdomen": psnr - 0.2}, clusters),
             "finetune_control": _set({"contrast_kept": twins, "invented_contrast": twins,
                                       "psnr_abdomen": psnr}, clusters)}
    config = Config()
    config = config.replace(evaluate=config.evaluate.__class__(resamples=300))
    item = claims.compare(config, cases, "finetune", "finetune_control", "the attribution claim")
    return twins, better, item


def test_compare_gives_the_formula_difference_with_its_interval_and_verdict(compared):
    twins, better, item = compared
    kept = item["differences"]["contrast_kept"]
    expected = FORMULAS["contrast_kept"](better) - FORMULAS["contrast_kept"](twins)
    assert expected == pytest.approx(0.3)
    assert kept["value"] == pytest.approx(expected, rel=1e-12)
    low, high = kept["ci95"]
    # every case gains exactly 0.3 of its own contrast: every resample's difference is 0.3
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)
    assert kept["verdict"].startswith("contrast kept: finetune higher than finetune_control")
    assert kept["resolvable"] == pytest.approx(0.0, abs=1e-12)
    invented = item["differences"]["invented_contrast"]
    assert invented["value"] == 0.0 and "within noise" in invented["verdict"]
    psnr = item["differences"]["psnr_abdomen"]
    assert psnr["value"] == pytest.approx(-0.2)
    assert psnr["verdict"].startswith("psnr abdomen: finetune lower than finetune_control")
    assert set(item["differences"]) == {"contrast_kept", "invented_contrast", "psnr_abdomen"}
    assert item["verdict"] == "; ".join(d["verdict"] for d in item["differences"].values())
    assert "train.seed = 0" in item["seeds"]


def test_compare_resolves_what_its_interval_says():
    rng = np.random.default_rng(2)
    n = 60
    noisy = rng.normal(35.0, 1.0, n)
    clusters = {"psnr_abdomen": bootstrap.Clusters.singletons(n)}
    cases = {"a": _set({"psnr_abdomen": noisy + rng.normal(0.0, 0.5, n)}, clusters),
             "b": _set({"psnr_abdomen": noisy}, clusters)}
    config = Config()
    config = config.replace(evaluate=config.evaluate.__class__(resamples=400))
    entry = claims.compare(config, cases, "a", "b", "")["differences"]["psnr_abdomen"]
    low, high = entry["ci95"]
    # the standard error of a mean difference of n independent N(0, 0.5) cases
    se = 0.5 / math.sqrt(n)
    assert entry["resolvable"] == pytest.approx(2.8 * se, rel=0.25)
    assert entry["resolvable"] == pytest.approx(2.8 / 1.96 * (high - low) / 2)
