"""Tests for ldct_tf.dicom.pairing: full- and low-dose series of the Mayo/TCIA layout paired by
slice position and dose hint (else noise), one-line errors naming the folder, and the blind noise
estimate against a known sigma."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from dicom_fixtures import PLANTED_PATIENT_ID, read_one_series, write_mayo_tree, write_series

from ldct_tf.dicom import blind_noise_sd_hu, find_dose_pairs, pair_series, read_ct_series
from ldct_tf.errors import LdctError


def test_find_dose_pairs_on_mayo_like_tree(tmp_path):
    truth = write_mayo_tree(tmp_path, ("L001", "L002"))
    result = read_ct_series(tmp_path)
    assert sorted(s.dose_hint for s in result.series) == ["full", "full", "low", "low"]
    pairs = find_dose_pairs(result)
    assert len(pairs) == 2
    for pair, patient in zip(pairs, ("L001", "L002")):
        full_hu, low_hu = truth[patient]
        np.testing.assert_array_equal(pair.ndct_hu, full_hu)
        np.testing.assert_array_equal(pair.ldct_hu, low_hu)
        np.testing.assert_allclose(pair.positions_mm, -20.0 + np.arange(4))
        assert pair.pairs == [(k, k) for k in range(4)] and pair.pixel_spacing_mm == (0.7, 0.7)
        full = next(s for s in result.series if s.series_key == pair.series_key)
        assert full.dose_hint == "full" and pair.patient_key == full.patient_key
        assert json.loads(json.dumps(pair.geometry()))["n_slices"] == 4
    assert pairs[0].patient_key != pairs[1].patient_key


def test_find_dose_pairs_uses_description_then_noise(tmp_path):
    described = write_mayo_tree(
        tmp_path / "described", ("P1",), folders=("s1", "s2"),
        descriptions=("Low Dose Images", "Full Dose Images"), noise_sd_hu=(5.0, 5.0),
    )
    [pair] = find_dose_pairs(read_ct_series(tmp_path / "described"))
    np.testing.assert_array_equal(pair.ndct_hu, described["P1"][1])
    # No hint anywhere: the noisier series (25 HU, written to s1) must be taken as the low dose.
    unlabelled = write_mayo_tree(
        tmp_path / "plain", ("P1",), folders=("s1", "s2"), noise_sd_hu=(25.0, 4.0)
    )
    [pair] = find_dose_pairs(read_ct_series(tmp_path / "plain"))
    np.testing.assert_array_equal(pair.ndct_hu, unlabelled["P1"][1])
    np.testing.assert_array_equal(pair.ldct_hu, unlabelled["P1"][0])


def test_find_dose_pairs_names_folder_of_incomplete_patient(tmp_path):
    write_mayo_tree(tmp_path, ("L001", "L002"))
    shutil.rmtree(tmp_path / "L002" / "quarter_dose")
    with pytest.raises(LdctError, match=r"patient folder 'L002.*1 full-dose, 0 low-dose") as info:
        find_dose_pairs(read_ct_series(tmp_path))
    assert PLANTED_PATIENT_ID not in str(info.value) and "\n" not in str(info.value)


def test_pair_series_rejects_mismatched_shape_and_slice_set(tmp_path):
    write_series(tmp_path / "full", 4, series_uid="1.2.3.1", slice_thickness=2.5)
    write_series(tmp_path / "short", 3, series_uid="1.2.3.2", slice_thickness=2.5)
    write_series(tmp_path / "small", 4, rows=8, cols=8, series_uid="1.2.3.3")
    write_series(tmp_path / "shifted", 4, z0=-19.0, series_uid="1.2.3.4", slice_thickness=2.5)
    full, short, small, shifted = (
        read_one_series(tmp_path / name) for name in ("full", "short", "small", "shifted")
    )
    with pytest.raises(LdctError, match=r"different slice shapes \(16x16 and 8x8 pixels\)"):
        pair_series(full, small)
    differ = r"slice sets differ: .* 4 slices, .* 3; 3 matched within 1.25 mm"
    with pytest.raises(LdctError, match=differ):
        pair_series(full, short)
    with pytest.raises(LdctError, match=r"0 matched within 0.5 mm"):
        pair_series(full, shifted, tolerance_mm=0.5)
    assert pair_series(full, shifted, tolerance_mm=1.25).pairs == [(k, k) for k in range(4)]
    with pytest.raises(ValueError, match=r"tolerance_mm must be a positive number of mm, got -1"):
        pair_series(full, full, tolerance_mm=-1)


def test_noise_estimate_matches_known_sigma():
    noise = np.random.default_rng(0).normal(0.0, 12.0, size=(4, 64, 64))
    assert blind_noise_sd_hu(noise) == pytest.approx(12.0, rel=0.05)
    assert blind_noise_sd_hu(noise + 500.0) == pytest.approx(blind_noise_sd_hu(noise))
