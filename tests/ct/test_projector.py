"""The sparse projector pair against scikit-image, and the scan physics against the scikit-image
implementation it replaced (radon + iradon per image): noise SD, noise power spectrum and lesion
contrast within a few percent."""

import math

import numpy as np
import pytest
from skimage.transform import iradon, radon

from ldct_tf.ct import projector, simulate


@pytest.mark.parametrize("circle", [False, True])
@pytest.mark.parametrize("filter_name", [None, "ramp", "hann"])
def test_fbp_is_iradon(circle, filter_name):
    beam = projector.ParallelBeam(32, 51, circle)
    sinogram = np.random.default_rng(0).normal(0.0, 1.0, (beam.n_det, 51))
    expected = iradon(sinogram, beam.theta, output_size=32, filter_name=filter_name,
                      circle=circle)
    np.testing.assert_allclose(beam.fbp(sinogram, filter_name), expected, atol=1e-6)


@pytest.mark.parametrize("circle", [False, True])
def test_projection_is_radons_line_integral(circle):
    size = 64
    rows, cols = np.mgrid[:size, :size] - size // 2
    image = ((rows / 20.0) ** 2 + (cols / 26.0) ** 2 < 1).astype(float)
    beam = projector.ParallelBeam(size, 101, circle)
    expected = radon(image, beam.theta, circle=circle)
    got = beam.project(image)
    assert got.shape == expected.shape
    # Every view integrates the whole object; chords agree away from the object's edge.
    np.testing.assert_allclose(got.sum(axis=0), expected.sum(axis=0), rtol=2e-3)
    thick = expected > 0.5 * expected.max()
    assert np.median(np.abs(got - expected)[thick] / expected[thick]) < 0.01


def test_large_geometries_fall_back_to_scikit_image():
    assert projector.ParallelBeam.for_geometry(512, simulate.default_n_views(512), True) is None
    # Built once per geometry, whichever ``circle`` (from empty caches: the test's worker may have
    # built other geometries since, and the caches keep only the latest).
    projector._beam.cache_clear()
    projector._matrices.cache_clear()
    assert projector.ParallelBeam.for_geometry(64, 101, True).matrix is (
        projector.ParallelBeam.for_geometry(64, 101, False).matrix)


def _skimage_scan(hu, spacing, dose, seed, i0=simulate.DEFAULT_I0,
                  ne=simulate.DEFAULT_ELECTRONIC_NOISE_VAR, filter_name="hann"):
    """The scan as it was before the projector: scikit-image's radon and iradon per image."""
    rng = np.random.default_rng(seed)
    mu = simulate.hu_to_mu(hu)
    theta = np.linspace(0.0, 180.0, simulate.default_n_views(hu.shape[0]), endpoint=False)
    line = radon(mu, theta, circle=True) * spacing
    counts = rng.poisson(dose * i0 * np.exp(-line)).astype(float)
    counts += rng.normal(0.0, math.sqrt(ne), counts.shape)
    noisy = -np.log(np.maximum(counts, 1.0) / (dose * i0))
    mu = iradon(noisy / spacing, theta, output_size=hu.shape[0], filter_name=filter_name,
                circle=True)
    return simulate.mu_to_hu(mu)


def _radial_nps(noise_images, bins=8):
    spectra = np.mean([np.abs(np.fft.fft2(n)) ** 2 for n in noise_images], axis=0)
    size = noise_images[0].shape[0]
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    edges = np.linspace(0.02, 0.5, bins + 1)
    return np.array([spectra[(f >= a) & (f < b)].mean() for a, b in zip(edges[:-1], edges[1:])])


@pytest.mark.slow
def test_scan_physics_matches_the_scikit_image_scan():
    size, spacing, dose, n = 128, 2.0, 0.25, 12
    rows, cols = np.mgrid[:size, :size] - size // 2
    body = (rows / 44.0) ** 2 + (cols / 56.0) ** 2 < 1
    lesion = (rows - 10) ** 2 + (cols + 15) ** 2 < 4.0 ** 2
    hu = np.where(body, 40.0, -1000.0) + np.where(lesion, 40.0, 0.0)
    assert simulate._fits_circle(simulate.hu_to_mu(hu))
    new = np.stack(simulate.scans(hu, spacing, [dose] * n, [(7, i) for i in range(n)]))
    old = np.stack([_skimage_scan(hu, spacing, dose, (7, i)) for i in range(n)])  # same draws
    roi = ((rows + 12) ** 2 + (cols - 12) ** 2 < 10 ** 2)
    background = (((rows - 10) ** 2 + (cols + 15) ** 2 > 8.0 ** 2)
                  & ((rows - 10) ** 2 + (cols + 15) ** 2 < 14.0 ** 2))

    def physics(images):
        noise = images - images.mean(axis=0)
        sd = np.sqrt(n / (n - 1)) * noise[:, roi].std()
        return sd, _radial_nps(noise[:, 32:96, 32:96])

    def contrast(image):
        return image[lesion].mean() - image[background].mean()

    sd_new, nps_new = physics(new)
    sd_old, nps_old = physics(old)
    assert sd_new == pytest.approx(sd_old, rel=0.05)
    np.testing.assert_allclose(nps_new, nps_old, rtol=0.05)
    # The object as each scanner sees it, without noise (a flux of 1e12 photons).
    clean_new = simulate.scan(hu, spacing, 1.0, 0, i0=1e12, electronic_noise_var=0.0)
    clean_old = _skimage_scan(hu, spacing, 1.0, 0, i0=1e12, ne=0.0)
    assert contrast(clean_new) == pytest.approx(contrast(clean_old), rel=0.03)
    assert 0.6 * 40.0 < contrast(clean_old) < 40.0  # a 4 px disk, blurred by the Hann kernel
    inner = (rows / 40.0) ** 2 + (cols / 52.0) ** 2 < 1  # 4 px clear of the body's edge
    difference = (clean_new - clean_old)[inner]
    assert abs(difference.mean()) < 0.2 and difference.std() < 1.0
    # Aliasing: the footprint projector leaves no more pattern in uniform tissue than radon.
    uniform = inner & ~background & ~lesion & ((rows - 10) ** 2 + (cols + 15) ** 2 > 14.0 ** 2)
    assert (clean_new[uniform] - 40.0).std() <= 1.1 * (clean_old[uniform] - 40.0).std()


def test_scans_equal_one_scan_per_dose():
    size = 64
    rows, cols = np.mgrid[:size, :size] - size // 2
    hu = np.where((rows / 20.0) ** 2 + (cols / 24.0) ** 2 < 1, 40.0, -1000.0)
    pair = simulate.scans(hu, 1.0, [1.0, 0.25], [3, 4])
    np.testing.assert_array_equal(pair[0], simulate.scan(hu, 1.0, 1.0, 3))
    np.testing.assert_array_equal(pair[1], simulate.scan(hu, 1.0, 0.25, 4))
