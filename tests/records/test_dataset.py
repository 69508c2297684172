"""The tf.data reader: patches, identical augmentation, lesion patches, determinism, bad shards."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf.records import dataset, schema as F
from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.errors import LdctError
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu

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
    for ldct, ndct, mask in dataset.make_dataset(str(shard), config, True, with_mask=True).take(3):
        assert ldct.shape == ndct.shape == mask.shape == (6, 16, 16, 1)
        offset = denormalize_hu(ndct).numpy() - denormalize_hu(ldct).numpy()
        np.testing.assert_allclose(offset, 100.0, atol=1e-2)  # same pixels, same orientation
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def test_lesion_patches_contain_the_lesion(shard):
    config = _config(patch_size=16, patches_per_slice=4, batch_size=4, lesion_patch_fraction=1.0)
    for _, _, mask in dataset.make_dataset(str(shard), config, True, with_mask=True).take(5):
        assert (mask.numpy().sum(axis=(1, 2, 3)) > 0).all()


def test_deterministic_mode_repeats_runs_and_varies_epochs(shard):
    config = _config(patch_size=16, batch_size=4, deterministic=True)
    first = [b[0].numpy() for b in dataset.make_dataset(str(shard), config, True).take(2)]
    again = dataset.make_dataset(str(shard), config, True)
    second_run = [b[0].numpy() for b in again.take(2)]
    next_epoch = [b[0].numpy() for b in again.take(2)]
    np.testing.assert_array_equal(first[0], second_run[0])
    assert not np.array_equal(first[0], next_epoch[0])


def test_evaluation_mode_yields_whole_slices_with_geometry(shard):
    slices = list(dataset.make_dataset(str(shard), _config(), False, with_mask=True))
    assert len(slices) == 3
    assert slices[0][F.LDCT].shape == (SIZE, SIZE, 1)
    assert float(slices[0][F.LESION_ROW]) == 20.0 and int(slices[1][F.LABEL]) == 1


def test_reader_round_trips_prepared_hu(tiny_run):
    config, workdir = tiny_run
    pattern = records.pattern(workdir / "records", "test")
    for item in dataset.make_dataset(pattern, config, False).take(2):
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
        with dataset.naming_corrupt_shards(pattern):
            for _ in dataset.make_dataset(pattern, _config(patch_size=16), True):
                pass


def test_truncated_shard_is_named(tmp_path):
    path = tmp_path / "val-00000-of-00001.tfrecord"
    _write(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LdctError, match="val-00000-of-00001.tfrecord.*re-run"):
        with dataset.naming_corrupt_shards(str(path)):
            list(dataset.make_dataset(str(path), _config(), False))


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(LdctError, match="run `python -m ldct_tf.prepare"):
        dataset.make_dataset(str(tmp_path / "train-*"), _config(), True)


@pytest.mark.parametrize("profile", ["disk", "gaussian"])
def test_lesion_patterns_match_lesions_module_on_a_zero_image(profile):
    from ldct_tf.ct.lesions import Lesion, insert_lesion

    cases = [(10.3, 7.8, 3.2, -55.0), (0.0, 15.0, 5.0, 70.0), (20.5, -2.0, 4.0, 40.0)]
    rows, cols, radii, contrasts = map(np.array, zip(*cases))
    got = dataset.lesion_patterns(16, rows, cols, radii, contrasts, profile).numpy()
    for pattern, (row, col, radius, contrast) in zip(got, cases):
        want = insert_lesion(np.zeros((16, 16)), Lesion(row, col, radius, contrast, profile))
        np.testing.assert_allclose(pattern, want, atol=1e-3)


def _write_absent(path, n=2, centre=(24.0, 24.0)):
    """Lesion-absent slices of random HU (sham lesion at ``centre``), pixel spacing 0.5 mm."""
    rng = np.random.default_rng(3)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for k in range(n):
            ndct = rng.integers(-200, 200, (SIZE, SIZE)).astype(np.float32)
            writer.write(F.make_example({
                F.LDCT: ndct, F.NDCT: ndct, F.LABEL: 0, F.HEIGHT: SIZE, F.WIDTH: SIZE,
                F.PIXEL_SPACING_MM: (0.5, 0.5), F.DOSE_FRACTION: 0.25, F.SERIES_KEY: "s",
                F.SLICE_INDEX: k, F.LESION_ROW: centre[0], F.LESION_COL: centre[1],
                F.LESION_RADIUS_PX: 3.0, F.LESION_CONTRAST_HU: 0.0, F.PAIR_ID: -1}))


def test_inserted_twins_differ_by_the_lesion_pattern_alone(tmp_path):
    from ldct_tf.config import LesionConfig
    from ldct_tf.ct.lesions import Lesion, lesion_pattern

    path = tmp_path / "train-00000-of-00001.tfrecord"
    _write_absent(path)
    lesion = LesionConfig(diameter_mm=(4.0, 4.0), contrast_hu=(50.0, 50.0), sign="negative")
    ds = dataset.make_lesion_patches(str(path), F.NDCT, 16, 3, 0, True, 64, seed=1,
                                  insert_lesions=lesion)
    patches, labels = (np.concatenate(parts) for parts in zip(*[(x.numpy(), y.numpy())
                                                                  for x, y in ds]))
    hu, labels = denormalize_hu(patches[..., 0]), labels.ravel()
    assert (labels == 1).sum() == 2 * 3 and (labels == 0).sum() == 2 * 2 * 3  # plain + twins
    # The 4 mm lesion is 4 px across at 0.5 mm; at offset 0 its centre is pixel (8, 8) of the
    # patch, moved to (7 or 8, 7 or 8) by the flips and quarter turns.
    candidates = [lesion_pattern((16, 16), Lesion(r, c, 4.0, -50.0)) for r in (7, 8)
                  for c in (7, 8)]
    for positive in hu[labels == 1]:
        twin = min(hu[labels == 0], key=lambda clean: np.abs(positive - clean).sum())
        difference = positive - twin
        error = min(np.abs(difference - want).max() for want in candidates)
        assert error < 1e-2  # HU: the same pixels, differing by the pattern alone


def test_insertion_is_for_training_only(tmp_path):
    from ldct_tf.config import LesionConfig

    path = tmp_path / "val-00000-of-00001.tfrecord"
    _write_absent(path)
    ds = dataset.make_lesion_patches(str(path), F.NDCT, 16, 1, 0, False, 8, seed=1,
                                  insert_lesions=LesionConfig())
    labels = np.concatenate([y.numpy() for _, y in ds]).ravel()
    assert labels.tolist() == [0.0, 0.0]
