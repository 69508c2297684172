"""`python -m ldct_tf.train --phase PHASE`: every model of the method is trained here.

`phases` is the command (one ``--phase`` per model); `classifier` trains the lesion classifier
whose Grad-CAM maps weight the fine-tune, `observer` the independent CNN observer of the
evaluation, `denoiser` the two-phase denoiser (pretrain, then the map-weighted fine-tune and its
controls). `callbacks` holds the TensorBoard, image-panel and resumable-backup callbacks,
`precision` the mixed-precision policy scope, `distribute` the `tf.distribute` strategy of the
process (several GPUs, several workers) and what it changes.

May import: `ldct_tf.models`, `ldct_tf.records`, `ldct_tf.evaluate.metrics` (validation AUC) and
the shared modules (`config`, `errors`, `workdir`, `tf_import`, `cli`). Nothing of preparation or
serving."""
