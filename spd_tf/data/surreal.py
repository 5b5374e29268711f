"""SURREAL (Varol et al., CVPR 2017, "Learning from Synthetic Humans") as its download holds it:
the format, SURREAL's own camera, and the mappings to this toolkit's label and joint sets.

Layout (ROOT, or ROOT/cmu): cmu/{train,val,test}/run*/<seq>/<clip>.mp4 (320x240 RGB frames),
beside each clip <clip>_info.mat (joints2D 2x24xT pixels, joints3D 3x24xT world metres, camLoc 3,
zrot T, pose, shape, ...), <clip>_segm.mat (segm_<t>, t = 1..T: 240x320 uint8, 0 background,
1..24 the SMPL parts) and <clip>_depth.mat (depth_<t>: 240x320 float32 camera Z in metres,
background 1e10). References below are files of github.com/gulvarol/surreal.

- Camera: `intrinsic` and `extrinsic` are datageneration/misc/3Dto2D/getIntrinsicBlender.m:9-31
  and getExtrinsicBlender.m:11-32 (f = 60 mm on a 32 mm sensor at 320x240: fx = fy = 600,
  centre (160, 120); the camera looks along world -x from camLoc). `projection_error` is main.m:8-32:
  joints2D == round(K [R|t] X) with MATLAB's round, 0 on the info.mat the repository ships.
- 2D joints: joints2D are 0-based pixel indices already (main.m:29-32 compares them with the
  projection as they are; training/loader_SURREAL.lua:46-47 adds 1 only because Lua/Torch
  indexes from 1), so they are kept as they are: the contract's pixel index = K X / Z. (They are
  Blender's world_to_camera_view x 320 rounded, main_part1.py:307-325, whose pixel centres sit
  at +0.5: at most half a pixel from the exact raster position.) Varol's 16 of the 24 joints are
  `JOINTS_IX` (training/opts.lua:40, 1-based SMPL) in MPII/LIP order; a joint outside the
  320x240 image is (-1, -1, -1), an annotated one has v = 0.
- 3D joints: joints3D in world metres -> OpenCV camera metres with R_world2cv, T_world2cv of
  getExtrinsicBlender.m:28-29 (X_cam = R X + t). Every one of the 16 is annotated (v = 0), also
  when its 2D joint is outside the image.
- Left and right: R_world2cv has determinant -1 (getExtrinsicBlender.m:11-13: Blender's camera
  matrix_world, main_part1.py:238-241, is a reflection), so the frames show the MIRROR image of
  the SMPL body in world space. Measured on the shipped 01_01_c0001_info.mat: in world
  coordinates SMPL's L_* joints lie on the body's anatomical left (up x forward, forward = ankle
  -> toe) in 100 of 100 frames, in camera coordinates on its right in 100 of 100. That is why
  JOINTS_IX puts SMPL's L_Ankle (8) at MPII's r_ankle: the joints are named as the pictured
  person's sides (datageneration/misc/smpl_relations/smpl_relations.py:206 "left/right are
  swapped"). The part table does not rename: SMPL's leftUpLeg (segm 2) becomes class 12, which
  the `surreal` label set calls LeftUpperLeg, so in the picture class 12 covers the person's
  RIGHT thigh while the joint `r_hip` (same SMPL side) sits on it. spd_tf names parts, like
  joints, by the pictured person's sides (the `surreal` label set, the 3D synthetic people,
  flips), so `PART_TO_CLASS` is SURREAL's table with its left/right pairs swapped
  (labels.SURREAL_FLIP_PAIRS): a part and the joints on it carry the same side. The 14-part
  mean IoU is unchanged by this renaming (the same per-part IoUs, permuted); docs/data.md.
- Parts: `PART_TO_CLASS` is loader_SURREAL.lua:85 ({2, 12, 9, 2, 13, 10, 2, 14, 11, 2, 14, 11,
  2, 2, 2, 1, 6, 3, 7, 4, 8, 5, 8, 5}) applied as training/donkey.lua:44-48 changeSegmIx does:
  SMPL part i (1..24, main_part1.py:29-32 sorted_parts order, segm value = index + 1,
  main_part1.py:41) -> class s[i], every other value (0, background) -> 0. Checked entry by
  entry against the part names: hips, spine*, neck and both shoulders -> 2 (torso), head -> 1,
  leftUpLeg/rightUpLeg -> 12/9, leftLeg/rightLeg -> 13/10, leftFoot+leftToeBase -> 14,
  rightFoot+rightToeBase -> 11, leftArm/rightArm -> 6/3, leftForeArm/rightForeArm -> 7/4,
  leftHand+leftHandIndex1 -> 8, rightHand+rightHandIndex1 -> 5. donkey.lua:167 then adds 1 for
  Lua; here the classes stay 0-based (0 = background), the order of labels.SURREAL_CLASSES.
- Depth: depth_<t> is camera Z (donkey.lua:94 aligns it with camLoc_x - pelvis_x, the pelvis's
  camera Z); values > 1e3 m are background (loader_SURREAL.lua:99).
- Frames: t is 1-based as in segm_<t> / depth_<t>; video frame t is the (t-1)-th of the mp4
  (loader_SURREAL.lua:32 seeks to t-1). `sample_frames` takes every Nth frame, or the middle one
  ceil(T/2) as Varol's test does (donkey.lua:74-75), T = joints2D's frame count (Varol's
  loader counts zrot, loader_SURREAL.lua:9-17; the mp4, segm_<t> and depth_<t> must agree).

No TensorFlow here (the converter, tfrecords_tools/convert_surreal.py, encodes the records).
SURREAL's licence forbids redistribution: no SURREAL file belongs in this repository.
"""

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.io

