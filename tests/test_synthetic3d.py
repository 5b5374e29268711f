"""3D synthetic people: deterministic, one z-buffered render behind every label, camera-exact
joints, back views, and the "3d" scene's records."""

import cv2
import numpy as np
import pytest

from spd_tf import labels
from spd_tf.data import synthetic, synthetic3d
from spd_tf.data import synthetic3d_render as render
from spd_tf.data import synthetic_drawing as drawing

SIZE = (64, 56)
S = {name: i for i, name in enumerate(labels.SURREAL_CLASSES)}
C = {name: i for i, name in enumerate(labels.LIP_CLASSES)}


def _person(seed, size=SIZE):
    return synthetic3d.generate_person3d(np.random.default_rng([seed, 3]), *size)


def _scene(seed, size=SIZE):
    """The Person3D inside _person(seed): generate_person3d draws the background, then it."""
    rng = np.random.default_rng([seed, 3])
    drawing.background(rng, *size)
    return synthetic3d.Person3D(rng, *size)


@pytest.fixture(scope="module")
def people():
    return [_person(seed) for seed in range(24)]


def test_same_seed_same_person_different_seed_different():
    a, b, c = _person(0), _person(0), _person(1)
    for key in ("image", "parsing", "parts", "patches", "depth", "keypoints", "joints3d", "camera"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("x", "u", "i"):
        np.testing.assert_array_equal(a["densepose"][key], b["densepose"][key])
    assert not np.array_equal(a["depth"], c["depth"])


def test_shapes_dtypes_and_ranges(people):
    for p in people:
        assert p["image"].shape == SIZE + (3,) and p["image"].dtype == np.uint8
        for key in ("parsing", "parts", "patches", "instances"):
            assert p[key].shape == SIZE and p[key].dtype == np.uint8
        assert p["depth"].shape == SIZE and p["depth"].dtype == np.float32
        assert p["keypoints"].shape == (16, 3) and p["joints3d"].shape == (16, 4) and p["camera"].shape == (3, 3)
        assert p["parsing"].max() < labels.NUM_LIP_CLASSES and p["parts"].max() < len(labels.SURREAL_CLASSES)
        assert (p["joints3d"][:, 3] == 0).all() and (p["joints3d"][:, 2] > 1).all()
        dp = p["densepose"]
        assert dp["i"].size and dp["i"].min() >= 1 and dp["i"].max() <= 24
        assert 0 <= dp["u"].min() and dp["u"].max() <= 1 and 0 <= dp["v"].min() and dp["v"].max() <= 1
        assert cv2.imdecode(np.frombuffer(dp["masks_png"], np.uint8), cv2.IMREAD_UNCHANGED).shape == (256, 256)


def test_every_label_has_the_same_silhouette_and_background_depth_is_zero(people):
    for p in people:
        fg = p["depth"] > 0
        assert fg.any() and not fg.all()
        for key in ("parsing", "parts", "patches", "instances"):
            np.testing.assert_array_equal(p[key] > 0, fg, err_msg=key)
        assert (p["depth"][~fg] == 0).all() and np.isfinite(p["depth"]).all()


def test_lip_classes_lie_on_their_parts(people):
    """Sided LIP classes sit on the same side's parts; shoes on feet; face/hair/hat on the head
    (or the neck and the upper back)."""
    allowed = {C["Hat"]: ("Head",), C["Sunglasses"]: ("Head",), C["Face"]: ("Head", "Torso"),
               C["Hair"]: ("Head", "Torso"), C["Glove"]: ("RightHand", "LeftHand")}
    for side in ("Right", "Left"):
        allowed[C[f"{side}-shoe"]] = (f"{side}Foot",)
        allowed[C[f"{side}-arm"]] = tuple(f"{side}{p}" for p in ("UpperArm", "Forearm", "Hand"))
        allowed[C[f"{side}-leg"]] = (f"{side}UpperLeg", f"{side}LowerLeg")
    for p in people:
        for cls, parts in allowed.items():
            on = np.unique(p["parts"][p["parsing"] == cls])
            assert set(on) <= {S[name] for name in parts}, (labels.LIP_CLASSES[cls], on)


def test_zbuffer_nearest_primitive_wins_whatever_the_order():
    """An arm capsule 0.3 m in front of a torso ellipsoid: where both project, depth and
    owner are the arm's, listed first or last (no painter's order)."""
    K = np.array([[60.0, 0, 23.5], [0, 60, 23.5], [0, 0, 1]])
    torso = render.Ellipsoid([0, 0, 3.0], np.eye(3), [0.25, 0.4, 0.15], part=2)
    arm = render.Capsule([-0.4, -0.1, 2.7], [0.4, 0.1, 2.7], 0.05, part=4)
    for prims, arm_index in (([arm, torso], 0), ([torso, arm], 1)):
        depth, owner, dirs = render.zbuffer(prims, K, 48, 48)
        t_arm, t_torso = arm.hit(dirs), torso.hit(dirs)
        both = np.isfinite(t_arm) & np.isfinite(t_torso)
        assert both.sum() > 10
        assert (owner[both] == arm_index).all()
        np.testing.assert_allclose(depth[both], t_arm[both])
        assert (t_arm[both] < t_torso[both]).all()
        np.testing.assert_allclose(depth, np.minimum(t_arm, t_torso))
    # The arm's surface is at its axis' depth minus (at most) its radius.
    assert 2.65 - 1e-6 <= depth[both].min() and depth[both].max() <= 2.7


def test_person_labels_are_the_nearest_primitive_of_every_pixel():
    """Brute force over all primitives (no culling) against the render, on bodies whose
    volumes overlap in the image."""
    overlapping = 0
    for seed in range(8):
        scene, p = _scene(seed), _person(seed)
        rows, cols = np.mgrid[0:SIZE[0], 0:SIZE[1]]
        dirs = render.ray_directions(scene.camera.K, cols, rows)
        hits = np.stack([prim.hit(dirs) for prim in scene.prims])
        nearest = hits.min(0)
        fg = np.isfinite(nearest)
        np.testing.assert_allclose(p["depth"][fg], nearest[fg], rtol=1e-6)
        assert (p["depth"][~fg] == 0).all()
        prim_parts = np.array([prim.part for prim in scene.prims])
        np.testing.assert_array_equal(p["parts"][fg], prim_parts[hits.argmin(0)][fg])
        hit_parts = np.isfinite(hits) * prim_parts[:, None, None]
        overlapping += sum(((hit_parts == a).any(0) & (hit_parts == b).any(0)).sum()
                           for a in range(1, 15) for b in range(a + 1, 15))
    assert overlapping > 100


def test_keypoints_are_the_projection_of_the_3d_joints(people):
    for p in people:
        xyz = p["joints3d"][:, :3].astype(np.float64)
        pix = xyz @ p["camera"].T
        pix = pix[:, :2] / pix[:, 2:]
        inside = p["keypoints"][:, 2] == 0
        np.testing.assert_allclose(p["keypoints"][inside, :2], pix[inside], atol=1e-3)
        height, width = SIZE
        assert ((pix[inside] >= -0.5) & (pix[inside] < (width - 0.5, height - 0.5))).all()
        assert (p["keypoints"][~inside] == -1).all()
        assert ((pix[~inside] < -0.5) | (pix[~inside] >= (width - 0.5, height - 0.5))).any(1).all()


def _contains(prim, point) -> bool:
    if isinstance(prim, render.Capsule):
        ba = prim.b - prim.a
        s = np.clip((point - prim.a) @ ba / (ba @ ba), 0, 1)
        return np.linalg.norm(point - prim.a - s * ba) <= prim.radius + 1e-9
    return np.sum(((point - prim.centre) @ prim.axes / prim.radii) ** 2) <= 1 + 1e-9


def test_depth_at_a_visible_joint_is_its_z_within_the_limb_radius():
    """Every joint is inside a volume, so its ray meets a surface at Z <= the joint's; when that
    surface is a volume holding the joint (the joint is visible), it is at most the volume's
    radius in front ((r + the joint's distance off the axis) / sin of the ray-to-limb angle,
    for limbs seen at > 60 degrees). The exact ray of the keypoint, not its pixel centre's (the
    depth map is the pixel centres' casts: test_person_labels_are_the_nearest_primitive...)."""
    checked = 0
    for seed in range(12):
        scene, p = _scene(seed), _person(seed)
        for j, (x, y, v) in enumerate(p["keypoints"]):
            if v < 0:
                continue
            joint = p["joints3d"][j, :3].astype(np.float64)
            holders = [k for k, prim in enumerate(scene.prims) if _contains(prim, joint)]
            assert holders, (seed, labels.LIP_JOINTS[j])
            ray = render.ray_directions(scene.camera.K, np.array([x]), np.array([y]))
            t, owner = render.cast(scene.prims, ray)
            assert t[0] <= joint[2] + 1e-4, (seed, labels.LIP_JOINTS[j])
            prim = scene.prims[owner[0]]
            if owner[0] not in holders:
                continue  # hidden behind another volume
            if isinstance(prim, render.Capsule):
                axis = (prim.b - prim.a) / np.linalg.norm(prim.b - prim.a)
                sine = np.sqrt(1 - (axis @ ray[0] / np.linalg.norm(ray[0])) ** 2)
                if sine < 0.87:
                    continue
                off_axis = np.linalg.norm(np.cross(joint - prim.a, axis))  # 0 for the limb's own joints
                assert joint[2] - t[0] <= (prim.radius + off_axis) / sine + 1e-6, (seed, labels.LIP_JOINTS[j])
            else:
                assert joint[2] - t[0] <= 2 * prim.radii.max(), (seed, labels.LIP_JOINTS[j])
            checked += 1
    assert checked > 80


def test_back_views_exist_and_left_right_follow_the_view():
    front, back = 0, 0
    for seed in range(40):
        p = _person(seed, (48, 48))
        torso_front = (p["patches"] == labels.DENSEPOSE_PATCHES.index("Torso front")).sum()
        torso_back = (p["patches"] == labels.DENSEPOSE_PATCHES.index("Torso back")).sum()
        share = torso_front / max(1, torso_front + torso_back)
        r_x, l_x = p["joints3d"][12, 0], p["joints3d"][13, 0]  # R_Shoulder, L_Shoulder (camera X)
        if share > 0.9:
            front += 1
            assert l_x > r_x, seed  # facing the camera: the person's left is on the image's right
        elif share < 0.1:
            back += 1
            assert l_x < r_x, seed
    assert front >= 5 and back >= 5


def test_densepose_points_lie_on_their_patch_and_v_runs_along_the_limb(people):
    agree = total = 0
    corr = []
    for p in people:
        dp = p["densepose"]
        col, row = np.floor(dp["x"]).astype(int), np.floor(dp["y"]).astype(int)
        agree += (p["patches"][row, col] == dp["i"]).sum()
        total += dp["i"].size
        x0, y0, w, _ = dp["bbox"]
        assert (dp["x"] >= x0).all() and (dp["x"] <= x0 + w).all() and (dp["y"] >= y0).all()
        for side, j in (("right", 12), ("left", 13)):  # upper arm: V grows away from the shoulder
            on = np.isin(dp["i"], [labels.DENSEPOSE_PATCHES.index(f"Upper arm {side} {v}") for v in ("front", "back")])
            if on.sum() >= 4 and p["keypoints"][j, 2] == 0:
                distance = np.hypot(dp["x"][on] - 0.5 - p["keypoints"][j, 0], dp["y"][on] - 0.5 - p["keypoints"][j, 1])
                corr.append(np.corrcoef(distance, dp["v"][on])[0, 1])
    assert agree / total > 0.85  # the rest lie in boundary pixels whose centre sees the next patch
    assert np.nanmean(corr) > 0.5


def test_3d_scene_round_trips_through_the_schema(tmp_path):
    import tensorflow as tf

    from spd_tf.data import schema

    for label_set in ("lip", "surreal"):
        out = tmp_path / label_set
        report = synthetic.write_synthetic_dataset(out, 2, 1, (48, 40), seed=2, num_shards=1, scene="3d",
                                                   label_set=label_set)
        assert report["scene"] == "3d" and report["label_set"] == label_set
        assert report["splits"]["train"]["examples_per_task"]["depth"] == 2
        names = labels.SURREAL_CLASSES if label_set == "surreal" else labels.LIP_CLASSES
        assert list(report["class_image_fraction"]) == list(names)
        records = list(tf.data.TFRecordDataset(sorted(str(f) for f in out.glob("train-*.tfrecord"))))
        expected = synthetic3d.generate_person3d(synthetic._example_rng(2, "train", 1), 48, 40)
        example = schema.decode_example(records[1])
        assert example["dataset"].numpy() == b"synthetic3d"
        np.testing.assert_array_equal(example["parsing"].numpy(),
                                      expected["parts" if label_set == "surreal" else "parsing"])
        np.testing.assert_allclose(example["depth"].numpy(), np.round(expected["depth"] * 1000) / 1000, atol=1e-6)
        np.testing.assert_allclose(example["joints3d"].numpy(), expected["joints3d"], atol=1e-6)
        np.testing.assert_allclose(example["keypoints"].numpy(), expected["keypoints"], atol=1e-6)
        assert example["has_depth"].numpy() == 1 and example["has_pose3d"].numpy() == 1


def test_label_set_keys_only_the_3d_cache_and_needs_the_3d_scene(tmp_path, monkeypatch):
    write, calls = synthetic.write_synthetic_dataset, []
    monkeypatch.setattr(synthetic, "write_synthetic_dataset", lambda out, *a: calls.append(a))
    settings = {"num_train": 1, "num_val": 1, "image_size": (32, 32)}
    lip = synthetic.ensure_synthetic_dataset(tmp_path, scene="3d", label_set="lip", **settings)
    parts = synthetic.ensure_synthetic_dataset(tmp_path, scene="3d", label_set="surreal", **settings)
    assert lip != parts and calls[-1][-2:] == ("3d", "surreal")
    single = synthetic.ensure_synthetic_dataset(tmp_path, **settings)
    expected = {"num_train": 1, "num_val": 1, "image_size": [32, 32], "seed": 0, "num_shards": 4}
    assert f"synthetic-{synthetic._settings_key(expected)}" in single[0]  # no label_set in the 2D keys
    with pytest.raises(ValueError, match="surreal parts need scene 3d"):
        write(tmp_path / "x", 1, 0, (32, 32), scene="single", label_set="surreal")
