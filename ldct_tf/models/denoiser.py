"""The denoiser with the method's two-phase fit: a `keras.Model` whose ``train_step`` and
``test_step`` implement each phase's loss, driven by ``model.fit``.

Modes (``loss_mode``):

- ``"mse"`` (pretrain): data ``(ldct, ndct)``; loss ``mean((f(x) - y)^2)``.
- ``"weighted"`` (finetune): data ``(ldct, ndct, w)`` with pixel weights ``w`` made once by the
  input pipeline from the activation map A, sharpened by ``threshold`` first
  (`ldct_tf.models.losses.map_weights`): ``w = 1 + boost * A^gamma`` with the default
  ``[finetune] weight_form = "boost"``, ``w = floor + (1 - floor) * A`` with "floor", and
  ``w = 1`` for the uniform control; loss `ldct_tf.models.losses.masked_mse`.
- ``"pairs"`` (finetune, the paper's literal wording): training data ``(ldct * A, ndct * A)``, loss
  MSE; validation data ``(ldct, ndct, A)``, the products taken in ``test_step``.

Validation also reports PSNR and SSIM of ``f(ldct)`` against NDCT in the abdomen window
[-160, 240] HU (data range 400; ``tf.image.psnr``/``tf.image.ssim``: Gaussian 11x11, sigma 1.5),
whatever the mode. Losses are computed in float32; under ``mixed_float16`` Keras wraps the optimizer
in a ``LossScaleOptimizer`` and ``train_step`` scales the loss itself before taking gradients.
"""

from __future__ import annotations

from ldct_tf.config import ModelConfig
from ldct_tf.models import losses
from ldct_tf.models.preprocessing import ABDOMEN_WINDOW_HU, denormalize_hu
from ldct_tf.models.redcnn import build_redcnn
from ldct_tf.models.unet import build_unet
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

LOSS_MODES = ("mse", "weighted", "pairs")
WINDOW_HU = ABDOMEN_WINDOW_HU  # the reported PSNR/SSIM


def build_network(model: ModelConfig) -> keras.Model:
    """The functional denoising network of ``model.arch``."""
    if model.arch == "unet":
        return build_unet(model.filters, model.depth, model.kernel_size)
    return build_redcnn(model.filters, model.depth, model.kernel_size)


def windowed_hu(x):
    """Network range -> HU clipped to the abdomen window, shifted to [0, 400]."""
    hu = denormalize_hu(tf.cast(x, tf.float32))
    return tf.clip_by_value(hu, *WINDOW_HU) - WINDOW_HU[0]


@keras.saving.register_keras_serializable(package="ldct_tf")
class Denoiser(keras.Model):
    """Wraps a denoising ``network`` with the phase's loss (see the module docstring)."""

    def __init__(self, network: keras.Model, loss_mode: str = "mse", **kwargs):
        super().__init__(**kwargs)
        if loss_mode not in LOSS_MODES:
            raise ValueError(f"loss_mode must be one of {LOSS_MODES}, got {loss_mode!r}")
        self.network = network
        self.loss_mode = loss_mode
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.ssim_tracker = keras.metrics.Mean(name="ssim")

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.psnr_tracker, self.ssim_tracker]

    def _loss(self, data, training: bool):
        """(loss, prediction, ldct, ndct) of one batch in this mode; loss in float32. prediction
        is the network's output for ``ldct`` (None in pairs validation, which feeds ldct*A)."""
        ldct, ndct, extra = (tuple(data) + (None,))[:3]
        if self.loss_mode == "pairs" and extra is not None:  # validation: (ldct, ndct, A)
            return losses.mse(ndct * extra, self(ldct * extra, training=training)), None, ldct, ndct
        prediction = self(ldct, training=training)
        if self.loss_mode == "weighted":
            return losses.masked_mse(ndct, prediction, extra), prediction, ldct, ndct
        return losses.mse(ndct, prediction), prediction, ldct, ndct

    def train_step(self, data):
        # The optimizer sums gradients over replicas: each replica's loss counts 1/replicas.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss = self._loss(data, training=True)[0]
            # A no-op for plain optimizers; a LossScaleOptimizer multiplies by its scale (and
            # unscales the gradients in apply).
            scaled = self.optimizer.scale_loss(loss / replicas)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        loss, prediction, ldct, ndct = self._loss(data, training=False)
        if prediction is None:
            prediction = self(ldct, training=False)
        denoised = windowed_hu(prediction)
        reference = windowed_hu(ndct)
        span = WINDOW_HU[1] - WINDOW_HU[0]
        self.loss_tracker.update_state(loss)
        self.psnr_tracker.update_state(tf.image.psnr(denoised, reference, max_val=span))
        self.ssim_tracker.update_state(tf.image.ssim(denoised, reference, max_val=span))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {**super().get_config(),
                "network": keras.saving.serialize_keras_object(self.network),
                "loss_mode": self.loss_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        return cls(network, **config)
