"""TF Serving client: the exact REST JSON and gRPC request a client sends, served as TF Serving
does, give the signature's outputs."""

import base64
import http.server
import json
import threading
from concurrent import futures

import cv2
import grpc  # grpcio and tensorflow-serving-api are in the [dev] extra
import numpy as np
import pytest
import tensorflow as tf
from serving_support import encode, exported, person_image  # noqa: F401 (fixture)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from spd_tf.deploy import client


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
        assert client.main([str(tmp_path / "in" / "a.jpg"), "--server", address, "--model-name", "nope",
                            "--out", str(tmp_path / "out2")]) == 1
        assert "Servable not found" in capsys.readouterr().err
    finally:
        server.shutdown()


class _FakePredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's gRPC PredictionService.Predict over one signature (INVALID_ARGUMENT on bad input)."""

    def __init__(self, signature, model_name="spd"):
        self.signature, self.model_name = signature, model_name

    def Predict(self, request, context):  # noqa: N802 (gRPC naming)
        if request.model_spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request.model_spec.name}")
        if request.model_spec.signature_name != "serving_default":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown signature")
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        try:
            outputs = self.signature(**inputs)
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        answer = predict_pb2.PredictResponse()
        for key, value in outputs.items():
            answer.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return answer


def test_grpc_predict_gives_the_signature_outputs_and_server_errors(exported):
    signature = exported[3].signatures["serving_default"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_FakePredictionService(signature), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        images = [encode(person_image(40, 30, seed=3), ".jpg"), encode(person_image(25, 60, seed=4), ".png")]
        answer = client.predict_grpc(address, "spd", images)
        direct = signature(image_bytes=tf.constant(images))
        assert set(answer) == set(direct)
        for key, value in direct.items():
            assert answer[key].dtype == value.dtype.as_numpy_dtype, key
            np.testing.assert_array_equal(answer[key], value.numpy(), err_msg=key)
        with pytest.raises(client.ServingError, match="(?s)INVALID_ARGUMENT.*image 0 is not a JPEG or PNG"):
            client.predict_grpc(address, "spd", [b"not an image"])
        with pytest.raises(client.ServingError, match="NOT_FOUND"):
            client.predict_grpc(address, "other", images)
    finally:
        server.stop(None)
