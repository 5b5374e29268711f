"""Keypoint sets: the joints a pose head predicts, as label sets are the classes it parses.

A `KeypointSet` holds the joint names (in the dataset's column order), the left/right pairs a
mirror swaps, a skeleton for drawing, the joint pair whose length is PCKh's head size and the
pair whose length is PCK's torso size. The model config carries one, so the pose head's width,
training targets and flips, flip test-time augmentation, metrics, export outputs and pictures
all follow the same table. Built-ins: `lip` (16, LIP's CSV order), `fashionista` (14, the
PARSE / LSP joints in Fashionista's pose.csv order) and `coco` (17); a JSON file gives a
user's own set (`get_keypoint_set`).
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from spd_tf import labels


def _pair_list(value, where: str, field: str, count: int) -> Tuple[Tuple[int, int], ...]:
    pairs = labels.integer_rows(value, f"{where}: {field}", 2, -2**31, 2**31)
    bad = [pair for pair in pairs if not all(0 <= v < count for v in pair) or pair[0] == pair[1]]
    if bad:
        raise ValueError(f"{where}: {field} entry {list(bad[0])} must be two different joint indices in 0..{count - 1}")
    return pairs


def _default_colours(joints: Tuple[str, ...]) -> Tuple[Tuple[int, int, int], ...]:
    """Right side warm, left side cool, the rest grey to white (LIP's drawing convention)."""
    colours = []
    for index, name in enumerate(joints):
        lowered = name.lower()
        shade = 60 + (index * 37) % 160
        if lowered.startswith(("r_", "right")):
            colours.append((255, shade, 0))
        elif lowered.startswith(("l_", "left")):
            colours.append((0, shade, 255))
        else:
            colours.append((200 + index % 56, 200 + index % 56, 200 + index % 56))
    return tuple(colours)


@dataclasses.dataclass(frozen=True)
class KeypointSet:
    """Joint names, flip pairs, skeleton, colours and the PCKh head / PCK torso joint pairs.

    `head` (neck, head top) sets PCKh's head size; a set without one is scored with PCK@0.2
    of the torso size (`torso`: e.g. right shoulder, left hip). `mean_joints` are the joints
    pooled into the mean (LIP leaves pelvis and thorax out); empty = all.
    """

    name: str
    joints: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...] = ()
    skeleton: Tuple[Tuple[int, int], ...] = ()
    head: Optional[Tuple[int, int]] = None
    torso: Optional[Tuple[int, int]] = None
    mean_joints: Tuple[int, ...] = ()
    colours: Tuple[Tuple[int, int, int], ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"keypoint set name {self.name!r} must be a non-empty string")
        where = f"keypoint set {self.name!r}"
        joints = labels.names(self.joints, where, "joints", "joint")
        count = len(joints)
        if not 1 <= count <= 255:
            raise ValueError(f"{where}: needs 1..255 joints, got {count}")
        pairs = _pair_list(self.flip_pairs, where, "flip_pairs", count)
        used = [v for pair in pairs for v in pair]
        if len(set(used)) != len(used):
            raise ValueError(f"{where}: flip_pairs {[list(p) for p in pairs]} must be disjoint")
        skeleton = _pair_list(self.skeleton, where, "skeleton", count)
        ends = {}
        for field in ("head", "torso"):
            value = getattr(self, field)
            ends[field] = None if value is None else _pair_list([value], where, field, count)[0]
        if ends["head"] is None and ends["torso"] is None:
            raise ValueError(f"{where}: needs a head pair (PCKh) or a torso pair (PCK) to normalise distances")
        mean_joints = tuple(labels.integer(v, f"{where}: mean_joints[{index}]")
                            for index, v in enumerate(labels.entries(self.mean_joints, f"{where}: mean_joints")))
        if any(not 0 <= v < count for v in mean_joints) or len(set(mean_joints)) != len(mean_joints):
            raise ValueError(f"{where}: mean_joints {list(mean_joints)} must be distinct indices in 0..{count - 1}")
        colours = labels.integer_rows(self.colours, f"{where}: colours", 3, 0, 255) or _default_colours(joints)
        if len(colours) != count:
            raise ValueError(f"{where}: colours holds {len(colours)} colours for {count} joints")
        object.__setattr__(self, "joints", joints)
        object.__setattr__(self, "flip_pairs", pairs)
        object.__setattr__(self, "skeleton", skeleton)
        object.__setattr__(self, "head", ends["head"])
        object.__setattr__(self, "torso", ends["torso"])
        object.__setattr__(self, "mean_joints", mean_joints or tuple(range(count)))
        object.__setattr__(self, "colours", colours)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Joint index after a horizontal mirror (left ankle <-> right ankle, ...)."""
        return labels.flip_permutation(self.num_joints, self.flip_pairs)

    @property
    def colour_array(self) -> np.ndarray:
        return np.asarray(self.colours, np.uint8)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "joints": list(self.joints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "head": list(self.head) if self.head else None,
            "torso": list(self.torso) if self.torso else None,
            "mean_joints": list(self.mean_joints),
            "colours": [list(c) for c in self.colours],
        }

    @classmethod
    def from_dict(cls, values: dict, origin: str = "keypoint set") -> "KeypointSet":
        labels.check_keys(values, cls, ("name", "joints"), origin)
        try:
            return cls(**{k: v for k, v in values.items() if v is not None or k in ("head", "torso")})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{origin}: {error}") from None


# Fashionista's pose.csv order (the PARSE / LSP 14): right leg up, left leg down, right arm
# from the hand, left arm to the hand, neck, head.
FASHIONISTA_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_hand",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_hand", "neck", "head",
)
COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)

KEYPOINT_SETS = {
    "lip": KeypointSet(
        "lip", labels.LIP_JOINTS, labels.LIP_JOINT_FLIP_PAIRS, labels.LIP_SKELETON,
        head=(labels.UPPER_NECK_JOINT, labels.HEAD_TOP_JOINT), torso=(12, 3),
        mean_joints=labels.PCKH_AVG_JOINTS, colours=tuple(map(tuple, labels.LIP_JOINT_COLOURS))),
    "fashionista": KeypointSet(
        "fashionista", FASHIONISTA_JOINTS, ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
        ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (9, 12), (9, 10), (10, 11),
         (12, 13), (2, 8), (3, 9)),
        head=(12, 13), torso=(8, 3)),
    # COCO has no head top: scored with PCK@0.2 of the torso (left shoulder to right hip).
    "coco": KeypointSet(
        "coco", COCO_JOINTS, ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
        ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
         (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
        torso=(5, 12)),
}


def get_keypoint_set(spec) -> KeypointSet:
    """A registered name (`lip`, `fashionista`, `coco`), a JSON file path, a dict or a KeypointSet.

    JSON: {"name": ..., "joints": [...], "flip_pairs": [[l, r], ...], "skeleton": [[a, b], ...],
    "head": [neck, head_top] and/or "torso": [shoulder, hip], optional "mean_joints", "colours"}.
    """
    return labels.resolve_spec(spec, KeypointSet, KEYPOINT_SETS, "keypoint set")


def root_joints(keypoint_set: KeypointSet) -> Tuple[int, ...]:
    """The joints whose mean is the body's root for 3D results (depth and 3D joints are relative
    to it): the pelvis when the set names one (LIP / MPII, SURREAL's 16), else both hips.
    Raises ValueError for a set with neither."""
    lowered = [name.lower() for name in keypoint_set.joints]
    pelvis = tuple(index for index, name in enumerate(lowered) if "pelvis" in name)
    if len(pelvis) == 1:
        return pelvis
    hips = tuple(index for index, name in enumerate(lowered) if "hip" in name)
    if len(hips) != 2:
        raise ValueError(f"keypoint set {keypoint_set.name!r} has no 'pelvis' joint and not two '*hip*' joints: "
                         "3D results need a root")
    return hips
