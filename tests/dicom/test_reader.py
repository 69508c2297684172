"""Tests for ldct_tf.dicom.reader: HU conversion, slice order, Enhanced CT, compression, bad files
(each a listed skip), and anonymity of every output. Inputs are built in code (dicom_fixtures) or
are pydicom's own test files; expected values come from a formula or from pydicom itself."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import (
    PLANTED_PATIENT_ID,
    PLANTED_SERIES_UID,
    PLANTED_VALUES,
    compress_j2k,
    cut_codestream,
    flip_coded_byte,
    make_ct_dataset,
    make_enhanced_ct_dataset,
    make_unsupported_compressed_dataset,
    plant_nonconformant_values,
    read_one_series,
    save,
    save_cut_header,
    save_truncated,
    write_series,
)
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, get_decoder, get_encoder, pixel_array
from pydicom.uid import JPEG2000Lossless, RLELossless

from ldct_tf.dicom import (
    NoUsableSliceError,
    anonymous_key,
    find_dose_pairs,
    index_series,
    read_ct_series,
)
from ldct_tf.errors import LdctError

CT_SMALL = get_testdata_file("CT_small.dcm")


MR_SMALL = get_testdata_file("MR_small.dcm")


OTHER_UID = "1.2.826.0.1.3680043.8.498.4242"


def _reference_hu(path) -> np.ndarray:
    """HU of a classic single-frame file by pydicom's own Modality LUT, as float32."""
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def test_ct_small_hu_equals_pydicom_modality_lut():
    series = read_one_series(CT_SMALL)
    assert series.hu.dtype == np.float32
    assert series.shape == (1, 128, 128)
    np.testing.assert_array_equal(series.hu[0], _reference_hu(CT_SMALL))
    ds = pydicom.dcmread(CT_SMALL)
    assert series.pixel_spacing_mm == tuple(float(v) for v in ds.PixelSpacing)
    assert series.slice_thickness_mm == float(ds.SliceThickness)
    assert series.kvp == float(ds.KVP)
    assert series.convolution_kernel == "STANDARD"
    normal = np.cross(ds.ImageOrientationPatient[:3], ds.ImageOrientationPatient[3:])
    np.testing.assert_allclose(series.positions_mm, [np.dot(ds.ImagePositionPatient, normal)])
    assert series.frame_indices == [0] and series.source_paths == [str(Path(CT_SMALL))]


@pytest.mark.parametrize(
    "signed, slope, intercept",
    [(True, 1.0, -1024.0), (True, 2.0, -1000.5), (False, 0.5, -1024.0), (False, 1.0, -1024.0)],
    ids=["int16", "int16-slope2", "uint16-slope-half", "uint16"],
)
def test_series_in_shuffled_files_is_ordered_with_exact_hu(tmp_path, signed, slope, intercept):
    truth = write_series(tmp_path, 6, signed=signed, slope=slope, intercept=intercept)
    names = sorted(p.name for p in tmp_path.iterdir())
    series = read_one_series(tmp_path)
    np.testing.assert_array_equal(series.hu, truth)
    np.testing.assert_allclose(series.positions_mm, -20.0 + 2.5 * np.arange(6))
    instance_numbers = [pydicom.dcmread(p).InstanceNumber for p in series.source_paths]
    assert instance_numbers == list(range(1, 7))
    # The shuffled names really are out of slice order, so sorting by name would fail.
    assert [Path(p).name for p in series.source_paths] != names
    # Independent check of the formula against pydicom for every slice.
    for k, path in enumerate(series.source_paths):
        np.testing.assert_array_equal(series.hu[k], _reference_hu(path))


def _oblique_cosines(degrees: float) -> tuple[float, ...]:
    t = np.deg2rad(degrees)
    return (1.0, 0.0, 0.0, 0.0, round(np.cos(t), 6), round(-np.sin(t), 6))


