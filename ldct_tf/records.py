"""Where records live and how their files are named: one place for every step that reads or writes
them (``prepare`` writes ``records/``, ``cam`` writes ``records_with_mask/``).

Shards are ``<split>-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` when GZIP-compressed), the naming
Beam's ``WriteToTFRecord`` and TFX use.
"""

from __future__ import annotations

import json
from pathlib import Path

from ldct_tf import features as F
from ldct_tf.config import SPLITS
from ldct_tf.errors import LdctError

RECORDS_DIR = "records"
RECORDS_WITH_MASK_DIR = "records_with_mask"


def suffix(compression: str) -> str:
    return ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"


def pattern(records_dir: str | Path, split: str) -> str:
    """Glob of one split's shards, either compression."""
    return str(Path(records_dir) / f"{split}-*-of-*.tfrecord*")


def shards(records_dir: str | Path, split: str) -> list[Path]:
    return sorted(Path(records_dir).glob(Path(pattern(records_dir, split)).name))


def write_schema(records_dir: str | Path, compression: str, with_mask: bool = False) -> None:
    """``schema.json``: every key's dtype and shape rule, the compression and the file naming."""
    schema = {"features": F.schema(with_mask), "compression": compression,
              "files": {s: f"{s}-SSSSS-of-NNNNN{suffix(compression)}" for s in SPLITS}}
    (Path(records_dir) / "schema.json").write_text(json.dumps(schema, indent=2) + "\n")


def compression_of(path: str | Path) -> str:
    """"GZIP" for ``.gz`` shards, else "" (what `tf.data.TFRecordDataset` expects)."""
    return "GZIP" if str(path).endswith(".gz") else ""


def remove_shards(records_dir: str | Path) -> None:
    """Delete the shards of every split: an earlier run's extra shards must not mix in."""
    for split in SPLITS:
        for old in shards(records_dir, split):
            old.unlink()


def split_sizes(records_dir: str | Path) -> dict[str, int]:
    """Examples per split, from the folder's ``stats.json``."""
    stats = Path(records_dir) / "stats.json"
    if not stats.is_file():
        raise LdctError(f"{stats} not found; run `python -m ldct_tf.prepare` for this work "
                        "directory first")
    return {s: v["examples"] for s, v in json.loads(stats.read_text())["splits"].items()}
