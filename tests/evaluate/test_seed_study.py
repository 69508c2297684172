"""The seed study on evaluation folders written here (metrics.json + cases.npz), with answers
computed here with NumPy from the same numbers."""

import json

import numpy as np
import pytest

from ldct_tf.errors import LdctError, run_cli
from ldct_tf.evaluate import seed_study
from ldct_tf.evaluate.claim_metrics import CLAIM_METRICS

N_PAIRS = 40
N_SLICES = 2 * N_PAIRS
SEEDS = 4
EFFECT = 0.25  # finetune keeps this much more of the lesion contrast than its control
INVENTED = 0.05  # and paints this much of it at the sham site, where the control paints none


def _shared_cases(rng):
    """The test split every seed shares: NDCT twin means (HU) and lesion signs."""
    sign = rng.choice([-1.0, 1.0], N_PAIRS)
    contrast = rng.uniform(40, 80, N_PAIRS)  # |lesion contrast|, HU
    absent = rng.normal(40, 5, N_PAIRS)
    return {"sign": sign, "contrast": contrast, "ndct_absent": absent,
            "ndct_present": absent + sign * contrast}


def _network(rng, shared, kept, invented, psnr):
    """Twin means of a network that keeps ``kept`` [pairs] and invents ``invented`` [pairs] of
    each lesion's contrast; slice PSNR/SSIM around ``psnr``."""
    s, c = shared["sign"], shared["contrast"]
    absent = shared["ndct_absent"] + s * c * invented
    return {"twin_present_hu": absent + s * c * kept, "twin_absent_hu": absent,
            "lesion_contrast_hu": c * kept + rng.normal(0, 1, N_PAIRS),
            "psnr_abdomen": psnr + rng.normal(0, 0.3, N_SLICES),
            "ssim_abdomen": 0.9 + rng.normal(0, 0.005, N_SLICES),
            "cho_auc": float(rng.uniform(0.7, 0.9)), "lroc_area": float(rng.uniform(0.5, 0.8)),
            "fraction_localized": float(rng.uniform(0.6, 0.9)),
            "cnn_observer_independent": float(rng.uniform(0.6, 0.9))}


def _formula(net, shared):
    """The reported values, from the definitions (independent of ldct_tf)."""
    s = shared["sign"]
    true = np.sum(s * (shared["ndct_present"] - shared["ndct_absent"]))
    return {"psnr_abdomen": net["psnr_abdomen"].mean(), "ssim_abdomen": net["ssim_abdomen"].mean(),
            "contrast_kept": np.sum(s * (net["twin_present_hu"] - net["twin_absent_hu"])) / true,
            "invented_contrast": np.sum(s * (net["twin_absent_hu"] - shared["ndct_absent"])) / true,
            "contrast_recovery": net["lesion_contrast_hu"].sum() / shared["contrast"].sum(),
            "cho_auc": net["cho_auc"], "lroc_area": net["lroc_area"],
            "fraction_localized": net["fraction_localized"],
            "cnn_observer_independent": net["cnn_observer_independent"]}


def _entry(value, half=0.1):
    return {"value": float(value), "ci95": [float(value) - half, float(value) + half]}


