"""Shard names, counts and checks of `ldct_tf.records.files` on shards written here.

A records folder is made the way `prepare` leaves it: ``<split>-SSSSS-of-NNNNN.tfrecord[.gz]``
shards of serialized examples and a ``stats.json`` of per-split summaries,
``{"splits": {split: {"examples": n, ...}}}`` (`prepare.beam.write_stats`), to which
`write_shard_counts` adds ``"shards"``: name -> records.
Whole shards pass `verify_shards` and `split_sizes(verify=True)` and give the sizes written; a
shard rewritten with one record fewer, emptied or deleted is an `LdctError` naming its path.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf import records
from ldct_tf.config import SPLITS
from ldct_tf.errors import LdctError
from ldct_tf.records import reader, stats
from ldct_tf.records import schema as F

SIZES = {"train": (3, 2), "val": (2, 1), "test": (4, 4)}  # records per shard, 2 shards a split
COMPRESSIONS = ["", "GZIP"]


def _values(rng, split, k):
    ldct = rng.normal(40.0, 20.0, (8, 8)).astype(np.float32)
    return {F.LDCT: ldct, F.NDCT: ldct, F.LABEL: k % 2, F.HEIGHT: 8, F.WIDTH: 8,
            F.PIXEL_SPACING_MM: (1.0, 1.0), F.DOSE_FRACTION: 0.25, F.SERIES_KEY: f"{split}-s",
            F.SLICE_INDEX: k, F.LESION_ROW: 4.0, F.LESION_COL: 4.0, F.LESION_RADIUS_PX: 2.0,
            F.LESION_CONTRAST_HU: 20.0 * (k % 2), F.PAIR_ID: -1}


def _write(path, examples, compression):
    options = tf.io.TFRecordOptions(compression_type=compression)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for values in examples:
            writer.write(F.make_example(values))


def _make_records(folder, compression):
    """Shards of every split and the ``stats.json`` prepare writes; returns the examples of each
    shard by file name."""
    rng = np.random.default_rng(0)
    written, per_split = {}, {}
    for split, counts in SIZES.items():
        acc, k = stats.empty(), 0
        for i, n in enumerate(counts):
            name = f"{split}-{i:05d}-of-{len(counts):05d}{records.suffix(compression)}"
            examples = [_values(rng, split, k + j) for j in range(n)]
            k += n
            _write(folder / name, examples, compression)
            written[name] = examples
            for values in examples:
                stats.add(acc, values)
        per_split[split] = stats.summary(acc)
    (folder / "stats.json").write_text(json.dumps({"splits": per_split}, indent=2) + "\n")
    return written


@pytest.fixture(params=COMPRESSIONS, ids=["uncompressed", "gzip"])
def counted(tmp_path, request):
    """(folder, compression, examples by shard name) with shard counts in ``stats.json``."""
    written = _make_records(tmp_path, request.param)
    records.write_shard_counts(tmp_path)
    return tmp_path, request.param, written


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_names_agree(tmp_path, compression):
    ext = records.suffix(compression)
    assert ext == (".tfrecord.gz" if compression == "GZIP" else ".tfrecord")
    name = f"val-00003-of-00010{ext}"
    assert records.compression_of(tmp_path / name) == compression
    assert records.compression_of(str(tmp_path / name)) == compression
    for other in ("train", "test", "val"):  # other splits' shards and other files do not match
        (tmp_path / f"{other}-00000-of-00001{ext}").touch()
    (tmp_path / name).touch()
    (tmp_path / "val-stats.json").touch()
    assert sorted(tf.io.gfile.glob(records.pattern(tmp_path, "val"))) == sorted(
        [str(tmp_path / name), str(tmp_path / f"val-00000-of-00001{ext}")])
    assert records.shards(tmp_path, "val") == [tmp_path / f"val-00000-of-00001{ext}",
                                               tmp_path / name]


def test_pattern_matches_either_compression(tmp_path):
    for ext in (records.suffix(""), records.suffix("GZIP")):
        (tmp_path / f"train-00000-of-00001{ext}").touch()
    names = [p.name for p in records.shards(tmp_path, "train")]
    assert names == ["train-00000-of-00001.tfrecord", "train-00000-of-00001.tfrecord.gz"]
    assert [records.compression_of(n) for n in names] == ["", "GZIP"]


def test_count_records_equals_records_written(counted):
    folder, _, written = counted
    for name, examples in written.items():
        assert records.count_records(folder / name) == len(examples)
        assert records.count_records(str(folder / name)) == len(examples)


def test_write_shard_counts_records_every_shard(counted):
    folder, _, written = counted
    saved = json.loads((folder / "stats.json").read_text())
    assert saved["shards"] == {name: len(examples) for name, examples in written.items()}
    # the per-split figures prepare wrote are kept
    assert {s: saved["splits"][s]["examples"] for s in SPLITS} == {
        s: sum(SIZES[s]) for s in SPLITS}
    assert records.write_shard_counts(folder) == saved["shards"]  # again: the same counts


def test_whole_shards_pass_and_give_the_sizes(counted):
    folder, _, _ = counted
    records.verify_shards(folder)
    assert records.split_sizes(folder, verify=True) == {s: sum(n) for s, n in SIZES.items()}
    assert records.split_sizes(folder, verify=False) == {s: sum(n) for s, n in SIZES.items()}
    got = list(reader.read_slices(records.pattern(folder, "test")))
    assert len(got) == sum(SIZES["test"])


def _one_fewer(path, written, compression):
    _write(path, written[path.name][:-1], compression)


def _emptied(path, written, compression):
    path.write_bytes(b"")


def _deleted(path, written, compression):
    path.unlink()


@pytest.mark.parametrize("damage", [_one_fewer, _emptied, _deleted],
                         ids=["one-record-fewer", "emptied", "deleted"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_damaged_shard_is_named(counted, damage, split):
    folder, compression, written = counted
    name = f"{split}-00001-of-00002{records.suffix(compression)}"
    records.verify_shards(folder)  # counted once while whole
    damage(folder / name, written, compression)

    for check in (lambda: records.verify_shards(folder),
                  lambda: records.split_sizes(folder, verify=True)):
        with pytest.raises(LdctError) as info:
            check()
        assert str(folder / name) in str(info.value)
    # the reader checks the shards it is given the same way
    with pytest.raises(LdctError) as info:
        reader.list_shards(records.pattern(folder, split))
    assert str(folder / name) in str(info.value)
    # an unchecked size is still what stats.json says
    assert records.split_sizes(folder, verify=False)[split] == sum(SIZES[split])


def test_verify_with_explicit_counts(counted):
    folder, compression, written = counted
    name = f"val-00000-of-00002{records.suffix(compression)}"
    records.verify_shards(folder, {name: len(written[name])})
    with pytest.raises(LdctError, match="holds 2 records, 3 were written"):
        records.verify_shards(folder, {name: len(written[name]) + 1})


def test_shard_cut_inside_a_record_is_named(counted):
    folder, compression, _ = counted
    path = folder / f"train-00000-of-00002{records.suffix(compression)}"
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(LdctError) as info:
        records.count_records(path)
    assert str(path) in str(info.value)


def test_stats_without_shard_counts_is_not_checked(tmp_path):
    _make_records(tmp_path, "")
    (tmp_path / "val-00000-of-00002.tfrecord").unlink()
    records.verify_shards(tmp_path)
    assert records.split_sizes(tmp_path) == {s: sum(n) for s, n in SIZES.items()}


def test_split_sizes_without_stats_json(tmp_path):
    with pytest.raises(LdctError, match="stats.json"):
        records.split_sizes(tmp_path)


def test_remove_shards_leaves_other_files(counted):
    folder, _, _ = counted
    (folder / "schema.json").write_text("{}")
    records.remove_shards(folder)
    assert all(records.shards(folder, s) == [] for s in SPLITS)
    assert sorted(p.name for p in folder.iterdir()) == ["schema.json", "stats.json"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_write_schema(tmp_path, compression, with_mask):
    records.write_schema(tmp_path, compression, with_mask)
    saved = json.loads((tmp_path / "schema.json").read_text())
    assert saved["compression"] == compression
    assert saved["files"] == {s: f"{s}-SSSSS-of-NNNNN{records.suffix(compression)}"
                              for s in SPLITS}
    assert set(saved["features"]) == set(F.FEATURES) | ({F.MASK} if with_mask else set())


RECORD_HEADER = 12  # TFRecord framing: 8-byte length and its 4-byte masked CRC32C


def test_shard_cut_inside_the_last_record_header_is_named(tmp_path):
    """`count_records`: "a shard cut inside a record is an LdctError naming it"."""
    path = tmp_path / "train-00000-of-00001.tfrecord"
    rng = np.random.default_rng(0)
    _write(path, [_values(rng, "train", k) for k in range(3)], "")
    last = len(F.make_example(_values(rng, "train", 2))) + RECORD_HEADER + 4
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) - last + RECORD_HEADER // 2])  # half the last header left
    with pytest.raises(LdctError) as info:
        records.count_records(path)
    assert str(path) in str(info.value)


def test_shard_cut_inside_the_last_record_header_fails_the_counts(tmp_path):
    """The written counts catch the cut that `count_records` alone misses (see above)."""
    folder, written = tmp_path, _make_records(tmp_path, "")
    records.write_shard_counts(folder)
    path = folder / "train-00000-of-00002.tfrecord"
    last = len(F.make_example(written[path.name][-1])) + RECORD_HEADER + 4
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) - last + RECORD_HEADER // 2])
    with pytest.raises(LdctError) as info:
        records.verify_shards(folder)
    assert str(path) in str(info.value)
