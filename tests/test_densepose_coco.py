"""DensePose-COCO merge: the real annotation lands on the person; masks, joins and bad annotations."""

import json

import cv2
import numpy as np
import pytest
from convert_support import decode_all
from PIL import Image
from pycocotools import mask as mask_util

from tfrecords_tools import convert_lip, densepose_coco

IMAGE_ID, LIP_ANN_ID, NO_DP_ANN_ID, ONLY_ANN_ID = 785, 123456, 123457, 123458
OFFSET = (120, 40)  # where the person crop sits in the synthetic COCO image


def _rle(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.fixture(scope="module")
def real_annotation(shared_data):
    sample = shared_data / "densepose_sample"
    ann = json.loads((sample / "demo_dp_single_ann.json").read_text())
    crop = np.asarray(Image.open(sample / ann["ICrop_file"]).convert("RGB"))
    return ann, crop


def _coco_annotation(ann_id: int, real: dict, height: int, width: int) -> dict:
    """A DensePose-COCO record of the real points: dp_x/dp_y in the 256 frame of a bbox = the crop."""
    return {
        "id": ann_id, "image_id": IMAGE_ID, "category_id": 1,
        "bbox": [OFFSET[0], OFFSET[1], width, height],
        "dp_x": [x / width * 256 for x in real["x"]], "dp_y": [y / height * 256 for y in real["y"]],
        "dp_I": [float(i) for i in real["I"]], "dp_U": real["U"], "dp_V": real["V"],
    }


def test_real_annotation_merges_onto_the_lip_image_and_densepose_only_crop(real_annotation, tmp_path):
    real, crop = real_annotation
    height, width = crop.shape[:2]
    # LIP layout: the person crop as a LIP val JPEG, a LIP twin of an annotation without dp
    # fields, and a LIP id whose annotation id exists but in another COCO image.
    images = tmp_path / "lip" / "val_images"
    images.mkdir(parents=True)
    Image.fromarray(crop).save(images / f"{IMAGE_ID}_{LIP_ANN_ID}.jpg", quality=95)
    Image.fromarray(crop).save(images / f"{IMAGE_ID}_{NO_DP_ANN_ID}.jpg", quality=95)
    Image.fromarray(crop).save(images / f"{IMAGE_ID + 1}_{ONLY_ANN_ID}.jpg", quality=95)  # wrong image id
    # COCO image holding the person at OFFSET, for the DensePose-only person.
    canvas = np.zeros((height + 100, width + 200, 3), np.uint8)
    canvas[OFFSET[1]:OFFSET[1] + height, OFFSET[0]:OFFSET[0] + width] = crop
    (tmp_path / "coco").mkdir()
    Image.fromarray(canvas).save(tmp_path / "coco" / "img785.png")
    coco = {
        "images": [{"id": IMAGE_ID, "file_name": "img785.png", "height": canvas.shape[0], "width": canvas.shape[1]}],
        "annotations": [
            _coco_annotation(LIP_ANN_ID, real, height, width),
            {"id": NO_DP_ANN_ID, "image_id": IMAGE_ID, "bbox": [0, 0, width, height]},
            _coco_annotation(ONLY_ANN_ID, real, height, width),
        ],
    }
    json_path = tmp_path / "densepose_coco_2014_test.json"
    json_path.write_text(json.dumps(coco))

    report = convert_lip.convert_lip(
        tmp_path / "lip", tmp_path / "out", ["val"], densepose_json=[json_path],
        densepose_only=True, coco_images=tmp_path / "coco", workers=2,
    )
    assert report["densepose"]["lip_examples_with_densepose"] == 1
    assert report["densepose"]["densepose_only_written"] == 1
    assert report["densepose"]["annotations_without_dp_fields"] == 1
    reasons = {s["item"]: s["reason"] for s in report["skipped"]}
    assert "without dp fields" in reasons[f"{IMAGE_ID}_{NO_DP_ANN_ID}"]
    assert f"is in COCO image {IMAGE_ID}, not {IMAGE_ID + 1}" in reasons[f"{IMAGE_ID + 1}_{ONLY_ANN_ID}"]

    merged = decode_all(tmp_path / "out", "val")[f"{IMAGE_ID}_{LIP_ANN_ID}"]
    x, y = merged["densepose_x"].numpy(), merged["densepose_y"].numpy()
    np.testing.assert_allclose(x, real["x"], atol=1e-3)  # back where they were annotated
    np.testing.assert_allclose(y, real["y"], atol=1e-3)
    np.testing.assert_array_equal(merged["densepose_i"].numpy(), real["I"])
    np.testing.assert_allclose(merged["densepose_u"].numpy(), real["U"], atol=1e-6)
    np.testing.assert_array_equal(merged["densepose_bbox"].numpy(), [0, 0, width, height])
    # On the person: the green lawn covers ~20 % of the crop but (almost) none of the points
    # (one shin point of the real annotation sits on a shadowed lawn pixel; 20 px off, 8 % would).
    hsv = cv2.cvtColor(merged["image"].numpy(), cv2.COLOR_RGB2HSV)
    lawn = (hsv[..., 0] > 30) & (hsv[..., 0] < 90) & (hsv[..., 1] > 100)
    assert lawn.mean() > 0.15
    assert lawn[np.round(y).astype(int), np.round(x).astype(int)].mean() < 0.02

    only = decode_all(tmp_path / "out", convert_lip.DENSEPOSE_ONLY_SPLIT)[f"{IMAGE_ID}_{ONLY_ANN_ID}"]
    assert only["dataset"].numpy() == b"coco_densepose" and only["has_segmentation"] == 0
    assert np.abs(only["image"].numpy().astype(int) - crop).mean() < 3  # the person cropped back out
    np.testing.assert_allclose(only["densepose_x"].numpy(), real["x"], atol=1e-3)
    np.testing.assert_allclose(only["densepose_y"].numpy(), real["y"], atol=1e-3)


def test_lip_mapping_stretches_the_bbox_frame_over_the_lip_image():
    ann = {"bbox": [50, 60, 100, 200], "dp_x": [0, 128, 256], "dp_y": [256, 64, 0],
           "dp_I": [1, 2, 24], "dp_U": [0, 0.5, 1], "dp_V": [1, 0.5, 0]}
    densepose, dropped = densepose_coco.lip_densepose(ann, height=400, width=210)
    assert dropped == ()
    np.testing.assert_allclose(densepose["x"], [0, 105, 210])
    np.testing.assert_allclose(densepose["y"], [400, 100, 0])
    np.testing.assert_array_equal(densepose["bbox"], [0, 0, 210, 400])
    densepose, dropped = densepose_coco.lip_densepose(ann, height=100, width=400)
    assert densepose is None and "aspect ratio" in dropped[0]


def test_coarse_masks_merge_into_one_png():
    torso = np.zeros((256, 256), bool)
    torso[50:150, 60:200] = True
    head = np.zeros((256, 256), bool)
    head[10:70, 100:160] = True
    dp_masks = [_rle(torso)] + [[]] * 12 + [_rle(head)]
    merged = densepose_coco.coarse_mask(dp_masks)
    expected = np.zeros((256, 256), np.uint8)
    expected[torso] = 1
    expected[head] = 14  # later parts win, as in DensePose's GetDensePoseMask
    np.testing.assert_array_equal(merged, expected)
    ann = {"bbox": [0, 0, 10, 10], "dp_x": [1], "dp_y": [1], "dp_I": [2], "dp_U": [0.1], "dp_V": [0.2], "dp_masks": dp_masks}
    png = densepose_coco.densepose_in_box(ann, (0, 0, 10, 10))["masks_png"]
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), expected)
    assert densepose_coco.coarse_mask([[]] * 14) is None


