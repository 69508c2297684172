"""Reading and writing a run's config: the TOML file, ``--set`` overrides and the checks that turn
plain values into the `Config` dataclasses, and the resolved config written back as TOML.

Resolution order: the dataclass defaults, then a TOML file (a preset in `pipelines/configs/` or
your own), then ``--set section.key=value`` on the command line. Unknown sections or keys are
rejected with the key named; values are type-checked here and range-checked by their section, with
the bad value quoted. `write_resolved` writes what came out next to the run (Model Garden's
``serialize_config``), readable back by `load_config`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ldct_tf import atomic
from ldct_tf.config.checks import ConfigError, fail

if TYPE_CHECKING:
    from ldct_tf.config import Config


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``section.key=value`` overrides."""
    raw: dict[str, dict[str, Any]] = {} if path is None else read_toml(Path(path))
    for item in overrides:
        section, key, value = _parse_override(item)
        raw.setdefault(section, {})[key] = value
    return from_dict(raw)


def read_toml(path: Path) -> dict[str, Any]:
    """The plain tables of a TOML config file; a missing, unreadable or invalid file is a
    `ConfigError` that says what to pass instead."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a TOML file such as "
                          "pipelines/configs/demo.toml")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass a preset such as "
                          "pipelines/configs/demo.toml")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it "
                          "as UTF-8 (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check its "
                          "permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def from_dict(raw: dict[str, Any]) -> Config:
    """A `Config` from nested plain values, rejecting unknown sections and keys."""
    from ldct_tf.config import Config  # the package imports this module before defining it

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
    """Write the resolved config as TOML (readable back by `load_config`), whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(path, to_toml(config))


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
