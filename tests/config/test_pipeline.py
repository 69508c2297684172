"""The runner's section (`[pipeline]`): bad values are rejected with the key and the value."""

import pytest

from ldct_tf.config import ConfigError, load_config


@pytest.mark.parametrize("overrides, match", [
    (["pipeline.seeds=0"], r"\[pipeline\] seeds: must be >= 1, got 0"),
])
def test_bad_values_name_the_key_and_the_rule(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)
