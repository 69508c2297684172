"""The MITA-LCD-like phantom against the CCT189 geometry of the FDA LCD-CT toolbox
(``LCD phantom creation/CCT189_obj.m``: d = 40 mm, inserts at 45 degrees, x right / y up)."""

import math

import numpy as np
import pytest

from ldct_tf.ct import lcd_phantom
from ldct_tf.ct.simulate import scan

FINE_MM = 0.25  # fine pixels: the 3 mm insert is 12 px wide, so areas and means are sharp
FINE_SIZE = 820
# CCT189_obj.m, written out: (diameter mm, contrast HU, x mm, y mm)
D = 40.0 * math.cos(math.radians(45.0))
CCT189 = [(3.0, 14.0, D, D), (5.0, 7.0, -D, D), (7.0, 5.0, -D, -D), (10.0, 3.0, D, -D)]


@pytest.fixture(scope="module")
def fine():
    return lcd_phantom.lcd_phantom(FINE_SIZE, FINE_MM)


def _radius_map(shape, row, col):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return np.hypot(rows - row, cols - col)


def test_inserts_are_the_toolbox_sizes_contrasts_and_places(fine):
    _, _, inserts = fine
    centre = (FINE_SIZE - 1) / 2.0
    assert len(inserts) == 4
    for ins, (diameter, contrast, x_mm, y_mm) in zip(inserts, CCT189):
        assert ins.diameter_mm == diameter and ins.contrast_hu == contrast
        assert ins.diameter_px * FINE_MM == pytest.approx(diameter)
        # rows grow downwards (y up in the drawing); snapped to a pixel: within half a pixel
        assert abs(ins.col - (centre + x_mm / FINE_MM)) <= 0.5
        assert abs(ins.row - (centre - y_mm / FINE_MM)) <= 0.5


def test_insert_contrast_is_the_mean_inside_minus_the_background(fine):
    present, absent, inserts = fine
    for ins in inserts:
        r = _radius_map(present.shape, ins.row, ins.col) / ins.radius_px
        inside = present[r <= 0.6].mean()
        ring = present[(r >= 1.5) & (r <= 2.5)].mean()
        assert inside - ring == pytest.approx(ins.contrast_hu, abs=0.01)
        assert ring == pytest.approx(0.0, abs=1e-3)  # water


def test_insert_diameter_from_the_area_above_half_contrast(fine):
    present, absent, inserts = fine
    signal = present - absent
    for ins in inserts:
        near = _radius_map(signal.shape, ins.row, ins.col) <= 2 * ins.radius_px
        area_mm2 = np.sum(signal[near] >= ins.contrast_hu / 2) * FINE_MM ** 2
        assert 2 * math.sqrt(area_mm2 / math.pi) == pytest.approx(ins.diameter_mm, rel=0.02)


def test_insert_centres_are_the_centroids_of_the_signal(fine):
    present, absent, inserts = fine
    signal = (present - absent).astype(np.float64)
    rows, cols = np.mgrid[:FINE_SIZE, :FINE_SIZE]
    for ins in inserts:
        near = _radius_map(signal.shape, ins.row, ins.col) <= 2 * ins.radius_px
        weight = signal * near
        assert np.sum(rows * weight) / weight.sum() == pytest.approx(ins.row, abs=0.02)
        assert np.sum(cols * weight) / weight.sum() == pytest.approx(ins.col, abs=0.02)


def test_absent_is_present_without_the_inserts(fine):
    present, absent, inserts = fine
    far = np.ones(present.shape, bool)
    for ins in inserts:
        far &= _radius_map(present.shape, ins.row, ins.col) > ins.radius_px + 4
        assert present[int(ins.row), int(ins.col)] - absent[int(ins.row), int(ins.col)] == \
            pytest.approx(ins.contrast_hu, rel=1e-3)
    # the erfc edges leave tails of 1e-14 HU and less
    np.testing.assert_allclose(present[far], absent[far], rtol=0, atol=1e-6)


def test_cylinder_is_200_mm_of_water_in_air(fine):
    _, absent, _ = fine
    centre = (FINE_SIZE - 1) / 2.0
    r_mm = _radius_map(absent.shape, centre, centre) * FINE_MM
    assert np.all(absent[r_mm <= 99.0] == 0.0)
    assert np.all(absent[r_mm >= 101.0] == -1000.0)
    area_mm2 = np.sum(absent >= -500.0) * FINE_MM ** 2
    assert 2 * math.sqrt(area_mm2 / math.pi) == pytest.approx(200.0, rel=0.002)


def test_minimum_size_holds_the_cylinder_inside_the_scanners_circle():
    size = lcd_phantom.minimum_size(1.4)
    assert size == 160 and size % 32 == 0
    present, absent, _ = lcd_phantom.lcd_phantom(size, 1.4)
    centre = (size - 1) / 2.0
    outside = _radius_map(present.shape, centre, centre) > size / 2.0 - 1.0
    assert np.all(present[outside] == -1000.0) and np.all(absent[outside] == -1000.0)


def test_water_roi_is_clear_of_the_inserts():
    size, spacing = 160, 1.4
    mask = lcd_phantom.water_roi(size, spacing)
    _, _, inserts = lcd_phantom.lcd_phantom(size, spacing)
    rows, cols = np.nonzero(mask)
    for ins in inserts:
        assert np.min(np.hypot(rows - ins.row, cols - ins.col)) > ins.radius_px + 5


@pytest.mark.parametrize("size, spacing, match", [
    (100, 1.4, "cannot hold the 200 mm cylinder"),
    (256, 0.0, "pixel_spacing_mm must be > 0"),
])
def test_bad_grids_are_refused(size, spacing, match):
    with pytest.raises(ValueError, match=match):
        lcd_phantom.lcd_phantom(size, spacing)


def test_realisations_are_seeded_one_by_one():
    _, absent, _ = lcd_phantom.lcd_phantom(64, 3.5)
    stack = lcd_phantom.scan_realisations(absent, 3.5, 0.25, 2, [7, 1], n_views=64)
    assert stack.shape == (2, 64, 64) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[1], scan(absent, 3.5, 0.25, [7, 1, 1], n_views=64))
    assert not np.array_equal(stack[0], stack[1])
    with pytest.raises(ValueError, match="n must be >= 1"):
        lcd_phantom.scan_realisations(absent, 3.5, 0.25, 0, 7)
