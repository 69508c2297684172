"""The tf.data reader: patches, identical augmentation, lesion patches, determinism, bad shards."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf import data, features as F, records
from ldct_tf.config import load_config
from ldct_tf.errors import LdctError
from ldct_tf.preprocessing import denormalize_hu, normalize_hu

SIZE = 48


def _write(path, n=3, seed=0, lesion=(20.0, 30.0, 3.0)):
    """Slices whose NDCT is LDCT + 100 HU and whose mask is a disk at the lesion."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:SIZE, :SIZE]
    disk = (np.hypot(rr - lesion[0], cc - lesion[1]) <= lesion[2]).astype(np.float32)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for k in range(n):
            ldct = rng.integers(-1000, 1000, (SIZE, SIZE)).astype(np.float32)
            writer.write(F.make_example({
                F.LDCT: ldct, F.NDCT: ldct + 100.0, F.MASK: disk, F.LABEL: k % 2,
                F.HEIGHT: SIZE, F.WIDTH: SIZE, F.PIXEL_SPACING_MM: (1.0, 1.0),
                F.DOSE_FRACTION: 0.25, F.SERIES_KEY: "s", F.SLICE_INDEX: k,
                F.LESION_ROW: lesion[0], F.LESION_COL: lesion[1], F.LESION_RADIUS_PX: lesion[2],
                F.LESION_CONTRAST_HU: 50.0, F.PAIR_ID: -1}))


@pytest.fixture
def shard(tmp_path):
    path = tmp_path / "train-00000-of-00001.tfrecord"
    _write(path)
    return path


def _config(**input_values):
    return load_config(None, [f"input.{k}={str(v).lower()}" for k, v in input_values.items()])


def test_patches_share_crop_and_augmentation(shard):
    config = _config(patch_size=16, patches_per_slice=6, batch_size=6, lesion_patch_fraction=0.5)
    for ldct, ndct, mask in data.make_dataset(str(shard), config, True, with_mask=True).take(3):
        assert ldct.shape == ndct.shape == mask.shape == (6, 16, 16, 1)
        offset = denormalize_hu(ndct).numpy() - denormalize_hu(ldct).numpy()
        np.testing.assert_allclose(offset, 100.0, atol=1e-2)  # same pixels, same orientation
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def test_lesion_patches_contain_the_lesion(shard):
    config = _config(patch_size=16, patches_per_slice=4, batch_size=4, lesion_patch_fraction=1.0)
    for _, _, mask in data.make_dataset(str(shard), config, True, with_mask=True).take(5):
        assert (mask.numpy().sum(axis=(1, 2, 3)) > 0).all()


def test_deterministic_mode_repeats_runs_and_varies_epochs(shard):
    config = _config(patch_size=16, batch_size=4, deterministic=True)
    first = [b[0].numpy() for b in data.make_dataset(str(shard), config, True).take(2)]
    again = data.make_dataset(str(shard), config, True)
    second_run = [b[0].numpy() for b in again.take(2)]
    next_epoch = [b[0].numpy() for b in again.take(2)]
    np.testing.assert_array_equal(first[0], second_run[0])
    assert not np.array_equal(first[0], next_epoch[0])


def test_evaluation_mode_yields_whole_slices_with_geometry(shard):
    slices = list(data.make_dataset(str(shard), _config(), False, with_mask=True))
    assert len(slices) == 3
    assert slices[0][F.LDCT].shape == (SIZE, SIZE, 1)
    assert float(slices[0][F.LESION_ROW]) == 20.0 and int(slices[1][F.LABEL]) == 1


def test_reader_round_trips_prepared_hu(tiny_run):
    config, workdir = tiny_run
    pattern = records.pattern(workdir / "records", "test")
    for item in data.make_dataset(pattern, config, False).take(2):
        hu = denormalize_hu(item[F.LDCT]).numpy()
        np.testing.assert_allclose(hu, np.rint(hu), atol=2e-3)  # int16 HU on disk
        np.testing.assert_allclose(normalize_hu(hu), item[F.LDCT].numpy(), atol=1e-6)


def test_corrupted_shard_is_named(tmp_path):
    good, bad = tmp_path / "train-00000-of-00002.tfrecord", tmp_path / "train-00001-of-00002.tfrecord"
    _write(good)
    _write(bad, seed=1)
    payload = bytearray(bad.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    bad.write_bytes(bytes(payload))
    pattern = str(tmp_path / "train-*")
    with pytest.raises(LdctError, match="train-00001-of-00002.tfrecord"):
        with data.naming_corrupt_shards(pattern):
            for _ in data.make_dataset(pattern, _config(patch_size=16), True):
                pass


def test_truncated_shard_is_named(tmp_path):
    path = tmp_path / "val-00000-of-00001.tfrecord"
    _write(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LdctError, match="val-00000-of-00001.tfrecord.*re-run"):
        with data.naming_corrupt_shards(str(path)):
            list(data.make_dataset(str(path), _config(), False))


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(LdctError, match="run `python -m ldct_tf.prepare"):
        data.make_dataset(str(tmp_path / "train-*"), _config(), True)
