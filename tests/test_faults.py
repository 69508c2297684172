"""Faults of the environment and kills: nothing half-made, one line, a rerun gives the uninterrupted
result.

A full disk is a file-size limit (`resource.RLIMIT_FSIZE`, SIGXFSZ ignored: a write past it fails
with EFBIG, as on a full disk), set in a fresh process after its start-up. A kill is SIGKILL of a
fresh ``python -m ldct_tf.STEP`` when a given file first appears. Each rerun runs the same command
line in this process (TensorFlow's start-up paid once) and is compared with an uninterrupted run of
it: file by file, bytes equal (JSON without the seconds a step records), except exports, whose
SavedModel bytes differ from process to process (object names): there the files, the provenance
and every output of both signatures must match. Every run of a folder starts from the same salt,
so the salted keys and UIDs of the reference and the rerun agree.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pydicom
import pytest
import tensorflow as tf
from dicom_fixtures import write_series
from records_fixtures import IN_PROCESS, TINY

from ldct_tf import atomic, cam, cli, denoise, export
from ldct_tf.config import load_config, write_resolved
from ldct_tf.errors import EXIT_BAD_INPUT, LdctError, run_cli
from ldct_tf.models.denoiser import build_network
from ldct_tf.prepare import pipeline as prepare
from ldct_tf.records import count_records, split_sizes
from ldct_tf.train import phases
from ldct_tf.workdir import CONFIG_FILE, MODEL_FILE, SALT_FILE, Workdir

pytestmark = pytest.mark.slow

SALT = "5a17" * 8
SETTINGS = [arg for item in TINY for arg in ("--set", item)]
VOLATILE = {"seconds", "training_seconds", "exported_at", "slices_per_s"}  # a run's timings
# Runs `python -m MODULE ARGS` under a file-size limit, set after the module's imports (TensorFlow
# probes the temporary folder while it starts).
LIMITED = """
import importlib, resource, runpy, signal, sys, tempfile
limit, module = int(sys.argv[1]), sys.argv[2]
importlib.import_module(module)
tempfile.gettempdir()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
sys.argv = [module, *sys.argv[3:]]
from ldct_tf.cli import quiet_startup
quiet_startup()
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _limited(limit: int, module: str, argv: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), module, *map(str, argv)],
                          capture_output=True, text=True, timeout=300)


def _killed_when(ready: Callable[[], bool], module: str, argv: list) -> None:
    """Start ``python -m module argv``, SIGKILL it as soon as ``ready()``; it must not finish
    first."""
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, argv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"{module} ended before the kill:\n{err[-2000:]}"


def _appeared(folder: Path, pattern: str) -> Callable[[], bool]:
    return lambda: any(Path(folder).glob(pattern))


def _in_process(main, argv: list) -> None:
    assert run_cli(main, [str(a) for a in argv]) == 0


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _comparable(name: str, data: bytes):
    if name.endswith(".json"):
        return _drop_volatile(json.loads(data))
    if name.endswith(".npz"):  # its zip entries carry the time they were written
        with np.load(io.BytesIO(data)) as arrays:
            return {key: (arrays[key].dtype.str, arrays[key].shape, arrays[key].tobytes())
                    for key in arrays.files}
    return data


def _drop_volatile(value):
    if isinstance(value, dict):
        return {k: _drop_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_drop_volatile(v) for v in value]
    return value


