"""The evaluation step on the tiny run: every set, every metric, the report and its figures."""

import json

import numpy as np
import pytest
from scipy import ndimage

from ldct_tf import progress, records
from ldct_tf.evaluate import claims, metrics, readings
from ldct_tf.evaluate import sets as image_sets
from ldct_tf.evaluate import study as evaluate
from ldct_tf.evaluate.display import NETWORKS
from ldct_tf.workdir import Workdir


@pytest.fixture(scope="module")
def evaluated(denoisers_tiny, tmp_path_factory):
    """The tiny run evaluated in a copy of its work directory, where finetune_control is a copy
    of finetune (the shared session work directory stays as it is)."""
    import shutil

    config, source = denoisers_tiny
    workdir = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(source, workdir)
    # only the networks this fixture promises: other tests may have added variants to the source
    for extra in ("finetune_control", "finetune_oracle", "finetune_pairs"):
        shutil.rmtree(workdir / "denoiser" / extra, ignore_errors=True)
    shutil.copytree(workdir / "denoiser" / "finetune", workdir / "denoiser" / "finetune_control")
    config = config.replace(evaluate=config.evaluate.__class__(resamples=50, bm3d=False,
                                                               cho_splits=2))
    progress.reset_phases()
    report = evaluate.run(config, workdir)
    PHASES.update(progress.phases())
    return config, workdir, report


PHASES = {}  # what the evaluation of `evaluated` timed


def test_the_evaluation_times_its_phases(evaluated):
    assert list(PHASES) == ["load", "baselines", "denoise", "cnn_observers", "metrics", "cho",
                            "intervals", "contrast_detail", "report"]
    assert all(seconds >= 0 for seconds in PHASES.values())


def test_metrics_json_has_every_set_window_and_interval(evaluated):
    _, workdir, report = evaluated
    saved = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert saved["window"]["abdomen"] == {"hu": [-160.0, 240.0], "data_range": 400.0}
    assert saved["window"]["full_range"]["data_range"] == 4096.0
    for name in ("ldct", "ndct", "gaussian", "pretrain", "finetune"):
        assert name in saved["sets"], name
    psnr = saved["sets"]["finetune"]["abdomen"]["psnr"]
    assert psnr["ci95"][0] <= psnr["value"] <= psnr["ci95"][1]
    assert saved["sets"]["finetune"]["full_range"]["ssim"]["value"] is not None
    assert "bm3d" in saved["skipped"] and "disabled" in saved["skipped"]["bm3d"]
    assert saved["claim"]["available"] and saved["claim"]["verdict"]
    # the headline claim is the attribution: finetune against its uniform-weight control
    assert (saved["claim"]["a"], saved["claim"]["b"]) == ("finetune", "finetune_control")
    assert "one training seed" in saved["claim"]["seeds"]
    for name in ("finetune_oracle", "finetune_pairs"):
        assert "no model at" in saved["skipped"][name]


def test_ldct_psnr_equals_an_independent_computation(evaluated):
    from skimage.metrics import peak_signal_noise_ratio

    config, workdir, report = evaluated
    test = image_sets.load_slices(records.pattern(workdir / "records", "test"), config)
    expected = np.mean([peak_signal_noise_ratio(np.clip(n, -160, 240), np.clip(low, -160, 240),
                                                data_range=400)
                        for low, n in zip(test.ldct, test.ndct)])
    assert report["sets"]["ldct"]["abdomen"]["psnr"]["value"] == pytest.approx(expected, abs=1e-6)
    assert report["sets"]["ldct"]["noise"]["ratio_to_ldct"] == pytest.approx(1.0)


def test_report_and_figures_are_written(evaluated):
    _, workdir, _ = evaluated
    out = workdir / "eval"
    markdown = (out / "report.md").read_text()
    assert "abdomen [-160, 240] HU (data range 400)" in markdown
    assert "bm3d" in markdown  # the skipped set is listed with its reason
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # self-contained
    for figure in ("lesion_rois.png", "profiles.png", "bars.png", "nps.png", "lroc.png"):
        assert (out / "figures" / figure).stat().st_size > 1000, figure
    # the diagnostic table leads, then fidelity
    assert markdown.index("## Diagnostic") < markdown.index("## Fidelity") < markdown.index(
        "## Paired comparisons")
    assert "independent CNN observer" in markdown and "LROC area" in markdown


