"""SURREAL converter on small clips written in SURREAL's format by these tests (no SURREAL file is
used: its licence forbids redistribution): camera, joints, parts, depth, sampling, bad clips, CLI."""

import json

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from spd_tf import labels
from spd_tf.data import schema, surreal
from tfrecords_tools import cli, convert_surreal

H, W = 240, 320  # every SURREAL frame
# gulvarol/surreal datageneration/misc/3Dto2D/main.m:17-25, written out by hand.
K = np.array([[600.0, 0, 160], [0, 600, 120], [0, 0, 1]])
# training/opts.lua:40 and loader_SURREAL.lua:85, as printed there (1-based).
JOINTS_IX = [8, 5, 2, 3, 6, 9, 1, 7, 13, 16, 21, 19, 17, 18, 20, 22]
LUA_PARTS = [2, 12, 9, 2, 13, 10, 2, 14, 11, 2, 14, 11, 2, 2, 2, 1, 6, 3, 7, 4, 8, 5, 8, 5]
HEAD_TOP = 9  # LIP index of SMPL joint 16 (head)


def main_m_extrinsic(cam_loc):
    """main.m:22-25's example matrix for any camLoc: [[0,0,-1,T3],[0,1,0,-T2],[-1,0,0,T1]]."""
    t1, t2, t3 = cam_loc
    return np.array([[0, 0, -1, t3], [0, 1, 0, -t2], [-1, 0, 0, t1]], np.float64)


def frame_value(t):
    return 30 * t  # each frame a distinct grey, so the frame a record holds is known


