"""Tests for ldct_tf.dicom.anonymize: salted keys (another salt, other keys) and dose hints read
from descriptions and folder names."""

from __future__ import annotations

import pytest
from dicom_fixtures import PLANTED_SERIES_UID, read_one_series, write_series

from ldct_tf.dicom import DEFAULT_SALT, anonymous_key, dose_hint_from_text, read_ct_series


def test_salt_changes_keys(tmp_path):
    write_series(tmp_path, 2)
    default = read_one_series(tmp_path)
    salted = read_one_series(tmp_path, salt="project-secret")
    assert default.series_key == anonymous_key(PLANTED_SERIES_UID, DEFAULT_SALT)
    assert salted.series_key == anonymous_key(PLANTED_SERIES_UID, "project-secret")
    assert salted.series_key != default.series_key and salted.patient_key != default.patient_key
    with pytest.raises(ValueError, match="salt must be a non-empty str"):
        read_ct_series(tmp_path, salt="")


@pytest.mark.parametrize(
    "text, hint",
    [
        ("Full Dose Images", "full"), ("full_1mm", "full"), ("L067_FD_1_1", "full"),
        ("Low Dose Images", "low"), ("quarter_dose", "low"), ("L067_QD_1_1", "low"),
        ("lowdose", "low"), ("Abdomen 1.0 B30f", None), ("", None), ("full vs quarter", None),
    ],
)
def test_dose_hint_from_text(text, hint):
    assert dose_hint_from_text(text) == hint