def test_metrics_json_has_the_diagnostic_figures_of_every_set(evaluated):
    _, workdir, _ = evaluated
    saved = json.loads((workdir / "eval" / "metrics.json").read_text())
    for name in ("ldct", "ndct", "pretrain", "finetune"):
        result = saved["sets"][name]
        assert set(result["contrast_kept"]) >= {"value", "ci95", "by_group"}
        if saved["units"] >= readings.MIN_CHO_PAIRS:
            assert set(result["cho"]) >= {"dprime", "dprime_ci95", "auc", "auc_ci95"}
        else:  # too few test slices to train a CHO template on half of them
            assert result["cho"] is None
        lroc = result["lroc"]
        for key in ("fraction_localized", "lroc_area"):
            low, high = lroc[key]["ci95"]
            assert low <= lroc[key]["value"] <= high, (name, key)
        assert lroc["chance_fraction"] == pytest.approx(1 / 16)
        assert lroc["curve"]["fpf"][-1] == 1.0
        assert lroc["curve"]["tpf"][-1] == pytest.approx(lroc["fraction_localized"]["value"],
                                                         abs=1e-4)
    assert saved["units"] <= saved["matched_pairs"]


def test_metrics_json_and_report_have_the_contrast_detail_bins(evaluated):
    config, workdir, _ = evaluated
    saved = json.loads((workdir / "eval" / "metrics.json").read_text())
    detail = saved["contrast_detail"]
    (d_lo, d_hi), (c_lo, c_hi) = config.lesion_test.diameter_mm, config.lesion_test.contrast_hu
    assert detail["diameter_mm_edges"] == pytest.approx([d_lo, (d_lo + d_hi) / 2, d_hi])
    assert detail["contrast_hu_edges"] == pytest.approx([c_lo, (c_lo + c_hi) / 2, c_hi])
    assert len(detail["bins"]) == 4
    assert sum(b["pairs"] for b in detail["bins"]) == saved["matched_pairs"]
    assert set(detail["sets"]) == set(saved["sets"])
    for entries in detail["sets"].values():
        assert len(entries) == 4 and all("cho" in e and "fraction_localized" in e for e in entries)
    out = workdir / "eval"
    assert (out / "figures" / "contrast_detail.png").stat().st_size > 1000
    assert "## Detectability by lesion size and contrast" in (out / "report.md").read_text()


def test_summary_table_names_windows(evaluated):
    _, _, report = evaluated
    from ldct_tf.evaluate.report import summary_table

    table = summary_table(report)
    assert "finetune" in table and "data range 400" in table


def test_gaussian_tuning_picks_the_lowest_rmse(rng):
    from ldct_tf.evaluate import baselines

    clean = [np.full((32, 32), 40.0)]
    noisy = [clean[0] + rng.normal(0, 20, (32, 32))]
    sigma, scores, note = baselines.tune_gaussian(noisy, clean, (0.5, 1.0, 2.0))
    # a flat image: the wider the better, so the search widens past the grid's edge and says so
    assert scores[sigma] == min(scores.values()) and sigma > 2.0 and "widened" in note
    assert metrics.rmse(baselines.gaussian(noisy, sigma)[0], clean[0]) < 20.0


def test_denoise_batches_slices_of_different_sizes(rng):
    # DICOM series differ in matrix size; each slice must match a call on it alone.
    import keras

    from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
    network = keras.Sequential([keras.Input((None, None, 1)),
                                keras.layers.Conv2D(1, 3, padding="same")])
    images = [rng.normal(40, 20, shape).astype(np.float32)
              for shape in ((32, 32), (32, 32), (24, 40), (32, 32), (24, 40))]
    out = image_sets.denoise(network, images, batch=2)
    assert [o.shape for o in out] == [im.shape for im in images]
    for image, got in zip(images, out):
        alone = denormalize_hu(np.asarray(network(normalize_hu(image[None, ..., None])))[0, ..., 0])
        np.testing.assert_allclose(got, alone, atol=1e-2)


# --- twin measures, claims and cases.npz ---------------------------------------------------------

def _disk(shape, row, col, radius):
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    return (np.hypot(rr - row, cc - col) <= radius).astype(float)


def _core_mean(image, row, col, radius):
    # written here, not taken from ldct_tf: mean over pixels within 0.6 R of the centre
    rr, cc = np.mgrid[:image.shape[0], :image.shape[1]]
    return image[np.hypot(rr - row, cc - col) <= 0.6 * radius].mean()


