"""Graph-compatible inference: image bytes or pixels in, SPD outputs at the image's size out.

Used by the SavedModel signatures (deploy/saved_model.py), `spd-predict`, and `evaluate.py --model`, so all
three map outputs back to the image the same way.

Geometry: an image is resized to `ModelConfig.input_size` with a plain bilinear resize (no
aspect-keeping pad), as JPPNet does at test time; LIP images are person crops, and every
output maps back with one scale per axis. The "geometry" of a batch is therefore just each
image's original size, `image_size` int32 [B, 2] (height, width). Pixel coordinates use
half-pixel centres like `tf.image.resize`: input pixel x maps to (x + 0.5) * W / w - 0.5.

    batch, image_size = preprocess(images_uint8, config.input_size)   # or decode_images
    outputs = forward(model, batch, PROTOCOLS["fast"], config.label_set)  # model frame
    results = postprocess(outputs, image_size, include_probabilities=False)
    # or infer(model, images, config.input_size, protocol=PROTOCOLS["paper"], ...)
    for one in split_batch(results): ...                              # numpy per image

Memory is bounded per request: a request may hold at most `MAX_REQUEST_PIXELS`, counted as
batch size x the largest height x the largest width (the outputs are padded to that) and at
least the model input per image; sizes are read from the headers and refused before anything
is decoded. Post-processing upsamples the model grids in bands of rows, so no full-size float
map of all classes exists (probabilities only when asked for), and `forward_in_chunks` runs
the network on a few images at a time.

`results`: the outputs of spd_tf.inference.output_spec.OUTPUTS (batch padded to the largest image,
`image_size` says which part of each row is real, the rest is the output's `fill`).
Branches the model lacks are absent keys. The instance branch's person map and scores
(`group_instances`) need its settings, `grouping=instance_grouping(model_config)`; without
them postprocess leaves them out. Given to `forward` too, a DensePose model also gets one ROI
per detected person (`person_densepose`), pasted back on that person's pixels.

Modules: protocol (limits, TestProtocol, output names; no TensorFlow), decode (bytes and
pixels in), forward_pass (the network under a protocol, `infer`), grouping (persons),
postprocessing (what the tasks' graph post-processing is made of), numpy_path (its numpy
twin), results (`postprocess`, `postprocess_numpy`: each task's in turn; `split_batch`),
output_spec (the table of outputs). `spd_tf.inference.<name>` reaches any of their public
names, importing the module that holds it on first use, so the numpy names never import
TensorFlow.
"""

import importlib

# Searched in this order: the TensorFlow-free modules first.
_MODULES = ("protocol", "numpy_path", "output_spec", "results", "decode", "grouping", "postprocessing",
            "forward_pass")


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _MODULES:  # `from spd_tf.inference import numpy_path` asks here first
        return importlib.import_module(f"{__name__}.{name}")
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name in vars(module):
            return vars(module)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
