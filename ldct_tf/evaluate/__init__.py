"""`python -m ldct_tf.evaluate`: noise removal and small-feature preservation on the test split.

`study` is the step (every set, every metric, the claims); `metrics` the fidelity, noise, contrast
and edge measures; `observers` the channelized Hotelling observer; `localization` the scanning
LROC observer; `contrast_detail` both observers per lesion size and contrast bin (its figure and
table: `contrast_detail_report`); `bootstrap` the slice-unit resampling behind every interval;
`baselines` the Gaussian and BM3D references; `report` the tables, figures and claims text.

May import: `ldct_tf.records`, `ldct_tf.models`, `ldct_tf.train` (to load trained networks and the
independent observer), `ldct_tf.ct.lesions` (the lesion size and contrast bins) and the shared
modules (`config`, `errors`, `workdir`, `tf_import`, `cli`).
Nothing of preparation or serving."""
