"""Phone photos come upright: a JPEG's EXIF orientation (1..8) is applied wherever a photo
enters (the SavedModel's image_bytes graph, the numpy path of TFLite / ONNX exports, predict's
files and pictures, the converters and the dataset loaders), as PIL's exif_transpose does."""

import io

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from serving_support import TINY, exported  # noqa: F401 (fixture)

from spd_tf import artifacts
from spd_tf.data import layouts
from spd_tf.deploy import predict
from spd_tf.inference import decode, numpy_path
from spd_tf.model.spd import build_model
from tfrecords_tools.common import encode_image_file

STORED = (48, 80)  # height, width as stored; orientations 5-8 show it 80 x 48


def _photo(orientation: int) -> bytes:
    """A blocky JPEG (so the decoders agree) stored landscape with EXIF orientation `orientation`."""
    rng = np.random.default_rng(orientation)
    pixels = np.kron(rng.integers(0, 255, (6, 10, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def _big_endian_photo() -> bytes:
    """Orientation 6 in a big-endian ("MM") TIFF block, as some cameras write it."""
    out = io.BytesIO()
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(out, "JPEG")
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00" + b"\0" * 4
    app1 = b"Exif\x00\x00" + tiff
    data = out.getvalue()
    return data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]


def _upright(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_numpy_and_graph_decoding_turn_each_orientation_as_pil_does(orientation):
    data = _photo(orientation)
    expected = _upright(data)
    assert numpy_path.exif_orientation(data) == orientation
    np.testing.assert_array_equal(numpy_path.decode_rgb(data), expected)
    assert int(decode.exif_orientation(tf.constant(data))) == orientation
    batch, image_size = decode.decode_images(tf.constant([data]), (32, 32))
    assert tuple(image_size.numpy()[0]) == expected.shape[:2]
    graph = decode.orient(tf.io.decode_image(data, channels=3), tf.constant(orientation)).numpy()
    assert graph.shape == expected.shape and np.abs(graph.astype(int) - expected).mean() < 2  # two JPEG decoders


def test_a_big_endian_tag_and_files_without_one_read_right():
    data = _big_endian_photo()
    assert numpy_path.exif_orientation(data) == 6 == int(decode.exif_orientation(tf.constant(data)))
    assert numpy_path.decode_rgb(data).shape == (24, 16, 3)
    plain = cv2.imencode(".png", np.zeros((4, 6, 3), np.uint8))[1].tobytes()
    for other in (plain, b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00\x04\x00", b"not an image"):
        assert numpy_path.exif_orientation(other) == 1 == int(decode.exif_orientation(tf.constant(other)))


def test_predict_writes_labels_and_pictures_upright(tmp_path):
    runner = artifacts.from_model(build_model(TINY), TINY).bytes_runner()
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(_photo(6))
    summary = predict.predict_files([photo], runner, tmp_path / "out")
    assert summary["written"] == 1
    labels = cv2.imread(str(tmp_path / "out" / "phone.png"), cv2.IMREAD_UNCHANGED)
    overlay = cv2.imread(str(tmp_path / "out" / "overlay" / "phone.jpg"))
    assert labels.shape == STORED[::-1] and overlay.shape[:2] == STORED[::-1]


def test_converters_and_loaders_store_the_photo_upright(tmp_path):
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(_photo(8))
    encoded = encode_image_file(photo)
    assert (encoded.height, encoded.width) == STORED[::-1] and "EXIF orientation 8 applied" in encoded.fixes[0]
    stored = tf.io.decode_image(encoded.data, channels=3).numpy()
    assert stored.shape[:2] == STORED[::-1] and numpy_path.exif_orientation(encoded.data) == 1
    assert layouts.load_image(photo).shape[:2] == STORED[::-1]
    upright = tmp_path / "upright.jpg"
    upright.write_bytes(_photo(1))
    assert encode_image_file(upright).data == upright.read_bytes()  # stored byte for byte as before


def test_the_saved_models_image_bytes_signature_turns_the_photo(exported):
    signature = exported[3].signatures["serving_default"]
    result = signature(image_bytes=tf.constant([_photo(6), _photo(1)]))
    assert result["image_size"].numpy().tolist() == [list(STORED[::-1]), list(STORED)]
