"""`python -m ldct_tf.evaluate`: noise removal and small-feature preservation on the test split.

`study` is the step (every set, every metric, the claims); `claim_metrics` the one table of the
claim metrics (how each is read, computed, resampled and judged) and the comparisons; `claims`
the single-seed paired comparisons; `seed_study` the same comparisons over training seeds
(`python -m ldct_tf.seed_study`; its summary and figure: `seed_study_report`); `display` the set
order, labels, cells and figure set-up every output shares; `metrics` the fidelity, noise, contrast
and edge measures; `observers` the channelized Hotelling observer; `localization` the scanning
LROC observer; `contrast_detail` both observers per lesion size and contrast bin (its figure and
table: `contrast_detail_report`); `bootstrap` the slice-unit resampling behind every interval;
`baselines` the Gaussian and BM3D references; `lcd` the per-insert LG-CHO study of the MITA-LCD
phantom (`python -m ldct_tf.evaluate.lcd`); `report` the tables, figures and claims text.

May import: `ldct_tf.records`, `ldct_tf.models`, `ldct_tf.train` (to load trained networks and the
independent observer), `ldct_tf.ct` (the lesion size and contrast bins; `lcd` images the MITA-LCD
phantom with the scanner model) and the shared modules (`config`, `errors`, `workdir`,
`tf_import`, `cli`).
Nothing of preparation or serving."""
