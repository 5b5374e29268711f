"""SavedModel export: signatures agree with the Keras model, errors are clear, versions kept."""

import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_support import (  # noqa: F401 (exported is a fixture)
    TINY,
    assert_same_labels,
    encode,
    exported,
    keras_reference,
    person_image,
    png_header,
    training_run,
)

from spd_tf import inference, layout
from spd_tf.data import schema
from spd_tf.deploy import cli as export_cli
from spd_tf.deploy import saved_model
from spd_tf.model import restore
from spd_tf.model.spd import build_model


def _inputs():
    """(encoded bytes, the RGB pixels a decoder must produce) for JPEG/PNG/gray/RGBA."""
    rgb = person_image(90, 60, seed=1)
    gray = person_image(47, 101, seed=2)[..., 0]
    rgba = np.concatenate([person_image(64, 64, seed=3), np.full((64, 64, 1), 128, np.uint8)], -1)
    wide = person_image(33, 140, seed=4)
    jpeg = encode(rgb, ".jpg")
    return [
        (jpeg, tf.io.decode_jpeg(jpeg, channels=3).numpy()),
        (encode(wide, ".png"), wide),
        (encode(gray, ".png"), np.repeat(gray[..., None], 3, -1)),
        (encode(gray, ".jpg"), tf.io.decode_jpeg(encode(gray, ".jpg"), channels=3).numpy()),
        (encode(rgba, ".png"), rgba[..., :3]),
    ]


def test_serving_default_matches_keras_for_mixed_batch(exported):
    model, config, _, loaded = exported
    inputs = _inputs()
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([data for data, _ in inputs]))
    out = {k: v.numpy() for k, v in out.items()}
    assert out["labels"].dtype == np.int32 and out["keypoints"].dtype == np.float32
    assert set(out) == {"labels", "image_size", "keypoints", "densepose_iuv", "densepose_box"}
    canvas = (max(p.shape[0] for _, p in inputs), max(p.shape[1] for _, p in inputs))
    assert out["labels"].shape == (len(inputs), *canvas)
    for row, (_, pixels) in enumerate(inputs):
        height, width = pixels.shape[:2]
        np.testing.assert_array_equal(out["image_size"][row], [height, width])
        logits, raw = keras_reference(model, config, pixels)
        assert_same_labels(out["labels"][row, :height, :width], logits)
        assert (out["labels"][row, height:] == 255).all() and (out["labels"][row, :, width:] == 255).all()
        # Keypoints: the Keras heatmaps decoded by the numpy twin of the graph's decoding (the
        # sub-cell refinement is continuous, so float noise moves a joint by far under a pixel).
        heat = raw["pose"]
        cell = np.array([width / heat.shape[1], height / heat.shape[0]])
        expected = inference.heatmap_keypoints_numpy(heat[None], [[height, width]])[0, :, :2]
        assert np.all(np.abs(out["keypoints"][row, :, :2] - expected) <= 0.02 * cell + 1e-3)
        np.testing.assert_allclose(out["keypoints"][row, :, 2], heat.max((0, 1)), rtol=1e-4, atol=1e-5)
        y0, x0, y1, x1 = raw["densepose_box"]
        np.testing.assert_allclose(out["densepose_box"][row], [x0 * width, y0 * height, x1 * width, y1 * height],
                                   rtol=1e-4, atol=1e-3)
        iuv = out["densepose_iuv"][row]
        assert not iuv[height:].any() and not iuv[:, width:].any()
        assert iuv[..., 0].max() <= 24 and 0 <= iuv[..., 1:].min() and iuv[..., 1:].max() <= 1