@pytest.mark.parametrize(
    "orientation",
    [(1.0, 0.0, 0.0, 0.0, -1.0, 0.0), _oblique_cosines(30.0), (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)],
    ids=["negative-normal", "oblique-30deg", "sagittal"],
)
def test_orientation_orders_along_slice_normal(tmp_path, orientation):
    rows_cos, cols_cos = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(rows_cos, cols_cos)
    normal /= np.linalg.norm(normal)  # cosines written with 6 decimals are not exactly unit length
    rng = np.random.default_rng(7)
    depths = rng.permutation(5) * 3.0  # mm along the normal, written in shuffled order
    written = []
    for k, depth in enumerate(depths):
        # Large in-plane offsets: sorting by any single world axis would get the order wrong.
        offset = rng.uniform(-80, 80) * rows_cos + rng.uniform(-80, 80) * cols_cos
        position = np.round(depth * normal + offset, 3)
        ds = make_ct_dataset(
            position=position, orientation=orientation, instance_number=k + 1, seed=k
        )
        save(ds, tmp_path / f"s{k}.dcm")
        written.append((float(np.dot(position, normal)), _reference_hu(tmp_path / f"s{k}.dcm")))
    expected = sorted(written, key=lambda item: item[0])
    series = read_one_series(tmp_path)
    np.testing.assert_allclose(series.positions_mm, [d for d, _ in expected], atol=1e-6)
    np.testing.assert_array_equal(series.hu, np.stack([hu for _, hu in expected]))
    assert np.all(np.diff(series.positions_mm) > 0)


def test_instance_number_orders_series_without_positions(tmp_path):
    truth = write_series(tmp_path, 5, with_positions=False)
    series = read_one_series(tmp_path)
    np.testing.assert_array_equal(series.hu, truth)
    assert not series.has_geometry
    assert np.isnan(series.positions_mm).all() and series.image_positions_mm is None
    assert series.geometry()["positions_mm"] == [None] * 5


def test_optional_tags_absent_are_none(tmp_path):
    save(make_ct_dataset(slice_thickness=None, kvp=None, kernel=None), tmp_path / "a.dcm")
    series = read_one_series(tmp_path)
    assert (series.slice_thickness_mm, series.kvp, series.convolution_kernel) == (None, None, None)
    json.dumps(series.geometry())


def test_enhanced_multiframe_ct_with_per_frame_rescale(tmp_path):
    ds, truth = make_enhanced_ct_dataset(n_frames=5, series_uid=OTHER_UID)
    path = save(ds, tmp_path / "enhanced.dcm")
    series = read_one_series(tmp_path)
    np.testing.assert_array_equal(series.hu, truth)
    np.testing.assert_allclose(series.positions_mm, 5.0 + 1.25 * np.arange(5))
    assert series.source_paths == [str(path)] * 5
    assert sorted(series.frame_indices) == list(range(5)) and series.frame_indices != list(range(5))
    assert series.pixel_spacing_mm == (0.5, 0.6)
    assert (series.slice_thickness_mm, series.kvp) == (1.25, 100.0)


def _require_encoder(uid):
    if not get_encoder(uid).is_available:
        pytest.skip(f"no {uid.name} encoder installed")


