"""The prepared TFRecords: what a record holds (`schema`), per-split statistics (`stats`), the
shard files on disk and their checks (`files`, whose public names this package re-exports:
``records.pattern(...)``, ``records.shards(...)``), reading them (`reader`: tf.data slices, NumPy
values, corrupt shards named) and writing them whole with the activation maps added (`writer`).
The tf.data inputs built on the reader: the denoiser's patches and slices (`denoiser_input`), the
classifier's lesion patches (`classifier_input`), the crop and turn they share (`augment`), lesions
drawn in TensorFlow ops (`lesions`) and the oracle map (`oracle`).

May import: TensorFlow, numpy, `ldct_tf.models.preprocessing` (the one HU normalisation),
`ldct_tf.evaluate.metrics` (the noise index in the stats) and the shared modules (`config`,
`errors`, `atomic`, `workdir`, `tf_import`, `cli`). Nothing of preparation, training or serving."""

from ldct_tf.records.files import (
                                   check_files,
                                   compression_of,
                                   count_records,
                                   pattern,
                                   remove_shards,
                                   shard_name,
                                   shards,
                                   split_sizes,
                                   suffix,
                                   verify_shards,
                                   write_schema,
                                   write_shard_counts,
)

__all__ = ["check_files", "compression_of",
           "count_records", "pattern", "remove_shards", "shard_name", "shards", "split_sizes",
           "suffix",
           "verify_shards", "write_schema", "write_shard_counts"]
