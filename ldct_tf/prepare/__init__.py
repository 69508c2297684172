"""`python -m ldct_tf.prepare`: DICOM or phantoms in, LDCT/NDCT TFRecords out (TFX ExampleGen
style).

The driver plans work units (`plan`: series -> split, by patient), the workers turn each unit into
slice examples (`examples`), and the Apache Beam pipeline (`beam`) writes shards, stats and the
quarantine list; `pipeline` is the step itself (``run(config, workdir)`` and the command line).

May import: `ldct_tf.ct`, `ldct_tf.dicom`, `ldct_tf.records`, Apache Beam and the shared modules
(`config`, `errors`, `workdir`, `tf_import`, `cli`). Nothing of training, evaluation or serving."""