@pytest.mark.parametrize("uid", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k-lossless"])
def test_compressed_ct_small_decodes_to_uncompressed_hu(tmp_path, uid):
    _require_encoder(uid)
    ds = pydicom.dcmread(CT_SMALL)
    ds.compress(uid)
    path = save(ds, tmp_path / "compressed.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid
    np.testing.assert_array_equal(read_one_series(path).hu[0], _reference_hu(CT_SMALL))


def test_rle_compressed_enhanced_multiframe(tmp_path):
    _require_encoder(RLELossless)
    ds, truth = make_enhanced_ct_dataset(series_uid=OTHER_UID)
    ds.compress(RLELossless)
    save(ds, tmp_path / "enhanced_rle.dcm")
    np.testing.assert_array_equal(read_one_series(tmp_path).hu, truth)


def _not_dicom(d: Path) -> Path:
    path = d / "README.txt"
    path.write_text("scan notes, not DICOM\n")
    return path


def _truncated(d: Path) -> Path:
    return save_truncated(make_ct_dataset(position_z=100.0), d / "truncated.dcm", drop_bytes=100)


def _no_pixel_data(d: Path) -> Path:
    ds = make_ct_dataset(position_z=100.0)
    del ds.PixelData
    return save(ds, d / "no_pixels.dcm")


def _mr_pydicom(d: Path) -> Path:
    return Path(shutil.copy(MR_SMALL, d / "mr_small.dcm"))


def _mr_built(d: Path) -> Path:
    return save(make_ct_dataset(modality="MR", position_z=100.0), d / "mr_built.dcm")


def _mpeg2(d: Path) -> Path:
    return save(make_unsupported_compressed_dataset(position_z=100.0), d / "mpeg2.dcm")


def _other_shape(d: Path) -> Path:
    return save(make_ct_dataset(8, 8, position_z=100.0), d / "small.dcm")


def _duplicate(d: Path) -> Path:
    # Same position as the second slice (-17.5 mm) but a later InstanceNumber: this one goes.
    return save(make_ct_dataset(position_z=-17.5, instance_number=99, seed=99), d / "dup.dcm")


def _no_pixel_spacing(d: Path) -> Path:
    return save(make_ct_dataset(pixel_spacing=None, position_z=100.0), d / "no_spacing.dcm")


def _slope_zero(d: Path) -> Path:
    # read as stored values times 0: a constant image, silently, before
    ds = make_ct_dataset(position_z=100.0)
    ds.RescaleSlope = 0
    return save(ds, d / "slope0.dcm")


def _no_rescale(d: Path) -> Path:
    # CT requires the rescale tags; without them stored values were read as if they were HU
    ds = make_ct_dataset(position_z=100.0)
    del ds.RescaleSlope, ds.RescaleIntercept
    return save(ds, d / "no_rescale.dcm")


def _huge_slope(d: Path) -> Path:
    ds = make_ct_dataset(position_z=100.0)
    ds.RescaleSlope = 1e30  # HU of 1e32 were accepted before
    return save(ds, d / "huge_slope.dcm")


def _absurd_spacing(d: Path) -> Path:
    # metres written as millimetres: prepare stopped inside lesion placement with a traceback
    return save(make_ct_dataset(pixel_spacing=(700.0, 700.0), position_z=100.0),
                d / "spacing_700.dcm")


def _header_cut_in_a_tag(d: Path) -> Path:
    # pydicom stops quietly: the file was listed as "missing SeriesInstanceUID"
    return save_cut_header(make_ct_dataset(position_z=100.0), d / "cut_tag.dcm")


def _header_cut_in_a_value(d: Path) -> Path:
    return save_cut_header(make_ct_dataset(position_z=100.0), d / "cut_value.dcm",
                           "StudyInstanceUID", into=12)


def _spacing_nan(d: Path) -> Path:
    # was "missing PixelSpacing"
    return save(make_ct_dataset(pixel_spacing=(math.nan, math.nan), position_z=100.0),
                d / "spacing_nan.dcm", validate=False)


def _spacing_inf(d: Path) -> Path:
    return save(make_ct_dataset(pixel_spacing=(0.7, math.inf), position_z=100.0),
                d / "spacing_inf.dcm", validate=False)


def _symlink_loop(d: Path) -> Path:
    os.symlink("loop.dcm", d / "loop.dcm")  # was "unreadable: OSError"
    return d / "loop.dcm"


def _j2k_cut(d: Path) -> Path:
    # 64 pixels: openjpeg's encoder needs 32 or more a side for its 6 resolution levels; the
    # file is skipped before its size is compared with the series'
    return save(compress_j2k(make_ct_dataset(64, 64, position_z=100.0), cut_codestream),
                d / "j2k_cut.dcm")


BAD_FILES = [
    (_slope_zero, r"^RescaleSlope 0\.0 .*finite non-zero"),
    (_no_rescale, r"^missing RescaleSlope/RescaleIntercept"),
    (_huge_slope, r"HU after the modality LUT, outside \[-4096"),
    (_absurd_spacing, r"^PixelSpacing \(700\.0, 700\.0\) mm outside 0\.05-10\.0 mm"),
    (_not_dicom, r"^not a DICOM file"),
    (_truncated, r"^truncated .*\b\d+ of \d+ bytes"),
    (_no_pixel_data, r"^no pixel data"),
    (_mr_pydicom, r"^modality MR is not CT$"),
    (_mr_built, r"^modality MR is not CT$"),
    (_mpeg2, r"^transfer syntax MPEG2 Main Profile / Main Level has no installed decoder; install"),
    (_other_shape, r"^inconsistent rows/columns: 8x8 pixels, the series majority is 16x16 pixels"),
    (_duplicate, r"^duplicate slice position: -17\.500 mm .*InstanceNumber 2, which is kept$"),
    (_no_pixel_spacing, r"^missing PixelSpacing"),
    (_header_cut_in_a_tag, r"^truncated file: its header ends early, 3 byte\(s\) into the element "
                           r"after \(0020,000D\)$"),
    (_header_cut_in_a_value, r"^truncated file: its header ends early: element \(0020,000D\) "
                             r"holds 4 of \d+ bytes$"),
    (_spacing_nan, r"^PixelSpacing \(0028,0030\) is nan\\nan, not a finite positive number"),
    (_spacing_inf, r"^PixelSpacing \(0028,0030\) is 0\.7\\inf, not a finite positive number"),
    (_symlink_loop, r"^symlink loop: the link leads back to itself"),
    (_j2k_cut, r"^pixel data could not be decoded \(pylibjpeg: Error decoding the J2K data: "
               r"failed to decode image; pillow: [^;]+\); the file may be truncated or corrupt$"),
]


@pytest.mark.parametrize("make_bad, reason", BAD_FILES, ids=[f.__name__[1:] for f, _ in BAD_FILES])
def test_bad_file_is_skipped_and_its_series_survives(tmp_path, make_bad, reason):
    truth = write_series(tmp_path, 4)
    bad = make_bad(tmp_path)
    result = read_ct_series(tmp_path)
    assert [path for path, _ in result.skipped] == [str(bad)]
    path, why = result.skipped[0]
    assert "\n" not in why
    assert re.search(reason, why), why
    [series] = result.series
    np.testing.assert_array_equal(series.hu, truth)
    assert str(bad) not in series.source_paths


def test_duplicate_keeps_first_by_instance_number(tmp_path):
    # The later InstanceNumber comes first by file name, so name order would keep the wrong one.
    save(make_ct_dataset(position_z=0.0, instance_number=7, seed=1), tmp_path / "a_late.dcm")
    save(make_ct_dataset(position_z=0.0, instance_number=2, seed=2), tmp_path / "b_early.dcm")
    result = read_ct_series(tmp_path)
    assert result.series[0].source_paths == [str(tmp_path / "b_early.dcm")]
    [(path, reason)] = result.skipped
    assert path == str(tmp_path / "a_late.dcm")
    # the reason names the kept slice by InstanceNumber, never by path (paths can name patients)
    assert reason == ("duplicate slice position: 0.000 mm along the normal, like the slice with "
                      "InstanceNumber 2, which is kept")


def test_file_cut_anywhere_is_skipped_not_raised(tmp_path):
    truth = write_series(tmp_path, 2)
    ds, _ = make_enhanced_ct_dataset(series_uid=OTHER_UID)
    whole = save(ds, tmp_path / "whole.tmp").read_bytes()
    (tmp_path / "whole.tmp").unlink()
    cuts = range(0, len(whole), 61)
    for cut in cuts:
        (tmp_path / f"cut{cut:05d}.dcm").write_bytes(whole[:cut])
    result = read_ct_series(tmp_path)
    assert len(result.skipped) == len(cuts)
    known = r"^(not a DICOM file|truncated|no pixel data|modality missing)"
    assert all(re.match(known, reason) and "\n" not in reason for _, reason in result.skipped)
    np.testing.assert_array_equal(result.series[0].hu, truth)


def test_only_bad_files_raise_one_line_ldct_error(tmp_path):
    _not_dicom(tmp_path)
    _mr_pydicom(tmp_path)
    _truncated(tmp_path)
    expected = r"no usable CT slice found under .*: 3 file\(s\) skipped \(1 not a DICOM file"
    with pytest.raises(LdctError, match=expected) as info:
        read_ct_series(tmp_path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, NoUsableSliceError) and len(info.value.skipped) == 3


def test_missing_path_raises_ldct_error(tmp_path):
    with pytest.raises(LdctError, match=r"does not exist"):
        read_ct_series(tmp_path / "nowhere")


def test_symlink_loop_path_is_named_not_called_missing(tmp_path):
    os.symlink(tmp_path / "a", tmp_path / "b")
    os.symlink(tmp_path / "b", tmp_path / "a")
    for path in (tmp_path / "a", tmp_path / "a" / "inside"):
        with pytest.raises(LdctError, match=r"is a symlink loop \(a link that leads back"):
            read_ct_series(path)
    with pytest.raises(LdctError, match=r"does not exist"):
        read_ct_series(tmp_path / "nowhere")


def _header_cut_between_elements(d: Path) -> Path:
    return save_cut_header(make_ct_dataset(position_z=100.0), d / "cut_boundary.dcm", into=0)


@pytest.mark.parametrize("make_bad, reason", [
    (_header_cut_in_a_tag, r"^truncated file: its header ends early, 3 byte\(s\)"),
    (_header_cut_between_elements, r"^truncated file or no image: the file ends after element "
                                   r"\(0020,000D\), with no SeriesInstanceUID"),
    (_symlink_loop, r"^symlink loop"),
    (_not_dicom, r"^not a DICOM file"),
], ids=["header-cut", "header-cut-between-elements", "symlink-loop", "not-dicom"])
def test_index_names_what_happened(tmp_path, make_bad, reason):
    """The header-only pass of a pipeline's driver gives the same reasons as a full read."""
    write_series(tmp_path, 2)
    bad = make_bad(tmp_path)
    index = index_series(tmp_path)
    [(path, why)] = index.skipped
    assert path == str(bad) and re.search(reason, why), why
    assert [len(g.files) for g in index.groups] == [2]


def test_header_without_series_uid_is_still_called_missing(tmp_path):
    ds = make_ct_dataset()
    del ds.SeriesInstanceUID
    save(ds, tmp_path / "no_uid.dcm")
    [(_, why)] = index_series(tmp_path).skipped
    assert why.startswith("missing SeriesInstanceUID (0020,000E)")


def test_quarantine_json_lists_skipped_files(tmp_path):
    data = tmp_path / "data"
    write_series(data, 3)
    bad = _not_dicom(data)
    result = read_ct_series(data)
    out = result.write_quarantine(tmp_path / "out" / "quarantine.json")
    assert json.loads(out.read_text()) == [{"path": str(bad), "reason": result.skipped[0][1]}]
    assert result.reasons_summary() == {"not a DICOM file": 1}
    clean = read_ct_series(data / "img_0000.dcm")
    assert json.loads(clean.write_quarantine(tmp_path / "q2.json").read_text()) == []


def test_planted_identifiers_never_appear_in_outputs(tmp_path, caplog):
    data = tmp_path / "data"
    write_series(data, 4)
    for make_bad in (_duplicate, _other_shape, _mr_built, _truncated, _no_pixel_data):
        make_bad(data)
    ds = make_ct_dataset(series_uid=OTHER_UID, position_z=3.0)
    plant_nonconformant_values(ds, "PLANTEDUIDMARK", "PLANTEDLONGMARK")
    save(ds, data / "nonconformant.dcm", validate=False)
    with caplog.at_level(logging.DEBUG):
        result = read_ct_series(data)
        with pytest.raises(LdctError) as info:
            find_dose_pairs(result)
    quarantine = result.write_quarantine(tmp_path / "quarantine.json").read_bytes()
    outputs = [
        repr(result.series).encode(),
        json.dumps([s.geometry() for s in result.series]).encode(),
        quarantine,
        caplog.text.encode(),
        str(info.value).encode(),
        repr(info.value).encode(),
    ]
    assert len(result.series) == 2 and len(result.skipped) == 5
    for planted in PLANTED_VALUES + ("PLANTEDUIDMARK", "PLANTEDLONGMARK"):
        for blob in outputs:
            assert planted.encode() not in blob
    by_size = {s.n_slices: s for s in result.series}
    assert by_size[4].series_key == anonymous_key(PLANTED_SERIES_UID)
    assert by_size[4].patient_key == anonymous_key(PLANTED_PATIENT_ID)
    assert len(by_size[4].series_key) == 16 and int(by_size[4].series_key, 16) >= 0
    fields = {f for f in vars(by_size[4])}
    assert not fields & {"patient_name", "patient_id", "series_uid", "series_description"}


def test_nonconformant_values_read_with_one_log_line_without_values(tmp_path, caplog):
    ds = make_ct_dataset()
    plant_nonconformant_values(ds, "PLANTEDUIDMARK", "PLANTEDLONGMARK")
    path = save(ds, tmp_path / "odd.dcm", validate=False)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        series = read_one_series(tmp_path)
    assert series.n_slices == 1
    assert series.series_key == anonymous_key("1.2.3.PLANTEDUIDMARK")
    mine = [r for r in caplog.records if r.name == "ldct_tf.dicom" and r.levelno == logging.WARNING]
    assert len(mine) == 1
    assert str(path) in mine[0].getMessage() and "2 non-conformant value(s)" in mine[0].getMessage()
    for marker in ("PLANTEDUIDMARK", "PLANTEDLONGMARK"):
        assert marker not in caplog.text
        assert not [w for w in escaped if marker in str(w.message)]


def test_index_then_read_groups_equals_reading_the_tree(tmp_path):
    """The pipeline's driver/worker split gives the same series as one `read_ct_series` call."""
    volumes = {name: write_series(tmp_path / name, n_slices=3, series_uid=uid)
               for name, uid in (("a", OTHER_UID), ("b", PLANTED_SERIES_UID))}
    (tmp_path / "notes.txt").write_text("not dicom")
    index = index_series(tmp_path)
    assert [Path(p).name for p, _ in index.skipped] == ["notes.txt"]
    assert len(index.groups) == 2
    whole = {s.series_key: s for s in read_ct_series(tmp_path).series}
    for group in index.groups:
        part = read_ct_series(list(group.files), root=index.root).series
        assert [s.series_key for s in part] == [group.series_key]
        np.testing.assert_array_equal(part[0].hu, whole[group.series_key].hu)
    assert sorted(v.shape for v in volumes.values()) == sorted(s.hu.shape for s in whole.values())


# --- compressed pixel data: what the decoders report, and what they cannot -----------------

def _j2k_plugin(monkeypatch, wrap) -> None:
    """Replace pydicom's pylibjpeg JPEG 2000 plugin (tried first) with ``wrap(original)``."""
    _require_encoder(JPEG2000Lossless)
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setitem(decoder._available, "pylibjpeg", wrap(decoder._available["pylibjpeg"]))


def test_a_plugin_that_fails_before_another_decodes_is_a_listed_skip(tmp_path, monkeypatch):
    def failing(original):  # pylibjpeg sees a cut codestream, Pillow (tried next) the whole one
        def decode(src, runner):
            return original(cut_codestream(src), runner)
        return decode

    _j2k_plugin(monkeypatch, failing)
    truth = write_series(tmp_path, 2, rows=64, cols=64)
    save(compress_j2k(make_ct_dataset(64, 64, position_z=100.0)), tmp_path / "j2k.dcm")
    result = read_ct_series(tmp_path)
    [(path, why)] = result.skipped
    assert path == str(tmp_path / "j2k.dcm")
    # Pillow, tried next, decoded it; the failure of the first decoder still counts
    assert why == ("corrupt compressed pixel data: a decoder reported a problem (pylibjpeg: Error "
                   "decoding the J2K data: failed to decode image) yet pixels were decoded; they "
                   "cannot be trusted")
    np.testing.assert_array_equal(result.series[0].hu, truth)


def test_an_openjpeg_warning_is_a_listed_skip(tmp_path, monkeypatch):
    # pylibjpeg-openjpeg means to log openjpeg's messages on "openjpeg.decode" (2.6.0 does not
    # yet: it sets the handlers before it creates the codec); once it does, they are skips
    def warning(original):
        def decode(src, runner):
            logging.getLogger("openjpeg.decode").warning("Stream too short")
            return original(src, runner)
        return decode

    _j2k_plugin(monkeypatch, warning)
    save(compress_j2k(make_ct_dataset(64, 64)), tmp_path / "j2k.dcm")
    with pytest.raises(NoUsableSliceError) as info:
        read_ct_series(tmp_path)
    [(_, why)] = info.value.skipped
    assert "a decoder reported a problem (openjpeg.decode: Stream too short)" in why


def test_corrupt_codestream_the_decoders_accept_is_not_detected(tmp_path, caplog):
    """The accepted limit (README, Reliability): a JPEG 2000 codestream with changed coded bytes
    decodes to other pixels without an exception, a warning or a log record, in both installed
    decoders alike, so reading another decoder would not catch it either."""
    _require_encoder(JPEG2000Lossless)
    stored = make_ct_dataset(64, 64, seed=1).pixel_array
    ds = compress_j2k(make_ct_dataset(64, 64, seed=1), flip_coded_byte)
    path = save(ds, tmp_path / "flipped.dcm")
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = read_one_series(path)
        by_plugin = {name: pixel_array(path, decoding_plugin=name)
                     for name in ("pylibjpeg", "pillow")}
    assert not caught and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    np.testing.assert_array_equal(by_plugin["pylibjpeg"], by_plugin["pillow"])
    error = np.abs(series.hu[0] - (stored.astype(np.float32) - 1024.0))
    assert 0 < error.max() <= 10  # off by a few stored units, silently
