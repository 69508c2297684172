"""What every config section shares: the error type, the one-line message naming the key, and the
physical bounds a value must respect."""

from __future__ import annotations

import math

from ldct_tf.errors import LdctError


class ConfigError(LdctError):
    """A config value or key is wrong; the message names it and the allowed values."""


def fail(section: str, key: str, message: str) -> None:
    raise ConfigError(f"config [{section}] {key}: {message}")


# Physical bounds: a setting outside them is a typo, not an experiment.
SPACING_RANGE_MM = (0.05, 10.0)  # pixel sizes CT can have (the DICOM reader uses the same bounds)


MAX_LESION_DIAMETER_MM = 100.0


MAX_CONTRAST_HU = 2000.0  # more than bone over water


MAX_LEARNING_RATE = 1.0


def check_learning_rate(section: str, learning_rate: float) -> None:
    if not (math.isfinite(learning_rate) and 0 < learning_rate <= MAX_LEARNING_RATE):
        fail(section, "learning_rate", f"must be a finite number in (0, {MAX_LEARNING_RATE:g}], "
              f"got {learning_rate}")


def check_range(section: str, key: str, pair: tuple[float, float], low: float, high: float,
                what: str, positive: bool = False) -> None:
    """``pair`` is [lo, hi] with low <= lo <= hi <= high (``low < lo`` when ``positive``);
    ``what`` names the quantity in the message."""
    lo, hi = pair
    above = lo > low if positive else lo >= low
    if not (above and lo <= hi <= high):
        fail(section, key, f"must be [low, high] {what} with {low:g} {'<' if positive else '<='} "
             f"low <= high <= {high:g}, got {list(pair)}")


def check_phase(section: str, epochs: int, learning_rate: float) -> None:
    if epochs < 1:
        fail(section, "epochs", f"must be >= 1, got {epochs}")
    check_learning_rate(section, learning_rate)
