"""The evaluation section (`[evaluate]`): bad values are rejected with the key and the value."""

import pytest

from ldct_tf.config import ConfigError, load_config


@pytest.mark.parametrize("overrides, match", [
    (["evaluate.seed=-1"], r"\[evaluate\] seed: must be >= 0, got -1"),
])
def test_bad_values_name_the_key_and_the_rule(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)