def test_bad_annotations_and_duplicate_ids_are_reported(tmp_path):
    good = {"id": 1, "image_id": 9, "bbox": [0, 0, 5, 5], "dp_x": [1], "dp_y": [1], "dp_I": [3], "dp_U": [0.5], "dp_V": [0.5]}
    bad_patch = dict(good, id=2, dp_I=[0])
    short = dict(good, id=3, dp_U=[])
    no_box = dict(good, id=4, bbox=[0, 0, 0, 5])
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    no_id = {k: v for k, v in good.items() if k != "id"}
    first.write_text(json.dumps({"annotations": [good, bad_patch, short, no_box, no_id]}))
    second.write_text(json.dumps({"annotations": [dict(good, dp_x=[2])]}))
    index = densepose_coco.load_densepose_coco([first, second])
    assert list(index.annotations) == [1] and index.annotations[1]["dp_x"] == [1]
    assert "dp_I outside 1..24" in index.without_dp[2]
    assert "lengths" in index.without_dp[3]
    assert "bbox" in index.without_dp[4]
    assert index.skipped == [
        {"item": f"{first}:annotations[4]", "reason": "annotation without id or image_id"},
        {"item": f"{second}:annotation 1", "reason": "duplicate annotation id"},
    ]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not a valid DensePose-COCO json"):
        densepose_coco.load_densepose_coco([tmp_path / "broken.json"])
    assert densepose_coco.parse_lip_id("86_185913") == (86, 185913)
    assert densepose_coco.parse_lip_id("frame_a") is None