def segm_frame(t):
    """Vertical stripes of every SMPL part 0..24, shifted by the frame."""
    return (((np.arange(W) // 12) + t) % 25).astype(np.uint8)[None, :].repeat(H, axis=0)


def depth_frame(t):
    depth = np.full((H, W), 1e10, np.float32)  # SURREAL's background
    depth[60:180, 100:220] = 6.5 + 0.0123 * t
    return depth


def write_clip(folder, name, frames=4, cam_loc=(7.1, -0.9, -1.8), seed=0, head_out_in=None,
               video_frames=None, segm_frames=None, nan_in=None, skip=()):
    """<name>.mp4 and its _info/_segm/_depth.mat in SURREAL's format; returns the joints."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cam_loc = np.asarray(cam_loc, np.float64)
    # World metres in front of the camera (it looks along world -x from camLoc).
    world = np.stack([rng.uniform(-0.3, 0.3, (frames, 24)), cam_loc[1] + rng.uniform(-0.9, 0.9, (frames, 24)),
                      cam_loc[2] + rng.uniform(-1.2, 1.2, (frames, 24))], axis=-1)
    if head_out_in is not None:
        world[head_out_in - 1, 15, 1] = cam_loc[1] - 3.0  # far above the frame
    homogeneous = np.concatenate([world, np.ones((frames, 24, 1))], axis=-1)
    camera = homogeneous @ main_m_extrinsic(cam_loc).T
    pixels = camera @ K.T
    joints2d = np.floor(pixels[..., :2] / pixels[..., 2:] + 0.5)  # main.m:29 round (all positive here)
    joints3d = world.astype(np.float32)
    if nan_in is not None:
        joints3d[nan_in - 1, 3, 0] = np.nan
    if "info" not in skip:
        scipy.io.savemat(folder / f"{name}_info.mat", {
            "joints2D": joints2d.transpose(2, 1, 0).astype(np.float32),
            "joints3D": joints3d.transpose(2, 1, 0), "camLoc": cam_loc[:, None].astype(np.float32),
            "zrot": np.zeros((frames, 1), np.float32), "sequence": name}, do_compression=True)
    count = frames if segm_frames is None else segm_frames
    if "segm" not in skip:
        scipy.io.savemat(folder / f"{name}_segm.mat", {f"segm_{t}": segm_frame(t) for t in range(1, count + 1)},
                         do_compression=True)
    if "depth" not in skip:
        scipy.io.savemat(folder / f"{name}_depth.mat", {f"depth_{t}": depth_frame(t) for t in range(1, frames + 1)},
                         do_compression=True)
    writer = cv2.VideoWriter(str(folder / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for t in range(1, (video_frames or frames) + 1):
        writer.write(np.full((H, W, 3), frame_value(t), np.uint8))
    writer.release()
    return joints2d, camera


def build_tree(root):
    """Two train clips of the same name in two runs (5 frames), one val clip (4 frames)."""
    clips = {
        "run0/01_01_c0001": write_clip(root / "cmu/train/run0/01_01", "01_01_c0001", frames=5, head_out_in=2),
        "run1/01_01_c0001": write_clip(root / "cmu/train/run1/01_01", "01_01_c0001", frames=5, seed=1,
                                       cam_loc=(6.4, -1.1, -2.2)),
        "run0/02_01_c0001": write_clip(root / "cmu/val/run0/02_01", "02_01_c0001", frames=4, seed=2),
    }
    return root, clips


def records(directory, split):
    files = sorted(str(p) for p in directory.glob(f"{split}-*-of-*.tfrecord"))
    return {ex["source_id"].numpy().decode(): ex for ex in map(schema.decode_example, tf.data.TFRecordDataset(files))}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The tree converted once through `spd-convert surreal` (every frame)."""
    base = tmp_path_factory.mktemp("surreal")
    root, clips = build_tree(base / "SURREAL")
    code = cli.main(["surreal", "--data", str(root), "--out", str(base / "out"), "--workers", "1"])
    return base / "out", clips, code


def test_camera_is_surreals_own():
    np.testing.assert_allclose(surreal.intrinsic(), K)
    cam_loc = [6.7456, -0.9839, -1.9293]  # main.m:13 and its extrinsic, main.m:22-25
    np.testing.assert_allclose(surreal.extrinsic(cam_loc), main_m_extrinsic(cam_loc))
    assert np.linalg.det(surreal.extrinsic(cam_loc)[:, :3]) == pytest.approx(-1)  # a reflection
    assert surreal.matlab_round([0.5, 1.5, 2.5, -0.5]).tolist() == [1, 2, 3, -1]


def test_frames_decode_with_joints_parts_and_depth(converted):
    out, clips, code = converted
    assert code == 0
    train, val = records(out, "train"), records(out, "val")
    assert len(train) == 10 and len(val) == 4  # every frame; clip names repeat across runs, ids do not
    assert "run0_01_01_c0001_f001" in train and "run1_01_01_c0001_f005" in train
    example = train["run0_01_01_c0001_f003"]
    assert example["dataset"].numpy() == b"surreal" and example["keypoint_set"].numpy() in (b"", b"lip")
    for flag in ("has_segmentation", "has_pose", "has_depth", "has_pose3d"):
        assert example[flag].numpy() == 1, flag
    assert abs(float(example["image"].numpy().mean()) - frame_value(3)) < 8  # frame 3 of the mp4
    joints2d, camera = clips["run0/01_01_c0001"]
    ix = np.asarray(JOINTS_IX) - 1
    keypoints, joints3d = example["keypoints"].numpy(), example["joints3d"].numpy()
    np.testing.assert_array_equal(keypoints[:, :2], joints2d[2, ix])  # 0-based pixels kept as they are
    assert (keypoints[:, 2] == 0).all() and (joints3d[:, 3] == 0).all()
    np.testing.assert_allclose(joints3d[:, :3], camera[2, ix], atol=1e-5)  # OpenCV camera metres
    reprojected = joints3d[:, :3] @ K.T
    np.testing.assert_allclose(reprojected[:, :2] / reprojected[:, 2:], keypoints[:, :2], atol=0.5 + 1e-4)
    assert joints3d[6, 2] > 6  # the pelvis (LIP 6 = SMPL 1) about 7 m in front of the camera
    # Parts: SMPL part k -> Lua's class table entry k with left and right swapped (parts named by
    # the pictured person's sides, as the joints: SURREAL's frames are mirrored), background 0 -> 0.
    swap = {3: 6, 4: 7, 5: 8, 9: 12, 10: 13, 11: 14}
    swap.update({right: left for left, right in swap.items()})
    table = np.array([0] + [swap.get(c, c) for c in LUA_PARTS])
    np.testing.assert_array_equal(example["parsing"].numpy(), table[segm_frame(3)])
    assert labels.SURREAL_CLASSES[table[16]] == "Head" and labels.SURREAL_CLASSES[table[1]] == "Torso"
    # SMPL's leftUpLeg (part 2) carries the joint the 16 call r_hip (SMPL L_Hip): RightUpperLeg.
    assert labels.SURREAL_CLASSES[table[2]] == "RightUpperLeg" and JOINTS_IX[2] == 2  # 1-based SMPL 2 = L_Hip
    # Depth: millimetres in the PNG, metres decoded; background 1e10 -> 0.
    depth = example["depth"].numpy()
    assert depth[0, 0] == 0 and depth[100, 150] == pytest.approx(np.round((6.5 + 0.0123 * 3) * 1000) / 1000)
    assert (depth > 0).sum() == 120 * 120


def test_joint_outside_the_image_is_missing_in_2d_only(converted):
    out, clips, _ = converted
    example = records(out, "train")["run0_01_01_c0001_f002"]
    assert clips["run0/01_01_c0001"][0][1, 15, 1] < 0  # SMPL head above the frame in joints2D
    np.testing.assert_array_equal(example["keypoints"].numpy()[HEAD_TOP], [-1, -1, -1])
    assert example["joints3d"].numpy()[HEAD_TOP, 3] == 0  # the 3D joint is still known


def test_report_counts_and_tasks(converted):
    out, _, _ = converted
    report = json.loads((out / "surreal-report.json").read_text())
    assert report["splits"]["train"]["written"] == 10 and report["total_skipped"] == 0
    assert report["splits"]["val"]["tasks"]["segmentation"] == 4 and report["splits"]["val"]["tasks"]["pose"] == 4
    assert report["clips"]["train"] == {"listed": 2, "with_frames": 2} and report["sampling"] == {"every": 1}


def test_middle_and_every_nth_frame(tmp_path):
    root, _ = build_tree(tmp_path / "SURREAL")
    convert_surreal.convert_surreal(root, tmp_path / "middle", middle=True)
    assert sorted(records(tmp_path / "middle", "train")) == ["run0_01_01_c0001_f003", "run1_01_01_c0001_f003"]
    assert list(records(tmp_path / "middle", "val")) == ["run0_02_01_c0001_f002"]  # ceil(4 / 2)
    convert_surreal.convert_surreal(root, tmp_path / "every", ["val"], every=2)
    val = records(tmp_path / "every", "val")
    assert sorted(val) == ["run0_02_01_c0001_f001", "run0_02_01_c0001_f003"]
    assert abs(float(val["run0_02_01_c0001_f003"]["image"].numpy().mean()) - frame_value(3)) < 8
    assert not list((tmp_path / "every").glob("train-*"))  # --splits val only
    assert surreal.sample_frames(100, middle=True) == [50] and surreal.sample_frames(7, every=3) == [1, 4, 7]


def test_bad_clips_are_named_and_the_rest_is_written(tmp_path, capsys):
    root = tmp_path / "SURREAL"
    run = root / "cmu/train/run0"
    write_clip(run / "01_01", "01_01_c0001", frames=3)  # good
    write_clip(run / "01_02", "01_02_c0001", frames=3, skip=("depth",))
    write_clip(run / "01_03", "01_03_c0001", frames=3, video_frames=4)
    write_clip(run / "01_04", "01_04_c0001", frames=3, segm_frames=2)
    write_clip(run / "01_05", "01_05_c0001", frames=3, nan_in=2)
    write_clip(run / "01_06", "01_06_c0001", frames=3)
    (run / "01_06/01_06_c0001.mp4").write_bytes(b"not a video")
    write_clip(run / "01_07", "01_07_c0001", frames=3)
    (run / "01_07/01_07_c0001_info.mat").write_bytes(b"MATLAB garbage")
    code = cli.main(["surreal", "--data", str(root), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert code == 0
    report = json.loads((tmp_path / "out/surreal-report.json").read_text())
    reasons = {entry["item"]: entry["reason"] for entry in report["skipped"]}
    assert reasons["train/run0/01_02/01_02_c0001"] == "missing 01_02_c0001_depth.mat"
    mismatch = reasons["train/run0/01_03/01_03_c0001"]
    assert "frame count mismatch: 01_03_c0001.mp4 has 4, 01_03_c0001_info.mat 3" in mismatch
    assert "01_04_c0001_segm.mat 2" in reasons["train/run0/01_04/01_04_c0001"]
    assert reasons["train/run0/01_05/01_05_c0001"] == "frames left out: 2 (NaN joints)"
    assert "unreadable video" in reasons["train/run0/01_06/01_06_c0001"]
    assert "01_07_c0001_info.mat: unreadable .mat file" in reasons["train/run0/01_07/01_07_c0001"]
    assert len(reasons) == 6
    written = records(tmp_path / "out", "train")
    assert sorted(written) == ["run0_01_01_c0001_f001", "run0_01_01_c0001_f002", "run0_01_01_c0001_f003",
                               "run0_01_05_c0001_f001", "run0_01_05_c0001_f003"]
    stderr = capsys.readouterr().err.splitlines()
    for item in reasons:
        assert sum(item in line and "skipped" in line for line in stderr) == 1, item


def test_check_camera_prints_one_json_line(tmp_path, capsys):
    write_clip(tmp_path, "c", frames=3)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["surreal", "--check-camera", str(tmp_path / "c_info.mat")])
    assert exit_info.value.code == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["max_error_px"] == 0 and line["ok"] and line["frames"] == 3
    info = scipy.io.loadmat(tmp_path / "c_info.mat")
    info["joints2D"][1, 5, 2] += 2  # one joint two pixels off
    scipy.io.savemat(tmp_path / "c_info.mat", {k: v for k, v in info.items() if not k.startswith("__")})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["surreal", "--check-camera", str(tmp_path / "c_info.mat")])
    assert exit_info.value.code == 1 and json.loads(capsys.readouterr().out)["max_error_px"] == 2


def test_layout_and_flag_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_clip(tmp_path / "S/cmu/val/run0/a", "a_c0001", frames=2)
    for flags, message in ((["--data", str(tmp_path / "empty")], "empty: not a SURREAL layout"),
                           (["--data", str(tmp_path / "S"), "--splits", "test"], "no split test (present: val)"),
                           (["--data", str(tmp_path / "S"), "--every", "2", "--middle"], "not allowed with argument")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["surreal", *flags, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and "Traceback" not in err, flags