def _write_seed(workdir, train_seed, shared, networks):
    """eval/metrics.json and eval/cases.npz in the format `ldct_tf.evaluate.study` writes."""
    out = workdir / "eval"
    out.mkdir(parents=True)
    ndct = {"twin_present_hu": shared["ndct_present"], "twin_absent_hu": shared["ndct_absent"],
            "lesion_contrast_hu": shared["contrast"]}
    arrays = {"sets": np.array(["ndct", *networks]), "n_slices": np.array(N_SLICES),
              "pair_index": np.arange(N_SLICES).reshape(-1, 2), "pair_sign": shared["sign"],
              "present_index": np.arange(0, N_SLICES, 2)}
    sets = {"ndct": {"abdomen": None, "contrast_kept": _entry(1.0, 0),
                     "invented_contrast": _entry(0.0, 0), "contrast_recovery": _entry(1.0, 0),
                     "cho": {"auc": 1.0}}}
    for key, value in ndct.items():
        arrays[f"ndct.{key}"] = value
    for name, net in networks.items():
        for key in ("twin_present_hu", "twin_absent_hu", "lesion_contrast_hu", "psnr_abdomen",
                    "ssim_abdomen"):
            arrays[f"{name}.{key}"] = net[key]
        v = _formula(net, shared)
        sets[name] = {"abdomen": {"psnr": _entry(v["psnr_abdomen"], 0.3),
                                  "ssim": _entry(v["ssim_abdomen"], 0.01)},
                      "contrast_kept": _entry(v["contrast_kept"], 0.05),
                      "invented_contrast": _entry(v["invented_contrast"], 0.03),
                      "contrast_recovery": _entry(v["contrast_recovery"]),
                      "cho": {"auc": v["cho_auc"]},
                      "lroc": {"lroc_area": _entry(v["lroc_area"]),
                               "fraction_localized": _entry(v["fraction_localized"])},
                      "cnn_observer_independent": _entry(v["cnn_observer_independent"])}
    np.savez_compressed(out / "cases.npz", **arrays)
    (out / "metrics.json").write_text(json.dumps({"train_seed": train_seed, "sets": sets}))
    return workdir


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four seeds: finetune keeps EFFECT more than its control; the oracle equals the control up
    to noise; LDCT measured in seed 0 only (as a seed study's extra seeds skip baselines)."""
    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("seeds")
    shared = _shared_cases(rng)
    workdirs, values = [], []
    for k in range(SEEDS):
        spread = rng.normal(0, 0.03)  # what this training seed does to every network

        def kept(mean):
            return mean + spread + rng.normal(0, 0.08, N_PAIRS)

        def invented(mean):
            return rng.normal(mean, 0.02, N_PAIRS)

        networks = {
            "pretrain": _network(rng, shared, kept(0.45), invented(0.0), 37.0),
            "finetune_control": _network(rng, shared, kept(0.5), invented(0.0), 37.1),
            "finetune": _network(rng, shared, kept(0.5 + EFFECT), invented(INVENTED), 37.0),
            "finetune_oracle": _network(rng, shared, kept(0.5), invented(0.0), 37.1),
        }
        if k == 0:
            networks["ldct"] = _network(rng, shared, kept(1.0), invented(0.0), 31.0)
        _write_seed(root / f"seed-{k}", k, shared, networks)
        workdirs.append(root / f"seed-{k}")
        values.append({name: _formula(net, shared) for name, net in networks.items()})
    out = root / "study"
    return workdirs, values, out, seed_study.aggregate(workdirs, out, resamples=400, seed=3)


def test_per_set_mean_and_sd_over_seeds(study):
    _, values, _, summary = study
    for name in ("pretrain", "finetune", "finetune_control", "finetune_oracle"):
        for metric in CLAIM_METRICS:
            per_seed = [v[name][metric] for v in values]
            got = summary["sets"][name][metric]
            assert got["mean"] == pytest.approx(np.mean(per_seed), rel=1e-9), (name, metric)
            assert got["sd"] == pytest.approx(np.std(per_seed, ddof=1), rel=1e-6), (name, metric)
            assert got["n_seeds"] == SEEDS
    ldct = summary["sets"]["ldct"]["psnr_abdomen"]
    assert ldct["n_seeds"] == 1 and ldct["sd"] is None
    assert ldct["mean"] == pytest.approx(values[0]["ldct"]["psnr_abdomen"])


def test_claim_means_and_sds_are_over_per_seed_differences(study):
    _, values, _, summary = study
    claims = {(c["a"], c["b"]): c for c in summary["claims"]}
    assert list(claims) == [("finetune", "finetune_control"), ("finetune", "pretrain"),
                            ("finetune_oracle", "finetune_control")]
    for (a, b), item in claims.items():
        for metric in CLAIM_METRICS:
            diffs = [v[a][metric] - v[b][metric] for v in values]
            got = item["differences"][metric]
            assert got["mean"] == pytest.approx(np.mean(diffs), abs=1e-9), (a, b, metric)
            assert got["sd"] == pytest.approx(np.std(diffs, ddof=1), rel=1e-6), (a, b, metric)
    assert claims[("finetune", "finetune_control")]["differences"]["cho_auc"]["levels"] == \
        "seeds only"


def test_two_level_interval_finds_a_large_effect_and_not_a_null_one(study):
    _, _, _, summary = study
    claims = {(c["a"], c["b"]): c for c in summary["claims"]}
    kept = claims[("finetune", "finetune_control")]["differences"]["contrast_kept"]
    low, high = kept["ci95"]
    assert low < EFFECT < high and low > 0
    assert kept["verdict"] == "above 0"
    invented = claims[("finetune", "finetune_control")]["differences"]["invented_contrast"]
    assert 0 < invented["ci95"][0] < INVENTED < invented["ci95"][1]
    null = claims[("finetune_oracle", "finetune_control")]["differences"]["contrast_kept"]
    assert null["ci95"][0] < 0 < null["ci95"][1] and null["verdict"] == "within noise"


def test_interval_of_a_constant_difference_is_that_difference():
    rng = np.random.default_rng(0)
    per_seed = np.full((200, 3), 0.2)  # every seed and every case resample gives 0.2
    assert seed_study._two_level(per_seed, 200, rng) == pytest.approx((0.2, 0.2))
    # seed spread alone widens it: seeds at 0.1, 0.2, 0.3
    low, high = seed_study._two_level(np.tile([0.1, 0.2, 0.3], (500, 1)), 500, rng)
    assert 0.1 <= low < 0.2 < high <= 0.3


def test_outputs_are_written(study):
    _, _, out, summary = study
    assert (out / "figures" / "tradeoff.png").stat().st_size > 1000
    saved = json.loads((out / "summary.json").read_text())
    assert saved["n_seeds"] == SEEDS and saved["train_seeds"] == list(range(SEEDS))
    assert saved["claims"][0]["name"] == "finetune vs finetune_control"
    markdown = (out / "summary.md").read_text()
    assert "coarse" in markdown and "oracle (diagnostic) vs finetune_control" in markdown
    assert summary["figures"]["tradeoff"] == "figures/tradeoff.png"


def test_missing_evaluation_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    with pytest.raises(LdctError, match="python -m ldct_tf.evaluate --workdir"):
        seed_study.aggregate([tmp_path / "run"], tmp_path / "out")
    assert run_cli(seed_study.main, [str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "eval/metrics.json" in err


def test_different_test_cases_are_refused(study, tmp_path):
    workdirs, _, _, _ = study
    rng = np.random.default_rng(5)
    other = _write_seed(tmp_path / "other", 9, _shared_cases(rng),
                        {"finetune": _network(rng, _shared_cases(rng), np.full(N_PAIRS, 0.5),
                                              np.zeros(N_PAIRS), 37.0)})
    with pytest.raises(LdctError, match="different NDCT test images"):
        seed_study.aggregate([workdirs[0], other], tmp_path / "out")
    with pytest.raises(LdctError, match="listed twice"):
        seed_study.aggregate([workdirs[0], workdirs[0]], tmp_path / "out")


def test_case_weights_draw_test_slices_with_all_their_pairs():
    # cases.npz names each case's unit: pairs of one slice are drawn together
    cases = {"n_slices": np.array(8), "pair_index": np.arange(8).reshape(-1, 2),
             "present_index": np.arange(0, 8, 2), "slice_unit": np.array([0, 0, 0, 0, 1, 1, 1, 1]),
             "pair_unit": np.array([0, 0, 1, 1]), "present_unit": np.array([0, 0, 1, 1])}
    seed = seed_study.Seed(workdir=None, train_seed=0, report={}, cases=cases)
    weights = seed_study.case_weights([seed], 200, np.random.default_rng(0))
    pairs, slices = weights["pairs"], weights["slices"]
    assert pairs.shape == (200, 4) and slices.shape == (200, 8)
    np.testing.assert_array_equal(pairs[:, 0], pairs[:, 1])
    np.testing.assert_array_equal(pairs[:, 2], pairs[:, 3])
    assert set(np.unique(pairs[:, 0])) <= {0, 1, 2} and (pairs[:, 0] + pairs[:, 2] == 2).all()
    np.testing.assert_array_equal(slices[:, 0], pairs[:, 0])
