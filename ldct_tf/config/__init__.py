"""Run configuration: frozen dataclasses nested by concern, read from TOML, overridden by --set.

`Config` is the whole run, one section per concern; each section documents its keys and units:
`imaging` (data, scanner, lesions, input), `training` (classifier, observer, cam, model, pretrain,
finetune, train), `evaluation` (evaluate), `pipeline` (the end-to-end runner); `checks` holds the
error type and the bounds. `loading` reads a config (defaults, then a TOML file, then ``--set
section.key=value``) and writes the resolved one next to the run (`write_resolved`), so every
work directory says how it was made. This package re-exports them all.

May import: `ldct_tf.errors` and `ldct_tf.atomic` only: every other module reads its settings
from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ldct_tf.config.checks import (
    MAX_CONTRAST_HU,
    MAX_LEARNING_RATE,
    MAX_LESION_DIAMETER_MM,
    SPACING_RANGE_MM,
    ConfigError,
)
from ldct_tf.config.evaluation import EvaluateConfig
from ldct_tf.config.imaging import (
    AUTO_SHARDS_MAX,
    FILTERS,
    PROFILES,
    SOURCES,
    SPLITS,
    DataConfig,
    InputConfig,
    LesionConfig,
    LesionVariantsConfig,
    ScannerConfig,
    TestLesionConfig,
)
from ldct_tf.config.loading import from_dict, load_config, to_toml, write_resolved
from ldct_tf.config.pipeline import PipelineConfig
from ldct_tf.config.training import (
    ARCHITECTURES,
    CAM_METHODS,
    CAM_NORMALIZATIONS,
    FINETUNE_MODES,
    FINETUNE_VARIANTS,
    FINETUNE_WEIGHTS,
    LR_SCHEDULES,
    POLICIES,
    WEIGHT_FORMS,
    CamConfig,
    ClassifierConfig,
    FinetuneConfig,
    ModelConfig,
    ObserverConfig,
    PretrainConfig,
    TrainConfig,
)

__all__ = ["ARCHITECTURES", "AUTO_SHARDS_MAX", "CAM_METHODS", "CAM_NORMALIZATIONS", "FILTERS",
           "FINETUNE_MODES", "FINETUNE_VARIANTS", "FINETUNE_WEIGHTS", "LR_SCHEDULES",
           "MAX_CONTRAST_HU", "MAX_LEARNING_RATE", "MAX_LESION_DIAMETER_MM", "POLICIES",
           "PROFILES", "SOURCES", "SPACING_RANGE_MM", "SPLITS", "WEIGHT_FORMS", "CamConfig",
           "ClassifierConfig", "Config", "ConfigError", "DataConfig", "EvaluateConfig",
           "FinetuneConfig", "InputConfig", "LesionConfig", "LesionVariantsConfig", "ModelConfig",
           "ObserverConfig", "PipelineConfig", "PretrainConfig", "ScannerConfig",
           "TestLesionConfig", "TrainConfig", "from_dict", "load_config", "to_toml",
           "write_resolved"]


@dataclass(frozen=True)
class Config:
    """The whole run: one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    lesion: LesionConfig = field(default_factory=LesionConfig)
    lesion_test: TestLesionConfig = field(default_factory=TestLesionConfig)
    lesion_variants: LesionVariantsConfig = field(default_factory=LesionVariantsConfig)
    input: InputConfig = field(default_factory=InputConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    observer: ObserverConfig = field(default_factory=ObserverConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _plain(dataclasses.asdict(getattr(self, f.name)))
                for f in dataclasses.fields(self)}

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

