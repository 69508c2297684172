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

``make_lesion_patches`` serves the classifier's detection task: ``(patch, label)`` batches of one
image centred near the (sham) lesion; in training, optionally with lesions inserted on the fly
(`lesion_patterns`, the formulas of `ldct_tf.ct.lesions` in TensorFlow ops) into twins of
lesion-absent patches.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

from ldct_tf.records import schema as F
from ldct_tf import records
from ldct_tf.config import Config, LesionConfig
from ldct_tf.errors import LdctError
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
AUTOTUNE = tf.data.AUTOTUNE
_SEED_SPACE = 2 ** 31 - 1


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
    kinds = {records.compression_of(f) for f in files}
    if len(kinds) > 1:
        raise LdctError(f"{', '.join(map(str, patterns))} mixes GZIP and uncompressed shards; "
                        "re-run prepare into a clean records folder")
    records.check_files(files)
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
    compression = records.compression_of(files[0])
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
    ds = tf.data.Dataset.zip(ds, _seeds(seed)).map(
        lambda example, s: _patches(example, s, cfg.patch_size, cfg.patches_per_slice,
                                    fraction, with_mask or oracle),
        num_parallel_calls=AUTOTUNE, deterministic=ordered)
    ds = ds.unbatch().shuffle(cfg.shuffle_buffer, seed=seed)
    return ds.batch(batch_size or cfg.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


ORACLE_MARGIN_PX = 1.0  # the oracle disk reaches one pixel past the lesion radius: edges count


def oracle_map(height, width, row, col, radius_px, label):
    """The oracle diagnostic's "map": 1 on the lesion disk (radius + `ORACLE_MARGIN_PX`, edge
    smoothed like `ldct_tf.ct.lesions`' disk), 0 elsewhere and on lesion-absent slices; ``[H, W, 1]``
    float32."""
    rows = tf.cast(tf.range(height), tf.float32)[:, None] - tf.cast(row, tf.float32)
    cols = tf.cast(tf.range(width), tf.float32)[None, :] - tf.cast(col, tf.float32)
    r = tf.sqrt(rows ** 2 + cols ** 2)
    disk = _disk_profile(r, tf.cast(radius_px, tf.float32) + ORACLE_MARGIN_PX)
    return (disk * tf.cast(label, tf.float32))[..., None]


def with_oracle_map(example: dict) -> dict:
    """``example`` with its ``mask`` replaced by `oracle_map` of its own lesion geometry."""
    shape = tf.shape(example[F.LDCT])
    return {**example, F.MASK: oracle_map(shape[0], shape[1], example[F.LESION_ROW],
                                          example[F.LESION_COL], example[F.LESION_RADIUS_PX],
                                          example[F.LABEL])}


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
                        seed: int | None = None,
                        insert_lesions: LesionConfig | None = None) -> "tf.data.Dataset":
    """The detection task of observer studies, as ``(patch, label)`` batches.

    Each slice gives ``per_slice`` patches of ``image_key`` (LDCT or NDCT) whose centre lies up to
    ``max_offset`` pixels from the lesion centre, for both classes alike (a lesion-absent slice
    uses its sham lesion, in soft tissue), so position tells the classifier nothing. Training
    patches are flipped and rotated and shuffled; otherwise offsets are fixed by ``seed`` and the
    order is the file order (evaluation on the same patches for LDCT and NDCT).

    ``insert_lesions`` (the ``[lesion]`` ranges; training only) adds ``per_slice`` twin pairs per
    lesion-absent slice (`_lesion_twins`): another patch cut and augmented the same way, once as it
    is (label 0) and once with a lesion drawn for it added at the sham site (label 1). Only the
    lesion tells a pair apart, so the classifier cannot score the slice instead of the lesion, and
    positives no longer run out. With as many present as absent slices (prepare alternates them),
    the classes stay balanced: a quarter each of real lesions, inserted lesions, plain absent
    patches and their clean twins (the twins make half of the positives synthetic).
    """
    ds = read_slices(file_pattern)
    if training:
        ds = ds.shuffle(256, seed=seed)
    seeds = _seeds(seed) if training else tf.data.Dataset.range(2 ** 62).map(
        lambda i: tf.stack([tf.cast(seed or 0, tf.int64), i]))
    inserting = training and insert_lesions is not None

    def patches(example, pair):
        image = example[image_key]
        split = tf.random.experimental.stateless_split(pair, 2)
        top, left = _offset_corners(split[0], per_slice, example, max_offset, size)
        cut = _crop(image, top, left, size)
        if training:
            cut = _augment(cut, split[1])
        label = tf.cast(example[F.LABEL], tf.float32)
        labels = tf.fill([per_slice, 1], label)
        if inserting:
            clean, lesioned = _lesion_twins(image, example, _twin_seed(pair), size, per_slice,
                                            max_offset, insert_lesions)
            pairs = per_slice * tf.cast(1.0 - label, tf.int32)  # absent slices only
            cut = tf.concat([cut, clean[:pairs], lesioned[:pairs]], axis=0)
            labels = tf.concat([labels, tf.zeros([pairs, 1]), tf.ones([pairs, 1])], axis=0)
        return cut, labels

    ds = tf.data.Dataset.zip(ds, seeds).map(patches, num_parallel_calls=AUTOTUNE,
                                            deterministic=not training)
    ds = ds.unbatch()
    if training:
        ds = ds.shuffle(2048, seed=seed)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def _offset_corners(seed, count, example, max_offset, size):
    """Corners of ``count`` patches whose centre lies up to ``max_offset`` px from the lesion's."""
    height, width = tf.shape(example[F.NDCT])[0], tf.shape(example[F.NDCT])[1]
    shift = tf.random.stateless_uniform([count, 2], seed, minval=-max_offset,
                                        maxval=max_offset + 1, dtype=tf.int32)
    centre = tf.cast(tf.round(tf.stack([example[F.LESION_ROW], example[F.LESION_COL]])), tf.int32)
    corner = centre[None, :] + shift - size // 2
    return (tf.clip_by_value(corner[:, 0], 0, height - size),
            tf.clip_by_value(corner[:, 1], 0, width - size))


