"""The denoiser's input: patches with identical augmentation, lesion patches, determinism, whole
evaluation slices."""

import numpy as np
import pytest

from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
from ldct_tf.records import denoiser_input
from ldct_tf.records import schema as F

SIZE = 48


@pytest.fixture
def shard(tmp_path, write_slices):
    path = tmp_path / "train-00000-of-00001.tfrecord"
    write_slices(path, size=SIZE)
    return path


def _config(**input_values):
    return load_config(None, [f"input.{k}={str(v).lower()}" for k, v in input_values.items()])


def test_patches_share_crop_and_augmentation(shard):
    config = _config(patch_size=16, patches_per_slice=6, batch_size=6, lesion_patch_fraction=0.5)
    for ldct, ndct, mask in denoiser_input.make_dataset(str(shard), config, True,
                                                        with_mask=True).take(3):
        assert ldct.shape == ndct.shape == mask.shape == (6, 16, 16, 1)
        offset = denormalize_hu(ndct).numpy() - denormalize_hu(ldct).numpy()
        np.testing.assert_allclose(offset, 100.0, atol=1e-2)  # same pixels, same orientation
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def test_lesion_patches_contain_the_lesion(shard):
    config = _config(patch_size=16, patches_per_slice=4, batch_size=4, lesion_patch_fraction=1.0)
    for _, _, mask in denoiser_input.make_dataset(str(shard), config, True,
                                                  with_mask=True).take(5):
        assert (mask.numpy().sum(axis=(1, 2, 3)) > 0).all()


def test_deterministic_mode_repeats_runs_and_varies_epochs(shard):
    config = _config(patch_size=16, batch_size=4, deterministic=True)
    first = [b[0].numpy() for b in denoiser_input.make_dataset(str(shard), config, True).take(2)]
    again = denoiser_input.make_dataset(str(shard), config, True)
    second_run = [b[0].numpy() for b in again.take(2)]
    next_epoch = [b[0].numpy() for b in again.take(2)]
    np.testing.assert_array_equal(first[0], second_run[0])
    assert not np.array_equal(first[0], next_epoch[0])


def test_evaluation_mode_yields_whole_slices_with_geometry(shard):
    slices = list(denoiser_input.make_dataset(str(shard), _config(), False, with_mask=True))
    assert len(slices) == 3
    assert slices[0][F.LDCT].shape == (SIZE, SIZE, 1)
    assert float(slices[0][F.LESION_ROW]) == 20.0 and int(slices[1][F.LABEL]) == 1


def test_reader_round_trips_prepared_hu(tiny_run):
    config, workdir = tiny_run
    pattern = records.pattern(workdir / "records", "test")
    for item in denoiser_input.make_dataset(pattern, config, False).take(2):
        hu = denormalize_hu(item[F.LDCT]).numpy()
        np.testing.assert_allclose(hu, np.rint(hu), atol=2e-3)  # int16 HU on disk
        np.testing.assert_allclose(normalize_hu(hu), item[F.LDCT].numpy(), atol=1e-6)
