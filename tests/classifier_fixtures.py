"""A lesion no classifier should miss, and a tiny classifier trained on it (shared by the
classifier and cam tests)."""

import keras
import numpy as np

import ldct_tf.models  # noqa: F401  (registers serializables)
from ldct_tf.models.classifier import build_classifier
from ldct_tf.models.preprocessing import normalize_hu


def separable_set(n, size=32, radius=3, seed=0):
    """Uniform noise in 0..100 HU, with a +300 HU disk of ``radius`` px at a random place in every
    other image: a lesion no classifier should miss. Network range ``[n, size, size, 1]``, labels
    ``[n, 1]``, and the disk centres (row, col; meaningless where the label is 0)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:size, :size]
    centres = rng.integers(radius + 2, size - radius - 2, (n, 2))
    labels = np.arange(n) % 2
    hu = rng.uniform(0.0, 100.0, (n, size, size))
    for image, (row, col), label in zip(hu, centres, labels):
        image += 300.0 * label * (np.hypot(rr - row, cc - col) <= radius)
    return normalize_hu(hu)[..., None], labels[:, None].astype(np.float32), centres


def train_on_separable_set(epochs=8, seed=0):
    """A 4-filter classifier trained on 64 images of `separable_set` (a few seconds on 2 cores)."""
    keras.utils.set_random_seed(seed)
    model = build_classifier(4)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    x, y, _ = separable_set(64, seed=seed)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model