from spd_tf import labels
from spd_tf.data import layouts

PathLike = Union[str, os.PathLike]
SPLITS = ("train", "val", "test")
HEIGHT, WIDTH = 240, 320  # getIntrinsicBlender.m:9-10
NUM_SMPL_JOINTS = 24
NUM_SMPL_PARTS = 24
KEYPOINT_SET = "lip"
PELVIS = 6  # in the 16 (MPII order)
BACKGROUND_DEPTH_M = 1e3  # loader_SURREAL.lua:99: deeper is background (SURREAL writes 1e10)
# training/opts.lua:40, 1-based SMPL joints in MPII/LIP order (r_ankle ... l_wrist).
JOINTS_IX = np.array([8, 5, 2, 3, 6, 9, 1, 7, 13, 16, 21, 19, 17, 18, 20, 22]) - 1
# loader_SURREAL.lua:85 through donkey.lua:44-48: segm value (0..24) -> surreal class (0..14).
_LUA_TABLE = (2, 12, 9, 2, 13, 10, 2, 14, 11, 2, 14, 11, 2, 2, 2, 1, 6, 3, 7, 4, 8, 5, 8, 5)
# ... with left and right swapped so parts are named as the pictured person's sides, as joints.
PART_TO_CLASS = labels.LABEL_SETS["surreal"].flip_permutation[np.array((0,) + _LUA_TABLE)].astype(np.uint8)
INFO, SEGM, DEPTH = "_info.mat", "_segm.mat", "_depth.mat"


# --- the camera --------------------------------------------------------------------------------

def intrinsic() -> np.ndarray:
    """K of every SURREAL frame (getIntrinsicBlender.m:9-31): [[600, 0, 160], [0, 600, 120], [0, 0, 1]]."""
    res_x, res_y, f_mm, sensor_w = WIDTH, HEIGHT, 60.0, 32.0  # main_part1.py:243-258
    sensor_h = sensor_w * res_y / res_x
    return np.array([[f_mm * res_x / sensor_w, 0.0, res_x / 2],
                     [0.0, f_mm * res_y / sensor_h, res_y / 2],
                     [0.0, 0.0, 1.0]])


def extrinsic(cam_loc) -> np.ndarray:
    """[R_world2cv | T_world2cv] (3x4) of a clip's camera location camLoc (getExtrinsicBlender.m:11-32).

    World metres -> OpenCV camera metres (x right, y down, z forward): X_cam = R X + T. R has
    determinant -1 (a reflection; see the module docstring)."""
    location = np.asarray(cam_loc, np.float64).reshape(3)
    r_world2bcam = np.array([[0, 0, 1], [0, -1, 0], [-1, 0, 0]], np.float64).T  # note the ' in the .m
    t_world2bcam = -r_world2bcam @ location
    r_bcam2cv = np.diag([1.0, -1.0, -1.0])
    return np.concatenate([r_bcam2cv @ r_world2bcam, (r_bcam2cv @ t_world2bcam)[:, None]], axis=1)


