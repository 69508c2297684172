"""Synthetic phantoms: realistic HU classes, variation per seed, any size and spacing."""

import numpy as np
import pytest

from ldct_tf.ct import phantoms


def test_phantom_has_air_fat_soft_tissue_and_bone():
    image = phantoms.make_phantom(256, 1.4, seed=0)
    assert image.shape == (256, 256) and image.dtype == np.float32
    fractions = {
        "air": np.mean(image < -950),
        "fat": np.mean((image > -130) & (image < -70)),
        "soft": np.mean((image > 20) & (image < 80)),
        "bone": np.mean(image > 200),
    }
    assert fractions["air"] > 0.2 and fractions["soft"] > 0.2
    assert fractions["fat"] > 0.02 and fractions["bone"] > 0.002
    assert image.min() >= -1000.0 - 1e-3 and image.max() <= 1000.0


def test_seeds_differ_and_repeat():
    a, b = phantoms.make_phantom(64, 5.0, 1), phantoms.make_phantom(64, 5.0, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, phantoms.make_phantom(64, 5.0, 2))


@pytest.mark.parametrize("size, spacing", [(32, 1.4), (64, 0.7), (100, 3.0)])
def test_body_fits_small_fields_of_view(size, spacing):
    image = phantoms.make_phantom(size, spacing, seed=3)
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    np.testing.assert_array_equal(edge, -1000.0)  # the body never touches the border
    assert np.mean(image > -500) > 0.2


@pytest.mark.parametrize("size, spacing", [(8, 1.0), (64, 0.0), (64.5, 1.0)])
def test_bad_size_or_spacing(size, spacing):
    with pytest.raises(ValueError, match="size|pixel_spacing_mm"):
        phantoms.make_phantom(size, spacing, 0)
