"""CIHP converter on the real samples, through the CLI and a 2-process worker pool."""

import json

import numpy as np
import tensorflow as tf
from convert_support import decode_all
from PIL import Image

from tfrecords_tools import convert_cihp


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


def _cihp_copy_with_person_ids(shared_data, tmp_path):
    """The real CIHP samples with a Human_ids/ folder. The samples ship no person ids, so
    these are the connected foreground blobs of each real label, numbered 1..N."""
    import shutil

    import cv2

    root = tmp_path / "cihp"
    shutil.copytree(shared_data / "cihp_sample", root, ignore=shutil.ignore_patterns("labels_rev", "edges"))
    (root / "Human_ids").mkdir()
    persons = {}
    for label_path in sorted((root / "labels").glob("*.png")):
        label = np.asarray(Image.open(label_path))
        _, ids = cv2.connectedComponents((label > 0).astype(np.uint8))
        ids = np.where(ids > 8, 8, ids).astype(np.uint8)  # at most 8 persons
        Image.fromarray(ids).save(root / "Human_ids" / label_path.name)
        persons[label_path.stem] = ids
    return root, persons


def test_cihp_person_ids_are_written_and_decode_back(shared_data, tmp_path):
    root, persons = _cihp_copy_with_person_ids(shared_data, tmp_path)
    convert_cihp.main(["--data", str(root), "--split", "val", "--out", str(tmp_path / "out"), "--workers", "1"])
    report = json.loads((tmp_path / "out/cihp-report.json").read_text())
    assert report["skipped"] == [] and report["splits"]["val"]["person_id_maps"] == 5
    for source_id, example in decode_all(tmp_path / "out", "val").items():
        assert example["has_instances"] == 1
        np.testing.assert_array_equal(example["instance_ids"].numpy(), persons[source_id])


def test_cihp_without_person_ids_has_no_instances(shared_data, tmp_path):
    convert_cihp.main(["--data", str(shared_data / "cihp_sample"), "--split", "val", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "cihp-report.json").read_text())["splits"]["val"]["person_id_maps"] == 0
    assert all(e["has_instances"] == 0 for e in decode_all(tmp_path, "val").values())


def test_bad_person_id_maps_are_skipped_and_named(shared_data, tmp_path):
    root, persons = _cihp_copy_with_person_ids(shared_data, tmp_path)
    small, crowded = sorted(persons)[:2]
    Image.fromarray(persons[small][:-3]).save(root / "Human_ids" / f"{small}.png")
    many = np.zeros_like(persons[crowded])
    many[0, :4] = [1, 2, 3, 4]
    Image.fromarray(many).save(root / "Human_ids" / f"{crowded}.png")
    convert_cihp.main(["--data", str(root), "--split", "val", "--out", str(tmp_path / "out"),
                       "--max-instances", "3"])
    report = json.loads((tmp_path / "out/cihp-report.json").read_text())
    reasons = {entry["item"]: entry["reason"] for entry in report["skipped"]}
    height, width = persons[small].shape
    assert reasons[small] == (f"{root}/Human_ids/{small}.png: person-id PNG is {width}x{height - 3} but its label "
                              f"{small}.png is {width}x{height}")
    assert reasons[crowded] == f"{root}/Human_ids/{crowded}.png: 4 persons (ids up to 4) exceed --max-instances 3"
    written = decode_all(tmp_path / "out", "val")
    assert sorted(written) == sorted(set(persons) - {small, crowded}) and len(reasons) == 2


def test_person_ids_that_do_not_match_the_label_are_skipped_and_named(shared_data, tmp_path):
    root, persons = _cihp_copy_with_person_ids(shared_data, tmp_path)
    source_id = sorted(persons)[0]
    label = np.asarray(Image.open(root / "labels" / f"{source_id}.png"))
    shifted = np.roll(persons[source_id], label.shape[1] // 4, axis=1)  # ids beside the people
    Image.fromarray(shifted).save(root / "Human_ids" / f"{source_id}.png")
    convert_cihp.main(["--data", str(root), "--split", "val", "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out/cihp-report.json").read_text())
    reason = {entry["item"]: entry["reason"] for entry in report["skipped"]}[source_id]
    assert reason.startswith(f"{root}/Human_ids/{source_id}.png: person ids do not match the label {source_id}.png: ")
    assert source_id not in decode_all(tmp_path / "out", "val")
