"""denoise and export under faults: a full disk; kill -9, then the same command again (how faults
and kills are made and runs compared: `fault_fixtures`)."""


from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from dicom_fixtures import write_series
from fault_fixtures import (
    SALT,
    appeared,
    artifacts,
    check_whole,
    error_lines,
    in_process,
    killed_when,
    limited,
    salted,
)
from records_fixtures import TINY

from ldct_tf import cli, denoise, export
from ldct_tf.config import load_config, write_resolved
from ldct_tf.errors import LdctError
from ldct_tf.models.denoiser import build_network
from ldct_tf.workdir import CONFIG_FILE, MODEL_FILE, SALT_FILE, Workdir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_and_input(tmp_path_factory):
    """A tiny untrained export (weights fixed by the seed) and 3 series of 6 slices of 32 px."""
    root = tmp_path_factory.mktemp("denoise")
    config = load_config(None, TINY)
    folder = Workdir(root / "run").denoiser("finetune")
    folder.mkdir(parents=True)
    write_resolved(config, folder / CONFIG_FILE)
    keras.utils.set_random_seed(0)
    build_network(config.model).save(folder / MODEL_FILE)
    model = export.export_model(root / "run", "finetune", "m", 1, root / "saved_models")
    for k in range(3):
        write_series(root / "in" / f"SMITH_JOHN_{k}" / "ct", n_slices=6, rows=32, cols=32,
                     seed=k, series_uid=f"1.2.826.0.1.3680043.8.498.{k + 1}")
    return model, root / "in"


@pytest.fixture(scope="module")
def denoised(model_and_input, tmp_path_factory):
    """An uninterrupted denoise run into an output with the fixed salt."""
    model, source = model_and_input
    out = salted(tmp_path_factory.mktemp("denoised") / "out")
    in_process(denoise.main, ["--model", model, "--input", source, "--output", out])
    return artifacts(out)


def test_denoise_on_a_full_disk_stops_with_one_line_and_leaves_nothing_half_made(
        model_and_input, denoised, tmp_path):
    model, source = model_and_input
    out = tmp_path / "out"
    argv = ["--model", model, "--input", source, "--output", out]
    # before the first write (the folder's lock, then the salt): nothing made
    [line] = error_lines(limited(16, "ldct_tf.denoise", argv))
    assert line.startswith(f"error: cannot claim {out} for writing: file too large writing "
                           f"{out / '.lock'} ("), line
    assert line.endswith("raise the limit or choose another --workdir/--output, then run again")
    assert not out.exists() or artifacts(out) == {}
    # during the run: the salt and lock fit, the first derived DICOM does not
    result = limited(1024, "ldct_tf.denoise", argv)
    [line] = error_lines(result)
    assert line.startswith(f"error: file too large writing {out}/"), line
    assert line.endswith(".dcm (the file system's or the process's file-size limit, ulimit -f): "
                         "raise the limit or choose another --workdir/--output, then run again")
    assert "SMITH" not in result.stderr  # the output tree mirrors the input's names: labelled
    check_whole(out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["quarantine.json", SALT_FILE]
    (out / SALT_FILE).write_text(SALT)  # the reference's, so that the UIDs agree
    in_process(denoise.main, argv)  # no --force: its own files are no obstacle
    assert artifacts(out) == denoised


@pytest.mark.parametrize("moment", ["salt", "first DICOM"])
def test_denoise_killed_then_run_again_gives_the_uninterrupted_result(
        model_and_input, denoised, tmp_path, moment):
    model, source = model_and_input
    out = salted(tmp_path / "out") if moment != "salt" else tmp_path / "out"
    argv = ["--model", model, "--input", source, "--output", out]
    ready = appeared(out, SALT_FILE) if moment == "salt" else appeared(out, "SMITH*/ct/*.dcm")
    killed_when(ready, "ldct_tf.denoise", argv)
    check_whole(out)
    if moment == "salt":
        (out / SALT_FILE).write_text(SALT)
    in_process(denoise.main, argv)
    assert artifacts(out) == denoised


def test_a_salt_left_empty_is_made_again_and_a_garbled_one_refused(tmp_path, capsys):
    (tmp_path / SALT_FILE).write_text("")  # what a full disk left before
    salt = cli.workdir_salt(tmp_path)
    assert len(salt) == 32 and "was empty" in capsys.readouterr().err
    (tmp_path / SALT_FILE).write_text("5a17\x00\xff")
    with pytest.raises(LdctError, match="salt is damaged .* delete it and run again"):
        cli.workdir_salt(tmp_path)


# --- export -------------------------------------------------------------------------------------


def _outputs(model: Path, seed: int = 3) -> list[np.ndarray]:
    loaded = tf.saved_model.load(str(model))
    hu = np.random.default_rng(seed).uniform(-1000, 1000, (2, 32, 48, 1)).astype(np.float32)
    examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
        "ldct": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[hu[k, ..., 0].astype("<i2").tobytes()])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[32])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[48]))},
    )).SerializeToString() for k in range(2)])
    return [loaded.signatures["serving_default"](ldct_hu=tf.constant(hu))["denoised_hu"].numpy(),
            loaded.signatures["serve_examples"](examples=examples)["denoised_hu"].numpy(),
            *sorted((v.numpy() for v in loaded.variables), key=lambda a: (a.shape, a.sum()))]


def test_export_killed_then_run_again_gives_the_uninterrupted_result(model_and_input, tmp_path):
    model, _ = model_and_input
    run = model.parents[2] / "run"

    def argv(out: Path) -> list:
        return ["--workdir", run, "--out", out, "--name", "m"]

    in_process(export.main, argv(tmp_path / "reference"))
    out = tmp_path / "saved_models"
    killed_when(appeared(out / "m", ".partial.1"), "ldct_tf.export", argv(out))
    assert not (out / "m" / "1").exists()  # no half-written version for TF Serving
    in_process(export.main, argv(out))  # the same version number: 1
    got, expected = artifacts(out), artifacts(tmp_path / "reference")
    assert got.keys() == expected.keys()
    for name in ("models.config", "m/1/assets/provenance.json"):
        assert got[name] == expected[name]
    for a, b in zip(_outputs(out / "m" / "1"), _outputs(tmp_path / "reference" / "m" / "1"),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_export_on_a_full_disk_is_one_line_and_no_version(model_and_input, tmp_path):
    model, _ = model_and_input
    out = tmp_path / "saved_models"
    argv = ["--workdir", model.parents[2] / "run", "--out", out, "--name", "m"]
    # the lock fits, the SavedModel does not: TensorFlow's own error (OutOfRangeError), named
    [line] = error_lines(limited(8192, "ldct_tf.export", argv))
    assert line.startswith(f"error: file too large writing {out / 'm' / '1'} ("), line
    assert not (out / "m" / "1").exists() and artifacts(out) == {}
