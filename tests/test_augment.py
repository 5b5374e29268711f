"""Augmentation keeps parsing, joints and DensePose consistent; flips follow LIP/CIHP/DensePose."""

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from spd_tf import labels
from spd_tf.config import DataConfig, ModelConfig
from spd_tf.data import augment, schema, synthetic
from spd_tf.data.pipeline import Parser
from spd_tf.keypoint_sets import KEYPOINT_SETS

INPUT = (96, 96)
MODEL = ModelConfig(backbone="resnet18", input_size=INPUT, width_multiplier=0.25)
CIHP_IDS = ("0002190", "0005008", "0012008", "0026375", "0032190")


@pytest.mark.parametrize("name", CIHP_IDS)
def test_flip_matches_cihp_labels_rev(shared_data, name):
    label = cv2.imread(str(shared_data / "cihp_sample/labels" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    reversed_ = cv2.imread(str(shared_data / "cihp_sample/labels_rev" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert np.isin(label, [14, 15, 16, 17, 18, 19]).any()  # the swap is really exercised
    flipped = augment.swap_parsing_sides(label[:, ::-1], labels.LABEL_SETS["cihp"]).numpy()
    np.testing.assert_array_equal(flipped, reversed_)


def test_side_swap_is_an_involution_that_keeps_ignore():
    label = np.array([[0, 14, 255, 19], [16, 17, 5, 18]], np.uint8)
    lip = labels.LABEL_SETS["lip"]
    swapped = augment.swap_parsing_sides(label, lip).numpy()
    np.testing.assert_array_equal(swapped, [[0, 15, 255, 18], [17, 16, 5, 19]])
    np.testing.assert_array_equal(augment.swap_parsing_sides(swapped, lip).numpy(), label)
    # A label set without sides (CCP) swaps nothing.
    ccp = np.array([[0, 13, 14, 255]], np.uint8)
    np.testing.assert_array_equal(augment.swap_parsing_sides(ccp, labels.LABEL_SETS["ccp"]).numpy(), ccp)


@pytest.mark.parametrize("height, width", [(12, 20), (30, 8)])
def test_training_framing_at_scale_1_is_the_test_framing(height, width):
    """JPPNet: at scale 1 with no flip or rotation a training image is framed exactly as at
    test time (resized to the input, aspect ignored), for non-square images too."""
    ids = np.arange(height * width, dtype=np.uint8).reshape(height, width)  # one id per pixel
    image = np.stack([ids, 255 - ids, ids // 2], -1)
    _, png = cv2.imencode(".png", ids)
    _, jpg = cv2.imencode(".png", image)
    serialized = tf.constant(schema.encode_example(
        jpg.tobytes(), height=height, width=width, source_id="x", dataset="lip",
        parsing_png=png.tobytes()).SerializeToString())
    config = DataConfig(scale_range=(1.0, 1.0), flip=False)
    train_features, train_labels = tf.function(Parser(MODEL, config, training=True).train)(
        serialized, tf.constant([3, 4], tf.int64))
    test_features, test_labels = Parser(MODEL, config, training=False).evaluate(serialized)
    # The same source pixel lands at the same canvas position...
    np.testing.assert_array_equal(train_labels["segmentation"], test_labels["segmentation"])
    assert len(np.unique(train_labels["segmentation"])) == height * width  # every pixel seen
    # ... and so do the pixels (bilinear, edges clamped as tf.image.resize).
    np.testing.assert_allclose(train_features["image"], test_features["image"], atol=1e-3)
    # keep_aspect (an option) frames differently: it pads the image at its own scale.
    other = DataConfig(scale_range=(1.0, 1.0), flip=False, framing="keep_aspect")
    _, padded = tf.function(Parser(MODEL, other, training=True).train)(serialized, tf.constant([3, 4], tf.int64))
    assert (padded["segmentation"].numpy() == 255).sum() == INPUT[0] * INPUT[1] - height * width


def test_stretch_framing_places_a_small_scale_top_left_and_crops_a_large_one():
    config = DataConfig(scale_range=(0.5, 0.5), flip=False)
    for seed in range(3):
        matrix, _ = augment.random_transform(tf.constant([seed, 1], tf.int64), tf.constant([40, 10]), INPUT, config)
        np.testing.assert_allclose(matrix.numpy()[:2], [[48 / 10, 0, 0], [0, 48 / 40, 0]], rtol=1e-6)
    config = DataConfig(scale_range=(1.5, 1.5), flip=False)
    offsets = set()
    for seed in range(6):
        matrix, _ = augment.random_transform(tf.constant([seed, 1], tf.int64), tf.constant([40, 10]), INPUT, config)
        tx, ty = matrix.numpy()[0, 2], matrix.numpy()[1, 2]
        assert -48 <= tx <= 0 and -48 <= ty <= 0  # a random 96x96 crop of the 144x144 resize
        offsets.add((tx, ty))
    assert len(offsets) > 1


def test_side_swaps_follow_the_label_tables():
    keypoints = tf.constant(np.arange(48, dtype=np.float32).reshape(16, 3))
    swapped = augment.swap_keypoint_sides(keypoints, KEYPOINT_SETS["lip"]).numpy()
    r_ankle, l_ankle = labels.LIP_JOINTS.index("R_Ankle"), labels.LIP_JOINTS.index("L_Ankle")
    np.testing.assert_array_equal(swapped[r_ankle], keypoints.numpy()[l_ankle])
    head = labels.LIP_JOINTS.index("B_Head")
    np.testing.assert_array_equal(swapped[head], keypoints.numpy()[head])
    patches = augment.swap_patch_sides(tf.constant([labels.DENSEPOSE_PATCHES.index("Head right"), 1])).numpy()
    assert labels.DENSEPOSE_PATCHES[patches[0]] == "Head left" and patches[1] == 1


def _serialized_people(count, seed=0):
    people = [synthetic.generate_person(np.random.default_rng([seed, k]), 96, 80) for k in range(count)]
    return people, [synthetic.encode_person(p, f"p{k}") for k, p in enumerate(people)]


@pytest.fixture(scope="module")
def people():
    return _serialized_people(12)


def _augmented(parser, serialized, seed):
    """(features, labels, flipped) for one example with the parser's random geometry."""
    if not hasattr(parser, "compiled"):  # eager op-by-op parsing is far slower
        parser.compiled = tf.function(lambda record, seed: (
            *parser.train(record, seed),
            augment.random_transform(seed, tf.constant([96, 80]), INPUT, parser.data_config)[1],
        ))
    features, labels_, flipped = parser.compiled(tf.constant(serialized), tf.constant([seed, 0], tf.int64))
    return {k: v.numpy() for k, v in features.items()}, {k: v.numpy() for k, v in labels_.items()}, bool(flipped)


def _pixel(index_coordinate):
    """Keypoints are pixel indices: the pixel containing x is floor(x + 0.5)."""
    return int(np.floor(index_coordinate + 0.5))


def _uniform_label(parsing, x, y, radius=2):
    row, col = _pixel(y), _pixel(x)
    patch = parsing[max(0, row - radius): row + radius + 1, max(0, col - radius): col + radius + 1]
    return int(patch.flat[0]) if (patch == patch.flat[0]).all() else None


@pytest.mark.parametrize("rotation", [0.0, 25.0])
def test_joints_stay_on_their_body_part(people, rotation):
    parser = Parser(MODEL, DataConfig(rotation_degrees=rotation), training=True)
    flips, checked = set(), 0
    for k, (person, serialized) in enumerate(zip(*people)):
        for seed in range(3):
            _, out, flipped = _augmented(parser, serialized, 100 * k + seed)
            flips.add(flipped)
            for j, (x, y, v) in enumerate(out["keypoints"]):
                source = labels.LIP_JOINT_FLIP[j] if flipped else j
                before = _uniform_label(person["parsing"], *person["keypoints"][source, :2])
                if v < 0 or before is None:
                    continue
                expected = labels.LIP_CLASS_FLIP[before] if flipped else before
                assert out["segmentation"][_pixel(y), _pixel(x)] == expected, (k, seed, labels.LIP_JOINTS[j])
                checked += 1
    assert flips == {True, False} and checked > 150


def test_densepose_points_stay_on_the_foreground(people):
    parser = Parser(MODEL, DataConfig(rotation_degrees=15.0), training=True)
    kept = 0
    for k, serialized in enumerate(people[1]):
        for seed in range(3):
            features, out, flipped = _augmented(parser, serialized, 100 * k + seed)
            points = out["densepose_points"][out["densepose_point_mask"] > 0]
            if flipped:  # no UV symmetry table given: DensePose dropped, never corrupted
                assert out["has_densepose"] == 0 and points.size == 0
                assert (features["densepose_box"] == -1).all()
                continue
            y0, x0, y1, x1 = features["densepose_box"] * (INPUT * 2)
            xs, ys = x0 + points[:, 0] * (x1 - x0), y0 + points[:, 1] * (y1 - y0)
            on = out["segmentation"][ys.astype(int), xs.astype(int)]
            assert ((on > 0) & (on < labels.NUM_LIP_CLASSES)).mean() > 0.97, on
            kept += len(points)
    assert kept > 500


def _write_symmetry(path, u_table, v_table):
    """Same structure as DensePose's file: two 1 x 24 cell arrays of 256 x 256 tables."""
    cells = {"U_transforms": np.empty((1, 24), object), "V_transforms": np.empty((1, 24), object)}
    for k in range(24):
        cells["U_transforms"][0, k], cells["V_transforms"][0, k] = u_table, v_table
    scipy.io.savemat(str(path), cells)


def test_uv_symmetry_table_flips_densepose(tmp_path, people):
    grid = np.linspace(0, 1, augment.UV_GRID)
    _write_symmetry(tmp_path / "sym.mat", 1 - grid[None, :].repeat(256, 0), grid[:, None].repeat(256, 1))
    data = DataConfig(densepose_uv_symmetry_path=str(tmp_path / "sym.mat"), scale_range=(1.0, 1.0))
    parser = Parser(MODEL, data, training=True)
    person, serialized = people[0][0], people[1][0]
    plain_parser = Parser(MODEL, data.replace(flip=False), training=True)
    flipped_seen = False
    for seed in range(8):
        features, out, flipped = _augmented(parser, serialized, seed)
        if not flipped:
            continue
        flipped_seen = True
        _, plain, _ = _augmented(plain_parser, serialized, seed)
        count = int(out["densepose_point_mask"].sum())
        assert out["has_densepose"] == 1 and count == int(plain["densepose_point_mask"].sum())
        ours, theirs = out["densepose_points"][:count], plain["densepose_points"][:count]
        np.testing.assert_array_equal(ours[:, 2], labels.DENSEPOSE_I_FLIP[theirs[:, 2].astype(int)])
        np.testing.assert_allclose(ours[:, 3], 1 - np.floor(theirs[:, 3] * 255) / 255, atol=1e-6)
        np.testing.assert_allclose(ours[:, 4], np.floor(theirs[:, 4] * 255) / 255, atol=1e-6)
        np.testing.assert_allclose(ours[:, 1], theirs[:, 1], atol=1e-5)  # same height in the box
    assert flipped_seen


def test_bad_uv_symmetry_file_is_named(tmp_path):
    scipy.io.savemat(str(tmp_path / "wrong.mat"), {"U_transforms": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="wrong.mat"):
        augment.UVSymmetry(str(tmp_path / "wrong.mat"))
    with pytest.raises(ValueError, match="missing.mat"):
        augment.UVSymmetry(str(tmp_path / "missing.mat"))


def test_evaluation_resize_matches_tf_image_resize():
    image = tf.random.uniform([40, 80, 3], 0, 255, tf.int32, seed=1)
    parsing = tf.constant(np.repeat(np.arange(80, dtype=np.uint8)[None] // 8, 40, 0))
    out_image, matrix = augment.resize_to_input(tf.cast(image, tf.uint8), (64, 32))
    out_parsing = augment.resize_label_map(parsing, (64, 32))
    np.testing.assert_allclose(out_image.numpy(), tf.image.resize(tf.cast(image, tf.float32), (64, 32)).numpy())
    nearest_source = np.floor((np.arange(32) + 0.5) * 80 / 32).astype(int)  # half-pixel centres
    np.testing.assert_array_equal(out_parsing.numpy()[0], nearest_source // 8)
    np.testing.assert_allclose(matrix.numpy()[:2, :2], [[0.4, 0], [0, 1.6]])
    # A pixel index maps like tf.image.resize's half-pixel centres: (x + 0.5) * s - 0.5.
    x, y = augment.transform_pixel_indices(tf.constant(10.0), tf.constant(3.0), matrix)
    np.testing.assert_allclose([x.numpy(), y.numpy()], [10.5 * 0.4 - 0.5, 3.5 * 1.6 - 0.5], rtol=1e-6)


def test_random_transform_is_a_pure_function_of_the_seed():
    config = DataConfig(rotation_degrees=10.0)
    size = tf.constant([50, 60])
    draw = lambda s: augment.random_transform(tf.constant(s, tf.int64), size, (64, 64), config)[0].numpy()
    np.testing.assert_array_equal(draw([1, 2]), draw([1, 2]))
    assert not np.allclose(draw([1, 2]), draw([1, 3]))


def test_real_lip_example_without_densepose(shared_data):
    """The grayscale LIP val image with its parsing and a pose row with missing joints."""
    sample = shared_data / "lip_sample"
    parsing = cv2.imread(str(sample / "parsing/86_185913.png"), cv2.IMREAD_UNCHANGED)
    keypoints = np.full((16, 3), -1, np.float32)
    keypoints[:3] = [[56, 313, 0], [58, 214, 0], [47, 148, 0]]  # first joints of its CSV row
    serialized = schema.encode_example(
        (sample / "images/86_185913.jpg").read_bytes(), height=377, width=130, source_id="86_185913",
        dataset="lip", parsing_png=(sample / "parsing/86_185913.png").read_bytes(), keypoints=keypoints,
    ).SerializeToString()
    model = ModelConfig(backbone="resnet18", input_size=(384, 384), width_multiplier=0.25)
    config = DataConfig(scale_range=(1.0, 1.0), flip=False, framing="keep_aspect")
    parser = Parser(model, config, training=True)
    features, out = tf.function(parser.train)(tf.constant(serialized), tf.constant([0, 0], tf.int64))
    seg = out["segmentation"].numpy()
    assert set(np.unique(seg)) == set(np.unique(parsing)) | {255}  # padded around the 130x377 crop
    assert (seg != 255).sum() == parsing.size  # scale 1: every labelled pixel kept, none invented
    assert out["has_densepose"].numpy() == 0 and (features["densepose_box"].numpy() == -1).all()
    assert (out["keypoints"].numpy()[3:] == -1).all() and (out["keypoints"].numpy()[:3, 2] == 0).all()
    assert out["pose_heatmaps"].numpy()[..., 3:].max() == 0 and out["pose_heatmaps"].numpy()[..., :3].max() > 0.9


# Person 2 wears the side-less classes below, person 1 the rest: a person map that is a
# function of the parsing, so the warped map must be that function of the warped parsing.
SECOND_PERSON = [labels.LIP_CLASSES.index(n) for n in ("Face", "UpperClothes", "Hair")]


def _persons_of(parsing):
    return np.where(np.isin(parsing, SECOND_PERSON), 2, (parsing > 0).astype(np.int32)).astype(np.int32)


@pytest.mark.parametrize("rotation", [0.0, 25.0])
def test_person_ids_follow_the_parsing_through_flip_scale_and_rotation(people, rotation):
    parser = Parser(MODEL.replace(instance_branch=True), DataConfig(rotation_degrees=rotation, scale_range=(0.6, 1.4)), training=True)
    flips = set()
    for k, person in enumerate(people[0][:6]):
        example = schema.encode_example(
            cv2.imencode(".jpg", person["image"])[1].tobytes(), height=96, width=80, source_id=f"q{k}",
            dataset="cihp", parsing_png=cv2.imencode(".png", person["parsing"])[1].tobytes(),
            instance_png=cv2.imencode(".png", _persons_of(person["parsing"]).astype(np.uint8))[1].tobytes(),
        )
        _, out, flipped = _augmented(parser, example.SerializeToString(), k)
        flips.add(flipped)
        seg, ids = out["segmentation"], out["instance_ids"]
        assert out["has_instances"] == 1 and ids.dtype == np.int32 and set(np.unique(ids)) <= {0, 1, 2}
        inside = seg != labels.IGNORE_LABEL
        assert (seg > 0).any()
        np.testing.assert_array_equal(ids[inside], _persons_of(seg)[inside])  # same pixels, same flip
        assert (ids[~inside] == 0).all()  # padding is "no person"
    assert flips == {True, False}


def test_evaluation_resize_keeps_person_ids_on_the_parsing(people):
    parser = Parser(MODEL.replace(instance_branch=True), DataConfig(), training=False)
    person = people[0][0]
    example = schema.encode_example(
        cv2.imencode(".jpg", person["image"])[1].tobytes(), height=96, width=80, source_id="e",
        dataset="cihp", parsing_png=cv2.imencode(".png", person["parsing"])[1].tobytes(),
        instance_png=cv2.imencode(".png", _persons_of(person["parsing"]).astype(np.uint8))[1].tobytes(),
    )
    _, out = parser.evaluate(tf.constant(example.SerializeToString()))
    np.testing.assert_array_equal(out["instance_ids"].numpy(), _persons_of(out["segmentation"].numpy()))
