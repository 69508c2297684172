"""The evaluation step on the tiny run: every set, every metric, the report and its figures."""

import json

import numpy as np
import pytest

from ldct_tf import evaluate, metrics, records


@pytest.fixture(scope="module")
def evaluated(denoisers_tiny):
    config, workdir = denoisers_tiny
    config = config.replace(evaluate=config.evaluate.__class__(resamples=50, bm3d=False,
                                                               cho_splits=2))
    return config, workdir, evaluate.run(config, workdir)


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


def test_ldct_psnr_equals_an_independent_computation(evaluated):
    from skimage.metrics import peak_signal_noise_ratio

    config, workdir, report = evaluated
    test = evaluate.load_slices(records.pattern(workdir / "records", "test"), config)
    expected = np.mean([peak_signal_noise_ratio(np.clip(n, -160, 240), np.clip(l, -160, 240),
                                                data_range=400)
                        for l, n in zip(test.ldct, test.ndct)])
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
    for figure in ("lesion_rois.png", "profiles.png", "bars.png", "nps.png"):
        assert (out / "figures" / figure).stat().st_size > 1000, figure


def test_summary_table_names_windows(evaluated):
    _, _, report = evaluated
    from ldct_tf.report import summary_table

    table = summary_table(report)
    assert "finetune" in table and "data range 400" in table


def test_gaussian_tuning_picks_the_lowest_rmse(rng):
    from ldct_tf import baselines

    clean = [np.full((32, 32), 40.0)]
    noisy = [clean[0] + rng.normal(0, 20, (32, 32))]
    sigma, scores = baselines.tune_gaussian(noisy, clean, (0.5, 1.0, 2.0))
    assert scores[sigma] == min(scores.values()) and sigma == 2.0
    assert metrics.rmse(baselines.gaussian(noisy, sigma)[0], clean[0]) < 20.0


def test_denoise_batches_slices_of_different_sizes(rng):
    # DICOM series differ in matrix size; each slice must match a call on it alone.
    import keras

    from ldct_tf.preprocessing import denormalize_hu, normalize_hu
    network = keras.Sequential([keras.Input((None, None, 1)),
                                keras.layers.Conv2D(1, 3, padding="same")])
    images = [rng.normal(40, 20, shape).astype(np.float32)
              for shape in ((32, 32), (32, 32), (24, 40), (32, 32), (24, 40))]
    out = evaluate.denoise(network, images, batch=2)
    assert [o.shape for o in out] == [im.shape for im in images]
    for image, got in zip(images, out):
        alone = denormalize_hu(np.asarray(network(normalize_hu(image[None, ..., None])))[0, ..., 0])
        np.testing.assert_allclose(got, alone, atol=1e-2)