def _twin_split(rng, lesions):
    """A test split of matched twins: textured soft tissue, the present twin adds a disk."""
    test, disks = image_sets.Slices(), []
    for k, (row, col, radius, contrast) in enumerate(lesions):
        base = 40.0 + rng.normal(0, 8, (48, 48))  # anatomy-like texture: the twins share it
        disk = contrast * _disk(base.shape, row, col, radius)
        for label, ndct in ((1, base + disk), (0, base)):
            test.ldct.append(ndct + rng.normal(0, 15, ndct.shape))
            test.ndct.append(ndct)
            test.label.append(label)
            test.lesion.append((row, col, radius, contrast))
            test.pair_id.append(k)
            test.spacing_mm.append(0.7)
        disks.append(disk)
    return test, disks


@pytest.fixture(scope="module")
def twin_sets(tmp_path_factory):
    """A constructed split and images with known twin measures, measured by `evaluate_sets`."""
    from ldct_tf.config import Config

    rng = np.random.default_rng(7)
    lesions = [(20.0, 22.0, 5.0, 60.0), (25.0, 24.0, 4.0, -50.0), (22.5, 21.5, 6.0, 45.0),
               (24.0, 23.0, 3.0, -40.0)]
    test, disks = _twin_split(rng, lesions)
    ndct_p, ndct_a = test.ndct[0::2], test.ndct[1::2]
    # residual noise away from the lesion (so no image equals NDCT: PSNR stays finite), none
    # inside it (so the twin measures are exact)
    jitter = [rng.normal(0, 3, (48, 48)) * (1 - _disk((48, 48), *lesion[:3])) for lesion in lesions
              for _ in range(2)]
    sets = {
        "ldct": test.ldct, "ndct": test.ndct,
        # keeps half of every lesion, invents nothing
        "halves": [im for a, d in zip(ndct_a, disks) for im in (a + 0.5 * d, a)],
        # keeps the whole lesion, and paints half of it into the absent twin
        "painter": [im for p, a, d in zip(ndct_p, ndct_a, disks) for im in (p, a + 0.5 * d)],
        # the lesion blurred (its core loses contrast to the halo)
        "blurred": [im for a, d in zip(ndct_a, disks)
                    for im in (a + ndimage.gaussian_filter(d, 2.5), a)],
        # no lesion in either twin, only independent noise
        "noise_only": [a + rng.normal(0, 15, a.shape) for a in ndct_a for _ in range(2)],
    }
    for name in ("halves", "painter", "blurred"):
        sets[name] = [im + j for im, j in zip(sets[name], jitter)]
    config = Config()
    config = config.replace(evaluate=config.evaluate.__class__(resamples=40, cho_splits=2))
    workdir = tmp_path_factory.mktemp("twins")  # no classifier: its AUC is left out
    results, cases = readings.evaluate_sets(config, workdir, test, sets)
    return config, test, sets, results, cases


def _twin_formula(test, images):
    """contrast kept and invented, from the definitions, with this file's `_core_mean`."""
    kept_num = invented_num = denominator = 0.0
    for p in range(0, len(images), 2):
        row, col, radius, contrast = test.lesion[p]
        s = np.sign(contrast)
        m = [_core_mean(im[i], row, col, radius) for im in (images, test.ndct) for i in (p, p + 1)]
        kept_num += s * (m[0] - m[1])
        invented_num += s * (m[1] - m[3])
        denominator += s * (m[2] - m[3])
    return kept_num / denominator, invented_num / denominator


