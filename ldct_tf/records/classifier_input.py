"""The classifier's input: the detection task of observer studies as ``(patch, label)`` batches of
one image centred near the (sham) lesion; in training, optionally with lesions inserted on the fly
(`ldct_tf.records.lesions`) into twins of lesion-absent patches.
"""

from __future__ import annotations

from ldct_tf.config import LesionConfig
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
from ldct_tf.records import schema as F
from ldct_tf.records.augment import crop, flip_and_turn, seed_pairs
from ldct_tf.records.lesions import draw_lesions, lesion_patterns
from ldct_tf.records.reader import read_slices
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
AUTOTUNE = tf.data.AUTOTUNE


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
    seeds = seed_pairs(seed) if training else tf.data.Dataset.range(2 ** 62).map(
        lambda i: tf.stack([tf.cast(seed or 0, tf.int64), i]))
    inserting = training and insert_lesions is not None

    def patches(example, pair):
        image = example[image_key]
        split = tf.random.experimental.stateless_split(pair, 2)
        top, left = _offset_corners(split[0], per_slice, example, max_offset, size)
        cut = crop(image, top, left, size)
        if training:
            cut = flip_and_turn(cut, split[1])
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
    clean = crop(image, top, left, size)
    radius_px, contrast_hu = draw_lesions(seeds[1], count,
                                          tf.reduce_mean(example[F.PIXEL_SPACING_MM]), lesion)
    pattern = lesion_patterns(size, example[F.LESION_ROW] - tf.cast(top, tf.float32),
                              example[F.LESION_COL] - tf.cast(left, tf.float32), radius_px,
                              contrast_hu, lesion.profile)
    lesioned = normalize_hu(denormalize_hu(clean) + pattern[..., None])
    both = flip_and_turn(tf.concat([clean, lesioned], axis=-1), seeds[2])
    return both[..., :1], both[..., 1:]
