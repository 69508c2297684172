"""The per-insert LG-CHO against the closed-form channelized ideal observer on white noise, the
ROIs, and the LCD step end to end on a tiny phantom."""

import json
import re

import numpy as np
import pytest
from scipy import special, stats

from ldct_tf.ct import lcd_phantom
from ldct_tf.errors import EXIT_BAD_INPUT, run_cli
from ldct_tf.evaluate import lcd


def _lg_channels(size, width, n):
    """Laguerre-Gauss channels as the toolbox writes them (laguerre_gaussian_2d.m)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    r2 = (yy - c) ** 2 + (xx - c) ** 2
    return np.stack([np.sqrt(2) / width * np.exp(-np.pi * r2 / width ** 2)
                     * special.eval_laguerre(j, 2 * np.pi * r2 / width ** 2)
                     for j in range(n)], axis=-1).reshape(size * size, n)


def _ideal_dprime(signal, channels, sd):
    """d'^2 = (T's)' (sd^2 T'T)^-1 (T's) with the ROI-mean removal folded into the channels
    (removing the mean is the projection P = I - 11'/n, so P x . T = x . P T)."""
    t = channels - channels.mean(axis=0, keepdims=True)  # P T
    v = t.T @ signal.ravel()
    return float(np.sqrt(v @ np.linalg.solve(sd ** 2 * t.T @ t, v)))


@pytest.mark.parametrize("diameter_px, contrast", [(7.0, 4.0), (2.2, 10.0)])
def test_insert_observer_recovers_the_ideal_channelized_dprime(diameter_px, contrast):
    rng = np.random.default_rng(3)
    size, sd, n = 15, 10.0, 1000
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    signal = contrast * (np.hypot(yy - c, xx - c) <= diameter_px / 2)
    expected = _ideal_dprime(signal, _lg_channels(size, 2 / 3 * diameter_px, 5), sd)
    present = signal + rng.normal(0.0, sd, (n, size, size))
    absent = rng.normal(0.0, sd, (n, size, size))
    result = lcd.insert_observer(present, absent, diameter_px, resamples=100, seed=1)
    assert 1.0 < expected < 3.0  # a task neither trivial nor saturated
    assert result["dprime"] == pytest.approx(expected, rel=0.10)
    low, high = result["dprime_ci95"]
    assert low < expected < high
    # the mean over splits of Phi(d'/sqrt 2), close to Phi of the mean d'
    assert result["auc"] == pytest.approx(stats.norm.cdf(result["dprime"] / np.sqrt(2)), abs=0.01)
    assert result["auc_empirical"] == pytest.approx(result["auc"], abs=0.03)


def test_a_constant_offset_does_not_change_the_reading():
    """The ROI mean is removed, so a DC shift of one class is not detected (as the toolbox)."""
    rng = np.random.default_rng(4)
    absent = rng.normal(0.0, 10.0, (200, 15, 15))
    present = rng.normal(0.0, 10.0, (200, 15, 15))
    shifted = lcd.insert_observer(present + 50.0, absent, 7.0, resamples=20, seed=2)
    plain = lcd.insert_observer(present, absent, 7.0, resamples=20, seed=2)
    assert shifted["dprime"] == pytest.approx(plain["dprime"], abs=1e-9)


def test_rois_are_centred_on_the_inserts():
    size, spacing = 160, 1.4
    present, absent, inserts = lcd_phantom.lcd_phantom(size, spacing)
    roi = lcd.roi_size(inserts)
    # the toolbox's rule: 2 * (largest insert diameter in px, rounded) + 1
    assert roi == 2 * round(10.0 / spacing) + 1 == 15
    for ins in inserts:
        rois = lcd.insert_rois(present[None], ins, roi)
        assert rois.shape == (1, roi, roi)
        assert rois[0, roi // 2, roi // 2] == present[int(ins.row), int(ins.col)]
        assert rois[0, roi // 2, roi // 2] == pytest.approx(ins.contrast_hu, rel=0.05)
    with pytest.raises(ValueError, match="does not fit"):
        lcd.insert_rois(present[None, :40, :40], inserts[0], roi)


@pytest.mark.parametrize("argv, match", [
    (["--dose", "0"], r"--dose values must be in \(0, 1\]"),
    (["--dose", "1.5"], r"--dose values must be in \(0, 1\]"),
    (["--realizations", "3"], "--realizations must be >= 8"),
    (["--size", "-1"], "--size must be 0"),
    (["--size", "64"], "--size 64: .*cannot hold the 200 mm cylinder"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, match):
    assert run_cli(lcd.main, ["--workdir", str(tmp_path / "run"), *argv]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(match, err)


def test_lcd_end_to_end_on_a_tiny_phantom(tmp_path):
    """64 px at 3.5 mm, 40 realisations, 10 % dose: LDCT is noisier than NDCT and the largest
    insert is read better at full dose; the report files are written. The flux is raised 33x
    (i0 1e7) because the tiny grid's 101 views give 4 HU of noise at full dose, and 40
    realisations read a 3 HU insert in that about as well as a guess."""
    workdir = tmp_path / "run"
    argv = ["--workdir", str(workdir), "--set", "scanner.i0=1e7", "--set", "data.image_size=64",
            "--set", "data.pixel_spacing_mm=3.5", "--set", "evaluate.resamples=40",
            "--dose", "0.1", "--realizations", "40", "--size", "64", "--seed", "5"]
    assert run_cli(lcd.main, argv) == 0
    out = workdir / "eval" / "lcd"
    report = json.loads((out / lcd.JSON_FILE).read_text())
    sets = report["doses"]["0.1"]["sets"]
    assert set(sets) == {"ldct", "ndct"} and len(report["skipped"]) == 5
    assert sets["ldct"]["noise_sd_hu"]["value"] > 2 * sets["ndct"]["noise_sd_hu"]["value"]
    largest = "10mm_3HU"
    assert sets["ndct"]["inserts"][largest]["auc"] > sets["ldct"]["inserts"][largest]["auc"]
    assert sets["ndct"]["inserts"][largest]["minus_ldct"]["auc"]["value"] > 0
    assert report["phantom"]["size_px"] == 64 and report["realizations"] == 40
    table = (out / lcd.MARKDOWN_FILE).read_text()
    assert "## Dose 0.1" in table and "| ldct |" in table and "AUC 10mm 3HU" in table
    for name in (lcd.FIGURE_FILE, lcd.IMAGES_FILE):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
