"""Writing record shards, whole or not at all.

`write_with_masks` writes the records of one shard again with each slice's activation map added
(``cam`` writes ``records_with_mask/`` with it); preparation writes ``records/`` with Beam's
``WriteToTFRecord``. The bytes follow `schema`: the source's examples and compression, the map as
`schema.mask_to_bytes`, map entries serialized in key order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ldct_tf import atomic
from ldct_tf.records import schema as F
from ldct_tf.records.files import compression_of
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()


def write_with_masks(source: str | Path, target: str | Path,
                     masks: Iterable[np.ndarray]) -> int:
    """Write ``target``: every record of ``source``, in file order and with its compression, with
    the activation map of its slice added as ``mask`` (``masks``: one ``[height, width]`` array of
    A in [0, 1] per record); every other feature is copied as it is. Returns the records written.

    ``target`` appears only when whole (`ldct_tf.atomic.replacing`): a failure, such as fewer
    masks than records, or a kill leaves no partial file that a later step would read as records
    (the hidden temporary name matches no shard pattern).
    """
    source, target = Path(source), Path(target)
    compression = compression_of(source)
    if compression_of(target) != compression:
        raise ValueError(f"target {target.name} is named for other compression than source "
                         f"{source.name} ({compression or 'none'}); give it the source's suffix")
    masks, count = iter(masks), 0
    options = tf.io.TFRecordOptions(compression_type=compression)
    with atomic.replacing(target) as partial, \
            tf.io.TFRecordWriter(str(partial), options) as writer:
        for raw in tf.data.TFRecordDataset(str(source), compression_type=compression):
            mask = next(masks, None)
            if mask is None:
                raise ValueError(f"{source} holds more records than the {count} masks given")
            example = tf.train.Example.FromString(raw.numpy())
            stored = F.mask_to_bytes(_checked(mask, example, source, count))
            example.features.feature[F.MASK].bytes_list.value.append(stored)
            writer.write(example.SerializeToString(deterministic=True))
            count += 1
        if next(masks, None) is not None:
            raise ValueError(f"more masks were given than the {count} records of {source}")
    return count


def _checked(mask: np.ndarray, example, source: Path, index: int) -> np.ndarray:
    """``mask``, if it fits record ``index`` of ``source``: the slice's shape, no map yet."""
    feature = example.features.feature
    if F.MASK in feature:
        raise ValueError(f"record {index} of {source} already has a {F.MASK!r}; write the maps "
                         "from the records without one")
    shape = (feature[F.HEIGHT].int64_list.value[0], feature[F.WIDTH].int64_list.value[0])
    if np.shape(mask) != shape:
        raise ValueError(f"mask {index} for {source} has shape {np.shape(mask)}, the slice "
                         f"{shape}")
    return mask
