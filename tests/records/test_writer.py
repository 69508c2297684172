"""Writing a shard with its maps added (`ldct_tf.records.writer`), checked against the shard read
back with TensorFlow's own `tf.data.TFRecordDataset` and `tf.train.Example.FromString`: the map as
round(255 * A) in uint8, every other feature and the order as in the source, the same compression;
and a failed write leaves no partial file."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf.records import schema as F
from ldct_tf.records import writer

SHAPE = (12, 10)  # not square: a transposed map would not fit


def _write_source(path, n=3, compression="", seed=0):
    """``n`` slices with distinct HU, written with TensorFlow's writer; their serialized bytes."""
    rng = np.random.default_rng(seed)
    serialized = [F.make_example({
        F.LDCT: rng.integers(-1000, 1000, SHAPE), F.NDCT: rng.integers(-1000, 1000, SHAPE),
        F.LABEL: k % 2, F.HEIGHT: SHAPE[0], F.WIDTH: SHAPE[1], F.PIXEL_SPACING_MM: (0.7, 0.8),
        F.DOSE_FRACTION: 0.25, F.SERIES_KEY: "s", F.SLICE_INDEX: k, F.LESION_ROW: 5.5,
        F.LESION_COL: 4.25, F.LESION_RADIUS_PX: 2.0, F.LESION_CONTRAST_HU: 30.0 * (k % 2),
        F.PAIR_ID: -1}) for k in range(n)]
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type=compression)) as w:
        for record in serialized:
            w.write(record)
    return serialized


def _read_back(path, compression):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path), compression_type=compression)]


@pytest.mark.parametrize("compression, suffix", [("", ".tfrecord"), ("GZIP", ".tfrecord.gz")])
def test_maps_are_added_and_everything_else_is_kept(tmp_path, rng, compression, suffix):
    source = tmp_path / f"val-00000-of-00001{suffix}"
    originals = _write_source(source, compression=compression)
    masks = [rng.random(SHAPE) for _ in originals]
    masks[0][0, :2] = [-0.2, 1.3]  # outside [0, 1]: stored as 0 and 255
    target = tmp_path / "out" / source.name
    target.parent.mkdir()

    assert writer.write_with_masks(source, target, masks) == len(originals)

    written = _read_back(target, compression)  # readable with the source's compression
    assert len(written) == len(originals)
    for raw, original, mask in zip(written, originals, masks):  # file order
        example = tf.train.Example.FromString(raw)
        feature = example.features.feature
        stored = np.frombuffer(feature[F.MASK].bytes_list.value[0], np.uint8).reshape(SHAPE)
        np.testing.assert_array_equal(stored, np.rint(np.clip(mask, 0.0, 1.0) * 255.0))
        # the same bytes as the source example with the map appended, map entries in key order
        expected = tf.train.Example.FromString(original)
        expected.features.feature[F.MASK].bytes_list.value.append(stored.tobytes())
        assert raw == expected.SerializeToString(deterministic=True)
        del feature[F.MASK]
        assert example == tf.train.Example.FromString(original)  # nothing else changed
    assert [f.name for f in target.parent.iterdir()] == [target.name]  # no temporary file left


def _running_out(n):
    """Maps that fail after ``n``: the write stops mid-shard."""
    for _ in range(n):
        yield np.zeros(SHAPE)
    raise RuntimeError("the map computation failed")


@pytest.mark.parametrize("masks, error, match", [
    (lambda: [np.zeros(SHAPE)] * 2, ValueError, "holds more records than the 2 masks given"),
    (lambda: [np.zeros(SHAPE)] * 4, ValueError, "more masks were given than the 3 records"),
    (lambda: [np.zeros(SHAPE)] * 2 + [np.zeros(SHAPE[::-1])], ValueError,
     r"mask 2 .* has shape \(10, 12\), the slice \(12, 10\)"),
    (lambda: _running_out(2), RuntimeError, "map computation failed"),
], ids=["too-few", "too-many", "wrong-shape", "fails-mid-write"])
def test_a_failed_write_leaves_no_partial_target(tmp_path, masks, error, match):
    source = tmp_path / "train-00000-of-00001.tfrecord"
    _write_source(source)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error, match=match):
        writer.write_with_masks(source, out / source.name, masks())
    assert list(out.iterdir()) == []  # neither the shard nor its temporary file


def test_a_failed_rewrite_keeps_the_previous_shard(tmp_path):
    source = tmp_path / "train-00000-of-00001.tfrecord"
    _write_source(source)
    target = tmp_path / "out" / source.name
    target.parent.mkdir()
    writer.write_with_masks(source, target, [np.full(SHAPE, 0.5)] * 3)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        writer.write_with_masks(source, target, _running_out(1))
    assert target.read_bytes() == before
    assert [f.name for f in target.parent.iterdir()] == [target.name]


def test_a_source_with_maps_is_refused(tmp_path):
    source = tmp_path / "train-00000-of-00001.tfrecord"
    _write_source(source)
    once = tmp_path / "once" / source.name
    once.parent.mkdir()
    writer.write_with_masks(source, once, [np.zeros(SHAPE)] * 3)
    with pytest.raises(ValueError, match="record 0 of .* already has a 'mask'"):
        writer.write_with_masks(once, tmp_path / source.name.replace("train", "val"),
                                [np.zeros(SHAPE)] * 3)


def test_a_target_named_for_other_compression_is_refused(tmp_path):
    source = tmp_path / "train-00000-of-00001.tfrecord"
    _write_source(source)
    with pytest.raises(ValueError, match=r"target train-00000-of-00001.tfrecord.gz .* suffix"):
        writer.write_with_masks(source, tmp_path / f"{source.name}.gz", [np.zeros(SHAPE)] * 3)
    assert not (tmp_path / f"{source.name}.gz").exists()
