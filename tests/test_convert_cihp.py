"""CIHP converter on the real samples, through the CLI and a 2-process worker pool."""

import json

import numpy as np
import tensorflow as tf
from PIL import Image

from tfrecords_tools import convert_cihp
from convert_support import decode_all


def test_cihp_samples_convert_and_decode_back(shared_data, tmp_path, capsys):
    root = shared_data / "cihp_sample"
    convert_cihp.main(["--data", str(root), "--split", "val", "--out", str(tmp_path), "--workers", "2"])
    assert "val: wrote 5 of 5 examples" in capsys.readouterr().out
    report = json.loads((tmp_path / "cihp-report.json").read_text())
    assert report["splits"]["val"]["tasks"] == {"segmentation": 5, "pose": 0, "densepose": 0}
    assert report["skipped"] == [] and report["fixed"] == []
    examples = decode_all(tmp_path, "val")
    assert sorted(examples) == sorted((root / "val_id.txt").read_text().split())
    for source_id, example in examples.items():
        label = np.asarray(Image.open(root / "labels" / f"{source_id}.png"))
        np.testing.assert_array_equal(example["parsing"].numpy(), label)
        image = tf.io.decode_jpeg((root / "images" / f"{source_id}.jpg").read_bytes(), channels=3)
        np.testing.assert_array_equal(example["image"].numpy(), image.numpy())
        assert example["dataset"].numpy() == b"cihp" and example["has_pose"] == 0
