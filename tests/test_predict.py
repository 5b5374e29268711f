"""predict: folders in, LIP/DensePose-format files out; a corrupt file is skipped and named."""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_support import (  # noqa: F401 (exported is a fixture)
    TINY,
    assert_same_labels,
    encode,
    exported,
    keras_reference,
    person_image,
    training_run,
)

from spd_tf import artifacts, visualize
from spd_tf import labels as label_sets
from spd_tf.data.synthetic import generate_person
from spd_tf.deploy import predict
from spd_tf.config import TrainConfig
from spd_tf.tasks.segmentation import segmentation_loss
from spd_tf.model.spd import build_model

TRAINED = TINY.replace(variant="s", num_refinement_stages=0, aspp_rates=(2, 4))


def _photos(folder):
    (folder / "nested").mkdir(parents=True)
    (folder / "one.jpg").write_bytes(encode(person_image(60, 40, seed=1), ".jpg"))
    (folder / "nested" / "two.png").write_bytes(encode(person_image(30, 70, seed=2)[..., 0], ".png"))
    (folder / "nested" / "one.jpg").write_bytes(encode(person_image(20, 20, seed=3), ".jpg"))
    (folder / "corrupt.jpg").write_bytes(b"definitely not a picture")
    (folder / "notes.txt").write_text("ignored: not an image suffix")


