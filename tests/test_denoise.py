"""DICOM in, DICOM out: tags, pixel values through the inverse rescale, quarantine, tiles."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import tensorflow as tf
from cli_fixtures import run_in_process
from dicom_fixtures import PLANTED_PATIENT_NAME, write_series
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from ldct_tf import denoise, export
from ldct_tf.dicom import writer
from ldct_tf.dicom.path_labels import resolve


@pytest.fixture(scope="module")
def model_dir(denoisers_tiny, tmp_path_factory):
    _, workdir = denoisers_tiny
    return export.export_model(workdir, "finetune", "m", 1, tmp_path_factory.mktemp("sm"))


def _serve(model_dir):
    return tf.saved_model.load(str(model_dir)).signatures["serving_default"]


def test_series_round_trip_keeps_identity_and_geometry(model_dir, tmp_path, rng, capsys):
    stored = rng.integers(900, 1200, (3, 40, 40)).astype(np.int16)  # soft tissue around 0 HU
    write_series(tmp_path / "in" / "study" / "series", n_slices=3, rows=40, cols=40,
                 stored_volume=stored, slope=1.0, intercept=-1024.0)
    sources = sorted((tmp_path / "in").rglob("*.dcm"))
    before = {src: src.read_bytes() for src in sources}
    denoise.run(model_dir, tmp_path / "in", tmp_path / "out", batch=2)
    # progress on stderr, slices done of the series' total; not a terminal: plain lines, no \r
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("denoise: series")]
    assert re.fullmatch(r"denoise: series \S+: 3/3 slices \(\d+\.\d slices/s\)", lines[-1]), lines
    assert "\r" not in err
    serve = _serve(model_dir)
    uids = set()
    for src in sources:
        out = tmp_path / "out" / src.relative_to(tmp_path / "in")
        a, b = pydicom.dcmread(src), pydicom.dcmread(out)
        assert list(b.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert b.SeriesDescription.endswith("[ldct_tf denoised]")
        assert "m version 1" in b.DerivationDescription and "research" in b.DerivationDescription
        assert b.SOPInstanceUID != a.SOPInstanceUID and b.SeriesInstanceUID != a.SeriesInstanceUID
        assert str(b.PatientName) == PLANTED_PATIENT_NAME  # this output goes back to the patient
        assert b.ImagePositionPatient == a.ImagePositionPatient
        assert b.PixelSpacing == a.PixelSpacing and b.pixel_array.dtype == a.pixel_array.dtype
        hu_in = apply_modality_lut(a.pixel_array, a).astype(np.float32)
        expected = serve(ldct_hu=tf.constant(hu_in[None, ..., None]))["denoised_hu"][0, ..., 0]
        got = apply_modality_lut(b.pixel_array, b)
        assert np.abs(got - expected.numpy()).max() <= 0.5 + 1e-3  # rounding to stored values
        uids.add(b.SeriesInstanceUID)
    assert len(uids) == 1  # one derived series per input series
    assert all(src.read_bytes() == data for src, data in before.items())  # inputs untouched


def test_ct_small_and_a_non_ct_file(model_dir, tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "in" / "mr.dcm")
    before = (tmp_path / "in" / "ct.dcm").read_bytes()
    summary = denoise.run(model_dir, tmp_path / "in", tmp_path / "out")
    assert summary["slices"] == 1 and summary["skipped"] == 1
    [entry] = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    assert entry["reason"] == "modality MR is not CT" and "mr.dcm" not in entry["path"]
    salt = (tmp_path / "out" / "salt").read_text()  # the label maps back with the output's salt
    assert resolve([entry["path"]], tmp_path / "in", salt) == {
        entry["path"]: str(tmp_path / "in" / "mr.dcm")}
    assert pydicom.dcmread(tmp_path / "out" / "ct.dcm").pixel_array.shape == (128, 128)
    assert (tmp_path / "in" / "ct.dcm").read_bytes() == before
    denoise.run(model_dir, tmp_path / "in", tmp_path / "kept", keep_paths=True)
    [entry] = json.loads((tmp_path / "kept" / "quarantine.json").read_text())
    assert entry["path"] == str(tmp_path / "in" / "mr.dcm")


def test_compressed_source_is_written_uncompressed(model_dir, tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.compress(RLELossless)
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "rle.dcm")
    denoise.run(model_dir, tmp_path / "in", tmp_path / "out")
    out = pydicom.dcmread(tmp_path / "out" / "rle.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.pixel_array.shape == (128, 128)


def test_existing_output_needs_force(model_dir, tmp_path, capfd, caplog):
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    # another setting's output (the same command's own files are no obstacle:
    # test_denoise_faults.py)
    denoise.run(model_dir, tmp_path / "in", tmp_path / "out", batch=1)
    args = ["--model", str(model_dir), "--input", str(tmp_path / "in"), "--output",
            str(tmp_path / "out")]
    refused = run_in_process(denoise.main, args, capfd, caplog)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_in_process(denoise.main, args + ["--force"], capfd, caplog).returncode == 0


def test_missing_model_is_a_clear_error(tmp_path):
    # `python -m ldct_tf.denoise` for real; its other error cases run in this process
    (tmp_path / "in").mkdir()
    result = subprocess.run([sys.executable, "-m", "ldct_tf.denoise", "--model",
                             str(tmp_path / "none"), "--input", str(tmp_path / "in"), "--output",
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and "python -m ldct_tf.export" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr


def test_tiles_agree_with_whole_slices(model_dir, rng):
    serve = _serve(model_dir)
    image = rng.uniform(-100, 100, (1, 150, 140)).astype(np.float32)
    whole = denoise.denoise_hu(serve, image, 1, tile=1024)
    tiled = denoise.denoise_hu(serve, image, 1, tile=80)
    np.testing.assert_allclose(tiled, whole, atol=1e-2)


def test_stored_values_invert_the_modality_lut():
    hu = np.array([-2000.0, -1024.0, 0.0, 40.4, 3000.0, 40000.0])
    stored = writer.stored_values(hu, 1.0, -1024.0, 12, signed=False)
    np.testing.assert_array_equal(stored, [0, 0, 1024, 1064, 4024, 4095])
    signed = writer.stored_values(hu, 0.5, 0.0, 16, signed=True)
    assert signed.min() >= -32768 and signed.max() == 32767 and signed[3] == 81


def _tree(root):
    """Every file under ``root`` with its bytes: to show a refused run left the input as it was."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("output", ["in", "in/derived", ".", "ct.dcm-file"])
