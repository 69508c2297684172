"""The tf.data reader of prepared records: training patches and whole evaluation slices.

``make_dataset(file_pattern, config, training)``:

- training: shards are interleaved, slices parsed and normalised with the one shared
  `normalize_hu`, then ``patches_per_slice`` random square patches are cut from each slice (a
  ``lesion_patch_fraction`` share of them placed so that they contain the lesion, or the sham lesion
  of an absent slice, at a random offset), flipped and rotated by multiples of 90 degrees
  identically for every image of the sample (LDCT, NDCT and the activation map), shuffled, batched
  and prefetched. Elements are ``(ldct, ndct)`` or ``(ldct, ndct, mask)``, each ``[batch, P, P, 1]``
  float32 in network range (the mask is the map A in [0, 1]).
- evaluation (``training=False``): whole slices in file order, one dict per slice with the images
  (``[H, W, 1]``, network range), ``label``, lesion geometry, ``series_key``, ``slice_index`` and
  ``pair_id``; unbatched, as slices of different series may differ in size.

With ``config.input.deterministic`` the order and every random crop are fixed by the seed (and
still differ between epochs). A corrupted or truncated shard is reported by its file name
(`naming_corrupt_shards`), not as a bare ``DataLossError``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

from ldct_tf import features as F, records
from ldct_tf.config import Config
from ldct_tf.errors import LdctError
from ldct_tf.preprocessing import normalize_hu
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
AUTOTUNE = tf.data.AUTOTUNE
_SEED_SPACE = 2 ** 31 - 1


def list_shards(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching the pattern(s); a clear error when there are none."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, Path)) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(str(p))})
    if not files:
        raise LdctError(f"no record files match {', '.join(map(str, patterns))}; run "
                        "`python -m ldct_tf.prepare --config CONFIG.toml` for this work directory "
                        "first")
    kinds = {records.compression_of(f) for f in files}
    if len(kinds) > 1:
        raise LdctError(f"{', '.join(map(str, patterns))} mixes GZIP and uncompressed shards; "
                        "re-run prepare into a clean records folder")
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
    return (tf.data.TFRecordDataset(files, compression_type=records.compression_of(files[0]))
            .map(lambda s: parse_example(s, with_mask), num_parallel_calls=AUTOTUNE,
                 deterministic=True))


def make_dataset(file_pattern, config: Config, training: bool, *, with_mask: bool = False,
                 seed: int | None = None, batch_size: int | None = None) -> "tf.data.Dataset":
    """The reader (see the module docstring). ``batch_size`` defaults to ``config.input``'s."""
    if not training:
        return read_slices(file_pattern, with_mask).prefetch(AUTOTUNE)
    cfg = config.input
    deterministic = cfg.deterministic
    seed = (config.data.seed if seed is None else seed) if deterministic else seed
    files = list_shards(file_pattern)
    compression = records.compression_of(files[0])
    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                       cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                       deterministic=deterministic)
    ds = ds.shuffle(min(cfg.shuffle_buffer, 256), seed=seed)
    ds = ds.map(lambda s: parse_example(s, with_mask), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    ds = tf.data.Dataset.zip(ds, _seeds(seed)).map(
        lambda example, s: _patches(example, s, cfg.patch_size, cfg.patches_per_slice,
                                    cfg.lesion_patch_fraction, with_mask),
        num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.unbatch().shuffle(cfg.shuffle_buffer, seed=seed)
    return ds.batch(batch_size or cfg.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def _seeds(seed: int | None) -> "tf.data.Dataset":
    """A stateless-op seed pair per slice: fixed by ``seed``, different every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).map(
        lambda pair: pair % _SEED_SPACE)


def _patches(example: dict, seed, size: int, count: int, lesion_fraction: float,
             with_mask: bool):
    """``count`` augmented patches of one slice, as a tuple of ``[count, size, size, 1]``."""
    keys = [F.LDCT, F.NDCT] + ([F.MASK] if with_mask else [])
    stacked = tf.concat([example[k] for k in keys], axis=-1)  # same crop for every image
    height, width = tf.shape(stacked)[0], tf.shape(stacked)[1]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    top, left = _random_corners(seeds[0], count, height, width, size)
    n_lesion = int(round(count * lesion_fraction))
    if n_lesion:
        lesion_top, lesion_left = _lesion_corners(seeds[1], n_lesion, example, height, width,
                                                  size)
        top = tf.concat([lesion_top, top[n_lesion:]], axis=0)
        left = tf.concat([lesion_left, left[n_lesion:]], axis=0)
    patches = _crop(stacked, top, left, size)
    patches = _augment(patches, seeds[2])
    return tuple(patches[..., i:i + 1] for i in range(len(keys)))


def _crop(image, top, left, size: int):
    """``[n, size, size, C]`` patches of ``image`` (``[H, W, C]``) at the given corners."""
    rows = top[:, None] + tf.range(size)[None, :]
    cols = left[:, None] + tf.range(size)[None, :]
    return tf.gather(tf.gather(image, rows), cols, axis=2, batch_dims=1)


def make_lesion_patches(file_pattern, image_key: str, size: int, per_slice: int,
                        max_offset: int, training: bool, batch_size: int,
                        seed: int | None = None) -> "tf.data.Dataset":
    """The detection task of observer studies, as ``(patch, label)`` batches.

    Each slice gives ``per_slice`` patches of ``image_key`` (LDCT or NDCT) whose centre lies up to
    ``max_offset`` pixels from the lesion centre, for both classes alike (a lesion-absent slice
    uses its sham lesion, in soft tissue), so position tells the classifier nothing. Training
    patches are flipped and rotated and shuffled; otherwise offsets are fixed by ``seed`` and the
    order is the file order (evaluation on the same patches for LDCT and NDCT).
    """
    ds = read_slices(file_pattern)
    if training:
        ds = ds.shuffle(256, seed=seed)
    seeds = _seeds(seed) if training else tf.data.Dataset.range(2 ** 62).map(
        lambda i: tf.stack([tf.cast(seed or 0, tf.int64), i]))

    def patches(example, pair):
        image = example[image_key]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        split = tf.random.experimental.stateless_split(pair, 2)
        shift = tf.random.stateless_uniform([per_slice, 2], split[0], minval=-max_offset,
                                            maxval=max_offset + 1, dtype=tf.int32)
        centre = tf.cast(tf.round(tf.stack([example[F.LESION_ROW], example[F.LESION_COL]])),
                         tf.int32)
        corner = centre[None, :] + shift - size // 2
        top = tf.clip_by_value(corner[:, 0], 0, height - size)
        left = tf.clip_by_value(corner[:, 1], 0, width - size)
        cut = _crop(image, top, left, size)
        if training:
            cut = _augment(cut, split[1])
        labels = tf.fill([per_slice, 1], tf.cast(example[F.LABEL], tf.float32))
        return cut, labels

    ds = tf.data.Dataset.zip(ds, seeds).map(patches, num_parallel_calls=AUTOTUNE,
                                            deterministic=not training)
    ds = ds.unbatch()
    if training:
        ds = ds.shuffle(2048, seed=seed)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def _random_corners(seed, count, height, width, size):
    corners = tf.random.stateless_uniform([count, 2], seed, maxval=tf.int32.max, dtype=tf.int32)
    return corners[:, 0] % (height - size + 1), corners[:, 1] % (width - size + 1)


def _lesion_corners(seed, count, example, height, width, size):
    """Corners of patches that contain the lesion (its centre at least one radius inside)."""
    radius = tf.cast(tf.math.ceil(example[F.LESION_RADIUS_PX]), tf.int32)
    centre_r = tf.cast(tf.round(example[F.LESION_ROW]), tf.int32)
    centre_c = tf.cast(tf.round(example[F.LESION_COL]), tf.int32)
    span = tf.maximum(size - 2 * radius, 1)
    offsets = tf.random.stateless_uniform([count, 2], seed, maxval=tf.int32.max, dtype=tf.int32)
    top = centre_r - radius - offsets[:, 0] % span
    left = centre_c - radius - offsets[:, 1] % span
    return (tf.clip_by_value(top, 0, height - size), tf.clip_by_value(left, 0, width - size))


def _augment(patches, seed):
    """Random flip and quarter turn per patch, the same for all channels of that patch."""
    choice = tf.random.stateless_uniform([tf.shape(patches)[0], 2], seed, maxval=8,
                                         dtype=tf.int32)
    flipped = tf.where((choice[:, 0] % 2 == 1)[:, None, None, None],
                       tf.reverse(patches, axis=[2]), patches)
    turns = choice[:, 1] % 4
    rotated = [tf.image.rot90(flipped, k) for k in range(4)]  # square patches: shapes agree
    return _select(rotated, turns)


def _select(options, index):
    """Per-row choice among same-shaped tensors: ``options[index[i]][i]``."""
    stacked = tf.stack(options, axis=1)  # [n, k, ...]
    return tf.gather(stacked, index, axis=1, batch_dims=1)


def corrupt_shards(files: Sequence[str]) -> list[tuple[str, str]]:
    """(file, error) for every shard that cannot be read to its end."""
    bad = []
    for f in files:
        try:
            for _ in tf.data.TFRecordDataset(f, compression_type=records.compression_of(f)):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                tf.errors.OutOfRangeError) as exc:
            bad.append((str(f), exc.message.splitlines()[0]))
    return bad


@contextlib.contextmanager
def naming_corrupt_shards(file_pattern) -> Iterator[None]:
    """Turn a bare ``DataLossError`` while reading records into an `LdctError` naming the file."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        if isinstance(exc, tf.errors.InvalidArgumentError) and "record" not in exc.message.lower():
            raise
        bad = corrupt_shards(list_shards(file_pattern))
        if not bad:
            raise
        names = "; ".join(f"{f} ({why})" for f, why in bad)
        raise LdctError(f"corrupted or truncated record file(s): {names}; re-run "
                        "`python -m ldct_tf.prepare` to rewrite them") from None
