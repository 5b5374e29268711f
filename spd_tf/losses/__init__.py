"""Training losses: multitask (each task's loss with presence masks, and their sum),
segmentation (Lovász, OHEM, class weighting) and structure (LIP's SSL)."""

from spd_tf._moved import forwarding

# The names of the former module spd_tf.losses (now spd_tf.losses.multitask), one release.
__getattr__ = forwarding("spd_tf.losses", "spd_tf.losses.multitask")
