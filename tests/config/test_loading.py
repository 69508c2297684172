"""Config loading: TOML presets, --set overrides, rejection of unknown keys and ill-typed values,
file errors, round trip through the resolved TOML."""

import dataclasses
import typing

import pytest

from ldct_tf.config import Config, ConfigError, load_config, to_toml


def test_defaults_preset_and_overrides_apply_in_order(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[data]\nn_series = 7\nimage_size = 64\n[lesion]\nsign = "negative"\n')
    config = load_config(preset, ["data.n_series=9", "lesion.diameter_mm=[5, 6.5]"])
    assert config.data.n_series == 9  # --set wins over the file
    assert config.data.image_size == 64  # file wins over the default
    assert config.data.dose_fraction == 0.25  # default
    assert config.lesion.diameter_mm == (5.0, 6.5) and config.lesion.sign == "negative"


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = load_config(None, ['data.compression="GZIP"', "input.deterministic=true",
                                "scanner.i0=1.5e5"])
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config


@pytest.mark.parametrize("preset", ["demo", "benchmark", "paper", "mayo"])
def test_presets_load(preset):
    config = load_config(f"pipelines/configs/{preset}.toml")
    assert config.data.dose_fraction == 0.25
    # the 10 % dose variant the README's second table uses
    assert load_config(f"pipelines/configs/{preset}.toml",
                       ["data.dose_fraction=0.1"]).data.dose_fraction == 0.1
    if preset == "paper":
        assert (config.model.filters, config.model.kernel_size, config.input.patch_size) == (
            96, 5, 64)


@pytest.mark.parametrize("overrides, match", [
    (["data.n_serie=3"], r"unknown config key \[data\] n_serie"),
    (["datum.n_series=3"], r"unknown config section \[datum\]"),
    (["data.n_series=\"many\""], r"\[data\] n_series: must be an integer, got 'many'"),
    (["lesion.diameter_mm=[6]"], r"diameter_mm: must be a list of 2 values"),
    (["input.deterministic=1"], r"deterministic: must be true or false"),
    (["n_series=3"], r"must look like section.key=value"),
    (["pretrain.learning_rate=inf"], r"\[pretrain\] learning_rate: must be a finite number, got"),
])
def test_bad_keys_and_types_name_the_key_and_the_rule(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def _number_keys():
    """Every float-valued key (alone or in a list) of every section, from the dataclasses."""
    for section in dataclasses.fields(Config):
        section_type = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(section_type)
        for key in dataclasses.fields(section_type):
            hint = hints[key.name]
            if hint is float:
                yield section.name, key.name, None
            elif typing.get_origin(hint) is tuple and float in typing.get_args(hint):
                args = typing.get_args(hint)
                yield section.name, key.name, 2 if Ellipsis in args else len(args)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_no_number_anywhere_may_be_nan_or_infinite(value):
    keys = list(_number_keys())
    assert len(keys) >= 20  # the walk found the config's numbers
    for section, key, length in keys:
        text = value if length is None else "[" + ", ".join([value] * length) + "]"
        with pytest.raises(ConfigError, match=rf"\[{section}\] {key}: must be a finite number"):
            load_config(None, [f"{section}.{key}={text}"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("[data]\ninput = \"/data/M\u00fcller\"\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text.*save it as UTF-8"):
        load_config(latin1)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


@pytest.mark.parametrize("case", ["config_not_utf8", "config_is_folder", "workdir_is_file"])
def test_path_and_encoding_errors_are_one_line_at_the_command_line(tmp_path, case, capfd,
                                                                   caplog):
    # in this process, as `python -m ldct_tf.prepare` calls it (cli_fixtures; the command itself
    # is run for real in tests/prepare/test_pipeline.py)
    from cli_fixtures import run_in_process

    from ldct_tf.prepare.pipeline import main

    (tmp_path / "plain").write_text("a file, not a folder")
    (tmp_path / "latin1.toml").write_bytes("# caf\u00e9\n[data]\nseed = 1\n".encode("latin-1"))
    args = {"config_not_utf8": ["--config", str(tmp_path / "latin1.toml"), "--workdir",
                                str(tmp_path / "run")],
            "config_is_folder": ["--config", str(tmp_path), "--workdir", str(tmp_path / "run")],
            "workdir_is_file": ["--workdir", str(tmp_path / "plain")]}[case]
    result = run_in_process(main, args, capfd, caplog)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert (tmp_path / "plain").read_text() == "a file, not a folder"


def test_a_url_workdir_is_refused_not_made_a_local_folder(tmp_path, monkeypatch):
    from ldct_tf import cli
    from ldct_tf.errors import LdctError

    monkeypatch.chdir(tmp_path)
    args = cli.base_parser("x", "x").parse_args(["--workdir", "gs://bucket/run"])
    with pytest.raises(LdctError, match="is a URL; pass a file-system path"):
        cli.resolve(args)
    assert not (tmp_path / "gs:").exists()