def test_twin_measures_match_the_formula_on_constructed_images(twin_sets):
    _, test, sets, results, _ = twin_sets
    halves, painter = results["halves"], results["painter"]
    assert halves["contrast_kept"]["value"] == pytest.approx(0.5, abs=1e-9)
    assert halves["invented_contrast"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert painter["invented_contrast"]["value"] == pytest.approx(0.5, abs=1e-9)
    assert painter["contrast_kept"]["value"] == pytest.approx(0.5, abs=1e-9)
    assert results["ndct"]["contrast_kept"]["value"] == pytest.approx(1.0)
    for name in ("ldct", "halves", "painter"):
        kept, invented = _twin_formula(test, sets[name])
        assert results[name]["contrast_kept"]["value"] == pytest.approx(kept, rel=1e-9), name
        assert results[name]["invented_contrast"]["value"] == pytest.approx(invented, rel=1e-9)
        low, high = results[name]["contrast_kept"]["ci95"]
        assert low <= kept + 1e-9 and kept - 1e-9 <= high
    # painting half a lesion where there is none is flagged; keeping half of one is not
    assert painter["invented_contrast"]["outside_tolerance"] is True
    assert halves["invented_contrast"]["outside_tolerance"] is False


def test_claim_differences_equal_differences_of_the_set_values(twin_sets):
    config, _, _, results, cases = twin_sets
    item = claims.compare(config, cases, "painter", "halves", "a test")
    assert item["name"] == "painter vs halves"
    per_set = {"psnr_abdomen": lambda r: r["abdomen"]["psnr"]["value"],
               "ssim_abdomen": lambda r: r["abdomen"]["ssim"]["value"],
               "contrast_kept": lambda r: r["contrast_kept"]["value"],
               "invented_contrast": lambda r: r["invented_contrast"]["value"],
               "contrast_recovery": lambda r: r["contrast_recovery"]["value"]}
    for metric, pick in per_set.items():
        expected = pick(results["painter"]) - pick(results["halves"])
        assert item["differences"][metric]["value"] == pytest.approx(expected, abs=1e-9), metric
    invented = item["differences"]["invented_contrast"]
    assert invented["value"] == pytest.approx(0.5) and invented["ci95"][0] > 0
    assert "painter higher than halves" in invented["verdict"]


def test_claims_cover_the_comparisons_whose_sets_exist(twin_sets):
    config, _, _, _, cases = twin_sets
    fake = {name: cases["halves"] for name in ("pretrain", "finetune", "finetune_control")}
    found = [(c["a"], c["b"]) for c in claims.claims(config, fake)]
    assert found == [("finetune", "finetune_control"), ("finetune", "pretrain")]
    assert claims.headline(claims.claims(config, fake))["b"] == "finetune_control"
    del fake["finetune_control"]
    assert claims.headline(claims.claims(config, fake))["b"] == "pretrain"
    oracle = claims.compare(config, {"finetune_oracle": cases["painter"],
                                       "finetune_control": cases["halves"]},
                              "finetune_oracle", "finetune_control", "diagnostic")
    assert oracle["name"].startswith("oracle (diagnostic)")


def test_baselines_off_skips_gaussian_and_bm3d(tmp_path):
    from ldct_tf.config import Config

    test, _ = _twin_split(np.random.default_rng(0), [(20.0, 22.0, 5.0, 60.0)])
    config = Config()
    config = config.replace(evaluate=config.evaluate.__class__(baselines=False))
    made, skipped, _ = image_sets.make_sets(config, tmp_path, test, None)
    assert set(made) == {"ldct", "ndct"}
    assert skipped["gaussian"] == skipped["bm3d"] == "disabled (evaluate.baselines = false)"
    assert set(NETWORKS) <= set(skipped)


def test_claims_in_metrics_json_are_differences_of_the_set_values(evaluated):
    _, workdir, _ = evaluated
    saved = json.loads((workdir / "eval" / "metrics.json").read_text())
    names = [(c["a"], c["b"]) for c in saved["claims"]]
    assert names == [("finetune", "finetune_control"), ("finetune", "pretrain"),
                     ("ndct", "ldct")]
    pick = {"psnr_abdomen": lambda r: r["abdomen"]["psnr"]["value"],
            "contrast_kept": lambda r: r["contrast_kept"]["value"],
            "invented_contrast": lambda r: r["invented_contrast"]["value"],
            "contrast_recovery": lambda r: r["contrast_recovery"]["value"],
            "cho_auc": lambda r: r["cho"]["auc"],
            "lroc_area": lambda r: r["lroc"]["lroc_area"]["value"],
            "fraction_localized": lambda r: r["lroc"]["fraction_localized"]["value"],
            "cnn_observer_independent": lambda r: r["cnn_observer_independent"]["value"]}
    for item in saved["claims"]:
        a, b = saved["sets"][item["a"]], saved["sets"][item["b"]]
        for metric, value in pick.items():
            if metric in item["differences"]:
                assert item["differences"][metric]["value"] == pytest.approx(
                    value(a) - value(b), abs=1e-9), (item["name"], metric)
    # the control is a copy of finetune: every difference is exactly 0, and within noise
    control = saved["claims"][0]["differences"]
    assert {"contrast_kept", "invented_contrast", "psnr_abdomen", "lroc_area",
            "fraction_localized"} <= set(control)
    for metric, entry in control.items():
        assert entry["value"] == pytest.approx(0.0, abs=1e-12), metric
        assert "within noise" in entry["verdict"] and "finetune_control" in entry["verdict"]


def test_cases_npz_recomputes_the_reported_values(evaluated):
    _, workdir, _ = evaluated
    saved = json.loads((workdir / "eval" / "metrics.json").read_text())
    with np.load(Workdir(workdir).cases) as npz:
        cases = {key: npz[key] for key in npz.files}
    assert "finetune_control" in set(cases["sets"])
    assert len(cases["pair_index"]) == saved["matched_pairs"] == len(cases["pair_sign"])
    s = cases["pair_sign"]
    denominator = np.sum(s * (cases["ndct.twin_present_hu"] - cases["ndct.twin_absent_hu"]))
    for name in ("ldct", "pretrain", "finetune"):
        kept = np.sum(s * (cases[f"{name}.twin_present_hu"] - cases[f"{name}.twin_absent_hu"]))
        invented = np.sum(s * (cases[f"{name}.twin_absent_hu"] - cases["ndct.twin_absent_hu"]))
        result = saved["sets"][name]
        assert result["contrast_kept"]["value"] == pytest.approx(kept / denominator)
        assert result["invented_contrast"]["value"] == pytest.approx(invented / denominator)
        assert result["abdomen"]["psnr"]["value"] == pytest.approx(
            cases[f"{name}.psnr_abdomen"].mean())
        assert len(cases[f"{name}.ssim_abdomen"]) == saved["test_slices"]


def test_summary_table_has_the_twin_columns_and_flags(evaluated):
    import copy

    from ldct_tf.evaluate.report import summary_table

    _, _, report = evaluated
    table = summary_table(report)
    assert "contrast kept (twins)" in table and "invented at sham" in table
    flagged = copy.deepcopy(report)
    flagged["sets"]["pretrain"]["invented_contrast"].update(value=0.3, outside_tolerance=True)
    assert "outside +-0.1" in summary_table(flagged).splitlines()[-1]
    assert "pretrain" in summary_table(flagged).splitlines()[-1]


def test_contrast_kept_of_known_images_and_by_group(twin_sets):
    _, test, sets, results, _ = twin_sets
    assert results["ndct"]["contrast_kept"]["value"] == pytest.approx(1.0)
    assert results["halves"]["contrast_kept"]["value"] == pytest.approx(0.5, abs=1e-9)
    blurred = results["blurred"]["contrast_kept"]["value"]
    assert 0.2 < blurred < 0.9
    kept, _ = _twin_formula(test, sets["blurred"])
    assert blurred == pytest.approx(kept, rel=1e-9)
    noise = results["noise_only"]["contrast_kept"]
    assert abs(noise["value"]) < 0.35 and noise["ci95"][0] < 0 < noise["ci95"][1]
    # by size and by sign: each group's value from the formula on its own pairs
    groups = results["halves"]["contrast_kept"]["by_group"]
    assert {"positive", "negative"} <= set(groups) and len(groups) == 4
    for name, group in groups.items():
        assert group["value"] == pytest.approx(0.5, abs=1e-9), name
    by_sign = results["blurred"]["contrast_kept"]["by_group"]
    positive = [p for p in range(0, len(test.lesion), 2) if test.lesion[p][3] > 0]
    sub = image_sets.Slices(**{k: [v[i + t] for i in positive for t in (0, 1)]
                             for k, v in vars(test).items() if v})
    expected, _ = _twin_formula(sub, [sets["blurred"][i + t] for i in positive for t in (0, 1)])
    assert by_sign["positive"]["value"] == pytest.approx(expected, rel=1e-9)


def test_every_interval_resamples_test_slices_with_their_twins():
    # two pairs cut from one slice count as one unit of the bootstrap
    test = image_sets.Slices(label=[1, 0, 1, 0, 1, 0], pair_id=[1, 1, 2, 2, 3, 3],
                           unit=["s/0", "s/0", "s/0", "s/0", "s/1", "s/1"],
                           ldct=[0] * 6)
    pairs = readings.twin_pairs(test)
    design = readings.Design.of(test, pairs, [0, 2, 4])
    assert design.slices.n_units == design.pairs.n_units == design.present.n_units == 2
    assert sorted(len(m) for m in design.pairs.members) == [1, 2]
    assert sorted(len(m) for m in design.slices.members) == [2, 4]