def test_predict_folder_writes_every_output_and_names_the_corrupt_file(exported, tmp_path, capsys):
    _, _, path, loaded = exported
    _photos(tmp_path / "in")
    status = predict.main([str(tmp_path / "in"), "--model", str(path.parent), "--out", str(tmp_path / "out"),
                           "--batch-size", "2"])
    assert status == 0
    captured = capsys.readouterr()
    assert "corrupt.jpg" in captured.err and "not a JPEG or PNG" in captured.err
    assert "wrote outputs for 3 of 4 images" in captured.out
    out = tmp_path / "out"
    data = (tmp_path / "in" / "nested" / "two.png").read_bytes()
    served = {k: v.numpy()[0] for k, v in loaded.signatures["serving_default"](image_bytes=tf.constant([data])).items()}
    index = cv2.imread(str(out / "two.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(index, served["labels"])
    palette = tf.io.decode_png((out / "vis" / "two.png").read_bytes(), channels=3).numpy()
    np.testing.assert_array_equal(palette, label_sets.colorize(index))
    assert cv2.imread(str(out / "overlay" / "two.jpg")).shape == (30, 70, 3)
    assert cv2.imread(str(out / "skeleton" / "two.jpg")).shape == (30, 70, 3)
    joints = json.loads((out / "keypoints" / "two.json").read_text())["joints"]
    assert list(joints) == list(label_sets.LIP_JOINTS)
    np.testing.assert_allclose([joints["B_Head"]["x"], joints["B_Head"]["y"], joints["B_Head"]["score"]],
                               served["keypoints"][label_sets.HEAD_TOP_JOINT], rtol=1e-5)
    iuv = cv2.imread(str(out / "densepose" / "two.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(iuv[..., 0], np.rint(served["densepose_iuv"][..., 0]))  # DensePose: channel 0 = I
    np.testing.assert_array_equal(iuv[..., 1], np.floor(served["densepose_iuv"][..., 1] * 255))
    # Two inputs named one.jpg in different folders keep both outputs.
    assert (out / "one.png").exists() and (out / "one_2.png").exists()


def test_predict_fails_only_when_every_image_fails(exported, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    status = predict.main([str(tmp_path / "bad.png"), "--model", str(exported[2]), "--out", str(tmp_path / "o")])
    assert status == 1
    assert "bad.png" in capsys.readouterr().err
    assert predict.main([str(tmp_path / "missing.jpg"), "--model", str(exported[2]), "--out", str(tmp_path)]) == 1
    assert "no such file" in capsys.readouterr().err


def test_runner_from_a_training_run_matches_the_keras_model(exported, tmp_path):
    model, config, _, _ = exported
    training_run(tmp_path, model, config)
    image = person_image(44, 36, seed=9)
    results = artifacts.load(tmp_path).bytes_runner()([encode(image, ".png")])
    assert_same_labels(results["labels"][0], keras_reference(model, TINY, image)[0])


def test_contact_sheet_of_the_first_images(exported, tmp_path, capsys):
    _photos(tmp_path / "in")
    out = tmp_path / "out"
    assert predict.main([str(tmp_path / "in"), "--model", str(exported[2]), "--out", str(out),
                         "--contact-sheet", "2"]) == 0
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    # Two rows of 256-px panels (+ title bars and gaps), four panels per row.
    assert sheet.shape[0] == 2 * (256 + 22 + 4) and sheet.shape[1] > 4 * 256 // 2
    assert not (tmp_path / "no_sheet").exists()
    assert predict.main([str(tmp_path / "in"), "--model", str(exported[2]), "--out", str(tmp_path / "no_sheet")]) == 0
    assert not (tmp_path / "no_sheet" / "contact_sheet.png").exists()


def test_shared_stems_get_distinct_outputs_and_a_truncated_jpeg_is_named(exported, tmp_path, capsys):
    _, _, path, loaded = exported
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = {"a.jpg": (person_image(30, 20, seed=4), ".jpg"), "a.png": (person_image(24, 36, seed=5), ".png"),
              "a_2.jpg": (person_image(40, 28, seed=6), ".jpg")}
    for name, (image, ext) in inputs.items():
        (folder / name).write_bytes(encode(image, ext))
    whole = encode(person_image(50, 50, seed=7), ".jpg")
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    status = predict.main([str(folder), "--model", str(path), "--out", str(tmp_path / "out"), "--batch-size", "4"])
    captured = capsys.readouterr()
    assert status == 0
    assert "wrote outputs for 3 of 4 images (18 files)" in captured.out  # 6 files per image
    assert f"{folder / 'cut.jpg'}: " in captured.err and "truncated" in captured.err
    signature = loaded.signatures["serving_default"]
    for name, stem in (("a.jpg", "a"), ("a.png", "a_3"), ("a_2.jpg", "a_2")):
        served = signature(image_bytes=tf.constant([(folder / name).read_bytes()]))["labels"].numpy()[0]
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out" / f"{stem}.png"), cv2.IMREAD_UNCHANGED), served)
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run directory of a tiny `s` model trained for 150 Adam steps on synthetic people
    (confident logits, as bfloat16 agreement should be judged on), and 16 unseen photos."""
    rng = np.random.default_rng(0)
    people = [generate_person(rng, 64, 64) for _ in range(80)]
    images = np.stack([p["image"] for p in people[:64]]).astype(np.float32)
    labels = np.stack([p["parsing"] for p in people[:64]])
    keras.utils.set_random_seed(0)
    model = build_model(TRAINED)
    optimizer = keras.optimizers.Adam(0.003)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            stages = model({"image": x}, training=True)["segmentation_stages"]
            loss = tf.reduce_mean(segmentation_loss(stages, y, tf.ones(tf.shape(y)[:1]), TrainConfig()))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    losses = [float(step(images[i % 8 * 8:][:8], labels[i % 8 * 8:][:8])) for i in range(150)]
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    run_dir = tmp_path_factory.mktemp("trained")
    training_run(run_dir, model, TRAINED)
    return run_dir, [encode(p["image"], ".png") for p in people[64:]]


def test_bfloat16_labels_agree_with_float32_on_a_trained_model(trained_run):
    run_dir, photos = trained_run
    labels = {precision: artifacts.load(run_dir, precision=precision).bytes_runner()(photos)["labels"]
              for precision in ("float32", "bfloat16")}
    assert labels["float32"].shape == (16, 64, 64)
    assert (labels["bfloat16"] == labels["float32"]).mean() >= 0.995


def test_precision_flag_runs_a_run_dir_and_refuses_a_saved_model(exported, trained_run, tmp_path, capsys):
    run_dir, photos = trained_run
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(photos[0])
    assert predict.main([str(tmp_path / "in"), "--model", str(run_dir), "--out", str(tmp_path / "out"),
                         "--precision", "bfloat16"]) == 0
    assert (tmp_path / "out" / "a.png").exists()
    assert predict.main([str(tmp_path / "in"), "--model", str(exported[2]), "--out", str(tmp_path / "o"),
                         "--precision", "bfloat16"]) == 1
    assert "precision='bfloat16': the saved_model export" in capsys.readouterr().err


def test_instance_outputs_are_the_person_ids_with_their_scores(tmp_path):
    """A result with an instance map writes it losslessly, its scores and a person overlay."""
    image = np.full((6, 8, 3), 100, np.uint8)
    labels = np.zeros((6, 8), np.uint8)
    labels[:, 2:] = 5
    persons = np.zeros((6, 8), np.int32)
    persons[:, 2:5], persons[:, 5:] = 1, 2
    result = {"labels": labels, "instances": persons, "instance_scores": np.array([0.9, 0.4, 0, 0], np.float32)}
    count = predict.write_outputs(tmp_path, "group", image, result)
    assert count == 6
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "instances" / "group.png"), cv2.IMREAD_UNCHANGED), persons)
    scores = json.loads((tmp_path / "instances" / "group.json").read_text())["scores"]
    assert scores == pytest.approx([0.9, 0.4])
    overlay = cv2.imread(str(tmp_path / "persons" / "group.jpg"))[..., ::-1].astype(int)
    assert abs(overlay[0, 0] - 100).max() <= 3  # no person: the photo
    assert abs(overlay[3, 3] - overlay[3, 6]).max() > 30  # two persons, two colours


def test_per_person_keypoints_and_boxes_go_to_the_instances_json_and_the_persons_picture(tmp_path):
    image = np.full((40, 60, 3), 100, np.uint8)
    labels = np.zeros((40, 60), np.uint8)
    labels[:, 10:50] = 5
    persons = np.zeros((40, 60), np.int32)
    persons[:, 10:30], persons[:, 30:50] = 1, 2
    joints = np.zeros((3, 16, 3), np.float32)
    joints[0, :, :] = [15.0, 20.0, 0.8]  # person 1: every joint at (15, 20)
    joints[1, 15] = [40.0, 5.0, 0.6]     # person 2: its left wrist only
    result = {"labels": labels, "instances": persons, "person_keypoints": joints,
              "instance_scores": np.array([0.9, 0.4, 0.0], np.float32),
              "person_boxes": np.array([[10, 0, 30, 40], [30, 0, 50, 40], [0, 0, 0, 0]], np.float32)}
    predict.write_outputs(tmp_path, "group", image, result)
    written = json.loads((tmp_path / "instances" / "group.json").read_text())
    assert [p["id"] for p in written["persons"]] == [1, 2] and written["scores"] == pytest.approx([0.9, 0.4])
    assert written["persons"][0]["joints"]["R_Ankle"] == pytest.approx({"x": 15.0, "y": 20.0, "score": 0.8})
    assert written["persons"][1]["joints"]["L_Wrist"]["score"] == pytest.approx(0.6)
    assert written["persons"][1]["joints"]["R_Ankle"]["score"] == 0.0
    assert [p["box"] for p in written["persons"]] == [[10, 0, 30, 40], [30, 0, 50, 40]]
    picture = cv2.imread(str(tmp_path / "persons" / "group.jpg"))[..., ::-1].astype(int)
    plain = visualize.overlay(image, persons.astype(np.uint8), palette=visualize.person_palette()).astype(int)
    assert abs(picture[5, 40] - plain[5, 40]).max() > 30   # person 2's wrist is drawn
    assert abs(picture[35, 55] - plain[35, 55]).max() <= 3  # far from every joint: just the colours
