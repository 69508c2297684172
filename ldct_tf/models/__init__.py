"""Keras models and what defines them: the denoisers (RED-CNN `redcnn`, U-Net `unet`, built by
`denoiser.build_network`, trained through the `denoiser.Denoiser` two-phase model), the lesion
classifier (`classifier`), shared layers (`layers`), the inference form of a network
(`inference.for_inference`), the (masked) losses (`losses`) and the one HU normalisation used by
training, evaluation and the export (`preprocessing`).

May import: TensorFlow/Keras, numpy, `ldct_tf.config`, `ldct_tf.tf_import`. Nothing of records,
steps or serving.

Importing this package registers the custom layers and models as Keras serializables, so
``keras.models.load_model`` reads any ``model.keras`` that ldct_tf wrote.
"""

from ldct_tf.models import inference, layers  # noqa: F401,E402  (registers the serializables)