def _files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """Every file under ``folder`` (relative path -> comparable content); none half-made: no
    temporary file of `ldct_tf.atomic`, no lock, no Beam temporary folder, no empty file."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        assert not atomic.is_partial(path) and path.name != ".lock", rel
        assert not path.name.startswith(("beam-temp", ".beam")), rel
        if path.is_file() and not rel.startswith(skip):
            data = path.read_bytes()
            assert data, f"{rel} is empty"
            found[rel] = _comparable(path.name, data)
    return found


def _check_whole(folder: Path) -> None:
    """Each file a later run trusts parses or loads (what a killed run left in a temporary name or
    a Beam temporary folder no reader opens)."""
    for path in Path(folder).rglob("*"):
        if not path.is_file() or atomic.is_partial(path) or "beam-temp" in str(path):
            continue
        if path.name == SALT_FILE:
            assert cli.workdir_salt(path.parent) == path.read_text()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".dcm":
            assert pydicom.dcmread(path).pixel_array.size
        elif ".tfrecord" in path.name:
            count_records(path)


def _salted(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SALT_FILE).write_text(SALT)
    return folder


# --- denoise ------------------------------------------------------------------------------------


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
    out = _salted(tmp_path_factory.mktemp("denoised") / "out")
    _in_process(denoise.main, ["--model", model, "--input", source, "--output", out])
    return _files(out)


def test_denoise_on_a_full_disk_stops_with_one_line_and_leaves_nothing_half_made(
        model_and_input, denoised, tmp_path):
    model, source = model_and_input
    out = tmp_path / "out"
    argv = ["--model", model, "--input", source, "--output", out]
    # before the first write (the folder's lock, then the salt): nothing made
    [line] = _error_lines(_limited(16, "ldct_tf.denoise", argv))
    assert line.startswith(f"error: cannot claim {out} for writing: file too large writing "
                           f"{out / '.lock'} ("), line
    assert line.endswith("raise the limit or choose another --workdir/--output, then run again")
    assert not out.exists() or _files(out) == {}
    # during the run: the salt and lock fit, the first derived DICOM does not
    result = _limited(1024, "ldct_tf.denoise", argv)
    [line] = _error_lines(result)
    assert line.startswith(f"error: file too large writing {out}/"), line
    assert line.endswith(".dcm (the file system's or the process's file-size limit, ulimit -f): "
                         "raise the limit or choose another --workdir/--output, then run again")
    assert "SMITH" not in result.stderr  # the output tree mirrors the input's names: labelled
    _check_whole(out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["quarantine.json", SALT_FILE]
    (out / SALT_FILE).write_text(SALT)  # the reference's, so that the UIDs agree
    _in_process(denoise.main, argv)  # no --force: its own files are no obstacle
    assert _files(out) == denoised


@pytest.mark.parametrize("moment", ["salt", "first DICOM"])
def test_denoise_killed_then_run_again_gives_the_uninterrupted_result(
        model_and_input, denoised, tmp_path, moment):
    model, source = model_and_input
    out = _salted(tmp_path / "out") if moment != "salt" else tmp_path / "out"
    argv = ["--model", model, "--input", source, "--output", out]
    ready = _appeared(out, SALT_FILE) if moment == "salt" else _appeared(out, "SMITH*/ct/*.dcm")
    _killed_when(ready, "ldct_tf.denoise", argv)
    _check_whole(out)
    if moment == "salt":
        (out / SALT_FILE).write_text(SALT)
    _in_process(denoise.main, argv)
    assert _files(out) == denoised


def test_a_salt_left_empty_is_made_again_and_a_garbled_one_refused(tmp_path, capsys):
    (tmp_path / SALT_FILE).write_text("")  # what a full disk left before
    salt = cli.workdir_salt(tmp_path)
    assert len(salt) == 32 and "was empty" in capsys.readouterr().err
    (tmp_path / SALT_FILE).write_text("5a17\x00\xff")
    with pytest.raises(LdctError, match="salt is damaged .* delete it and run again"):
        cli.workdir_salt(tmp_path)


# --- prepare ------------------------------------------------------------------------------------


def _prepare_argv(workdir: Path) -> list:
    return ["--workdir", workdir, *SETTINGS, "--", *IN_PROCESS]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    workdir = _salted(tmp_path_factory.mktemp("prepared") / "run")
    _in_process(prepare.main, _prepare_argv(workdir))
    return _files(workdir)


def test_prepare_on_a_full_disk_stops_with_one_line_and_a_rerun_completes(prepared, tmp_path):
    workdir = _salted(tmp_path / "run")
    # the salt, lock and config fit; the first shard does not. Beam's default: a worker process
    # per core (each prints the traceback of what it raises; the fault is counted instead)
    [line] = _error_lines(_limited(4096, "ldct_tf.prepare.pipeline",
                                   ["--workdir", workdir, *SETTINGS]))
    records = Workdir(workdir).records
    assert re.fullmatch(rf"error: file too large writing {re.escape(str(records))}/"
                        r"(train|val|test)-0000\d-of-00002\.tfrecord \(.*\): raise the limit or "
                        r"choose another --workdir/--output, then run again", line), line
    _check_whole(workdir)
    assert not (records / "stats.json").exists()  # the records are not taken for complete
    with pytest.raises(LdctError, match="stats.json not found"):
        split_sizes(records)
    _in_process(prepare.main, _prepare_argv(workdir))
    assert _files(workdir) == prepared


# the first shard in place (others and the statistics still to come; a Beam temporary folder
# lives too briefly to catch), and the statistics of the pipeline before the shard counts
@pytest.mark.parametrize("moment", ["*-of-*.tfrecord*", ".beam.stats.json"])
def test_prepare_killed_then_run_again_gives_the_uninterrupted_result(prepared, tmp_path, moment):
    workdir = _salted(tmp_path / "run")
    records = Workdir(workdir).records
    _killed_when(_appeared(records, moment), "ldct_tf.prepare.pipeline", _prepare_argv(workdir))
    _check_whole(workdir)
    assert not (records / "stats.json").exists()
    _in_process(prepare.main, _prepare_argv(workdir))
    assert _files(workdir) == prepared


# --- cam, export, training ----------------------------------------------------------------------


def _copy_run(trained_tiny, target: Path) -> Path:
    _, workdir, _ = trained_tiny
    shutil.copytree(workdir, target, symlinks=True)
    for made in ("records_with_mask", "cam", "denoiser"):  # what later fixtures may have added
        shutil.rmtree(target / made, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def cam_reference(trained_tiny, tmp_path_factory):
    """The files of an uninterrupted cam run on a copy of the tiny trained run."""
    reference = _copy_run(trained_tiny, tmp_path_factory.mktemp("cam") / "reference")
    _in_process(cam.main, ["--workdir", reference, *SETTINGS])
    return _files(reference)


# a shard being written (under its temporary name), the first shard in place
@pytest.mark.parametrize("moment", [".partial.*-of-*.tfrecord*", "*-of-*.tfrecord*"])
def test_cam_killed_then_run_again_gives_the_uninterrupted_result(trained_tiny, cam_reference,
                                                                  tmp_path, moment):
    workdir = _copy_run(trained_tiny, tmp_path / "run")
    argv = ["--workdir", workdir, *SETTINGS]
    target = Workdir(workdir).records_with_mask
    _killed_when(_appeared(target, moment), "ldct_tf.cam", argv)
    _check_whole(workdir)
    assert not (target / "stats.json").exists()
    _in_process(cam.main, argv)
    assert _files(workdir) == cam_reference


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
    argv = lambda out: ["--workdir", run, "--out", out, "--name", "m"]  # noqa: E731
    _in_process(export.main, argv(tmp_path / "reference"))
    out = tmp_path / "saved_models"
    _killed_when(_appeared(out / "m", ".partial.1"), "ldct_tf.export", argv(out))
    assert not (out / "m" / "1").exists()  # no half-written version for TF Serving
    _in_process(export.main, argv(out))  # the same version number: 1
    got, expected = _files(out), _files(tmp_path / "reference")
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
    [line] = _error_lines(_limited(8192, "ldct_tf.export", argv))
    assert line.startswith(f"error: file too large writing {out / 'm' / '1'} ("), line
    assert not (out / "m" / "1").exists() and _files(out) == {}


# Moments: the classifier after its first epoch's checkpoint (it keeps no backup: it trains
# anew), a denoiser phase as training begins (its CSV history opened, no backup yet) and after its
# first backup.
@pytest.mark.parametrize("phase, moment", [("classifier", "model.keras"),
                                           ("pretrain", "history.csv"),
                                           ("pretrain", "backup/training_metadata.json"),
                                           ("finetune", "backup/training_metadata.json")])
def test_training_killed_then_run_again_finishes_cleanly(request, tmp_path, phase, moment):
    source = request.getfixturevalue("denoisers_tiny" if phase == "finetune" else "tiny_run")[1]
    later = {"classifier": ("classifier", "cam", "records_with_mask", "denoiser", "observer"),
             "pretrain": ("classifier", "cam", "records_with_mask", "denoiser", "observer"),
             "finetune": ("finetune", "finetune_control", "finetune_oracle", "finetune_pairs",
                          "eval")}[phase]
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir, symlinks=True,
                    ignore=shutil.ignore_patterns("logs", *later))
    argv = ["--phase", phase, "--workdir", workdir, *SETTINGS, "--set", f"{phase}.epochs=2"]
    w = Workdir(workdir)
    out = w.classifier if phase == "classifier" else w.denoiser(phase)
    _killed_when(_appeared(out, moment), "ldct_tf.train", argv)
    _check_whole(workdir)
    _in_process(phases.main, argv)
    _files(workdir)  # nothing half-made
    if phase == "classifier":
        assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
        keras.models.load_model(out / MODEL_FILE)
        return
    history = json.loads((out / "history.json").read_text())  # every epoch, resumed ones too
    assert set(history["epoch"]) == {0, 1}
    json.loads((out / "summary.json").read_text())
    keras.models.load_model(out / MODEL_FILE)
    assert not (out / "backup").exists()


# --- evaluate -----------------------------------------------------------------------------------

EVALUATE = [*SETTINGS, "--set", "evaluate.resamples=30", "--set", "evaluate.bm3d=false",
            "--set", "evaluate.cho_splits=2"]


@pytest.fixture(scope="module")
def evaluated_once(denoisers_tiny, tmp_path_factory):
    """A copy of the tiny trained run and its uninterrupted evaluation (moved aside to
    ``reference``, so that the rerun's paths in metrics.json are the same)."""
    from ldct_tf.evaluate import study

    _, source = denoisers_tiny
    root = tmp_path_factory.mktemp("evaluate")
    workdir = root / "run"
    shutil.copytree(source, workdir, symlinks=True, ignore=shutil.ignore_patterns("eval"))
    for extra in ("finetune_control", "finetune_oracle", "finetune_pairs"):  # other tests' extras
        shutil.rmtree(workdir / "denoiser" / extra, ignore_errors=True)
    _in_process(study.main, ["--workdir", workdir, *EVALUATE])
    reference = _files(Workdir(workdir).eval)
    shutil.rmtree(Workdir(workdir).eval)
    return workdir, reference


@pytest.mark.parametrize("moment", [CONFIG_FILE, "cases.npz"])  # measuring; writing the report
def test_evaluate_killed_then_run_again_gives_the_uninterrupted_result(evaluated_once, moment):
    from ldct_tf.evaluate import study

    workdir, reference = evaluated_once
    out = Workdir(workdir).eval
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--workdir", workdir, *EVALUATE]
    _killed_when(_appeared(out, moment), "ldct_tf.evaluate", argv)
    _check_whole(workdir)
    assert not (out / "metrics.json").exists()  # what says the evaluation is complete
    _in_process(study.main, argv)
    assert _files(out) == reference