def _twin_seed(pair):
    # Folded off the slice's seed pair, so the plain patches draw what they drew before insertion.
    return tf.random.experimental.stateless_fold_in(pair, 1)


def _lesion_twins(image, example, seed, size: int, count: int, max_offset: int,
                  lesion: LesionConfig):
    """``count`` twin pairs of a slice: (clean, with lesion), each ``[count, size, size, 1]``.

    The lesion is added in HU at the slice's sham site, as `ldct_tf.ct.lesions.insert_lesion` adds
    it to an NDCT image, before the shared flip and quarter turn, so twins differ by the pattern
    alone.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    top, left = _offset_corners(seeds[0], count, example, max_offset, size)
    clean = _crop(image, top, left, size)
    radius_px, contrast_hu = _draw_lesions(seeds[1], count,
                                           tf.reduce_mean(example[F.PIXEL_SPACING_MM]), lesion)
    pattern = lesion_patterns(size, example[F.LESION_ROW] - tf.cast(top, tf.float32),
                              example[F.LESION_COL] - tf.cast(left, tf.float32), radius_px,
                              contrast_hu, lesion.profile)
    lesioned = normalize_hu(denormalize_hu(clean) + pattern[..., None])
    both = _augment(tf.concat([clean, lesioned], axis=-1), seeds[2])
    return both[..., :1], both[..., 1:]


def _draw_lesions(seed, count: int, pixel_spacing_mm, lesion: LesionConfig):
    """Radius (px) and contrast (HU) of ``count`` lesions, uniform in the ``[lesion]`` ranges
    (diameter in mm, |contrast| in HU; sign by ``lesion.sign``, each 1/2 for "both"), as
    `ldct_tf.ct.lesions.sample_lesion` draws them."""
    u = tf.random.stateless_uniform([count, 3], seed)
    (d_lo, d_hi), (c_lo, c_hi) = lesion.diameter_mm, lesion.contrast_hu
    diameter_mm = d_lo + (d_hi - d_lo) * u[:, 0]
    magnitude = c_lo + (c_hi - c_lo) * u[:, 1]
    sign = {"positive": tf.ones([count]), "negative": -tf.ones([count]),
            "both": tf.where(u[:, 2] < 0.5, -1.0, 1.0)}[lesion.sign]
    return diameter_mm / 2.0 / tf.cast(pixel_spacing_mm, tf.float32), sign * magnitude


def lesion_patterns(size: int, row, col, radius_px, contrast_hu, profile: str):
    """``[n, size, size]`` additive HU patterns of n lesions (centres in patch pixels, may be
    fractional or outside): `ldct_tf.ct.lesions.lesion_pattern` in TensorFlow ops, same formulas
    (disk: erfc edge of 0.5 px; gaussian: ``radius_px`` = half the FWHM)."""
    grid = tf.cast(tf.range(size), tf.float32)
    row, col = tf.cast(row, tf.float32), tf.cast(col, tf.float32)
    r = tf.sqrt((grid[None, :, None] - row[:, None, None]) ** 2
                + (grid[None, None, :] - col[:, None, None]) ** 2)
    radius = tf.cast(radius_px, tf.float32)[:, None, None]
    if profile == "disk":
        weight = _disk_profile(r, radius)
    else:
        sigma = radius / tf.sqrt(2.0 * tf.math.log(2.0))
        weight = tf.exp(-r ** 2 / (2.0 * sigma ** 2))
    return tf.cast(contrast_hu, tf.float32)[:, None, None] * weight


def _disk_profile(r, radius):
    """`ldct_tf.ct.lesions`' disk: 1 inside ``radius``, an erfc edge of 0.5 px (r in pixels)."""
    return 0.5 * tf.math.erfc((r - radius) / (2.0 ** 0.5 * 0.5))


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
