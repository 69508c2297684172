"""Where a result came from: package versions, the git commit, and an export's provenance file.

Light on purpose (standard library only), so the runner's manifest, `ldct-tf info`, `export` and
`denoise` share it without importing TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Iterable

PACKAGES = ("ldct_tf", "tensorflow", "keras", "tensorboard", "tf-keras-vis", "apache-beam",
            "pydicom", "numpy", "scikit-image", "bm3d")
PROVENANCE = "provenance.json"  # in a SavedModel's assets/


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    out = {}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def read_provenance(export_dir: str | Path) -> dict:
    """The provenance an export wrote into its assets ({} when there is none); an unreadable one
    is an `LdctError` naming it (it says how the network was trained: guessing is worse)."""
    from ldct_tf.errors import LdctError

    path = Path(export_dir) / "assets" / PROVENANCE
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LdctError(f"{path} is not readable JSON ({exc}); re-export the model with "
                        "`python -m ldct_tf.export`") from None
    if not isinstance(value, dict):
        raise LdctError(f"{path} is not a JSON object; re-export the model with "
                        "`python -m ldct_tf.export`")
    return value
