"""MobileNetV3-Large (keras.applications) as the SPD trunk: a backbone that cannot dilate.

keras.applications builds it with fixed strides 2..32, so the registry's contract (both
levels at input / output_stride) is met by picking and resampling levels, not by dilation:
- MIDDLE (pose, DensePose): the last block that natively sits at stride `output_stride`
  (expanded_conv_5, 40 channels, at 8; expanded_conv_11, 112 channels, at 16), unchanged.
- DEEP (parsing): the final 1x1 conv's 960-channel stride-32 map, resized bilinearly to
  MIDDLE's size. Upsampling keeps the trunk's cost (a dilated MobileNet would run its last
  stages at 4-16x the pixels); the parsing head then sees an interpolated map, so its
  detail below stride 32 comes from the refinement stages, not from the trunk.

Layers keep keras.applications' names, so weights copy by name. The network is built by
keras.applications, then cloned so every layer takes the model's dtype policy and each
BatchNorm follows `ModelConfig.backbone_bn`; its own 0..255 -> [-1, 1] rescaling
(`include_preprocessing`) runs in float32. `width_multiplier` is MobileNet's `alpha`.
"""

import keras
import tensorflow as tf

from spd_tf.model.backbones import DEEP, MIDDLE
from spd_tf.model.backbones import weights as pretrained
from spd_tf.model.layers import backbone_batch_norm

APPLICATION = "MobileNetV3Large"
IMAGENET_FILE = "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"
# output stride -> the last block output at that stride (keras.applications names).
_MIDDLE_LAYERS = {8: "expanded_conv_5_add", 16: "expanded_conv_11_add"}


@keras.saving.register_keras_serializable(package="spd_tf")
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of `images` to the height and width of `reference`."""

    def call(self, images, reference):
        resized = tf.image.resize(images, tf.shape(reference)[1:3], method="bilinear")
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, images_shape, reference_shape):
        return (images_shape[0], reference_shape[1], reference_shape[2], images_shape[3])


def build(config, *, output_stride, dtype, name):
    """MobileNetV3-Large as a functional `keras.Model`: RGB 0..255 -> {MIDDLE, DEEP}."""
    if output_stride not in _MIDDLE_LAYERS:
        raise ValueError(
            f"output_stride={output_stride!r} is not one of {tuple(_MIDDLE_LAYERS)} "
            f"(backbone mobilenet_v3_large)"
        )
    application = keras.applications.MobileNetV3Large(
        include_top=False, weights=None, alpha=config.width_multiplier,
        input_tensor=keras.Input((None, None, 3), name="image"), include_preprocessing=True,
    )
    trunk = keras.models.clone_model(
        application, clone_function=_cloner(config.backbone_bn, dtype)
    )
    middle = trunk.get_layer(_MIDDLE_LAYERS[output_stride]).output
    deep = ResizeLike(name="deep_resize", dtype=dtype)(trunk.output, middle)
    return keras.Model(trunk.inputs[0], {MIDDLE: middle, DEEP: deep}, name=name)


def _cloner(backbone_bn, dtype):
    """Layer -> its copy under `dtype` (rescaling in float32), BN per `backbone_bn`."""

    def clone(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.Layer):  # a keras op (x + 3 in hard_sigmoid)
            return layer.__class__.from_config(config)
        # Rescaling in float32: under bfloat16 the raw 0..255 pixels would round first.
        config["dtype"] = "float32" if isinstance(layer, keras.layers.Rescaling) else dtype
        if isinstance(layer, keras.layers.BatchNormalization):
            config.pop("trainable", None)
            return backbone_batch_norm(backbone_bn, **config)
        return layer.__class__.from_config(config)

    return clone


def load_weights(backbone, config, weights):
    """Copies keras.applications MobileNetV3Large weights into `backbone`, layer by name.

    Args:
      weights: None / "none" (keep the initialisation), "imagenet", a local .h5 /
        .weights.h5 path of a keras.applications MobileNetV3Large (include_top=False,
        alpha 1), or such a model itself.
    """
    return pretrained.load(backbone, config, weights, APPLICATION, IMAGENET_FILE)
