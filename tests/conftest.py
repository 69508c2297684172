"""Shared pytest fixtures: small uniform objects with a known answer."""

import os

# Quiet TensorFlow C++ logging in test output (must be set before TensorFlow is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def water_ellipse(size: int, pixel_spacing_mm: float, hu: float = 40.0,
                  half_axes_mm: tuple[float, float] | None = None) -> np.ndarray:
    """A uniform soft-tissue ellipse in air (HU), centred; default half axes 40 % / 30 % of the
    FOV."""
    fov = size * pixel_spacing_mm
    ax, ay = half_axes_mm or (0.4 * fov, 0.3 * fov)
    coords = (np.arange(size) - size / 2 + 0.5) * pixel_spacing_mm
    x, y = np.meshgrid(coords, coords)
    return np.where((x / ax) ** 2 + (y / ay) ** 2 < 1, hu, -1000.0).astype(np.float32)


def centre_roi(size: int, half: int) -> tuple[slice, slice]:
    c = size // 2
    return slice(c - half, c + half), slice(c - half, c + half)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(config, workdir) of a tiny synthetic run prepared once per test session."""
    from records_fixtures import prepare_tiny

    workdir = tmp_path_factory.mktemp("tiny_run")
    return prepare_tiny(workdir), workdir


@pytest.fixture(scope="session")
def trained_tiny(tiny_run):
    """(config, workdir, metrics) after training the classifier of the tiny run."""
    from ldct_tf.train import classifier as classifier_training

    config, workdir = tiny_run
    return config, workdir, classifier_training.run(config, workdir)


@pytest.fixture(scope="session")
def masked_tiny(trained_tiny):
    """(config, workdir, cam summary) after computing the activation maps of the tiny run."""
    from ldct_tf import cam

    config, workdir, _ = trained_tiny
    return config, workdir, cam.run(config, workdir)


@pytest.fixture(scope="session")
def denoisers_tiny(masked_tiny):
    """(config, workdir) with pretrain and (weighted) finetune models of the tiny run."""
    from ldct_tf.train.denoiser import run

    config, workdir, _ = masked_tiny
    run(config, workdir, "pretrain")
    run(config, workdir, "finetune")
    return config, workdir


def pytest_collection_modifyitems(config, items):
    """The files that hold a test marked slow run first, each file's tests still together and in
    order: under `make test` (two pytest-xdist workers, one file at a time) the two workers share
    the long files at the start and the many short ones even out the end, instead of one worker
    finishing a long file alone."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