def to_camera(points_world, cam_loc) -> np.ndarray:
    """[..., 3] world metres -> [..., 3] camera metres (OpenCV axes)."""
    rt = extrinsic(cam_loc)
    return np.asarray(points_world, np.float64) @ rt[:, :3].T + rt[:, 3]


def project(points_camera, k: Optional[np.ndarray] = None) -> np.ndarray:
    """[..., 3] camera points -> [..., 2] pixel positions K X / Z (not rounded)."""
    points = np.asarray(points_camera, np.float64) @ (intrinsic() if k is None else k).T
    return points[..., :2] / points[..., 2:]


def matlab_round(values) -> np.ndarray:
    """MATLAB's round: halves away from zero (numpy's rounds them to even)."""
    values = np.asarray(values, np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def projection_error(info) -> float:
    """max |joints2D - round(K [R|t] X)| over joints, frames and both axes, in pixels: the check of
    datageneration/misc/3Dto2D/main.m:8-32 (0 when SURREAL's camera is read right). `info`:
    a loaded _info.mat (joints2D 2x24xT, joints3D 3x24xT, camLoc)."""
    joints2d = np.asarray(info["joints2D"], np.float64)
    joints3d = np.asarray(info["joints3D"], np.float64)
    projected = matlab_round(project(to_camera(np.moveaxis(joints3d, 0, -1), info["camLoc"])))
    return float(np.abs(np.moveaxis(joints2d, 0, -1) - projected).max())


def check_camera(info_path: PathLike) -> dict:
    """`projection_error` of one _info.mat as a JSON-ready dict (`spd-convert surreal --check-camera`)."""
    info = read_info(info_path)
    error = projection_error({"joints2D": info.joints2d.transpose(2, 1, 0),  # back to 2x24xT
                              "joints3D": info.joints3d.transpose(2, 1, 0), "camLoc": info.cam_loc})
    return {"info": str(info_path), "frames": info.num_frames, "joints": NUM_SMPL_JOINTS,
            "max_error_px": error, "ok": error == 0}


# --- the .mat files ----------------------------------------------------------------------------

def load_mat(path: PathLike, names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """The variables `names` (all when None) of a .mat file; ValueError naming the file when it
    is unreadable or lacks one. Only the named variables are decompressed."""
    try:
        values = scipy.io.loadmat(str(path), variable_names=None if names is None else list(names))
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{path}: unreadable .mat file ({error})") from None
    missing = [name for name in names or () if name not in values]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} in the .mat file")
    return values


def frame_variables(path: PathLike, prefix: str) -> List[int]:
    """The t of every `{prefix}_<t>` variable of a _segm/_depth.mat (headers only, nothing decoded)."""
    try:
        names = [name for name, _, _ in scipy.io.whosmat(str(path))]
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{path}: unreadable .mat file ({error})") from None
    head = prefix + "_"
    return sorted(int(name[len(head):]) for name in names if name.startswith(head) and name[len(head):].isdigit())


@dataclasses.dataclass(frozen=True)
class Info:
    """A clip's _info.mat, frames first: joints2d [T, 24, 2] pixels, joints3d [T, 24, 3] world metres."""

    joints2d: np.ndarray
    joints3d: np.ndarray
    cam_loc: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.joints2d)


def read_info(path: PathLike) -> Info:
    """An _info.mat -> Info; ValueError naming the file on a missing variable or a wrong shape."""
    values = load_mat(path, ("joints2D", "joints3D", "camLoc"))
    joints2d, joints3d = np.asarray(values["joints2D"], np.float64), np.asarray(values["joints3D"], np.float64)
    cam_loc = np.asarray(values["camLoc"], np.float64).ravel()
    if joints2d.ndim == 2:  # a one-frame clip: MATLAB drops the trailing singleton axis
        joints2d = joints2d[..., None]
    if joints3d.ndim == 2:
        joints3d = joints3d[..., None]
    if joints2d.shape[:2] != (2, NUM_SMPL_JOINTS) or joints2d.ndim != 3:
        raise ValueError(f"{path}: joints2D has shape {joints2d.shape}, expected 2x24xT")
    if joints3d.shape != (3, NUM_SMPL_JOINTS, joints2d.shape[2]):
        raise ValueError(f"{path}: joints3D has shape {joints3d.shape}, expected 3x24x{joints2d.shape[2]} "
                         "(as joints2D)")
    if cam_loc.shape != (3,) or not np.isfinite(cam_loc).all():
        raise ValueError(f"{path}: camLoc must be 3 finite numbers, got {cam_loc.tolist()}")
    return Info(joints2d.transpose(2, 1, 0), joints3d.transpose(2, 1, 0), cam_loc)  # [T, 24, 2 | 3]


