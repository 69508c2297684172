"""Keras models: denoisers (RED-CNN, U-Net) and the lesion classifier.

Importing this package registers the custom layers and models as Keras serializables, so
``keras.models.load_model`` reads any ``model.keras`` that ldct_tf wrote.
"""

from ldct_tf.models import inference, layers  # noqa: F401,E402  (registers the serializables)
