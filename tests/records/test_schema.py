"""The record round trip of `ldct_tf.records.schema` and `ldct_tf.records.reader`.

Examples are built by hand the way `ldct_tf.prepare.examples._labelled` builds them (HU images,
label, sizes, pixel spacing, dose fraction, series key, slice index, lesion geometry, pair id),
serialized with `schema.make_example`, written with `tf.io.TFRecordWriter` (uncompressed and GZIP)
and read back with `reader.read_slices` / `reader.parse_example` (tensors) and
`schema.parse_values` (NumPy). Every field must come back as written; the images as the documented
normalisation of the stored HU: rounded to integers, clipped to int16 in the record and to
[HU_MIN, HU_MAX] = [-1024, 3072] by `normalize_hu`, so that `denormalize_hu` of what is read gives
that HU back (`parse_values`: the stored int16 HU themselves). The activation map comes back as
round(255 * A) / 255 of A clipped to [0, 1].
"""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.models.preprocessing import denormalize_hu
from ldct_tf.records import denoiser_input, reader
from ldct_tf.records import schema as F

# the documented normalisation range (preprocessing module docstring), restated independently
HU_LO, HU_HI = -1024.0, 3072.0
INT16_LO, INT16_HI = -(2 ** 15), 2 ** 15 - 1
HU_ATOL = 1e-3  # float32 round trip of (hu + 1024) / 4096 * 4096 - 1024
SCALAR_KEYS = (F.LABEL, F.HEIGHT, F.WIDTH, F.SLICE_INDEX, F.PAIR_ID)
FLOAT_KEYS = (F.DOSE_FRACTION, F.LESION_ROW, F.LESION_COL, F.LESION_RADIUS_PX,
              F.LESION_CONTRAST_HU)


def _hu_image(rng, height, width):
    """Float HU with fractional parts, out-of-range and out-of-int16 pixels in known places."""
    hu = rng.uniform(-1100.0, 1500.0, (height, width)).astype(np.float32)
    hu[0, 0], hu[0, 1] = -3000.25, 3500.75  # outside the normalisation range
    hu[1, 0], hu[1, 1] = -40000.0, 40000.0  # outside int16 as well
    hu[2, 0], hu[2, 1] = 3071.6, -1023.6    # round to the last values inside the range
    return hu


def _values(rng, height=24, width=20, label=1, slice_index=3, pair_id=-1,
            series_key="series-a1b2c3", with_mask=False):
    """An example's values dict as `prepare` makes it (`examples._labelled`)."""
    spacing = (0.7, 0.8125)
    values = {
        F.LDCT: _hu_image(rng, height, width), F.NDCT: _hu_image(rng, height, width),
        F.LABEL: label, F.HEIGHT: height, F.WIDTH: width,
        F.PIXEL_SPACING_MM: tuple(float(s) for s in np.broadcast_to(spacing, (2,))),
        F.DOSE_FRACTION: 0.25, F.SERIES_KEY: series_key, F.SLICE_INDEX: slice_index,
        F.LESION_ROW: float(rng.uniform(4, height - 4)),
        F.LESION_COL: float(rng.uniform(4, width - 4)),
        F.LESION_RADIUS_PX: float(rng.uniform(1.5, 4.0)),
        F.LESION_CONTRAST_HU: float(rng.uniform(-60, 60)) if label else 0.0,
        F.PAIR_ID: pair_id,
    }
    if with_mask:
        mask = rng.uniform(0.0, 1.0, (height, width)).astype(np.float32)
        mask[0, 0], mask[0, 1] = -0.3, 1.7  # outside [0, 1]: clipped
        values[F.MASK] = mask
    return values


def _examples(rng, with_mask=False):
    """Three slices of two sizes, labels and pair ids as prepare's splits give them."""
    big_pair = (1 << 61) + 12345  # a 62-bit pair id like `plan.stable_int` makes
    return [_values(rng, 24, 20, label=1, slice_index=0, pair_id=big_pair, with_mask=with_mask),
            _values(rng, 24, 20, label=0, slice_index=0, pair_id=big_pair, with_mask=with_mask),
            _values(rng, 16, 16, label=1, slice_index=7, pair_id=-1, series_key="other",
                    with_mask=with_mask)]


