"""The classifier's detection task: lesions inserted into twins of lesion-absent patches, in
training only."""

import numpy as np
import tensorflow as tf

from ldct_tf.config import LesionConfig
from ldct_tf.ct.lesions import Lesion, lesion_pattern
from ldct_tf.models.preprocessing import denormalize_hu
from ldct_tf.records import classifier_input
from ldct_tf.records import schema as F

SIZE = 48


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
    path = tmp_path / "train-00000-of-00001.tfrecord"
    _write_absent(path)
    lesion = LesionConfig(diameter_mm=(4.0, 4.0), contrast_hu=(50.0, 50.0), sign="negative")
    ds = classifier_input.make_lesion_patches(str(path), F.NDCT, 16, 3, 0, True, 64, seed=1,
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
    path = tmp_path / "val-00000-of-00001.tfrecord"
    _write_absent(path)
    ds = classifier_input.make_lesion_patches(str(path), F.NDCT, 16, 1, 0, False, 8, seed=1,
                                              insert_lesions=LesionConfig())
    labels = np.concatenate([y.numpy() for _, y in ds]).ravel()
    assert labels.tolist() == [0.0, 0.0]
