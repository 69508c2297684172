"""The imaging sections (`[data]`, `[scanner]`, `[lesion]`, `[lesion_test]`): bad values are
rejected with the key, the rule and the value."""

import pytest

from ldct_tf.config import ConfigError, load_config


@pytest.mark.parametrize("overrides, match", [
    (["data.dose_fraction=1.5"], r"\[data\] dose_fraction: must be in \(0, 1\), got 1.5"),
    (["data.source=\"pacs\""], r"\[data\] source: must be one of"),
    (["data.split_fractions=[0.5, 0.5, 0.5]"], r"split_fractions: must be three shares"),
    (["scanner.filter_name=\"butterworth\""], r"filter_name: must be one of"),
    (["data.seed=-1"], r"\[data\] seed: must be >= 0, got -1"),
    (["data.pixel_spacing_mm=1e300"], r"\[data\] pixel_spacing_mm: must be in \[0.05, 10\] mm"),
    (["lesion_test.contrast_hu=[20, 1e6]"], r"\[lesion_test\] contrast_hu: must be \[low, high\] "
                                            r"magnitudes in HU .*high <= 2000"),
    (["lesion.diameter_mm=[0, 5]"], r"\[lesion\] diameter_mm: .* with 0 < low <= high <= 100"),
])
def test_bad_values_name_the_key_and_the_rule(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)
