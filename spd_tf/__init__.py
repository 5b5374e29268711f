"""spd_tf: SPD (Segmentation-Pose-DensePose) human parsing in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

from spd_tf._moved import install

install()
