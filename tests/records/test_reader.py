"""Reading records: a corrupted, truncated or missing shard is named; `read_values` gives every
slice of a shard in file order as written."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf.config import load_config
from ldct_tf.errors import LdctError
from ldct_tf.records import denoiser_input, reader
from ldct_tf.records import schema as F


def test_corrupted_shard_is_named(tmp_path, write_slices):
    good, bad = (tmp_path / "train-00000-of-00002.tfrecord",
                 tmp_path / "train-00001-of-00002.tfrecord")
    write_slices(good)
    write_slices(bad, seed=1)
    payload = bytearray(bad.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    bad.write_bytes(bytes(payload))
    pattern = str(tmp_path / "train-*")
    config = load_config(None, ["input.patch_size=16"])
    with pytest.raises(LdctError, match="train-00001-of-00002.tfrecord"):
        with reader.naming_corrupt_shards(pattern):
            for _ in denoiser_input.make_dataset(pattern, config, True):
                pass


def test_truncated_shard_is_named(tmp_path, write_slices):
    path = tmp_path / "val-00000-of-00001.tfrecord"
    write_slices(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LdctError, match="val-00000-of-00001.tfrecord.*re-run"):
        with reader.naming_corrupt_shards(str(path)):
            list(reader.read_slices(str(path)))


def test_a_shard_deleted_while_it_is_read_is_named(tmp_path, write_slices):
    path = tmp_path / "train-00000-of-00001.tfrecord"
    write_slices(path)
    dataset = tf.data.TFRecordDataset(str(path))  # made before, read after the file is gone
    path.unlink()
    with pytest.raises(LdctError, match=rf"^record file gone while it was read: {path}; No such "
                                        r"file or directory; leave the records alone while a "
                                        r"run reads them"):
        with reader.naming_corrupt_shards(str(path)):
            list(dataset)


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(LdctError, match="run `python -m ldct_tf.prepare"):
        reader.list_shards(str(tmp_path / "train-*"))


def test_read_values_gives_the_slices_in_file_order(tmp_path, write_slices):
    path = tmp_path / "test-00000-of-00001.tfrecord"
    write_slices(path, n=4, size=16, lesion=(5.0, 6.0, 2.0))
    got = list(reader.read_values(path))
    assert [v[F.SLICE_INDEX] for v in got] == [0, 1, 2, 3]
    assert [v[F.LABEL] for v in got] == [0, 1, 0, 1]
    rr, cc = np.mgrid[:16, :16]
    for values in got:
        np.testing.assert_array_equal(values[F.NDCT] - values[F.LDCT], 100.0)  # HU, as written
        np.testing.assert_array_equal(values[F.MASK], np.hypot(rr - 5.0, cc - 6.0) <= 2.0)
