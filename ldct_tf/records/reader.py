"""Reading prepared records: the shards of a pattern, checked whole (`list_shards`); every slice
parsed into tensors for tf.data (`read_slices`, `parse_example`) or into NumPy values for a Python
loop over one shard (`read_values`); and a corrupted or truncated shard reported by its file name
(`naming_corrupt_shards`), not as a bare ``DataLossError``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator, Sequence

from ldct_tf.errors import LdctError
from ldct_tf.models.preprocessing import normalize_hu
from ldct_tf.records import schema as F
from ldct_tf.records.files import check_files, compression_of
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
AUTOTUNE = tf.data.AUTOTUNE


def list_shards(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching the pattern(s), checked whole (`records.check_files`: a shard that
    is cut, emptied or missing is an error naming it, before any record is read); a clear error
    when there are none."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, Path)) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(str(p))})
    if not files:
        raise LdctError(f"no record files match {', '.join(map(str, patterns))}; run "
                        "`python -m ldct_tf.prepare --config CONFIG.toml` for this work directory "
                        "first")
    kinds = {compression_of(f) for f in files}
    if len(kinds) > 1:
        raise LdctError(f"{', '.join(map(str, patterns))} mixes GZIP and uncompressed shards; "
                        "re-run prepare into a clean records folder")
    check_files(files)
    return files


def parse_example(serialized, with_mask: bool = False) -> dict:
    """One serialized example -> tensors: images ``[H, W, 1]`` float32 in network range."""
    parsed = tf.io.parse_single_example(serialized, F.feature_spec(with_mask))
    shape = tf.stack([parsed[F.HEIGHT], parsed[F.WIDTH], tf.constant(1, tf.int64)])
    out = {key: value for key, value in parsed.items() if key not in (F.LDCT, F.NDCT, F.MASK)}
    for key in (F.LDCT, F.NDCT):
        hu = tf.reshape(tf.io.decode_raw(parsed[key], tf.int16, little_endian=True), shape)
        out[key] = normalize_hu(hu)
    if with_mask:
        stored = tf.reshape(tf.io.decode_raw(parsed[F.MASK], tf.uint8), shape)
        out[F.MASK] = tf.cast(stored, tf.float32) / F.MASK_SCALE
    return out


def read_slices(file_pattern, with_mask: bool = False) -> "tf.data.Dataset":
    """Every slice of the matching shards, in file order, parsed (see `parse_example`)."""
    files = list_shards(file_pattern)
    return (tf.data.TFRecordDataset(files, compression_type=compression_of(files[0]))
            .map(lambda s: parse_example(s, with_mask), num_parallel_calls=AUTOTUNE,
                 deterministic=True))


def read_values(shard: str | Path) -> Iterator[dict]:
    """Every slice of one shard, in file order, as NumPy values (`schema.parse_values`: images in
    HU, not network range; the ``mask`` too where the shard has one)."""
    for raw in tf.data.TFRecordDataset(str(shard), compression_type=compression_of(shard)):
        yield F.parse_values(raw.numpy())


def corrupt_shards(files: Sequence[str]) -> list[tuple[str, str]]:
    """(file, error) for every shard that cannot be read to its end."""
    bad = []
    for f in files:
        try:
            for _ in tf.data.TFRecordDataset(f, compression_type=compression_of(f)):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                tf.errors.OutOfRangeError) as exc:
            bad.append((str(f), exc.message.splitlines()[0]))
    return bad


@contextlib.contextmanager
def naming_corrupt_shards(file_pattern) -> Iterator[None]:
    """Turn a bare ``DataLossError`` while reading records into an `LdctError` naming the file;
    likewise a shard deleted or moved while it is read (``NotFoundError``)."""
    try:
        yield
    except tf.errors.NotFoundError as exc:  # "{{function_node ...}} PATH; No such file [Op:..."
        what = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", exc.message.splitlines()[0]).strip()
        raise LdctError(f"record file gone while it was read: {what}; leave the records alone "
                        "while a run reads them, then re-run (or re-run `python -m "
                        "ldct_tf.prepare` to rewrite them)") from None
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        if isinstance(exc, tf.errors.InvalidArgumentError) and "record" not in exc.message.lower():
            raise
        bad = corrupt_shards(list_shards(file_pattern))
        if not bad:
            raise
        names = "; ".join(f"{f} ({why})" for f, why in bad)
        raise LdctError(f"corrupted or truncated record file(s): {names}; re-run "
                        "`python -m ldct_tf.prepare` to rewrite them") from None
