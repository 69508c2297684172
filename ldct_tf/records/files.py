"""Where records live and how their files are named: one place for every step that reads or writes
them (``prepare`` writes ``records/``, ``cam`` writes ``records_with_mask/``).

Shards are ``<split>-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` when GZIP-compressed), the naming
Beam's ``WriteToTFRecord`` and TFX use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ldct_tf import atomic
from ldct_tf.config import SPLITS
from ldct_tf.errors import LdctError
from ldct_tf.records import schema as F
from ldct_tf.workdir import SCHEMA_FILE, STATS_FILE


def suffix(compression: str) -> str:
    return ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"


def shard_name(split: str, shard: int, num_shards: int, compression: str) -> str:
    """``<split>-SSSSS-of-NNNNN.tfrecord[.gz]``: shard ``shard`` (from 0) of ``num_shards``."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}{suffix(compression)}"


def pattern(records_dir: str | Path, split: str) -> str:
    """Glob of one split's shards, either compression."""
    return str(Path(records_dir) / f"{split}-*-of-*.tfrecord*")


def shards(records_dir: str | Path, split: str) -> list[Path]:
    return sorted(Path(records_dir).glob(Path(pattern(records_dir, split)).name))


def write_schema(records_dir: str | Path, compression: str, with_mask: bool = False) -> None:
    """``schema.json``: every key's dtype and shape rule, the compression and the file naming."""
    schema = {"features": F.schema(with_mask), "compression": compression,
              "files": {s: f"{s}-SSSSS-of-NNNNN{suffix(compression)}" for s in SPLITS}}
    atomic.write_json(Path(records_dir) / SCHEMA_FILE, schema)


def compression_of(path: str | Path) -> str:
    """"GZIP" for ``.gz`` shards, else "" (what `tf.data.TFRecordDataset` expects)."""
    return "GZIP" if str(path).endswith(".gz") else ""


def remove_shards(records_dir: str | Path) -> None:
    """Delete the shards of every split (an earlier run's extra shards must not mix in) and the
    temporary files a killed writer left (`ldct_tf.atomic`)."""
    for split in SPLITS:
        for old in shards(records_dir, split):
            old.unlink()
    for left in Path(records_dir).glob(f"{atomic.PARTIAL_PREFIX}*"):
        atomic.remove(left)


def split_sizes(records_dir: str | Path, verify: bool = True) -> dict[str, int]:
    """Examples per split, from the folder's ``stats.json``; with ``verify``, after checking that
    every shard still holds the records written to it (`verify_shards`)."""
    stats = Path(records_dir) / STATS_FILE
    if not stats.is_file():
        raise LdctError(f"{stats} not found; run `python -m ldct_tf.prepare` for this work "
                        "directory first")
    if verify:
        verify_shards(records_dir)
    return {s: v["examples"] for s, v in json.loads(stats.read_text())["splits"].items()}


_FRAME_BYTES = 16  # TFRecord framing: uint64 length, uint32 length CRC, uint32 data CRC
_COUNTED: dict[tuple[str, int, int], int] = {}  # (path, size, mtime) -> records: read once


def count_records(path: str | Path) -> int:
    """Records in one shard; a shard cut inside a record is an `LdctError` naming it. A shard
    is read once per process while its size and modification time stay the same."""
    from ldct_tf.tf_import import import_tensorflow

    tf = import_tensorflow()
    local = "://" not in str(path)
    if local:
        info = os.stat(path)
        key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
        if key in _COUNTED:
            return _COUNTED[key]
    compression = compression_of(path)
    count, framed = 0, 0
    try:
        for record in tf.data.TFRecordDataset(str(path), compression_type=compression):
            count += 1
            framed += len(record.numpy()) + _FRAME_BYTES
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise LdctError(f"record file {path} is corrupted or truncated ({exc.message.strip()}); "
                        "re-run `python -m ldct_tf.prepare` to rewrite it") from None
    # TensorFlow reads a shard cut inside the last record's length header as a clean end: an
    # uncompressed shard must be exactly its records, each framed by a length and two CRCs.
    if local and not compression and framed != info.st_size:
        raise LdctError(f"record file {path} is truncated ({info.st_size - framed} stray bytes "
                        "after its last whole record); re-run `python -m ldct_tf.prepare` to "
                        "rewrite it")
    if local:
        _COUNTED[key] = count
    return count


def check_files(files: Sequence[str]) -> None:
    """The shards a reader is about to use are whole: each reads to its end, each that the
    ``stats.json`` beside it lists holds the records written to it, and no shard it lists for
    the same split is missing. An `LdctError` names the first that is not."""
    by_folder: dict[Path, list[str]] = {}
    for f in files:
        count_records(f)
        if "://" not in str(f):
            by_folder.setdefault(Path(f).parent, []).append(Path(f).name)
    for folder, names in by_folder.items():
        stats = folder / STATS_FILE
        if not stats.is_file():
            continue
        written = json.loads(stats.read_text()).get("shards", {})
        splits = {name.split("-", 1)[0] for name in names}
        verify_shards(folder, {n: c for n, c in written.items() if n.split("-", 1)[0] in splits})


def write_shard_counts(records_dir: str | Path, stats: dict | None = None) -> dict[str, int]:
    """Count every shard once, just written, into ``stats.json`` (``"shards"``: name -> records):
    readers check them (`verify_shards`), so a shard cut at a record boundary, emptied or lost is
    an error, not slices silently missing. ``stats``: the statistics to write them into (default:
    the folder's ``stats.json``). Written whole or not at all: a ``stats.json`` says the records
    are complete, so it is the last file a writer of records makes."""
    path = Path(records_dir) / STATS_FILE
    stats = dict(json.loads(path.read_text()) if stats is None else stats)
    stats["shards"] = {f.name: count_records(f) for split in SPLITS
                       for f in shards(records_dir, split)}
    atomic.write_json(path, stats)
    return stats["shards"]


def verify_shards(records_dir: str | Path, counts: dict[str, int] | None = None) -> None:
    """Every shard ``stats.json`` lists (or ``counts``: name -> records written) is there with as
    many records as were written; an `LdctError` naming the first that is not. A ``stats.json``
    without shard counts (written before they existed) is not checked."""
    if counts is None:
        counts = json.loads((Path(records_dir) / STATS_FILE).read_text()).get("shards", {})
    for name, written in counts.items():
        shard = Path(records_dir) / name
        if not shard.is_file():
            raise LdctError(f"record file {shard} is missing ({written} records were written); "
                            "re-run `python -m ldct_tf.prepare` to rewrite the records")
        found = count_records(shard)
        if found != written:
            raise LdctError(f"record file {shard} holds {found} records, {written} were written "
                            "(cut or emptied); re-run `python -m ldct_tf.prepare` to rewrite it")
