"""Pretrained weights for a backbone: from a keras.applications twin, copied layer by name.

Keras 3 has no `load_weights(by_name=True)`, so the weights are loaded into the
keras.applications model the backbone mirrors and copied across; every weighted layer must
match in name and shape. Shared by every builder of the registry.
"""

import os

import keras

from spd_tf.errors import SettingFileNotFoundError, SettingValueError


def wanted(weights) -> bool:
    """False for None / "none": the backbone keeps its initialisation."""
    return weights is not None and str(weights).lower() != "none"


def load(backbone, config, weights, application: str, imagenet_file: str):
    """`weights` (None / "none", "imagenet", a local .h5 path, or a keras model) into
    `backbone`, which mirrors keras.applications `application` (ImageNet: `imagenet_file`)."""
    if not wanted(weights):
        return backbone
    if isinstance(weights, keras.Model):
        return copy_by_name(weights, backbone, weights.name)
    _check_request(config, weights, application)
    return copy_by_name(reference_model(application, weights, imagenet_file), backbone, repr(weights))


def _check_request(config, weights, application: str) -> None:
    """Errors, naming the field and value, for weights that cannot fit `config`."""
    if config.width_multiplier != 1.0:
        raise SettingValueError(
            "{backbone_weights}={weights!r} needs {ModelConfig.width_multiplier}=1.0 (got {width!r}): the "
            "pretrained layers have full widths", weights=weights, width=config.width_multiplier,
        )
    if weights != "imagenet" and not os.path.isfile(weights):
        raise SettingFileNotFoundError(
            "{backbone_weights}={weights!r}: no such file (expected 'imagenet', a local keras.applications "
            "{application} .h5 file, or None)", weights=weights, application=application,
        )


def reference_model(application: str, weights, imagenet_file: str, **kwargs) -> keras.Model:
    """keras.applications `application` (include_top=False) holding `weights`."""
    try:
        return getattr(keras.applications, application)(
            include_top=False, weights=weights, input_shape=(None, None, 3), **kwargs
        )
    except Exception as error:  # download / h5 errors come in many types
        if weights == "imagenet":
            raise SettingValueError(
                "{backbone_weights}='imagenet': could not fetch the keras.applications {application} ImageNet "
                "weights ({error}). Without internet, copy {imagenet_file} into ~/.keras/models/ or pass its "
                "local path as the backbone weights.",
                application=application, error=error, imagenet_file=imagenet_file,
            ) from error
        raise SettingValueError(
            "{backbone_weights}={weights!r} is not a keras.applications {application} (include_top=False) "
            "weights file: {error}", weights=weights, application=application, error=error,
        ) from error


def copy_by_name(reference, backbone, origin):
    """Copies every weighted layer of `reference` into the same-named layer of `backbone`."""
    source = {layer.name: layer for layer in reference.layers if layer.weights}
    target = {layer.name: layer for layer in backbone.layers if layer.weights}
    if set(source) != set(target):
        missing = sorted(set(source) ^ set(target))
        raise ValueError(
            f"backbone weights {origin}: layers {missing[:5]} exist in only one of the "
            f"weights and the backbone (another backbone or depth?)"
        )
    for name, layer in source.items():
        values = layer.get_weights()
        expected = [tuple(w.shape) for w in target[name].weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"backbone weights {origin}: layer {name!r} has weight shapes "
                f"{[v.shape for v in values]}, the backbone expects {expected}"
            )
        target[name].set_weights(values)
    return backbone
