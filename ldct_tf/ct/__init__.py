"""CT physics and content: built-in phantoms (`phantoms`), the fan-beam scan and projection-domain
low-dose simulation (`simulate`), and synthetic lesions (`lesions`).

May import: numpy, scipy, scikit-image, `ldct_tf.config`, `ldct_tf.errors`. Nothing of
TensorFlow, records or training.
"""