def test_an_output_that_touches_the_input_is_refused_and_nothing_is_written(model_dir, tmp_path,
                                                                            output, capfd,
                                                                            caplog):
    # the same folder (with --force the originals would be replaced), a folder inside the input,
    # one that holds the input, and an output that is a file
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    (tmp_path / "ct.dcm-file").write_bytes(b"not a folder")
    before = _tree(tmp_path)
    result = run_in_process(denoise.main, ["--model", str(model_dir), "--input",
                                           str(tmp_path / "in"), "--output",
                                           str(tmp_path / output), "--force"], capfd, caplog)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--output" in lines[0] and "Traceback" not in result.stderr
    assert _tree(tmp_path) == before  # nothing written, nothing replaced


def test_a_one_valued_image_type_is_not_split_into_letters(model_dir, tmp_path):
    # pydicom reads a one-valued ImageType as a string; slicing it gave DERIVED\SECONDARY\I\G\I\N..
    (tmp_path / "in").mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.ImageType = "ORIGINAL"
    ds.save_as(tmp_path / "in" / "ct.dcm")
    denoise.run(model_dir, tmp_path / "in", tmp_path / "out")
    out = pydicom.dcmread(tmp_path / "out" / "ct.dcm")
    assert list(out.ImageType) == ["DERIVED", "SECONDARY"]


def test_a_slice_smaller_than_the_network_needs_is_padded_not_a_crash(model_dir, tmp_path):
    # an 8x8 CT slice stopped denoise mid-run with a TensorFlow shape error
    from dicom_fixtures import make_ct_dataset, save

    (tmp_path / "in").mkdir()
    save(make_ct_dataset(8, 8, position_z=0.0), tmp_path / "in" / "tiny.dcm")
    denoise.run(model_dir, tmp_path / "in", tmp_path / "out")
    out = pydicom.dcmread(tmp_path / "out" / "tiny.dcm")
    assert out.pixel_array.shape == (8, 8)
    assert json.loads((tmp_path / "out" / "quarantine.json").read_text()) == []


def test_padding_matches_denoising_the_padded_slice_by_hand(model_dir, rng):
    serve, _ = denoise.load_export(model_dir)
    small = rng.normal(40.0, 20.0, (1, 10, 30)).astype(np.float32)
    got = denoise.denoise_hu(serve, small, batch=1)
    padded = np.pad(small, ((0, 0), (27, 27), (17, 17)), mode="edge")  # to 64x64, centred
    by_hand = serve(ldct_hu=tf.constant(padded[..., None]))["denoised_hu"].numpy()[0, ..., 0]
    np.testing.assert_allclose(got[0], by_hand[27:37, 17:47], atol=1e-3)


def _truncate_pb(export):
    pb = export / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 3])


def _drop_variables(export):
    shutil.rmtree(export / "variables")


def _garble_provenance(export):
    (export / "assets" / "provenance.json").write_text("{not json")


def _corrupt_pb(export):
    (export / "saved_model.pb").write_bytes(b"\x00garbage" * 100)


@pytest.mark.parametrize("damage", [_truncate_pb, _corrupt_pb, _drop_variables,
                                    _garble_provenance], ids=lambda f: f.__name__[1:])
def test_a_broken_savedmodel_is_one_line_and_nothing_is_written(model_dir, tmp_path, damage,
                                                                capfd, caplog):
    export = tmp_path / "export"
    shutil.copytree(model_dir, export)
    damage(export)
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    result = run_in_process(denoise.main, ["--model", str(export), "--input",
                                           str(tmp_path / "in"), "--output",
                                           str(tmp_path / "out")], capfd, caplog)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(export) in errors[0] and "ldct_tf.export" in errors[0]
    assert not (tmp_path / "out").exists()