@functools.lru_cache(maxsize=4)  # a worker converts a clip's frames one after the other
def cached_info(path: str) -> Info:
    return read_info(path)


def read_part_map(path: PathLike, t: int) -> np.ndarray:
    """segm_<t> of a _segm.mat -> uint8 [H, W] surreal classes; a value > 24 raises ValueError."""
    segm = np.asarray(load_mat(path, (f"segm_{t}",))[f"segm_{t}"])
    if segm.ndim != 2:
        raise ValueError(f"{path}: segm_{t} has shape {segm.shape}, expected H x W")
    if segm.size and (segm.min() < 0 or segm.max() > NUM_SMPL_PARTS):
        bad = np.unique(segm[(segm < 0) | (segm > NUM_SMPL_PARTS)])
        raise ValueError(f"{path}: segm_{t} holds values {bad[:10].tolist()} outside 0..{NUM_SMPL_PARTS}")
    return PART_TO_CLASS[segm.astype(np.int64)]


def read_depth(path: PathLike, t: int) -> np.ndarray:
    """depth_<t> of a _depth.mat -> float32 [H, W] camera Z in metres (background 1e10 as stored)."""
    depth = np.asarray(load_mat(path, (f"depth_{t}",))[f"depth_{t}"], np.float32)
    if depth.ndim != 2:
        raise ValueError(f"{path}: depth_{t} has shape {depth.shape}, expected H x W")
    return depth


# --- the video ---------------------------------------------------------------------------------

def video_frame_count(path: PathLike) -> int:
    """Frames of an mp4 as its container declares them; ValueError when OpenCV cannot open it."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"{path}: unreadable video (OpenCV cannot open it)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        raise ValueError(f"{path}: unreadable video (no frame count)")
    return count


def read_frame(path: PathLike, t: int) -> np.ndarray:
    """Frame t (1-based) of an mp4 -> RGB uint8 [H, W, 3] (loader_SURREAL.lua:30-40 seeks to t-1)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"{path}: unreadable video (OpenCV cannot open it)")
        capture.set(cv2.CAP_PROP_POS_FRAMES, t - 1)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise ValueError(f"{path}: cannot decode frame {t}")
    return np.ascontiguousarray(frame[..., ::-1])


# --- joints ------------------------------------------------------------------------------------

def lip_keypoints(joints2d: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """One frame's joints2D [24, 2] -> float32 [16, 3] (x, y, 0) in LIP order; outside the image
    -> (-1, -1, -1)."""
    xy = np.asarray(joints2d, np.float32)[JOINTS_IX]
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] <= height - 1)
    keypoints = np.concatenate([xy, np.zeros((len(xy), 1), np.float32)], axis=1)
    keypoints[~inside] = -1
    return keypoints


def camera_joints(joints3d: np.ndarray, cam_loc) -> np.ndarray:
    """One frame's joints3D [24, 3] world metres -> float32 [16, 4] (X, Y, Z camera metres, v = 0)."""
    xyz = to_camera(np.asarray(joints3d)[JOINTS_IX], cam_loc)
    return np.concatenate([xyz, np.zeros((len(xyz), 1))], axis=1).astype(np.float32)


def bad_joint_frames(info: Info) -> Dict[int, str]:
    """{t: reason} of the frames whose joints cannot be used: NaN / infinite joints, or all
    joints3D zero / all joints2D at SURREAL's empty value (loader_SURREAL.lua:49-53, 66-70 skip those)."""
    bad: Dict[int, str] = {}
    finite = np.isfinite(info.joints2d).all(axis=(1, 2)) & np.isfinite(info.joints3d).all(axis=(1, 2))
    zero3d = (info.joints3d == 0).all(axis=(1, 2))
    empty2d = ((info.joints2d[..., 0] == 0) & (info.joints2d[..., 1] == HEIGHT - 2)).all(axis=1)  # 1, 239 in Lua
    for index in range(info.num_frames):
        if not finite[index]:
            bad[index + 1] = "NaN joints"
        elif zero3d[index]:
            bad[index + 1] = "joints3D all zero"
        elif empty2d[index]:
            bad[index + 1] = "joints2D all empty"
    return bad


