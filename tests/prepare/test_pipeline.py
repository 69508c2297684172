"""The prepare pipeline on Beam's DirectRunner: records, splits, schema, stats, quarantine."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from cli_fixtures import run_in_process, run_module
from dicom_fixtures import PLANTED_PATH_NAME, PLANTED_PATIENT_ID, PLANTED_VALUES, write_series
from records_fixtures import prepare_tiny

from ldct_tf import records
from ldct_tf.config import SPLITS
from ldct_tf.dicom.path_labels import resolve
from ldct_tf.evaluate.study import main as evaluate_main
from ldct_tf.prepare.examples import unit_examples
from ldct_tf.prepare.pipeline import main as prepare_main
from ldct_tf.prepare.plan import synthetic_units
from ldct_tf.records import schema as F


def _read_all(workdir):
    """Every example of every split as a dict of NumPy values (decoded independently of TF)."""
    out = {}
    for split in SPLITS:
        files = records.shards(workdir / "records", split)
        items = []
        for raw in tf.data.TFRecordDataset([str(f) for f in files]):
            example = tf.train.Example.FromString(raw.numpy())
            items.append({k: _value(k, v) for k, v in example.features.feature.items()})
        out[split] = items
    return out


def _value(key, feature):
    if key in (F.LDCT, F.NDCT):
        return feature.bytes_list.value[0]
    if feature.bytes_list.value:
        return feature.bytes_list.value[0].decode()
    if feature.int64_list.value:
        return feature.int64_list.value[0]
    values = list(feature.float_list.value)
    return values if len(values) > 1 else values[0]


def _hu(item, key):
    return np.frombuffer(item[key], "<i2").reshape(item[F.HEIGHT], item[F.WIDTH])


def test_records_hold_exactly_the_examples_of_the_pure_function(tiny_run):
    config, workdir = tiny_run
    written = _read_all(workdir)
    expected = {}
    for unit in synthetic_units(config):
        for kind, split, values in unit_examples(unit, config):
            assert kind == "example"
            expected[(values[F.SERIES_KEY], values[F.SLICE_INDEX], values[F.LABEL])] = values
    got = {(i[F.SERIES_KEY], i[F.SLICE_INDEX], i[F.LABEL]): i for s in SPLITS for i in written[s]}
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        for image in (F.LDCT, F.NDCT):
            np.testing.assert_array_equal(_hu(got[key], image),
                                          np.rint(values[image]).astype(np.int16))
        assert got[key][F.LESION_ROW] == pytest.approx(values[F.LESION_ROW])
        assert got[key][F.LESION_CONTRAST_HU] == pytest.approx(values[F.LESION_CONTRAST_HU],
                                                               rel=1e-6)


def test_splits_are_disjoint_by_series_and_test_comes_in_matched_twins(tiny_run):
    _, workdir = tiny_run
    written = _read_all(workdir)
    series = {s: {i[F.SERIES_KEY] for i in written[s]} for s in SPLITS}
    assert not (series["train"] & series["val"] or series["train"] & series["test"]
                or series["val"] & series["test"])
    twins = {}
    for item in written["test"]:
        twins.setdefault(item[F.PAIR_ID], []).append(item)
    assert twins and all(len(t) == 2 for t in twins.values())
    for a, b in twins.values():
        assert {a[F.LABEL], b[F.LABEL]} == {0, 1}
        assert (a[F.LESION_ROW], a[F.LESION_COL]) == (b[F.LESION_ROW], b[F.LESION_COL])
        absent = a if a[F.LABEL] == 0 else b
        assert absent[F.LESION_CONTRAST_HU] == 0.0
        assert not np.array_equal(_hu(a, F.NDCT), _hu(b, F.NDCT))  # independent noise
    for split in ("train", "val"):
        assert all(i[F.PAIR_ID] == -1 for i in written[split])


def test_schema_json_describes_what_is_written(tiny_run):
    _, workdir = tiny_run
    schema = json.loads((workdir / "records" / "schema.json").read_text())["features"]
    item = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(
        [str(f) for f in records.shards(workdir / "records", "train")]))).numpy())
    assert set(item.features.feature) == set(schema)
    for key, feature in item.features.feature.items():
        kind = feature.WhichOneof("kind").replace("_list", "").replace("int64", "int64")
        assert schema[key]["kind"] == kind, key


def test_stats_json_agrees_with_the_records(tiny_run):
    _, workdir = tiny_run
    stats = json.loads((workdir / "records" / "stats.json").read_text())["splits"]
    written = _read_all(workdir)
    for split in SPLITS:
        items = written[split]
        assert stats[split]["examples"] == len(items)
        assert stats[split]["labels"]["1"] == sum(i[F.LABEL] for i in items)
        if items:
            ndct = np.concatenate([_hu(i, F.NDCT).ravel() for i in items]).astype(np.float64)
            assert stats[split]["ndct"]["mean_hu"] == pytest.approx(ndct.mean(), abs=0.01)
            assert stats[split]["ndct"]["sd_hu"] == pytest.approx(ndct.std(), abs=0.01)
            median = np.percentile(ndct, 50, method="inverted_cdf")
            assert stats[split]["ndct"]["percentiles_hu"]["p50"] == median
            assert stats[split]["ldct"]["noise_index_hu"] > stats[split]["ndct"]["noise_index_hu"]
    assert json.loads((workdir / "records" / "quarantine.json").read_text()) == []
    assert (workdir / "records" / "config.toml").exists()


@pytest.mark.slow
def test_worker_count_does_not_change_the_examples(tiny_run, tmp_path):
    config, workdir = tiny_run
    prepare_tiny(tmp_path, beam_args=["--direct_running_mode=multi_processing",
                                      "--direct_num_workers=2"])
    one, two = _read_all(workdir), _read_all(tmp_path)
    for split in SPLITS:
        def key(i):
            return (i[F.SERIES_KEY], i[F.SLICE_INDEX], i[F.LABEL])

        assert sorted(map(key, one[split])) == sorted(map(key, two[split]))
        a = {key(i): i[F.LDCT] for i in one[split]}
        assert all(a[key(i)] == i[F.LDCT] for i in two[split])


def test_beam_defaults_are_one_worker_process_per_core_and_options_win():
    # what prepare runs with when no Beam options are given (the runner's default; its end-to-end
    # test runs Beam in-process)
    import os

    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from ldct_tf.prepare.beam import beam_options

    default = beam_options([])
    assert default.view_as(StandardOptions).runner == "DirectRunner"
    assert default.view_as(DirectOptions).direct_running_mode == "multi_processing"
    assert default.view_as(DirectOptions).direct_num_workers == (os.cpu_count() or 1)
    given = beam_options(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    assert given.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert given.view_as(DirectOptions).direct_num_workers == 1


def test_dicom_source_with_a_broken_file_lands_in_quarantine(tmp_path):
    # a PACS-style export: the input folder and each patient folder carry the patient's name
    dicom_dir = tmp_path / f"export_{PLANTED_PATH_NAME}"
    for p in range(3):  # three patients, each one series of 64x64 "abdomen" slices
        write_series(dicom_dir / f"{PLANTED_PATH_NAME}_{p}", n_slices=2, rows=64, cols=64,
                     pixel_spacing=(1.4, 1.4), series_uid=f"1.2.826.0.1.3680043.8.498.{p + 10}",
                     patient_id=f"{PLANTED_PATIENT_ID}{p}", stored_volume=_abdomen_stored(p))
    broken = dicom_dir / f"{PLANTED_PATH_NAME}_0" / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    workdir = tmp_path / "run"
    # A fixed salt: lesion sites derive from the (salted) series keys, and with a random salt a
    # 64-pixel slice now and then has no room for a lesion and is listed too.
    workdir.mkdir()
    (workdir / "salt").write_text("test-salt-0")
    prepare_tiny(workdir, ["data.source=\"dicom\"", f"data.input=\"{dicom_dir}\""])
    quarantine = json.loads((workdir / "records" / "quarantine.json").read_text())
    salt = (workdir / "salt").read_text().strip()
    # each path component hashed with the run's salt (the extension kept), as the test computes it
    digest = [hashlib.sha256(f"{salt}\x00{part}".encode()).hexdigest()[:10]
              for part in (f"{PLANTED_PATH_NAME}_0", "broken.dcm")]
    assert [q["path"] for q in quarantine] == [f"<input>/{digest[0]}/{digest[1]}.dcm"]
    assert resolve([quarantine[0]["path"]], dicom_dir, salt) == {quarantine[0]["path"]: str(broken)}
    stats = json.loads((workdir / "records" / "stats.json").read_text())["splits"]
    assert sum(s["examples"] for s in stats.values()) == 2 + 2 + 4  # test slices come twice
    assert 'input = "<input>"' in (workdir / "config.toml").read_text()
    blob = b"".join(f.read_bytes() for f in workdir.rglob("*") if f.is_file())
    for planted in (*PLANTED_VALUES, PLANTED_PATH_NAME):
        assert planted.encode() not in blob


def _abdomen_stored(seed):
    """Stored values (HU + 1024) of a 64x64 phantom slice pair, as write_series expects."""
    from ldct_tf.ct.phantoms import make_phantom
    from ldct_tf.ct.simulate import scan

    slices = [scan(make_phantom(64, 1.4, seed=[seed, k]), 1.4, 1.0, k) for k in range(2)]
    return np.clip(np.rint(np.stack(slices)) + 1024, 0, 4095).astype(np.int16)


def test_bad_config_value_exits_with_one_line_and_no_traceback(tmp_path):
    # `python -m ldct_tf.prepare` for real: its other error cases run in this process
    result = subprocess.run(
        [sys.executable, "-m", "ldct_tf.prepare", "--workdir", str(tmp_path),
         "--set", "data.dose_fraction=2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "config [data] dose_fraction: must be in (0, 1), got 2" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_missing_dicom_input_is_a_clear_error(tmp_path, capfd, caplog):
    # in this process, as `python -m ldct_tf.prepare` calls it (the test above runs the command)
    result = run_in_process(prepare_main, ["--workdir", str(tmp_path), "--source", "dicom",
                                           "--input", str(tmp_path / "nowhere")], capfd, caplog)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


def test_test_lesions_come_from_lesion_test_and_training_is_untouched():
    # [lesion_test] sets the observer study's task; the train and val examples (what the
    # classifier, the maps and the denoisers learn from) must not change with it
    from records_fixtures import TINY

    from ldct_tf.config import load_config

    base = load_config(None, TINY)
    study = load_config(None, [*TINY, "lesion_test.pairs_per_slice=3",
                               "lesion_test.contrast_hu=[20.0, 30.0]",
                               "lesion_test.diameter_mm=[4.0, 6.0]"])
    units = synthetic_units(base)
    assert units == synthetic_units(study) and {u.split for u in units} >= {"train", "test"}
    for unit in units:
        one = [v for _, _, v in unit_examples(unit, base)]
        other = [v for _, _, v in unit_examples(unit, study)]
        if unit.split != "test":
            assert len(one) == len(other)
            for a, b in zip(one, other):
                np.testing.assert_array_equal(a[F.LDCT], b[F.LDCT])
                assert a[F.LESION_CONTRAST_HU] == b[F.LESION_CONTRAST_HU]
            continue
        assert len(other) == 3 * len(one)  # three twin pairs per slice instead of one
        by_slice = {}
        for item in other:
            by_slice.setdefault(item[F.SLICE_INDEX], []).append(item)
        for items in by_slice.values():
            pairs = {}
            for item in items:
                pairs.setdefault(item[F.PAIR_ID], []).append(item)
            assert len(pairs) == 3 and all(len(p) == 2 for p in pairs.values())
            present = [i for i in items if i[F.LABEL] == 1]
            assert len({(i[F.LESION_ROW], i[F.LESION_COL]) for i in present}) == 3
            for item in present:
                assert 20.0 <= abs(item[F.LESION_CONTRAST_HU]) <= 30.0
                diameter = 2 * item[F.LESION_RADIUS_PX] * item[F.PIXEL_SPACING_MM][0]
                assert 4.0 - 1e-6 <= diameter <= 6.0 + 1e-6


def test_lesion_variants_add_faint_train_lesions_and_leave_the_rest():
    # [lesion_variants] adds lesion-present train examples from its own ranges, each at its own
    # site with its own noise; the original train example and every val and test example stay
    from records_fixtures import TINY

    from ldct_tf.config import load_config

    base = load_config(None, TINY)
    more = load_config(None, [*TINY, "lesion_variants.count=2",
                              "lesion_variants.contrast_hu=[20.0, 30.0]",
                              "lesion_variants.diameter_mm=[4.0, 6.0]"])
    found = []
    for unit in synthetic_units(base):
        one = [v for _, _, v in unit_examples(unit, base)]
        other = [v for _, _, v in unit_examples(unit, more)]
        if unit.split != "train":
            assert len(one) == len(other)
            for a, b in zip(one, other):
                np.testing.assert_array_equal(a[F.LDCT], b[F.LDCT])
            continue
        assert len(other) == 3 * len(one)
        for k, original in enumerate(one):
            first, *variants = other[3 * k:3 * k + 3]
            np.testing.assert_array_equal(first[F.LDCT], original[F.LDCT])
            assert len({(v[F.LESION_ROW], v[F.LESION_COL]) for v in variants}) == 2
            for v in variants:
                assert v[F.LABEL] == 1 and v[F.SLICE_INDEX] == original[F.SLICE_INDEX]
                assert 20.0 <= abs(v[F.LESION_CONTRAST_HU]) <= 30.0
                diameter = 2 * v[F.LESION_RADIUS_PX] * v[F.PIXEL_SPACING_MM][0]
                assert 4.0 - 1e-6 <= diameter <= 6.0 + 1e-6
                if not original[F.LABEL]:  # the lesion is in the image: see below
                    found.append(_disk_difference(v, original))
    # NDCT minus the lesion-free original's NDCT inside the variant's disk, over its contrast,
    # averaged over the variants: the noise of the two scans (about 10 HU a pixel) averages out
    assert found and 0.6 < float(np.mean(found)) < 1.2


def _disk_difference(variant, original):
    ndct, base = np.asarray(variant[F.NDCT], np.float64), original[F.NDCT]
    rr, cc = np.ogrid[:ndct.shape[0], :ndct.shape[1]]
    disk = np.hypot(rr - variant[F.LESION_ROW], cc - variant[F.LESION_COL]) <= \
        0.8 * variant[F.LESION_RADIUS_PX]
    return float(np.mean(ndct[disk] - base[disk])) / variant[F.LESION_CONTRAST_HU]


def _first_record_bytes(path):
    """The bytes of a shard's first record (TFRecord framing: 8-byte length, 4-byte CRC, data,
    4-byte CRC): a shard cut exactly at a record boundary."""
    import struct

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return data[:8 + 4 + length + 4]


def test_stats_json_counts_every_shard(tiny_run):
    _, workdir = tiny_run
    stats = json.loads((workdir / "records" / "stats.json").read_text())
    for split in SPLITS:
        for shard in records.shards(workdir / "records", split):
            written = sum(1 for _ in tf.data.TFRecordDataset(str(shard)))
            assert stats["shards"][shard.name] == written


@pytest.mark.parametrize("damage", ["cut_at_a_record_boundary", "emptied", "deleted"])
def test_a_shard_with_fewer_records_than_written_is_named(tiny_run, tmp_path, damage, capfd,
                                                         caplog):
    import shutil

    _, workdir = tiny_run
    run = tmp_path / "run"
    shutil.copytree(workdir / "records", run / "records")
    shard = max(records.shards(run / "records", "train"),
                key=lambda f: json.loads((run / "records" / "stats.json").read_text())
                ["shards"][f.name])
    if damage == "cut_at_a_record_boundary":
        shard.write_bytes(_first_record_bytes(shard))
    elif damage == "emptied":
        shard.write_bytes(b"")
    else:
        shard.unlink()
    with pytest.raises(Exception, match=shard.name) as raised:
        records.split_sizes(run / "records")
    assert type(raised.value).__name__ == "LdctError"
    # at the command line: one line, exit 2, the shard named, no traceback (`python -m` for one
    # damage, the same `run_cli(main)` in this process for the others)
    if damage == "emptied":
        result = run_module("ldct_tf.evaluate", ["--workdir", run])
    else:
        result = run_in_process(evaluate_main, ["--workdir", run], capfd, caplog)
    assert result.returncode == 2 and shard.name in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run / "eval").exists() or not (run / "eval" / "metrics.json").exists()


def test_zero_shards_means_one_per_series(tmp_path):
    """``data.num_shards = 0``: the pipeline picks one shard per series (at most 16) per split."""
    from ldct_tf.config import AUTO_SHARDS_MAX, load_config

    config = prepare_tiny(tmp_path, ["data.num_shards=0"])
    n = max(1, min(AUTO_SHARDS_MAX, config.data.n_series))
    for split in SPLITS:
        assert len(records.shards(tmp_path / "records", split)) == n
    sizes = records.split_sizes(tmp_path / "records")
    for split in SPLITS:  # every example written, counted straight from the shards
        found = sum(1 for shard in records.shards(tmp_path / "records", split)
                    for _ in tf.data.TFRecordDataset(str(shard)))
        assert found == sizes[split] > 0
    assert load_config(None, ["data.num_shards=3"]).data.shards_per_split(100) == 3
