"""Random patches cut and turned the same way for every image of a sample: a stateless seed pair
per slice (`seed_pairs`), crops at given corners (`crop`) and a random flip and quarter turn per
patch (`flip_and_turn`), applied to the images stacked as channels so LDCT, NDCT and the map move
together.
"""

from __future__ import annotations

from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
_SEED_SPACE = 2 ** 31 - 1


def seed_pairs(seed: int | None) -> "tf.data.Dataset":
    """A stateless-op seed pair per slice: fixed by ``seed``, different every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).map(
        lambda pair: pair % _SEED_SPACE)


def crop(image, top, left, size: int):
    """``[n, size, size, C]`` patches of ``image`` (``[H, W, C]``) at the given corners."""
    rows = top[:, None] + tf.range(size)[None, :]
    cols = left[:, None] + tf.range(size)[None, :]
    return tf.gather(tf.gather(image, rows), cols, axis=2, batch_dims=1)


def flip_and_turn(patches, seed):
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
