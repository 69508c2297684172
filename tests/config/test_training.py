"""The training sections (`[classifier]`, `[cam]`, `[pretrain]`, `[finetune]`, `[train]`): bad
values are rejected with the key, the rule and the value."""

import pytest

from ldct_tf.config import ConfigError, load_config


@pytest.mark.parametrize("overrides, match", [
    (["train.seed=-2"], r"\[train\] seed: must be >= 0, got -2"),
    (["pretrain.learning_rate=3"], r"\[pretrain\] learning_rate: must be a finite number in "
                                   r"\(0, 1\]"),
    (["classifier.learning_rate=0"], r"\[classifier\] learning_rate: must be a finite number in"),
    (["finetune.weight=\"lesion\""], r"\[finetune\] weight: must be one of map, uniform, oracle"),
    (["finetune.weight_form=\"linear\""], r"\[finetune\] weight_form: must be one of boost"),
    (["finetune.boost=-1"], r"\[finetune\] boost: must be a finite number >= 0, got -1"),
    (["finetune.gamma=0"], r"\[finetune\] gamma: must be a finite number > 0"),
    (["finetune.lesion_patch_fraction=1.5"], r"lesion_patch_fraction: must be in \[0, 1\]"),
    (["finetune.lr_schedule=\"step\""], r"lr_schedule: must be one of cosine, constant"),
    (["finetune.checkpoint=\"first\""], r"checkpoint: must be one of last, best"),
    (["cam.normalize=\"softmax\""], r"\[cam\] normalize: must be one of global, minmax, max"),
    (["cam.min_classifier_auc=2"], r"min_classifier_auc: must be in \[0, 1\]"),
])
def test_bad_values_name_the_key_and_the_rule(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)