def _write(path, examples, compression):
    options = tf.io.TFRecordOptions(compression_type=compression)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for values in examples:
            writer.write(F.make_example(values))


def _expected_hu(hu):
    """What the reader's HU must be: integers, clipped to the normalisation range."""
    return np.clip(np.round(np.asarray(hu, np.float64)), HU_LO, HU_HI)


def _expected_mask(mask):
    return np.round(np.clip(np.asarray(mask, np.float64), 0.0, 1.0) * 255.0) / 255.0


def _assert_fields(got, values):
    """Every non-image field of a parsed example equals what was written."""
    for key in SCALAR_KEYS:
        assert got[key].dtype == tf.int64
        assert int(got[key]) == int(values[key]), key
    for key in FLOAT_KEYS:
        assert got[key].dtype == tf.float32
        assert float(got[key]) == float(np.float32(values[key])), key
    np.testing.assert_array_equal(got[F.PIXEL_SPACING_MM].numpy(),
                                  np.asarray(values[F.PIXEL_SPACING_MM], np.float32))
    assert got[F.SERIES_KEY].numpy() == values[F.SERIES_KEY].encode()


def _assert_images(got, values, with_mask):
    h, w = values[F.HEIGHT], values[F.WIDTH]
    for key in (F.LDCT, F.NDCT):
        image = got[key]
        assert image.dtype == tf.float32 and tuple(image.shape) == (h, w, 1)
        x = image.numpy()
        assert x.min() >= 0.0 and x.max() <= 1.0  # network range
        np.testing.assert_allclose(denormalize_hu(image).numpy()[..., 0],
                                   _expected_hu(values[key]), rtol=0, atol=HU_ATOL)
    if with_mask:
        mask = got[F.MASK]
        assert mask.dtype == tf.float32 and tuple(mask.shape) == (h, w, 1)
        np.testing.assert_allclose(mask.numpy()[..., 0], _expected_mask(values[F.MASK]),
                                   rtol=0, atol=1e-6)
        assert np.abs(mask.numpy()[..., 0] - np.clip(values[F.MASK], 0, 1)).max() <= 0.5 / 255
    else:
        assert F.MASK not in got


