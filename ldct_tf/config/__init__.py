"""Run configuration: frozen dataclasses nested by concern, read from TOML, overridden by --set.

Resolution order: the dataclass defaults below, then a TOML file (a preset in
`pipelines/configs/` or your own), then ``--set section.key=value`` on the command line. Unknown
sections or keys are rejected with the key named; values are type-checked and range-checked with
the bad value quoted. The resolved config is written next to the run (`write_resolved`), so every
work directory says how it was made (Model Garden's ``serialize_config``).

Each section documents its keys and units: `imaging` (data, scanner, lesions, input),
`training` (classifier, observer, cam, model, pretrain, finetune, train), `evaluation` (evaluate,
pipeline); `checks` holds the error type and the bounds. This package re-exports them all.

May import: `ldct_tf.errors` only: every other module reads its settings from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ldct_tf.config.checks import (MAX_CONTRAST_HU, MAX_LEARNING_RATE, MAX_LESION_DIAMETER_MM,
                                   SPACING_RANGE_MM, ConfigError, fail)
from ldct_tf.config.evaluation import EvaluateConfig, PipelineConfig
from ldct_tf.config.imaging import (AUTO_SHARDS_MAX, FILTERS, PROFILES, SOURCES, SPLITS,
                                    DataConfig, InputConfig, LesionConfig, LesionVariantsConfig,
                                    ScannerConfig, TestLesionConfig)
from ldct_tf.config.training import (ARCHITECTURES, CAM_METHODS, CAM_NORMALIZATIONS, FINETUNE_MODES,
                                     FINETUNE_VARIANTS, FINETUNE_WEIGHTS, LR_SCHEDULES, POLICIES,
                                     WEIGHT_FORMS, CamConfig, ClassifierConfig, FinetuneConfig,
                                     ModelConfig, ObserverConfig, PretrainConfig, TrainConfig)

__all__ = ["ARCHITECTURES", "AUTO_SHARDS_MAX", "CAM_METHODS", "CAM_NORMALIZATIONS", "FILTERS",
           "FINETUNE_MODES", "FINETUNE_VARIANTS", "FINETUNE_WEIGHTS", "LR_SCHEDULES",
           "MAX_CONTRAST_HU", "MAX_LEARNING_RATE", "MAX_LESION_DIAMETER_MM", "POLICIES",
           "PROFILES", "SOURCES", "SPACING_RANGE_MM", "SPLITS", "WEIGHT_FORMS", "CamConfig",
           "ClassifierConfig", "Config", "ConfigError", "DataConfig", "EvaluateConfig",
           "FinetuneConfig", "InputConfig", "LesionConfig", "LesionVariantsConfig", "ModelConfig",
           "ObserverConfig",
           "PipelineConfig", "PretrainConfig", "ScannerConfig", "TestLesionConfig", "TrainConfig",
           "from_dict", "load_config", "to_toml", "write_resolved"]


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


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``section.key=value`` overrides."""
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; pass a TOML file such as "
                              "pipelines/configs/demo.toml")
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; pass a preset such as "
                              "pipelines/configs/demo.toml")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it "
                              "as UTF-8 (TOML files are UTF-8)") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check its "
                              "permissions") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for item in overrides:
        section, key, value = _parse_override(item)
        raw.setdefault(section, {})[key] = value
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Config:
    """A `Config` from nested plain values, rejecting unknown sections and keys."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    kwargs = {}
    for name, values in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]; known sections: "
                              f"{', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"config [{name}] must be a table of keys, got {values!r}")
        section_type = typing.get_type_hints(Config)[name]
        kwargs[name] = _build_section(name, section_type, values)
    return Config(**kwargs)


def write_resolved(config: Config, path: str | Path) -> Path:
    """Write the resolved config as TOML (readable back by `load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(config))
    return path


def to_toml(config: Config) -> str:
    lines = ["# Resolved ldct_tf configuration (defaults + preset + overrides)."]
    for section, values in config.to_dict().items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _build_section(name: str, section_type: type, values: dict[str, Any]):
    hints = typing.get_type_hints(section_type)
    known = [f.name for f in dataclasses.fields(section_type)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key [{name}] {key}; known keys: {', '.join(known)}")
        kwargs[key] = _coerce(name, key, hints[key], value)
    return section_type(**kwargs)


def _coerce(section: str, key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        item_types = typing.get_args(hint)
        if len(item_types) == 2 and item_types[1] is Ellipsis:  # tuple[X, ...]: any length
            if not isinstance(value, (list, tuple)):
                fail(section, key, f"must be a list, got {value!r}")
            item_types = (item_types[0],) * len(value)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            fail(section, key, f"must be a list of {len(item_types)} values, got {value!r}")
        return tuple(_coerce(section, key, t, v) for t, v in zip(item_types, value))
    if hint is bool:
        if not isinstance(value, bool):
            fail(section, key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(section, key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(section, key, f"must be a number, got {value!r}")
        if not math.isfinite(value):  # no setting means anything as inf or nan
            fail(section, key, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail(section, key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for [{section}] {key}")


def _parse_override(item: str) -> tuple[str, str, Any]:
    """``section.key=value``; the value is read as TOML (numbers, lists, true), else a string."""
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set {item!r} must look like section.key=value, "
                          "e.g. --set data.n_series=8")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, key, value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
