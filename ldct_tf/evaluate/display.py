"""How every evaluation output shows and stores its results: the order and labels of the image
sets, number cells, JSON-safe values and the figure set-up. The evaluation report, the
contrast-detail and MITA-LCD studies and the seed study all use these; none of it needs
TensorFlow, and matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ldct_tf import atomic

ORDER = ("ldct", "ndct", "gaussian", "bm3d", "pretrain", "finetune", "finetune_control",
         "finetune_oracle", "finetune_pairs")
REFERENCE_SETS = ("ldct", "ndct", "gaussian", "bm3d")  # not trained: the same for every seed
NETWORKS = tuple(n for n in ORDER if n not in REFERENCE_SETS)
# The oracle's weight is the true lesion disk, which no deployed denoiser knows: it shows what a
# perfect map could give, and must never be read as the method.
LABELS = {"finetune_oracle": "oracle (diagnostic)"}


def label(name: str) -> str:
    """How a set is shown in tables, figures and verdicts."""
    return LABELS.get(name, name)


def ordered(sets) -> list[str]:
    """The names of ``sets`` (a mapping or names) in the report's order (`ORDER`)."""
    return [n for n in ORDER if n in sets]


def fmt(value, digits=2) -> str:
    """A table cell: ``value`` to ``digits`` decimals, "-" where missing or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def jsonable(value):
    """``value`` with NumPy scalars made plain and non-finite floats made None (JSON has no NaN):
    what ``metrics.json`` and the seed study's ``summary.json`` are written from."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 90) -> Path:
    """Write ``fig`` as a PNG at ``path`` (whole or not at all) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic.replacing(path) as temp:
        fig.savefig(temp, dpi=dpi)
    plt.close(fig)
    return path
