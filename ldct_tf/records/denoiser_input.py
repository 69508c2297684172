"""The denoiser's input: training patches and whole evaluation slices of prepared records.

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
still differ between epochs). Wrap the reading in `reader.naming_corrupt_shards` to have a
corrupted or truncated shard reported by its file name.
"""

from __future__ import annotations

from ldct_tf.config import Config
from ldct_tf.records import schema as F
from ldct_tf.records.augment import crop, flip_and_turn, seed_pairs
from ldct_tf.records.files import compression_of
from ldct_tf.records.oracle import with_oracle_map
from ldct_tf.records.reader import list_shards, parse_example, read_slices
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(file_pattern, config: Config, training: bool, *, with_mask: bool = False,
                 seed: int | None = None, batch_size: int | None = None,
                 lesion_fraction: float | None = None, oracle: bool = False,
                 shard: tuple[int, int] | None = None) -> "tf.data.Dataset":
    """The reader (see the module docstring). ``batch_size`` defaults to ``config.input``'s,
    ``lesion_fraction`` to ``config.input.lesion_patch_fraction``. A given ``seed`` fixes the
    order and every crop (two datasets made with the same seed and arguments yield the same
    patches: a fine-tune and its control see the same data). ``oracle`` replaces the map by
    `oracle_map`, the lesion disk of the record geometry (a diagnostic, never the method).
    ``shard=(index, count)`` reads only the training files ``index``, ``index + count``, ... of
    the sorted list: one worker's share when several train (`ldct_tf.train.distribute`)."""
    if not training:
        ds = read_slices(file_pattern, with_mask)
        return (ds.map(with_oracle_map) if oracle else ds).prefetch(AUTOTUNE)
    cfg = config.input
    ordered = cfg.deterministic or seed is not None
    seed = config.data.seed if seed is None and cfg.deterministic else seed
    fraction = cfg.lesion_patch_fraction if lesion_fraction is None else lesion_fraction
    files = list_shards(file_pattern)
    compression = compression_of(files[0])
    if shard is not None:
        files = files[shard[0]::shard[1]]
    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                       cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                       deterministic=ordered)
    ds = ds.shuffle(min(cfg.shuffle_buffer, 256), seed=seed)
    ds = ds.map(lambda s: parse_example(s, with_mask), num_parallel_calls=AUTOTUNE,
                deterministic=ordered)
    if oracle:
        ds = ds.map(with_oracle_map, num_parallel_calls=AUTOTUNE, deterministic=ordered)
    ds = tf.data.Dataset.zip(ds, seed_pairs(seed)).map(
        lambda example, s: _patches(example, s, cfg.patch_size, cfg.patches_per_slice,
                                    fraction, with_mask or oracle),
        num_parallel_calls=AUTOTUNE, deterministic=ordered)
    ds = ds.unbatch().shuffle(cfg.shuffle_buffer, seed=seed)
    return ds.batch(batch_size or cfg.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


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
    patches = crop(stacked, top, left, size)
    patches = flip_and_turn(patches, seeds[2])
    return tuple(patches[..., i:i + 1] for i in range(len(keys)))


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
