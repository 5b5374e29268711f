"""schema.encode_example / decode_example round trips on the real LIP samples."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.data import layouts, schema

LIP_SAMPLES = ("684_2150041", "86_185913")


def _round_trip(example: tf.train.Example) -> dict:
    return {k: v.numpy() for k, v in schema.decode_example(example.SerializeToString()).items()}


def _image_path(shared_data, source_id):
    for folder in ("lip_sample/images", "person_images/lip_jppnet_examples"):
        path = shared_data / folder / f"{source_id}.jpg"
        if path.exists():
            return path
    raise AssertionError(f"no image for {source_id}")


@pytest.mark.parametrize("source_id", LIP_SAMPLES)
def test_lip_image_and_parsing_round_trip(shared_data, source_id):
    jpeg = (shared_data / "lip_sample/images" / f"{source_id}.jpg").read_bytes()
    png = (shared_data / "lip_sample/parsing" / f"{source_id}.png").read_bytes()
    parsing = cv2.imread(str(shared_data / "lip_sample/parsing" / f"{source_id}.png"), cv2.IMREAD_UNCHANGED)
    height, width = parsing.shape
    decoded = _round_trip(schema.encode_example(
        jpeg, height=height, width=width, source_id=source_id, dataset="lip", parsing_png=png
    ))
    np.testing.assert_array_equal(decoded["parsing"], parsing)
    reference = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    np.testing.assert_array_equal(decoded["image"], reference)
    # An independent decoder agrees up to JPEG IDCT rounding.
    opencv = cv2.cvtColor(cv2.imread(str(shared_data / "lip_sample/images" / f"{source_id}.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(decoded["image"].astype(int) - opencv).mean() < 1.0
    assert decoded["image"].shape == (height, width, 3)
    assert (decoded["height"], decoded["width"]) == (height, width)
    assert decoded["source_id"].decode() == source_id and decoded["dataset"] == b"lip"
    assert decoded["has_segmentation"] == 1 and decoded["has_pose"] == 0 and decoded["has_densepose"] == 0
    np.testing.assert_array_equal(decoded["keypoints"], -np.ones((16, 3)))


def test_grayscale_jpeg_decodes_to_three_equal_channels(shared_data):
    path = shared_data / "lip_sample/images/86_185913.jpg"
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 2  # really grayscale
    decoded = _round_trip(
        schema.encode_example(path.read_bytes(), height=377, width=130, source_id="86_185913", dataset="lip")
    )
    image = decoded["image"]
    assert image.shape == (377, 130, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    assert decoded["has_segmentation"] == 0 and (decoded["parsing"] == 255).all()


def test_lip_val_pose_rows_round_trip_with_nan_joints(shared_data):
    table = layouts.read_lip_pose_csv(shared_data / "lip_sample/lip_val_set.csv")
    assert len(table) == 7
    lines = (shared_data / "lip_sample/lip_val_set.csv").read_text().split()
    missing_in_csv = {line.split(",")[0][:-4]: line.count("nan") // 3 for line in lines}
    assert sum(missing_in_csv.values()) > 0
    for source_id, keypoints in table.items():
        path = _image_path(shared_data, source_id)
        height, width = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape
        decoded = _round_trip(schema.encode_example(
            path.read_bytes(), height=height, width=width, source_id=source_id, dataset="lip", keypoints=keypoints
        ))
        np.testing.assert_array_equal(decoded["keypoints"], keypoints)
        missing = (decoded["keypoints"] == -1).all(axis=1)
        assert missing.sum() == missing_in_csv[source_id], source_id
        assert decoded["has_pose"] == 1 and decoded["image"].shape == (height, width, 3)


def test_densepose_fields_round_trip():
    rng = np.random.default_rng(0)
    points = {"bbox": np.float32([3, 4, 20, 30]), "x": rng.uniform(3, 23, 7), "y": rng.uniform(4, 34, 7),
              "i": rng.integers(1, 25, 7), "u": rng.uniform(0, 1, 7), "v": rng.uniform(0, 1, 7)}
    image = cv2.imencode(".png", np.zeros((40, 30, 3), np.uint8))[1].tobytes()
    decoded = _round_trip(
        schema.encode_example(image, height=40, width=30, source_id="a", dataset="coco_densepose", densepose=points)
    )
    assert decoded["has_densepose"] == 1
    for key in ("bbox", "x", "y", "u", "v", "i"):
        np.testing.assert_allclose(decoded[f"densepose_{key}"], points[key], rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"i": [0]}, "patch ids"), ({"u": [1.5]}, "u outside"), ({"bbox": [0, 0, 0, 5]}, "bbox"),
    ({"x": [1.0, 2.0]}, "differ in length"),
])
def test_encode_rejects_bad_densepose(bad, message):
    points = {"bbox": [0, 0, 5, 5], "x": [1.0], "y": [1.0], "i": [3], "u": [0.5], "v": [0.5], **bad}
    with pytest.raises(ValueError, match=message):
        schema.encode_example(b"x", height=5, width=5, source_id="bad", dataset="lip", densepose=points)


def _person_ids(parsing: np.ndarray) -> np.ndarray:
    """A person-id map for a real CIHP label: connected foreground blobs numbered 1..N."""
    count, ids = cv2.connectedComponents((parsing > 0).astype(np.uint8))
    assert count > 1
    return ids.astype(np.uint8)


def test_cihp_instance_ids_round_trip(shared_data):
    label_path = shared_data / "cihp_sample/labels/0002190.png"
    parsing = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    persons = _person_ids(parsing)
    height, width = parsing.shape
    jpeg = (shared_data / "cihp_sample/images/0002190.jpg").read_bytes()
    decoded = _round_trip(schema.encode_example(
        jpeg, height=height, width=width, source_id="0002190", dataset="cihp",
        parsing_png=label_path.read_bytes(), instance_png=cv2.imencode(".png", persons)[1].tobytes(),
    ))
    assert decoded["has_instances"] == 1 and decoded["instance_ids"].dtype == np.int32
    assert decoded["instance_ids"].shape == decoded["parsing"].shape == (height, width)
    np.testing.assert_array_equal(decoded["instance_ids"], persons)


def test_records_without_person_ids_decode_as_absent():
    image = cv2.imencode(".png", np.zeros((6, 9, 3), np.uint8))[1].tobytes()
    example = schema.encode_example(image, height=6, width=9, source_id="old", dataset="lip")
    assert "instance/encoded" not in example.features.feature  # as written before the key existed
    decoded = _round_trip(example)
    assert decoded["has_instances"] == 0
    np.testing.assert_array_equal(decoded["instance_ids"], np.zeros((6, 9), np.int32))
