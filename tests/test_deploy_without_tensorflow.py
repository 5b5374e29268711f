"""The deployment path on a host without TensorFlow: `spd-predict` on a TFLite / ONNX file,
`artifacts.load` of a portable export and `spd-client`, each in a subprocess where importing
tensorflow (or keras, which would pull it in) raises ImportError."""

import http.server
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from portable_support import trained_export, write_photos
from serving_support import encode, person_image

from spd_tf import artifacts

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# Prepended to every child: tensorflow, keras and tf_keras cannot be imported at all.
BLOCK_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, sys
    class _NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"{name} is not installed on this host (blocked by the test)")
    sys.meta_path.insert(0, _NoTensorFlow())
""")


def run_without_tensorflow(code: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python whose `import tensorflow` raises; fails the test naming
    the child's stderr if it exits non-zero or TensorFlow got imported anyway."""
    script = BLOCK_TENSORFLOW + textwrap.dedent(code) + textwrap.dedent("""
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_blocker_blocks():
    done = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + "import tensorflow"], capture_output=True, text=True)
    assert done.returncode != 0 and "blocked by the test" in done.stderr


@pytest.fixture(scope="module")
def portable_exports(tmp_path_factory):
    """{fmt: model file} of the trained tiny model, and a folder of photos."""
    from spd_tf.deploy.export_onnx import export_onnx
    from spd_tf.deploy.export_tflite import export_tflite

    model, config, _, images = trained_export(tmp_path_factory)
    base = tmp_path_factory.mktemp("no-tf-exports")
    files = {"tflite": export_tflite(model, config, base, ["float32"])[0] / "model.tflite",
             "onnx": export_onnx(model, config, base) / "model.onnx"}
    photos = base / "photos"
    write_photos(photos, images[:3])
    return files, photos


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_predict_runs_a_portable_file_without_tensorflow(portable_exports, tmp_path, fmt):
    files, photos = portable_exports
    out = tmp_path / "out"
    run_without_tensorflow(f"""
        from spd_tf.deploy.predict import main
        assert main([{str(photos)!r}, "--model", {str(files[fmt])!r}, "--out", {str(out)!r}]) == 0
    """)
    assert sorted(path.name for path in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]  # corrupt.jpg skipped
    # The same file loaded here (TensorFlow present) gives the same labels.
    runner = artifacts.load(files[fmt]).bytes_runner()
    for name in ("p0.png", "p1.png", "p2.png"):
        expected = runner([(photos / name).read_bytes()])["labels"][0]
        np.testing.assert_array_equal(cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED), expected)


def test_artifacts_load_runs_an_onnx_export_without_tensorflow(portable_exports, tmp_path):
    files, _ = portable_exports
    image = person_image(50, 40, seed=5)
    np.save(tmp_path / "image.npy", image)
    run_without_tensorflow(f"""
        import numpy as np
        from spd_tf import artifacts
        loaded = artifacts.load({str(files["onnx"].parent.parent)!r})   # the model directory: newest version
        assert loaded.kind == "onnx", loaded.kind
        (result,) = loaded.images_runner()([np.load({str(tmp_path / "image.npy")!r})])
        np.save({str(tmp_path / "labels.npy")!r}, result["labels"])
    """)
    expected = artifacts.load(files["onnx"]).images_runner()([image])[0]["labels"]
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), expected)


class _CannedServing(http.server.BaseHTTPRequestHandler):
    """A REST predict endpoint answering every image with a fixed label map (TF Serving's row format)."""

    def do_POST(self):  # noqa: N802 (http.server naming)
        count = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["instances"])
        row = {"labels": [[0, 1], [2, 3]], "image_size": [2, 2]}
        body = json.dumps({"predictions": [row] * count}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_client_runs_without_tensorflow(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _CannedServing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.jpg").write_bytes(encode(person_image(2, 2), ".jpg"))
        out = tmp_path / "out"
        run_without_tensorflow(f"""
            from spd_tf.deploy.client import main
            assert main([{str(tmp_path / "in")!r}, "--server", "127.0.0.1:{server.server_address[1]}",
                         "--out", {str(out)!r}]) == 0
        """)
    finally:
        server.shutdown()
    np.testing.assert_array_equal(cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED), [[0, 1], [2, 3]])


def test_the_tools_that_need_tensorflow_say_so_in_one_line(tmp_path):
    (tmp_path / "a.jpg").write_bytes(encode(person_image(8, 8), ".jpg"))
    done = run_without_tensorflow(f"""
        from spd_tf import entry_points
        from spd_tf.deploy.predict import main
        assert entry_points.train(["--help"]) == 2
        assert main([{str(tmp_path / "a.jpg")!r}, "--model", "ccp-small", "--out", {str(tmp_path / "out")!r}]) == 1
    """)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("spd-train: error:") and "pip install 'spd_tf[train]'" in lines[0]
    assert lines[1].startswith("spd-predict: error:") and "needs TensorFlow" in lines[1], lines[1]
    assert not (tmp_path / "out").exists()
