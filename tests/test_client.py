"""REST client: the exact JSON a client sends, decoded as TF Serving does, gives the outputs."""

import base64
import http.server
import json
import threading

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spd_tf import client
from serving_support import encode, exported, person_image  # noqa: F401 (fixture)


def serving_decode(body: str) -> tf.Tensor:
    """TF Serving's row-format parsing for a one-input signature: {"b64": s} -> bytes."""
    instances = json.loads(body)["instances"]
    values = []
    for instance in instances:
        assert isinstance(instance, dict) and set(instance) == {"b64"}, instance
        values.append(base64.b64decode(instance["b64"]))
    return tf.constant(values, tf.string)


def serving_encode(outputs) -> str:
    """TF Serving's row-format answer: one object per instance, arrays as nested lists."""
    arrays = {k: v.numpy() for k, v in outputs.items()}
    rows = len(next(iter(arrays.values())))
    return json.dumps({"predictions": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(rows)]})


def test_rest_payload_round_trip_gives_the_signature_outputs(exported):
    signature = exported[3].signatures["serving_default"]
    images = [encode(person_image(40, 30, seed=1), ".jpg"), encode(person_image(25, 60, seed=2), ".png")]
    body = json.dumps(client.build_rest_request(images))
    assert json.loads(body)["signature_name"] == "serving_default"
    served = signature(image_bytes=serving_decode(body))
    decoded = client.decode_rest_response(json.loads(serving_encode(served)))
    direct = signature(image_bytes=tf.constant(images))
    assert set(decoded) == set(direct)
    for key, value in direct.items():
        assert decoded[key].dtype == value.dtype.as_numpy_dtype, key
        np.testing.assert_allclose(decoded[key], value.numpy(), rtol=1e-6, err_msg=key)


def test_error_answers_raise_with_the_server_message():
    with pytest.raises(client.ServingError, match="image 0 is not a JPEG"):
        client.decode_rest_response({"error": "assertion failed: [image 0 is not a JPEG or PNG image]"})
    with pytest.raises(client.ServingError, match="unexpected response"):
        client.decode_rest_response({"outputs": []})


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """Answers POST /v1/models/spd:predict like TF Serving (400 + {"error"} on bad input)."""

    signature = None

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if self.path != "/v1/models/spd:predict":
            return self._reply(404, json.dumps({"error": f"Servable not found for request: {self.path}"}))
        try:
            self._reply(200, serving_encode(self.signature(image_bytes=serving_decode(body))))
        except tf.errors.InvalidArgumentError as error:
            self._reply(400, json.dumps({"error": error.message}))

    def _reply(self, code, text):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args):
        pass


def test_client_cli_writes_outputs_and_names_bad_files(exported, tmp_path, capsys):
    _FakeServing.signature = exported[3].signatures["serving_default"]
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.jpg").write_bytes(encode(person_image(40, 30), ".jpg"))
        (tmp_path / "in" / "b.png").write_bytes(encode(person_image(20, 50), ".png"))
        (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff but then garbage")
        address = f"127.0.0.1:{server.server_address[1]}"
        status = client.main([str(tmp_path / "in"), "--server", address, "--out", str(tmp_path / "out"),
                              "--batch-size", "3"])
        assert status == 0
        err = capsys.readouterr().err
        assert "broken.jpg" in err and "a.jpg" not in err
        labels = cv2.imread(str(tmp_path / "out" / "b.png"), cv2.IMREAD_UNCHANGED)
        expected = _FakeServing.signature(image_bytes=tf.constant([(tmp_path / "in" / "b.png").read_bytes()]))
        np.testing.assert_array_equal(labels, expected["labels"][0].numpy())
        assert (tmp_path / "out" / "keypoints" / "a.json").exists()
        assert client.main([str(tmp_path / "in" / "a.jpg"), "--server", address, "--model", "nope",
                            "--out", str(tmp_path / "out2")]) == 1
        assert "Servable not found" in capsys.readouterr().err
    finally:
        server.shutdown()
