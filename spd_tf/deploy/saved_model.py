"""SavedModel export for TF Serving: decode, resize, SPD and postprocessing in one graph.

    from spd_tf.deploy.saved_model import export_saved_model
    path = export_saved_model(model, model_config, "exports")        # -> exports/spd/1
    spd-export --model ccp-small --out exports                     # the command line: spd_tf.deploy.cli

Layout (what `tensorflow_model_server --model_base_path=OUT/spd` serves):
  OUT/<model_name>/<version>/   one SavedModel per export; version = next integer, an
                                existing version is never overwritten
  OUT/models.config             `--model_config_file` listing every model and version
                                under OUT, with base paths under /models (docker mount)

Signatures (absent branches -> absent outputs; the instance branch adds `instances` and
`instance_scores`):
  serving_default  image_bytes string [B]: encoded JPEG/PNG, any size, gray/RGBA accepted
  image_tensor     images uint8 [B, H, W, 3]
  tf_example       examples string [B]: serialized tf.train.Example of spd_tf.data.schema
All return the outputs of spd_tf.inference.output_spec.OUTPUTS (probabilities only when exported with
include_probabilities), padded to the largest image of the batch.
Bad input (not JPEG/PNG, truncated, zero-size, a side over `max_image_side`) fails the request
with an InvalidArgumentError naming the image, which TF Serving returns to the client as
"error"; so does a request over `max_request_pixels` (spd_tf.inference: batch x largest
height x largest width). The network runs on `forward_batch` images at a time and the
post-processing in bands, so a request's peak memory is bounded by that budget.

The model is rebuilt in the export precision with its weights copied (whatever policy it
was trained under). float32 (the default) runs fast on any CPU. bfloat16 runs the network
under mixed_bfloat16 (bfloat16 convs, float32 variables) with the logits, heatmaps and all
post-processing in float32; it pays off only where bfloat16 has hardware (CPUs with
AVX512_BF16 or AMX, GPUs) and never under XLA on CPU (XLA drops oneDNN's bfloat16 kernels).
"""

from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from spd_tf import inference, layout
from spd_tf.config import ModelConfig
from spd_tf.data import schema
from spd_tf.fileio import atomic_path, write_bytes_atomic
from spd_tf.model import restore

SERVING_ROOT = "/models"  # where the official tensorflow/serving image expects models
_IMAGE_KEY = "image/encoded"


def export_saved_model(
    model: keras.Model,
    model_config: ModelConfig,
    export_base,
    model_name: str = "spd",
    version: Optional[int] = None,
    include_probabilities: bool = False,
    max_image_side: int = inference.MAX_IMAGE_SIDE,
    max_request_pixels: Optional[int] = None,
    forward_batch: int = 1,
    precision: str = "float32",
) -> Path:
    """Writes EXPORT_BASE/<model_name>/<version>/ atomically and refreshes models.config.

    version=None takes the next integer after the existing ones; an explicit version that
    already exists is a FileExistsError. `precision` is one of NETWORK_PRECISIONS (module
    docstring). Returns the version directory. max_request_pixels None =
    inference.MAX_REQUEST_PIXELS, a quarter of it with probabilities.
    """
    layout.check_model_name(model_name)
    model_dir = Path(export_base) / model_name
    if version is None:
        version = layout.next_version(model_dir)
    if version < 1:
        raise ValueError(f"version={version} must be >= 1 (TF Serving ignores version 0)")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; exports never overwrite a version")
    if max_request_pixels is None:
        max_request_pixels = inference.MAX_REQUEST_PIXELS // (4 if include_probabilities else 1)
    serving_model = restore.model_in_precision(model, model_config, precision)
    archive = build_archive(serving_model, model_config, include_probabilities, max_image_side,
                            max_request_pixels, forward_batch)
    with atomic_path(final, directory=True) as temp:
        archive.write_out(str(temp), verbose=False)
        layout.write_label_set(temp, model_config.label_set)
        layout.write_keypoint_set(temp, model_config.keypoint_set)
        if final.exists():  # another export took this version while we traced
            raise FileExistsError(f"{final} appeared during export; not overwriting it")
    write_models_config(export_base)
    return final


def build_archive(
    model: keras.Model, model_config: ModelConfig, include_probabilities: bool, max_image_side: int,
    max_request_pixels: int = inference.MAX_REQUEST_PIXELS, forward_batch: int = 1,
) -> keras.export.ExportArchive:
    """The three serving endpoints around `model` (see module docstring)."""
    size = tuple(model_config.input_size)

    # One traced model graph shared by the three endpoints (tracing dominates export time).
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *size, 3], tf.float32),
            tf.TensorSpec([None, 2], tf.int32),
        ]
    )
    def run(batch, image_size):
        grouping = inference.instance_grouping(model_config)
        outputs = inference.forward_in_chunks(model, batch, forward_batch, grouping)
        return inference.postprocess(outputs, image_size, include_probabilities, grouping)

    def from_bytes(image_bytes):
        return run(*inference.decode_images(image_bytes, size, max_image_side, max_request_pixels))

    def from_tensor(images):
        return run(*inference.preprocess(images, size, max_side=max_image_side, max_pixels=max_request_pixels))

    def from_examples(examples):
        # Only the image is needed; parsing just that field reuses the byte checks above
        # (the size is checked before anything is decoded).
        spec = {_IMAGE_KEY: schema.FEATURE_SPEC[_IMAGE_KEY]}
        return from_bytes(tf.io.parse_example(examples, spec)[_IMAGE_KEY])

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        "image_tensor", from_tensor, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    )
    archive.add_endpoint(
        "tf_example", from_examples, [tf.TensorSpec([None], tf.string, name="examples")]
    )
    return archive


def write_models_config(export_base, serving_root: str = SERVING_ROOT) -> Path:
    """EXPORT_BASE/models.config (text proto) listing every model and its versions."""
    export_base = Path(export_base)
    entries = []
    for model_dir in sorted(p for p in export_base.iterdir() if p.is_dir()):
        versions = layout.existing_versions(model_dir)
        if not versions:
            continue
        listed = " ".join(f"versions: {v}" for v in versions)
        entries.append(
            "  config {\n"
            f'    name: "{model_dir.name}"\n'
            f'    base_path: "{serving_root}/{model_dir.name}"\n'
            '    model_platform: "tensorflow"\n'
            f"    model_version_policy {{ specific {{ {listed} }} }}\n"
            "  }\n"
        )
    path = export_base / layout.MODELS_CONFIG
    write_bytes_atomic(path, ("model_config_list {\n" + "".join(entries) + "}\n").encode())
    return path