# --- clips -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip: ROOT/cmu/<split>/<run>/<seq>/<name>.mp4 and its three .mat files beside it."""

    split: str
    run: str
    video: Path

    @property
    def name(self) -> str:
        return self.video.stem

    @property
    def item(self) -> str:
        """The clip's name in reports: <split>/<run>/<seq>/<clip>."""
        return "/".join(self.video.with_suffix("").parts[-4:])

    def mat(self, suffix: str) -> Path:
        return self.video.with_name(self.video.stem + suffix)

    def source_id(self, t: int) -> str:
        """A frame's image/source_id: <run>_<clip>_f<t> (run: clip names repeat across runs)."""
        return f"{self.run}_{self.name}_f{t:03d}"


def cmu_dir(root: PathLike) -> Path:
    """ROOT/cmu, or ROOT itself when it is the cmu folder; LayoutError when neither holds a split."""
    root = Path(root)
    for candidate in (root / "cmu", root):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise layouts.LayoutError(
        f"{root}: not a SURREAL layout; expected cmu/{{{','.join(SPLITS)}}}/run*/<seq>/<clip>.mp4")


def present_splits(root: PathLike) -> List[str]:
    base = cmu_dir(root)
    return [split for split in SPLITS if (base / split).is_dir()]


def list_clips(root: PathLike, split: str, max_clips: Optional[int] = None) -> Tuple[List[Clip], List[dict]]:
    """The clips of one split in a stable order (at most `max_clips`), and the clips left out
    (item, reason) because a .mat file is missing."""
    directory = cmu_dir(root) / split
    if not directory.is_dir():
        raise layouts.LayoutError(f"{directory}: no such SURREAL split")
    clips, skipped = [], []
    for video in sorted(directory.glob("run*/*/*.mp4")):
        if max_clips is not None and len(clips) + len(skipped) >= max_clips:
            break
        clip = Clip(split, video.parent.parent.name, video)
        missing = [clip.mat(suffix).name for suffix in (INFO, SEGM, DEPTH) if not clip.mat(suffix).is_file()]
        if missing:
            skipped.append({"item": clip.item, "reason": f"missing {', '.join(missing)}"})
        else:
            clips.append(clip)
    return clips, skipped


def sample_frames(num_frames: int, every: Optional[int] = None, middle: bool = False) -> List[int]:
    """1-based frames: the middle one ceil(T/2) (donkey.lua:74-75), or 1, 1+N, 1+2N, ... (every Nth)."""
    if num_frames < 1:
        return []
    if middle:
        return [max(1, math.ceil(num_frames / 2))]
    step = every or 1
    if step < 1:
        raise ValueError(f"every={every} must be >= 1")
    return list(range(1, num_frames + 1, step))


@dataclasses.dataclass(frozen=True)
class CheckedClip:
    """A clip whose files agree: the frames to write and those left out of the sample, with why."""

    clip: Clip
    frames: Tuple[int, ...]
    dropped: Tuple[Tuple[int, str], ...] = ()


def check_clip(clip: Clip, every: Optional[int] = None, middle: bool = False) -> CheckedClip:
    """Reads a clip's headers and joints; ValueError (the reason) when its files cannot be used:
    unreadable video or .mat, or frame counts that differ between the mp4, joints2D and the
    segm_<t> / depth_<t> variables. Sampled frames with bad joints go to `dropped`."""
    info = read_info(clip.mat(INFO))
    count = info.num_frames
    video = video_frame_count(clip.video)
    segm, depth = frame_variables(clip.mat(SEGM), "segm"), frame_variables(clip.mat(DEPTH), "depth")
    expected = list(range(1, count + 1))
    if video != count or segm != expected or depth != expected:
        raise ValueError(f"frame count mismatch: {clip.video.name} has {video}, {clip.mat(INFO).name} {count} "
                         f"(joints2D), {clip.mat(SEGM).name} {_describe(segm)}, {clip.mat(DEPTH).name} "
                         f"{_describe(depth)}")
    bad = bad_joint_frames(info)
    frames = sample_frames(count, every, middle)
    return CheckedClip(clip, tuple(t for t in frames if t not in bad),
                       tuple((t, bad[t]) for t in frames if t in bad))


def _describe(frames: List[int]) -> str:
    if frames == list(range(1, len(frames) + 1)):
        return str(len(frames))
    return f"{len(frames)} (not 1..{len(frames)}: {frames[:5]}{'...' if len(frames) > 5 else ''})"
