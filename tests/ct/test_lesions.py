"""Lesion geometry, placement and contrast, checked against formulas written here."""

import math

import numpy as np
import pytest

from ldct_tf.ct import lesions, phantoms, simulate

SPACING = 1.4


@pytest.fixture(scope="module")
def phantom():
    return phantoms.make_phantom(128, SPACING, seed=5)


@pytest.mark.parametrize("contrast", [60.0, -80.0])
def test_disk_contrast_in_a_noiseless_phantom_equals_request(phantom, contrast):
    lesion = lesions.sample_lesion(phantom, SPACING, 3, diameter_mm=(10.0, 10.0),
                                   contrast_hu=(abs(contrast),) * 2,
                                   sign="positive" if contrast > 0 else "negative")
    with_lesion = lesions.insert_lesion(phantom, lesion)
    # The measurement (centre minus background ring) minus the same on the lesion-free image
    # removes the anatomy's own gradient at that place.
    measured = (lesions.lesion_contrast(with_lesion, lesion)
                - lesions.lesion_contrast(phantom, lesion))
    assert measured == pytest.approx(contrast, rel=0.10)
    assert lesion.diameter_mm(SPACING) == pytest.approx(10.0)


def test_contrast_survives_the_scan_physics(phantom):
    lesion = lesions.sample_lesion(phantom, SPACING, 4, diameter_mm=(12.0, 12.0),
                                   contrast_hu=(80.0, 80.0), sign="positive")
    scans = [simulate.scan(lesions.insert_lesion(phantom, c), SPACING, 1.0, 9)
             for c in (lesion, lesion.sham())]
    measured = lesions.lesion_contrast(scans[0] - scans[1], lesion)
    assert measured == pytest.approx(80.0, rel=0.10)


def test_disk_profile_matches_a_hard_disk_away_from_its_edge():
    lesion = lesions.Lesion(row=20.0, col=24.0, radius_px=6.0, contrast_hu=50.0, profile="disk")
    pattern = lesions.lesion_pattern((40, 48), lesion)
    r = np.hypot(np.arange(40)[:, None] - 20.0, np.arange(48)[None, :] - 24.0)
    np.testing.assert_allclose(pattern[r < 4.0], 50.0, atol=0.01)
    np.testing.assert_allclose(pattern[r > 8.0], 0.0, atol=0.01)
    # total lesion "mass" equals contrast times the disk's area
    assert pattern.sum() == pytest.approx(50.0 * math.pi * 36.0, rel=0.01)


def test_gaussian_radius_is_half_the_fwhm():
    lesion = lesions.Lesion(row=16.0, col=16.0, radius_px=5.0, contrast_hu=-30.0,
                            profile="gaussian")
    pattern = lesions.lesion_pattern((33, 33), lesion)
    assert pattern[16, 16] == pytest.approx(-30.0)
    assert pattern[16, 21] == pytest.approx(-15.0, rel=1e-4)  # half maximum at r = radius
    assert pattern[11, 16] == pytest.approx(-15.0, rel=1e-4)


def test_sampled_lesions_sit_in_soft_tissue_with_room_for_the_ring(phantom):
    for seed in range(20):
        lesion = lesions.sample_lesion(phantom, SPACING, seed)
        r, c = int(lesion.row), int(lesion.col)
        assert lesions.SOFT_TISSUE_HU[0] <= phantom[r, c] <= lesions.SOFT_TISSUE_HU[1]
        assert 8.0 <= lesion.diameter_mm(SPACING) <= 14.0
        assert 40.0 <= abs(lesion.contrast_hu) <= 80.0


def test_sign_both_gives_both_signs_and_the_draw_is_seeded(phantom):
    signs = {np.sign(lesions.sample_lesion(phantom, SPACING, s).contrast_hu) for s in range(20)}
    assert signs == {-1.0, 1.0}
    assert lesions.sample_lesion(phantom, SPACING, 3) == lesions.sample_lesion(phantom, SPACING, 3)


def test_sham_has_the_geometry_and_no_contrast(phantom):
    lesion = lesions.sample_lesion(phantom, SPACING, 2)
    sham = lesion.sham()
    assert (sham.row, sham.col, sham.radius_px) == (lesion.row, lesion.col, lesion.radius_px)
    np.testing.assert_array_equal(lesions.insert_lesion(phantom, sham), phantom)


def test_no_soft_tissue_is_a_clear_error():
    air = np.full((32, 32), -1000.0, np.float32)
    with pytest.raises(lesions.NoRoomForLesion, match="no soft tissue"):
        lesions.sample_lesion(air, 1.0, 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(diameter_mm=(5.0, 2.0)), "diameter_mm"),
    (dict(diameter_mm=(0.0, 2.0)), "diameter_mm"),
    (dict(contrast_hu=(-5.0, 2.0)), "contrast_hu"),
    (dict(sign="up"), "sign"),
    (dict(profile="square"), "profile"),
])
def test_bad_lesion_settings_name_the_parameter(phantom, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lesions.sample_lesion(phantom, SPACING, 0, **kwargs)


def test_bin_index_follows_the_edge_formula():
    # 2 bins over [5, 9] mm: edges 5, 7, 9; an inner edge belongs to the upper bin, 9 to the last
    values = [5.0, 6.99, 7.0, 8.5, 9.0, 4.0, 10.0]
    assert lesions.bin_index(values, 5.0, 9.0, 2).tolist() == [0, 0, 1, 1, 1, 0, 1]
    # 4 bins over [20, 40] HU: width 5
    for value in np.linspace(20.0, 39.9, 37):
        assert lesions.bin_index([value], 20.0, 40.0, 4)[0] == int((value - 20.0) // 5.0)
    assert lesions.bin_index([3.0, 8.0], 5.0, 5.0, 2).tolist() == [0, 0]  # one fixed size


def test_lesion_bins_cover_every_lesion_once_by_magnitude():
    diameters = [5.5, 8.0, 6.0, 8.9, 7.0]
    contrasts = [-25.0, 35.0, 31.0, -21.0, -40.0]  # the sign does not matter
    bins = lesions.lesion_bins(diameters, contrasts, (5.0, 9.0), (20.0, 40.0))
    assert list(bins) == [((5.0, 7.0), (20.0, 30.0)), ((5.0, 7.0), (30.0, 40.0)),
                          ((7.0, 9.0), (20.0, 30.0)), ((7.0, 9.0), (30.0, 40.0))]
    assert bins[((5.0, 7.0), (20.0, 30.0))] == [0]
    assert bins[((5.0, 7.0), (30.0, 40.0))] == [2]
    assert bins[((7.0, 9.0), (20.0, 30.0))] == [3]
    assert bins[((7.0, 9.0), (30.0, 40.0))] == [1, 4]
    assert sorted(i for members in bins.values() for i in members) == list(range(5))


def test_lesion_bins_of_a_fixed_size_have_one_size_bin():
    bins = lesions.lesion_bins([6.0, 6.0], [25.0, -35.0], (6.0, 6.0), (20.0, 40.0))
    assert bins == {((6.0, 6.0), (20.0, 30.0)): [0], ((6.0, 6.0), (30.0, 40.0)): [1]}
