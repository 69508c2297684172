"""Bad input never costs data: the kinds of bad input a hospital user, or a careless one, makes.

Each case is built in code (pydicom, numpy, cut files, damaged SavedModels and shards) and run
through the command-line entry points in-process (`run_cli`, as ``python -m`` runs them). Each
asserts what applies of: exit status 2 with one ``error:`` line naming the thing and no traceback
(any exception but `LdctError` escapes `run_cli` and fails the test), inputs byte-identical
afterwards, every input file accounted for (written, or listed in ``quarantine.json`` with a
reason), and no identifying string from a tag or a path in any artifact or log line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tensorflow as tf
from dicom_fixtures import (
    PLANTED_PATH_NAME,
    PLANTED_VALUES,
    compress_j2k,
    cut_codestream,
    make_ct_dataset,
    save,
    save_cut_header,
    save_truncated,
    write_series,
)
from records_fixtures import TINY

from ldct_tf.errors import EXIT_BAD_INPUT, LdctError, run_cli
from ldct_tf.workdir import Workdir

SET_TINY = [arg for override in TINY for arg in ("--set", override)]


def call(main, argv, capsys) -> tuple[int, str, str]:
    """Run a CLI ``main`` as ``python -m`` does; (exit status, its last stderr line, all it
    printed). A non-zero status must come with exactly one ``error:`` line, the last, and never a
    traceback."""
    status = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    if status:
        assert status == EXIT_BAD_INPUT
        assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    return status, lines[-1] if lines else "", out + err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def resolved_quarantine(quarantine: Path, root: Path) -> dict[str, str]:
    """Real path -> reason of every listed file, mapped back with the run's salt as a user
    would (`python -m ldct_tf.dicom.quarantine`)."""
    from ldct_tf.dicom.path_labels import resolve
    from ldct_tf.dicom.quarantine import find_salt

    entries = json.loads(quarantine.read_text())
    found = resolve([e["path"] for e in entries], root, find_salt(quarantine))
    assert len(found) == len(entries), "a quarantine entry names no input file"
    return {found[e["path"]]: e["reason"] for e in entries}


@pytest.fixture(scope="module")
def model_dir(denoisers_tiny, tmp_path_factory):
    from ldct_tf import export

    _, workdir = denoisers_tiny
    return export.export_model(workdir, "finetune", "m", 1, tmp_path_factory.mktemp("bad_sm"))


# --- bad DICOM files: (builder, expected reason) -------------------------------------------

UID = "1.2.826.0.1.3680043.8.498.4242"


def _no_rescale(folder: Path) -> Path:
    ds = make_ct_dataset(64, 64, position_z=90.0, series_uid=UID)
    del ds.RescaleSlope, ds.RescaleIntercept
    return save(ds, folder / "no_rescale.dcm")


def _slope_zero(folder: Path) -> Path:
    ds = make_ct_dataset(64, 64, position_z=91.0, series_uid=UID)
    ds.RescaleSlope = 0
    return save(ds, folder / "slope_zero.dcm")


def _slope_huge(folder: Path) -> Path:
    ds = make_ct_dataset(64, 64, position_z=92.0, series_uid=UID)
    ds.RescaleSlope = "1e30"
    return save(ds, folder / "slope_huge.dcm")


def _spacing_absurd(folder: Path) -> Path:
    ds = make_ct_dataset(64, 64, position_z=93.0, series_uid=UID, pixel_spacing=(1e6, 1e6))
    return save(ds, folder / "spacing_absurd.dcm")


def _truncated(folder: Path) -> Path:
    return save_truncated(make_ct_dataset(64, 64, position_z=94.0, series_uid=UID),
                          folder / "truncated.dcm")


def _header_cut(folder: Path) -> Path:
    return save_cut_header(make_ct_dataset(64, 64, position_z=96.0, series_uid=UID),
                           folder / "header_cut.dcm")


def _spacing_nan(folder: Path) -> Path:
    ds = make_ct_dataset(64, 64, position_z=97.0, series_uid=UID, pixel_spacing=(math.nan,) * 2)
    return save(ds, folder / "spacing_nan.dcm", validate=False)


def _symlink_loop(folder: Path) -> Path:
    os.symlink("loop.dcm", folder / "loop.dcm")
    return folder / "loop.dcm"


def _j2k_cut(folder: Path) -> Path:
    ds = compress_j2k(make_ct_dataset(64, 64, position_z=98.0, series_uid=UID), cut_codestream)
    return save(ds, folder / "j2k_cut.dcm")


def _not_dicom(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text(f"scan notes for {PLANTED_PATH_NAME}\n")
    return path


def _not_ct(folder: Path) -> Path:
    return save(make_ct_dataset(64, 64, position_z=95.0, series_uid=UID, modality="MR"),
                folder / "mr.dcm")


BAD_FILES = [
    (_no_rescale, r"^missing RescaleSlope/RescaleIntercept"),
    (_slope_zero, r"^RescaleSlope 0\.0 .*finite non-zero"),
    (_slope_huge, r"HU"),
    (_spacing_absurd, r"^PixelSpacing .* outside 0\.05-10"),
    (_truncated, r"truncated|cut|unreadable"),
    (_not_dicom, r"not a DICOM file|unreadable"),
    (_not_ct, r"^modality MR is not CT"),
    (_header_cut, r"^truncated file: its header ends early"),  # was "missing SeriesInstanceUID"
    (_spacing_nan, r"^PixelSpacing \(0028,0030\) is nan\\nan, not a finite positive number"),
    (_symlink_loop, r"^symlink loop"),
    (_j2k_cut, r"^pixel data could not be decoded \(pylibjpeg: Error decoding the J2K data"),
]


def mixed_folder(root: Path, stored) -> tuple[list[Path], dict[Path, str]]:
    """A PACS-style export of good series (folders named after the patient) with every kind of
    bad file mixed into the first; (good files, bad file -> expected reason)."""
    good = []
    for p in range(3):
        folder = root / f"{PLANTED_PATH_NAME}_{p}" / "CT"
        write_series(folder, n_slices=2, rows=64, cols=64, pixel_spacing=(1.4, 1.4),
                     series_uid=UID if p == 0 else f"{UID}{p}", stored_volume=stored(p),
                     patient_id=f"PLANTEDID4711{p}")
        good += sorted(folder.glob("*.dcm"))
    bad = {make(root / f"{PLANTED_PATH_NAME}_0" / "CT"): reason for make, reason in BAD_FILES}
    return good, bad


def _abdomen(seed):
    from ldct_tf.ct.phantoms import make_phantom
    from ldct_tf.ct.simulate import scan

    slices = [scan(make_phantom(64, 1.4, seed=[seed, k]), 1.4, 1.0, k) for k in range(2)]
    return np.clip(np.rint(np.stack(slices)) + 1024, 0, 4095).astype(np.int16)


def assert_no_identity(blob: bytes) -> None:
    for planted in (*PLANTED_VALUES, PLANTED_PATH_NAME):
        assert planted.encode() not in blob, planted


def test_prepare_keeps_every_good_series_and_lists_every_bad_file(tmp_path, capsys, caplog):
    from ldct_tf.prepare import pipeline as prepare

    source = tmp_path / f"export_{PLANTED_PATH_NAME}"
    good, bad = mixed_folder(source, _abdomen)
    before = snapshot(source)
    workdir = tmp_path / "run"
    # a fixed salt (hex, as a run writes one): lesion sites follow the salted series keys, and
    # with some salts a 64-pixel slice has no room for a lesion and is (rightly) listed too
    workdir.mkdir()
    (workdir / "salt").write_text("7e57")
    with caplog.at_level(logging.DEBUG, logger="ldct_tf"):
        status, _, text = call(prepare.main, [
            *SET_TINY, "--workdir", workdir, "--source", "dicom", "--input", source, "--",
            "--direct_running_mode=in_memory", "--direct_num_workers=1"], capsys)
    assert status == 0
    assert snapshot(source) == before
    listed = resolved_quarantine(workdir / "records" / "quarantine.json", source)
    assert set(listed) == {str(p) for p in bad}
    for path, reason in bad.items():
        assert re.search(reason, listed[str(path)]), (path.name, listed[str(path)])
    stats = json.loads((workdir / "records" / "stats.json").read_text())
    assert sum(s["examples"] for s in stats["splits"].values()) == 2 + 2 + 2 * 2  # test: twins
    assert not list((workdir / "records").glob("beam-temp-*"))
    logs = "\n".join(r.getMessage() for r in caplog.records) + text
    assert_no_identity(b"".join(f.read_bytes() for f in workdir.rglob("*") if f.is_file())
                       + logs.encode())


def test_denoise_writes_every_good_series_and_lists_every_bad_file(model_dir, tmp_path, capsys,
                                                                  caplog):
    from ldct_tf import denoise

    source = tmp_path / f"export_{PLANTED_PATH_NAME}"
    good, bad = mixed_folder(source, lambda p: None)
    tiny = source / f"{PLANTED_PATH_NAME}_small"  # slices smaller than the network's room
    write_series(tiny, n_slices=2, rows=8, cols=8, series_uid=f"{UID}9")
    one_valued = make_ct_dataset(16, 16, series_uid=f"{UID}8")
    one_valued.ImageType = "ORIGINAL"
    save(one_valued, source / "one_valued.dcm", validate=False)
    good += sorted(tiny.glob("*.dcm")) + [source / "one_valued.dcm"]
    before = snapshot(source)
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG, logger="ldct_tf"):
        status, _, text = call(denoise.main, ["--model", model_dir, "--input", source,
                                              "--output", out], capsys)
    assert status == 0
    assert snapshot(source) == before
    listed = resolved_quarantine(out / "quarantine.json", source)
    assert set(listed) == {str(p) for p in bad}
    for path in good:
        written = pydicom.dcmread(out / path.relative_to(source))
        assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert list(pydicom.dcmread(out / "one_valued.dcm").ImageType) == ["DERIVED", "SECONDARY"]
    artifacts = (out / "quarantine.json").read_bytes()
    logs = "\n".join(r.getMessage() for r in caplog.records) + text
    assert_no_identity(artifacts + logs.encode())


# An input file deleted while denoise runs: after the headers were indexed and before its series
# is read (a listed skip; the series' other slices are written), or after the series was read and
# before its derived files are made from it (the series is listed, not half-written).
@pytest.mark.parametrize("when", ["before reading", "after reading"])
def test_an_input_file_deleted_mid_run_is_listed_and_the_others_written(
        model_dir, tmp_path, capsys, monkeypatch, when):
    from ldct_tf import denoise, dicom

    source = tmp_path / f"in_{PLANTED_PATH_NAME}"
    for p in range(2):
        write_series(source / f"{PLANTED_PATH_NAME}_{p}", n_slices=2, rows=32, cols=32,
                     series_uid=f"{UID}{p}")
    gone = sorted((source / f"{PLANTED_PATH_NAME}_0").glob("*.dcm"))[0]
    read = dicom.read_ct_series

    def read_while_deleting(files, **kwargs):
        if gone in map(Path, files) and when == "before reading":
            gone.unlink()
        result = read(files, **kwargs)
        if gone.exists() and gone in map(Path, files):
            gone.unlink()
        return result

    monkeypatch.setattr(dicom, "read_ct_series", read_while_deleting)
    out = tmp_path / "out"
    status, _, text = call(denoise.main, ["--model", model_dir, "--input", source, "--output",
                                          out], capsys)
    assert status == 0, text
    entries = json.loads((out / "quarantine.json").read_text())  # labels (the file is gone)
    reasons = [entry["reason"] for entry in entries]
    series_0 = sorted((source / f"{PLANTED_PATH_NAME}_0").glob("*.dcm"))  # the one left
    if when == "before reading":  # that file is listed; its series' other slice is written
        assert reasons == ["not found: a symlink to a missing file, or a file removed during "
                           "the run"]
        written = series_0
    else:  # the whole series is listed, none of it written
        assert len(reasons) == 2 and all(
            re.fullmatch(r"series \w+ not denoised: FileNotFoundError: No such file or "
                         r"directory; no file of it was written", r) for r in reasons), reasons
        assert not list(out.glob(f"{PLANTED_PATH_NAME}_0/*.dcm"))
        written = []
    for path in [*written, *(source / f"{PLANTED_PATH_NAME}_1").glob("*.dcm")]:
        assert pydicom.dcmread(out / path.relative_to(source)).ImageType[0] == "DERIVED"
    assert len(list(out.rglob("*.dcm"))) == len(written) + 2
    assert_no_identity((out / "quarantine.json").read_bytes() + text.encode())


def test_prepare_lists_an_input_file_deleted_mid_run_and_makes_the_rest(tmp_path, capsys,
                                                                        monkeypatch):
    from ldct_tf import dicom
    from ldct_tf.prepare import pipeline as prepare

    source = tmp_path / "in"
    for p in range(3):
        write_series(source / f"{PLANTED_PATH_NAME}_{p}", n_slices=2, rows=64, cols=64,
                     pixel_spacing=(1.4, 1.4), series_uid=f"{UID}{p}", stored_volume=_abdomen(p),
                     patient_id=f"PLANTEDID4711{p}")
    gone = sorted((source / f"{PLANTED_PATH_NAME}_0").glob("*.dcm"))[0]
    read = dicom.read_ct_series

    def read_while_deleting(files, **kwargs):  # after planning, before this series is read
        if gone in map(Path, files):
            gone.unlink()
        return read(files, **kwargs)

    monkeypatch.setattr(dicom, "read_ct_series", read_while_deleting)
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "salt").write_text("7e57")  # as in the test above: room for every lesion
    status, _, text = call(prepare.main, [
        *SET_TINY, "--workdir", workdir, "--source", "dicom", "--input", source, "--",
        "--direct_running_mode=in_memory", "--direct_num_workers=1"], capsys)
    assert status == 0, text
    entries = json.loads((workdir / "records" / "quarantine.json").read_text())
    assert [e["reason"] for e in entries] == [
        "not found: a symlink to a missing file, or a file removed during the run"]
    stats = json.loads((workdir / "records" / "stats.json").read_text())
    assert sum(s["series"] for s in stats["splits"].values()) == 3  # its other slice is used
    assert_no_identity((workdir / "records" / "quarantine.json").read_bytes() + text.encode())


def test_denoise_lists_a_series_that_fails_and_goes_on(model_dir, tmp_path, capsys):
    from ldct_tf import denoise

    source = tmp_path / f"in_{PLANTED_PATH_NAME}"
    for p in range(2):
        write_series(source / f"{PLANTED_PATH_NAME}_{p}", n_slices=2, rows=32, cols=32,
                     series_uid=f"{UID}{p}")
    out = tmp_path / "out"
    first = sorted((source / f"{PLANTED_PATH_NAME}_0").glob("*.dcm"))
    (out / first[0].relative_to(source)).mkdir(parents=True)  # where a file must go
    status, _, text = call(denoise.main, ["--model", model_dir, "--input", source, "--output",
                                          out, "--force"], capsys)
    assert status == 0
    listed = resolved_quarantine(out / "quarantine.json", source)
    assert set(listed) == {str(p) for p in first}
    assert all("not denoised: IsADirectoryError" in reason for reason in listed.values())
    assert not (out / first[1].relative_to(source)).exists()  # no half series
    for path in (source / f"{PLANTED_PATH_NAME}_1").glob("*.dcm"):
        assert (out / path.relative_to(source)).is_file()
    assert_no_identity((out / "quarantine.json").read_bytes() + text.encode())


# --- the input overwritten -----------------------------------------------------------------

@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_denoise_never_writes_into_its_input(model_dir, tmp_path, capsys, where):
    from ldct_tf import denoise

    source = tmp_path / "in"
    write_series(source, n_slices=2, rows=32, cols=32)
    output = {"same": source, "inside": source / "denoised", "holds": tmp_path}[where]
    before, around = snapshot(source), sorted(tmp_path.iterdir())
    status, message, _ = call(denoise.main, ["--model", model_dir, "--input", source, "--output",
                                          output, "--force"], capsys)
    assert status == EXIT_BAD_INPUT and "choose a folder outside" in message
    assert snapshot(source) == before and sorted(tmp_path.iterdir()) == around


# --- one-line errors: config, paths, models -----------------------------------------------

CONFIG_CASES = {
    "config not UTF-8": (lambda t: ["--config", _write(t / "c.toml", b"[data]\nseed = 1 \xff\n")],
                         "not UTF-8"),
    "config a folder": (lambda t: ["--config", t], "is a folder"),
    "workdir a file": (lambda t: ["--workdir", _write(t / "file", b"x")], "is a file"),
    "negative seed": (lambda t: ["--set", "data.seed=-1"], "[data] seed: must be >= 0"),
    "infinite rate": (lambda t: ["--set", "pretrain.learning_rate=inf"],
                      "[pretrain] learning_rate: must be a finite number"),
    "nan noise": (lambda t: ["--set", "scanner.electronic_noise_var=nan"],
                  "[scanner] electronic_noise_var: must be a finite number"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_and_path_errors_are_one_line(tmp_path, capsys, case):
    from ldct_tf.prepare import pipeline as prepare

    make, expected = CONFIG_CASES[case]
    argv = make(tmp_path)
    if "--workdir" not in argv:
        argv += ["--workdir", tmp_path / "run"]
    status, message, _ = call(prepare.main, argv, capsys)
    assert status == EXIT_BAD_INPUT and expected in message


def test_denoise_output_that_is_a_file(model_dir, tmp_path, capsys):
    from ldct_tf import denoise

    write_series(tmp_path / "in", n_slices=1, rows=32, cols=32)
    status, message, _ = call(denoise.main, ["--model", model_dir, "--input", tmp_path / "in",
                                          "--output", _write(tmp_path / "out", b"")], capsys)
    assert status == EXIT_BAD_INPUT and "--output" in message and "is a file" in message


def _damage_model(model: Path, how: str) -> None:
    pb = model / "saved_model.pb"
    if how == "corrupt":
        pb.write_bytes(b"\x08\x96\x01" + b"not a protobuf" * 20)
    elif how == "truncated":
        pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    elif how == "no variables":
        shutil.rmtree(model / "variables")
    else:
        (model / "assets" / "provenance.json").write_text("{not json")


@pytest.mark.parametrize("how", ["corrupt", "truncated", "no variables", "bad provenance"])
def test_broken_savedmodel_is_one_line_and_writes_nothing(model_dir, tmp_path, capsys, how):
    from ldct_tf import denoise

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    _damage_model(model, how)
    write_series(tmp_path / "in", n_slices=1, rows=32, cols=32)
    status, message, _ = call(denoise.main, ["--model", model, "--input", tmp_path / "in",
                                          "--output", tmp_path / "out"], capsys)
    assert status == EXIT_BAD_INPUT and str(model) in message
    assert not (tmp_path / "out").exists()


# --- records cut, emptied or lost -----------------------------------------------------------

def _damage_shard(records: Path, how: str, split: str = "train") -> Path:
    """Damage the first shard of ``split``; return it."""
    shard = sorted(records.glob(f"{split}-*.tfrecord"))[0]
    if how == "cut at a record boundary":
        kept = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))][:-1]
        with tf.io.TFRecordWriter(str(shard)) as writer:
            for record in kept:
                writer.write(record)
    elif how == "cut inside a record":
        shard.write_bytes(shard.read_bytes()[:-7])
    elif how == "emptied":
        shard.write_bytes(b"")
    else:
        shard.unlink()
    return shard


DAMAGE = ["cut at a record boundary", "cut inside a record", "emptied", "deleted"]


@pytest.mark.parametrize("how", DAMAGE)
def test_make_dataset_names_a_damaged_shard(tiny_run, tmp_path, how):
    from ldct_tf import records
    from ldct_tf.records import denoiser_input

    config, workdir = tiny_run
    copy = tmp_path / "records"
    shutil.copytree(Workdir(workdir).records, copy)
    shard = _damage_shard(copy, how)
    with pytest.raises(LdctError, match=str(shard)):
        for _ in denoiser_input.make_dataset(records.pattern(copy, "train"), config, True):
            pass


@pytest.mark.parametrize("step", ["cam", "train", "evaluate"])
def test_steps_name_a_shard_cut_at_a_record_boundary(denoisers_tiny, tmp_path, capsys, step):
    """The silent case: the cut shard reads cleanly, only its count against stats.json tells."""
    from ldct_tf import cam
    from ldct_tf.evaluate import study as evaluate
    from ldct_tf.train import phases as train

    _, workdir = denoisers_tiny
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("eval", "seeds"))
    # what each step reads: cam the records, train the records with maps, evaluate the test split
    folder = Workdir(copy).records_with_mask if step == "train" else Workdir(copy).records
    shard = _damage_shard(folder, "cut at a record boundary",
                          "test" if step == "evaluate" else "train")
    masks_before = snapshot(Workdir(copy).records_with_mask)
    main, extra = {"cam": (cam.main, []), "train": (train.main, ["--phase", "finetune"]),
                   "evaluate": (evaluate.main, [])}[step]
    status, message, _ = call(main, [*SET_TINY, "--workdir", copy, *extra], capsys)
    assert status == EXIT_BAD_INPUT and str(shard) in message and "were written" in message
    if step == "cam":  # no map shard was touched
        assert snapshot(Workdir(copy).records_with_mask) == masks_before


def test_prepare_that_cannot_write_is_one_line_and_leaves_no_beam_temp(tmp_path, capsys):
    from ldct_tf.prepare import pipeline as prepare

    (tmp_path / "run" / "records" / "stats.json").mkdir(parents=True)  # in the way
    status, message, _ = call(prepare.main, [*SET_TINY, "--workdir", tmp_path / "run", "--",
                                          "--direct_running_mode=in_memory"], capsys)
    assert status == EXIT_BAD_INPUT and "could not write" in message and "stats.json" in message
    assert not list((tmp_path / "run" / "records").glob("beam-temp-*"))


# --- inputs that are no input: a symlink loop, no DICOM at all, no run -------------------------

def _loop(tmp_path: Path) -> Path:
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    return tmp_path / "loop_a"


def test_prepare_input_that_is_a_symlink_loop_is_named(tmp_path, capsys):
    from ldct_tf.prepare import pipeline as prepare

    workdir = tmp_path / "run"
    status, message, _ = call(prepare.main, ["--workdir", workdir, "--source", "dicom",
                                             "--input", _loop(tmp_path)], capsys)
    assert status == EXIT_BAD_INPUT and "is a symlink loop" in message  # was "does not exist"
    assert not list(workdir.rglob("*.tfrecord*")) and not list(workdir.rglob("stats.json"))


def test_denoise_input_that_is_a_symlink_loop_is_named(tmp_path, capsys):
    from ldct_tf import denoise

    # named before the model is loaded (this one does not exist): was a RuntimeError traceback
    status, message, _ = call(denoise.main, ["--model", tmp_path / "model", "--input",
                                          _loop(tmp_path), "--output", tmp_path / "out"], capsys)
    assert status == EXIT_BAD_INPUT and message.startswith("error: --input ")
    assert "is a symlink loop" in message and not (tmp_path / "out").exists()


def test_prepare_on_a_folder_without_dicom_lists_every_file(tmp_path, capsys):
    from ldct_tf.prepare import pipeline as prepare

    source = tmp_path / f"in_{PLANTED_PATH_NAME}"
    source.mkdir()
    bad = {_not_dicom(source): r"^not a DICOM file", _symlink_loop(source): r"^symlink loop"}
    before = snapshot(source)
    workdir = tmp_path / "run"
    status, message, _ = call(prepare.main, ["--workdir", workdir, "--source", "dicom",
                                             "--input", source], capsys)
    assert status == EXIT_BAD_INPUT and "no DICOM series found" in message
    quarantine = workdir / "records" / "quarantine.json"
    assert str(quarantine) in message  # was: "2 file(s) skipped" and no quarantine.json
    listed = resolved_quarantine(quarantine, source)
    assert set(listed) == {str(p) for p in bad}
    assert all(re.search(reason, listed[str(p)]) for p, reason in bad.items())
    assert snapshot(source) == before and not list(workdir.rglob("*.tfrecord*"))
    assert_no_identity(quarantine.read_bytes())  # the message names the --input as given


@pytest.mark.parametrize("command", ["export", "evaluate", "ready_model build"])
def test_commands_that_read_a_run_create_no_workdir(tmp_path, capsys, command):
    from ldct_tf import export, ready_model
    from ldct_tf.evaluate import study

    main, extra = {"export": (export.main, []), "evaluate": (study.main, []),
                   "ready_model build": (ready_model.main, ["build"])}[command]
    missing = tmp_path / "DOES_NOT_EXIST"
    status, message, _ = call(main, [*extra, "--workdir", missing], capsys)
    assert status == EXIT_BAD_INPUT and "no trained run" in message
    assert "pipelines.local_runner" in message  # how to make one
    assert list(tmp_path.iterdir()) == []  # was: an empty folder made
