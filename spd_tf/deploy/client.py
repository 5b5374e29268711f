"""A small TF Serving client: send images, get SPD outputs, write them like `predict`.

    spd-client --server localhost:8501 --model-name spd photos/*.jpg --out results/   # or python -m spd_tf.deploy.client

REST (default): `POST http://SERVER/v1/models/<model>[/versions/<v>]:predict` with
`{"signature_name": "serving_default", "instances": [{"b64": "<base64 JPEG/PNG>"}, ...]}`;
TF Serving decodes each `{"b64": ...}` to the bytes of one `image_bytes` string and answers
`{"predictions": [{"labels": ..., "keypoints": ..., ...}, ...]}`, one object per image
(arrays padded to the batch's largest image; `image_size` says which part is real).
`--grpc` uses the PredictionService on port 8500 instead; it needs the optional
`tensorflow-serving-api` package (`pip install -e ".[grpc]"`) and is not required otherwise.
"""

import base64
import json
import sys
import urllib.error
import urllib.request
from typing import Dict, Optional, Sequence

import numpy as np

from spd_tf import cli_args
from spd_tf.deploy.predict import find_images, predict_files, report
from spd_tf.inference import output_spec
from spd_tf.keypoint_sets import get_keypoint_set
from spd_tf.labels import get_label_set

SIGNATURE = "serving_default"


class ServingError(RuntimeError):
    """The server refused the request; the message is TF Serving's (e.g. a bad image)."""


def build_rest_request(images: Sequence[bytes], signature_name: str = SIGNATURE) -> dict:
    """The JSON body of a REST predict call for encoded images (row format, b64)."""
    return {
        "signature_name": signature_name,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images],
    }


def decode_rest_response(response: dict) -> Dict[str, np.ndarray]:
    """REST answer -> batched arrays keyed like spd_tf.inference results."""
    if "error" in response:
        raise ServingError(response["error"])
    rows = response.get("predictions")
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise ServingError(f"unexpected response: {str(response)[:200]}")
    return {
        key: np.asarray([row[key] for row in rows], np.int32 if key in output_spec.INTEGER else np.float32)
        for key in rows[0]
    }


def predict_rest(server: str, model: str, images: Sequence[bytes], version: Optional[int] = None,
                 timeout: float = 300.0) -> Dict[str, np.ndarray]:
    """One REST predict call; TF Serving's error message is raised as ServingError."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(
        f"http://{server}{path}",
        data=json.dumps(build_rest_request(images)).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return decode_rest_response(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            message = json.loads(body).get("error", body)
        except json.JSONDecodeError:
            message = body
        raise ServingError(f"HTTP {error.code} from {server}: {message}") from None


def predict_grpc(server: str, model: str, images: Sequence[bytes], version: Optional[int] = None,
                 timeout: float = 300.0) -> Dict[str, np.ndarray]:
    """One gRPC Predict call (needs `pip install tensorflow-serving-api`)."""
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        raise ServingError("gRPC needs the tensorflow-serving-api package (pip install -e \".[grpc]\")") from None
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = SIGNATURE
    if version:
        request.model_spec.version.value = version
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server))
    try:
        answer = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
        raise ServingError(f"gRPC {error.code().name} from {server}: {error.details()}") from None
    return {key: tf.make_ndarray(value) for key, value in answer.outputs.items()}


@cli_args.one_error_path
def main(argv=None) -> int:
    parser = cli_args.Parser(
        prog="spd-client",
        description="Send images to a TF Serving SPD model and write outputs like spd_tf.deploy.predict.",
    )
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (JPEG/PNG)")
    parser.add_argument("--server", default="localhost:8501", help="host:port (REST 8501, gRPC 8500)")
    # --model is a local path in the other tools; here it only survives as an alias.
    cli_args.add(parser, "--model-name", default="spd", deprecated=("--model",), help="model name on the server")
    parser.add_argument("--version", type=int, default=None, help="model version (default: newest)")
    cli_args.add_out(parser, required=True, help="output directory")
    cli_args.add_batch_size(parser, default=4)
    parser.add_argument("--grpc", action="store_true", help="use gRPC (needs tensorflow-serving-api)")
    parser.add_argument("--label-set", default="lip", metavar="NAME|FILE.json",
                        help="the served model's label set, for the palette (its export's assets.extra/label_set.json)")
    parser.add_argument("--keypoint-set", default="lip", metavar="NAME|FILE.json",
                        help="the served model's keypoint set, for joint names and the skeleton "
                             "(its export's assets.extra/keypoint_set.json)")
    args = parser.parse_args(argv)
    call = predict_grpc if args.grpc else predict_rest
    try:
        label_set, keypoint_set = get_label_set(args.label_set), get_keypoint_set(args.keypoint_set)
        files = find_images(args.inputs)
        summary = predict_files(
            files, lambda images: call(args.server, args.model_name, images, args.version),
            args.out, args.batch_size, input_errors=(ServingError,), label_set=label_set, keypoint_set=keypoint_set,
        )
    except ValueError as error:
        print(f"spd-client: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, urllib.error.URLError, ConnectionError) as error:
        print(f"spd-client: error: {getattr(error, 'reason', error)} (server {args.server})", file=sys.stderr)
        return 1
    return report(summary, len(files), args.out)


if __name__ == "__main__":
    sys.exit(main())
