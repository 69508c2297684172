"""Shards of tiny slices written here, shared by the tests of the `ldct_tf.records` readers."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf.records import schema as F


def _write_slices(path, n=3, seed=0, lesion=(20.0, 30.0, 3.0), size=48):
    """``n`` slices of ``size`` px whose NDCT is LDCT + 100 HU and whose mask is a disk at the
    lesion (row, col, radius in px); odd slices are lesion-present."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:size, :size]
    disk = (np.hypot(rr - lesion[0], cc - lesion[1]) <= lesion[2]).astype(np.float32)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for k in range(n):
            ldct = rng.integers(-1000, 1000, (size, size)).astype(np.float32)
            writer.write(F.make_example({
                F.LDCT: ldct, F.NDCT: ldct + 100.0, F.MASK: disk, F.LABEL: k % 2,
                F.HEIGHT: size, F.WIDTH: size, F.PIXEL_SPACING_MM: (1.0, 1.0),
                F.DOSE_FRACTION: 0.25, F.SERIES_KEY: "s", F.SLICE_INDEX: k,
                F.LESION_ROW: lesion[0], F.LESION_COL: lesion[1], F.LESION_RADIUS_PX: lesion[2],
                F.LESION_CONTRAST_HU: 50.0, F.PAIR_ID: -1}))


@pytest.fixture
def write_slices():
    """`_write_slices`: ``write_slices(path, n=3, seed=0, lesion=(row, col, radius), size=48)``."""
    return _write_slices
