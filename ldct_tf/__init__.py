"""ldct_tf: low-dose CT denoising with TensorFlow/Keras.

Implements Han & Baek, "Low-dose CT denoising via CNN trained using images with activation map"
(SPIE Medical Imaging 2022, vol. 12035): a lesion classifier's Grad-CAM map of each normal-dose
image weights the denoiser's loss during a fine-tuning phase that follows plain-MSE pre-training.

Importing the package is cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"