@pytest.mark.parametrize("compression", ["", "GZIP"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_read_slices_round_trip(tmp_path, compression, with_mask):
    rng = np.random.default_rng(7)
    examples = _examples(rng, with_mask)
    path = tmp_path / f"test-00000-of-00001{records.suffix(compression)}"
    _write(path, examples, compression)

    got = list(reader.read_slices(str(path), with_mask=with_mask))

    assert len(got) == len(examples)
    for item, values in zip(got, examples):  # file order
        _assert_fields(item, values)
        _assert_images(item, values, with_mask)


@pytest.mark.parametrize("compression", ["", "GZIP"])
def test_read_slices_joins_shards_in_file_order(tmp_path, compression):
    rng = np.random.default_rng(11)
    examples = _examples(rng) + _examples(rng)
    ext = records.suffix(compression)
    _write(tmp_path / f"val-00001-of-00002{ext}", examples[3:], compression)
    _write(tmp_path / f"val-00000-of-00002{ext}", examples[:3], compression)

    got = list(reader.read_slices(records.pattern(tmp_path, "val")))

    assert [int(g[F.SLICE_INDEX]) for g in got] == [v[F.SLICE_INDEX] for v in examples]
    for item, values in zip(got, examples):
        _assert_fields(item, values)
        _assert_images(item, values, with_mask=False)


def test_parse_example_of_serialized_bytes():
    rng = np.random.default_rng(3)
    values = _values(rng, 16, 16, label=0, pair_id=42, with_mask=True)
    serialized = F.make_example(values)
    assert isinstance(serialized, bytes)

    got = reader.parse_example(tf.constant(serialized), with_mask=True)
    _assert_fields(got, values)
    _assert_images(got, values, with_mask=True)
    # a record read without the mask leaves it out
    assert F.MASK not in reader.parse_example(tf.constant(serialized))


@pytest.mark.parametrize("with_mask", [False, True])
def test_parse_values_inverts_make_example(with_mask):
    rng = np.random.default_rng(17)
    values = _values(rng, 24, 20, pair_id=(1 << 61) + 5, with_mask=with_mask)

    got = F.parse_values(F.make_example(values))

    assert set(got) == set(values)
    for key in (F.LDCT, F.NDCT):  # the stored HU: rounded, clipped to int16 only
        assert got[key].dtype == np.float32 and got[key].shape == (24, 20)
        want = np.clip(np.round(values[key].astype(np.float64)), INT16_LO, INT16_HI)
        np.testing.assert_array_equal(got[key], want)
    if with_mask:
        assert got[F.MASK].dtype == np.float32 and got[F.MASK].shape == (24, 20)
        np.testing.assert_allclose(got[F.MASK], _expected_mask(values[F.MASK]), rtol=0,
                                   atol=1e-7)
    for key in SCALAR_KEYS:
        assert isinstance(got[key], int) and got[key] == values[key], key
    for key in FLOAT_KEYS:
        assert got[key] == float(np.float32(values[key])), key
    np.testing.assert_array_equal(got[F.PIXEL_SPACING_MM],
                                  np.asarray(values[F.PIXEL_SPACING_MM], np.float32))
    assert got[F.SERIES_KEY] == values[F.SERIES_KEY].encode()


def test_parse_values_needs_every_key():
    proto = tf.train.Example.FromString(F.make_example(_values(np.random.default_rng(2))))
    del proto.features.feature[F.PAIR_ID]
    with pytest.raises(ValueError, match=F.PAIR_ID):
        F.parse_values(proto.SerializeToString())


def test_stored_bytes_are_int16_hu_and_uint8_mask():
    """The raw record: little-endian int16 HU (clipped to int16 only) and round(255 * A)."""
    rng = np.random.default_rng(5)
    values = _values(rng, 16, 16, with_mask=True)
    proto = tf.train.Example.FromString(F.make_example(values))
    feature = proto.features.feature
    assert set(feature) == set(F.FEATURES) | {F.MASK}

    for key in (F.LDCT, F.NDCT):
        raw = feature[key].bytes_list.value[0]
        assert len(raw) == 16 * 16 * 2
        want = np.clip(np.round(values[key].astype(np.float64)), INT16_LO, INT16_HI)
        np.testing.assert_array_equal(np.frombuffer(raw, "<i2").reshape(16, 16), want)
        np.testing.assert_array_equal(F.hu_from_bytes(raw, (16, 16)), want)
    assert F.hu_from_bytes(feature[F.LDCT].bytes_list.value[0], (16, 16))[1, 1] == INT16_HI

    raw_mask = feature[F.MASK].bytes_list.value[0]
    assert len(raw_mask) == 16 * 16
    want_mask = np.round(np.clip(values[F.MASK].astype(np.float64), 0, 1) * 255)
    np.testing.assert_array_equal(np.frombuffer(raw_mask, np.uint8).reshape(16, 16), want_mask)
    np.testing.assert_allclose(F.mask_from_bytes(raw_mask, (16, 16)), want_mask / 255.0,
                               rtol=0, atol=1e-7)


def test_make_example_needs_every_key():
    rng = np.random.default_rng(1)
    values = _values(rng, 16, 16)
    del values[F.PAIR_ID]
    with pytest.raises(ValueError, match=F.PAIR_ID):
        F.make_example(values)


def test_schema_and_spec_describe_the_same_keys():
    for with_mask in (False, True):
        spec = F.feature_spec(with_mask)
        described = F.schema(with_mask)
        assert set(spec) == set(described) == set(F.FEATURES) | ({F.MASK} if with_mask else set())
        assert spec[F.PIXEL_SPACING_MM].shape == [2]
        assert described[F.LDCT]["dtype"] == "int16"


def test_evaluation_dataset_yields_the_slices_as_read(tmp_path):
    rng = np.random.default_rng(13)
    examples = _examples(rng, with_mask=True)
    path = tmp_path / "test-00000-of-00001.tfrecord.gz"
    _write(path, examples, "GZIP")

    got = list(denoiser_input.make_dataset(str(path), load_config(None, []), training=False,
                                           with_mask=True))

    assert len(got) == len(examples)
    for item, values in zip(got, examples):
        _assert_fields(item, values)
        _assert_images(item, values, with_mask=True)