def test_image_tensor_and_tf_example_signatures(exported):
    model, config, _, loaded = exported
    images = np.stack([person_image(72, 48, seed=5), person_image(72, 48, seed=6)])
    out = loaded.signatures["image_tensor"](images=tf.constant(images))
    for row in range(2):
        assert_same_labels(out["labels"][row].numpy(), keras_reference(model, config, images[row])[0])
    png = encode(images[0], ".png")
    example = schema.encode_example(png, height=72, width=48, source_id="a", dataset="synthetic")
    from_example = loaded.signatures["tf_example"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_array_equal(from_example["labels"][0], out["labels"][0])
    np.testing.assert_allclose(from_example["keypoints"][0], out["keypoints"][0], rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_saved_model_cli_lists_the_three_signatures(exported):
    path = exported[2]
    shown = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", str(path)], capture_output=True, text=True, check=True
    ).stdout
    blocks = {name: shown.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
              for name in ("serving_default", "image_tensor", "tf_example")}
    expected_inputs = {
        "serving_default": ("image_bytes", "DT_STRING", "(-1)"),
        "image_tensor": ("images", "DT_UINT8", "(-1, -1, -1, 3)"),
        "tf_example": ("examples", "DT_STRING", "(-1)"),
    }
    outputs = {
        "labels": ("DT_INT32", "(-1, -1, -1)"),
        "image_size": ("DT_INT32", "(-1, 2)"),
        "keypoints": ("DT_FLOAT", "(-1, 16, 3)"),
        "densepose_iuv": ("DT_FLOAT", "(-1, -1, -1, 3)"),
        "densepose_box": ("DT_FLOAT", "(-1, 4)"),
    }
    for name, block in blocks.items():
        key, dtype, shape = expected_inputs[name]
        entry = block.split(f"inputs['{key}'] tensor_info:")[1]
        assert f"dtype: {dtype}" in entry.split("name:")[0] and f"shape: {shape}" in entry.split("name:")[0]
        for output, (dtype, shape) in outputs.items():
            entry = block.split(f"outputs['{output}'] tensor_info:")[1].split("name:")[0]
            assert f"dtype: {dtype}" in entry and f"shape: {shape}" in entry, (name, output, entry)


def test_tfsm_layer_loads_the_export(exported):
    _, _, path, loaded = exported
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    data = tf.constant([encode(person_image(40, 30), ".png")])
    np.testing.assert_array_equal(layer(data)["labels"], loaded.signatures["serving_default"](image_bytes=data)["labels"])


@pytest.mark.parametrize(
    "signature, value, message",
    [
        ("serving_default", [b"GIF89a nope"], "image 0 is not a JPEG or PNG image"),
        ("serving_default", [b""], "image 0 is not a JPEG or PNG image"),
        ("serving_default", [png_header(0, 5)], "image 0 has zero size"),
        ("serving_default", [png_header(50000, 50000)], r"image 0 is \[50000 50000\] pixels"),
        ("serving_default", [], "no images"),
        ("image_tensor", np.zeros((1, 0, 8, 3), np.uint8), "zero height or width"),
        ("image_tensor", np.zeros((1, 5000, 2, 3), np.uint8), "larger than the 4096 pixels"),
        ("tf_example", [b"\x00garbage"], "Could not parse example input"),
    ],
    ids=["not-image", "empty-bytes", "zero-size", "enormous", "empty-batch", "tensor-zero",
         "tensor-enormous", "bad-example"],
)
def test_bad_input_is_a_clear_error(exported, signature, value, message):
    function = exported[3].signatures[signature]
    (name,) = function.structured_input_signature[1]
    dtype = tf.uint8 if signature == "image_tensor" else tf.string
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        function(**{name: tf.constant(value, dtype)})


def test_enormous_real_image_is_refused_before_decoding(exported):
    big = encode(np.zeros((4100, 3, 3), np.uint8), ".jpg")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image 1 is \[4100 3\] pixels"):
        exported[3].signatures["serving_default"](image_bytes=tf.constant([encode(person_image(9, 9), ".png"), big]))


SMALL_S = TINY.replace(variant="s", num_refinement_stages=0)


def test_variants_versions_and_mixed_precision(tmp_path, capsys):
    """A CLI export of an `s` run, then an API export of a mixed-precision `sd` model into
    the same model directory: absent branches are absent outputs, versions 1 and 2 kept."""
    base = tmp_path / "exports"
    image = person_image(50, 40)
    data = tf.constant([encode(image, ".png")])

    s_model = build_model(SMALL_S)
    training_run(tmp_path / "run", s_model, SMALL_S)
    assert export_cli.main(["--model", str(tmp_path / "run"), "--out", str(base), "--model-name", "variants"]) == 0
    assert "tensorflow_model_server" in capsys.readouterr().out
    out = tf.saved_model.load(str(base / "variants" / "1")).signatures["serving_default"](image_bytes=data)
    assert set(out) == {"labels", "image_size"}
    assert_same_labels(out["labels"][0].numpy(), keras_reference(s_model, SMALL_S, image)[0])

    sd_config = SMALL_S.replace(variant="sd")
    sd_model = build_model(sd_config, dtype="mixed_bfloat16")  # as trained under mixed precision
    path = saved_model.export_saved_model(sd_model, sd_config, base, "variants", include_probabilities=True)
    assert path == base / "variants" / "2"
    out = tf.saved_model.load(str(path)).signatures["serving_default"](image_bytes=data)
    assert set(out) == {"labels", "image_size", "densepose_iuv", "densepose_box", "probabilities"}
    assert out["probabilities"].dtype == tf.float32 and out["probabilities"].shape == (1, 50, 40, 20)
    float_model = restore.model_in_precision(sd_model, sd_config, "float32")
    assert restore.compute_policy(float_model) == "float32" and float_model is not sd_model
    for weight, copy in zip(sd_model.get_weights(), float_model.get_weights()):
        np.testing.assert_array_equal(weight, copy)
    assert_same_labels(out["labels"][0].numpy(), keras_reference(float_model, sd_config, image)[0])

    assert layout.existing_versions(base / "variants") == [1, 2]
    with pytest.raises(FileExistsError, match="never overwrite"):
        saved_model.export_saved_model(sd_model, sd_config, base, "variants", version=1)
    listing = (base / "models.config").read_text()
    assert 'name: "variants"' in listing and "versions: 1 versions: 2" in listing
    assert 'base_path: "/models/variants"' in listing


def _conv_dtypes(function) -> set:
    """Dtypes of every Conv2D-like op in a signature's graph and the functions it calls."""
    graph = function.graph.as_graph_def()
    nodes = [n for f in graph.library.function for n in f.node_def] + list(graph.node)
    return {tf.as_dtype(n.attr["T"].type).name for n in nodes if "Conv2D" in n.op}


def test_bfloat16_export_runs_bfloat16_convs_with_float32_outputs(tmp_path, capsys):
    training_run(tmp_path / "run", build_model(SMALL_S), SMALL_S)
    assert export_cli.main(["--model", str(tmp_path / "run"), "--out", str(tmp_path / "e"), "--precision", "bfloat16",
                        "--include-probabilities"]) == 0
    assert "(bfloat16)" in capsys.readouterr().out
    function = tf.saved_model.load(str(tmp_path / "e" / "spd" / "1")).signatures["serving_default"]
    assert {"bfloat16", "float32"} <= _conv_dtypes(function)  # bf16 trunk, float32 prediction conv
    out = function(image_bytes=tf.constant([encode(person_image(50, 40), ".png")]))
    assert out["probabilities"].dtype == tf.float32 and out["labels"].shape == (1, 50, 40)
    np.testing.assert_allclose(tf.reduce_sum(out["probabilities"], -1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="precision='float16' is not one of float32, bfloat16"):
        restore.model_in_precision(build_model(SMALL_S), SMALL_S, "float16")


def test_cli_names_missing_or_mismatched_runs(tmp_path, capsys):
    assert export_cli.main(["--model", str(tmp_path)]) == 1
    assert "config.json" in capsys.readouterr().err
    wider = SMALL_S.replace(width_multiplier=0.25)
    training_run(tmp_path, build_model(wider), SMALL_S)  # checkpoint of another model
    assert export_cli.main(["--model", str(tmp_path)]) == 1
    assert "does not hold this model's weights" in capsys.readouterr().err


def _bench_serving():
    """bench/serving.py (a script, not part of the package) as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "serving.py"
    spec = importlib.util.spec_from_file_location("bench_serving", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_over_the_pixel_budget_are_refused_before_decoding(exported):
    request, side = _bench_serving().largest_request()
    assert side == 4096 and len(request) < 100_000  # small on the wire, 16.8 M pixels decoded
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"the request is 33554432 pixels .* at most 16777216"):
        exported[3].signatures["serving_default"](image_bytes=tf.constant([request, request]))


@pytest.mark.slow
@pytest.mark.subprocess
def test_peak_memory_of_the_largest_accepted_request_is_bounded(exported):
    """One 4096 x 4096 PNG took 11 GB before banded post-processing; now ~2x its outputs."""
    bench = _bench_serving()
    request, _ = bench.largest_request()
    memory = bench.serving_peak_memory(exported[2], [request])
    assert memory["labels_shape"] == [1, 4096, 4096]
    # Outputs: labels int32 + IUV float32 = 16 B/pixel = 268 MB; decoding adds 50 MB.
    assert memory["peak_rss_mb"] - memory["rss_after_load_mb"] < 1024, memory
