"""ATR converter: its own 18-class labels (palette PNGs included), id lists, bad label values."""

import json

import numpy as np
from convert_support import decode_all
from PIL import Image

from tfrecords_tools import convert_atr


def _palette_png(indices: np.ndarray, path) -> None:
    image = Image.fromarray(indices, mode="P")
    image.putpalette([(7 * i) % 256 for i in range(768)])
    image.save(path)


def test_atr_layout_converts_with_its_own_classes(tmp_path):
    root = tmp_path / "atr"
    for folder in ("JPEGImages", "SegmentationClassAug", "list"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {}
    for name, top in (("a", 17), ("b", 17), ("c", 18), ("unlisted", 3)):
        Image.fromarray(rng.integers(0, 255, (12, 9, 3), np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        labels[name] = rng.integers(0, top + 1, (12, 9)).astype(np.uint8)
        labels[name][0, 0] = top
        _palette_png(labels[name], root / "SegmentationClassAug" / f"{name}.png")
    (root / "list" / "val_id.txt").write_text("a\nb\nc\n")

    convert_atr.main(["--data", str(root), "--split", "val", "--out", str(tmp_path / "out"), "--workers", "1"])
    report = json.loads((tmp_path / "out" / "atr-report.json").read_text())
    assert report["splits"]["val"]["written"] == 2
    (skipped,) = report["skipped"]
    assert skipped["item"] == "c" and "label values [18] outside 0-17/255" in skipped["reason"]
    examples = decode_all(tmp_path / "out", "val")
    assert sorted(examples) == ["a", "b"]
    for name, example in examples.items():
        assert example["dataset"].numpy() == b"atr"
        np.testing.assert_array_equal(example["parsing"].numpy(), labels[name])
