"""Class, joint and part names, palettes and flip tables: the one source of truth.

Every other module (targets, augmentation, metrics, visualisation, export) reads these
tables instead of repeating numbers, so a convention is changed in exactly one place.
Conventions follow LIP / JPPNet, ATR and DensePose-COCO (see ../shared/DESIGN.md §7).
"""

import dataclasses
import json
from typing import Optional, Tuple

import numpy as np

# --- LIP parsing (20 classes, index = label value in the parsing PNGs) -------------------
LIP_CLASSES = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat",
    "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
    "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)
NUM_LIP_CLASSES = len(LIP_CLASSES)
IGNORE_LABEL = 255

# CIHP uses the LIP scheme except that index 10 is torso skin instead of jumpsuits.
CIHP_CLASSES = LIP_CLASSES[:10] + ("Torso-skin",) + LIP_CLASSES[11:]

# Left/right pairs swapped by a horizontal flip (LIP and CIHP alike).
LIP_FLIP_PAIRS = ((14, 15), (16, 17), (18, 19))

# JPPNet's palette (utils/utils.py label_colours), RGB.
LIP_PALETTE = np.array(
    [
        (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51),
        (255, 85, 0), (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85),
        (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221),
        (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
    ],
    dtype=np.uint8,
)

# --- ATR (18 classes) and the LIP -> ATR mapping used by `evaluate.py --dataset atr` -------
ATR_CLASSES = (
    "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress",
    "Belt", "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm",
    "Right-arm", "Bag", "Scarf",
)
NUM_ATR_CLASSES = len(ATR_CLASSES)
ATR_FLIP_PAIRS = ((9, 10), (12, 13), (14, 15))  # shoes, legs, arms

# Predicted LIP class -> ATR class. A LIP class with no ATR twin maps to ATR background:
#   Glove (3): ATR labels hands as arms, but a glove is not a bare arm -> background.
#   Socks (8): ATR has no socks; they are neither leg skin nor shoe -> background.
#   Jumpsuits (10): no ATR class -> background.
# Coat (7) maps to Upper-clothes: ATR annotates coats and jackets as upper clothes.
LIP_TO_ATR = np.array(
    [0, 1, 2, 0, 3, 4, 7, 4, 0, 6, 0, 17, 5, 11, 14, 15, 12, 13, 9, 10], dtype=np.uint8
)
# ATR ground-truth classes with no LIP twin; their pixels are ignored (set to 255) when a
# LIP-trained model is scored on ATR, so it is neither rewarded nor punished for them.
ATR_CLASSES_WITHOUT_LIP_TWIN = (8, 16)  # Belt, Bag


# --- Clothing Co-Parsing (CCP): 59 tags grouped into 15 classes --------------------------
CCP_CLASSES = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat",
    "socks", "pants", "jumpsuits", "scarf", "skirt", "skin", "shoes",
)
# Class id -> the CCP tags (label_list.mat names) it groups.
CCP_TAGS_BY_CLASS = (
    ("null",), ("hat",), ("hair",), ("gloves",), ("sunglasses", "glasses"),
    ("blouse", "bodysuit", "bra", "hoodie", "jumper", "shirt", "sweater", "sweatshirt",
     "t-shirt", "top", "vest"),
    ("dress",), ("blazer", "cape", "cardigan", "coat", "jacket", "suit"),
    ("socks", "stockings", "tights"), ("jeans", "leggings", "pants", "shorts"), ("romper",),
    ("scarf",), ("skirt",), ("skin",),
    ("boots", "clogs", "flats", "heels", "loafers", "pumps", "sandals", "shoes", "sneakers",
     "wedges"),
)
# Tags too small or too rare to learn as classes: ignored (255) in training and scoring.
CCP_IGNORED_TAGS = (
    "accessories", "bag", "belt", "bracelet", "earrings", "intimate", "necklace", "panties",
    "purse", "ring", "swimwear", "tie", "wallet", "watch",
)
NUM_CCP_TAGS = 59
# CCP classes 0..12 are LIP's 0..12 by name and keep LIP's colours; skin and shoes take
# LIP's face and left-shoe colours.
CCP_PALETTE = tuple(map(tuple, LIP_PALETTE[:13])) + ((0, 0, 255), (255, 255, 0))
# Predicted LIP class -> CCP class: face, arms and legs are skin, both shoes are shoes,
# every other LIP class is the CCP class of the same name.
LIP_TO_CCP = tuple(range(13)) + (13, 13, 13, 13, 13, 14, 14)

# --- SURREAL body parts (Varol et al. 2017: 14 parts + background) -------------------------
# The order SURREAL's own table produces (gulvarol/surreal training/loader_SURREAL.lua:85,
# changeSegmIx from the 24 SMPL parts), 0-based with 0 = background. Left and right are the
# pictured person's, as for joints (SURREAL's frames are mirrored: spd_tf.data.surreal).
SURREAL_CLASSES = (
    "Background", "Head", "Torso", "RightUpperArm", "RightForearm", "RightHand", "LeftUpperArm",
    "LeftForearm", "LeftHand", "RightUpperLeg", "RightLowerLeg", "RightFoot", "LeftUpperLeg",
    "LeftLowerLeg", "LeftFoot",
)
SURREAL_FLIP_PAIRS = ((3, 6), (4, 7), (5, 8), (9, 12), (10, 13), (11, 14))

# --- joint groups: parsing regions whose centres stand in for joints (LIP's SSL loss) -----
# LIP_SSL's nine (caffe_ssl src/caffe/layers/pose_evaluate_layer.cpp:27-46, clsToJointFirst):
# head = hat, hair, sunglasses, face; upper body = upper clothes, coat, scarf; lower body =
# pants, skirt; then each limb and shoe class alone. Glove, dress, socks and jumpsuits
# belong to no group there, and stay out here.
LIP_JOINT_GROUPS = (
    ("head", (1, 2, 4, 13)), ("upper-body", (5, 7, 11)), ("lower-body", (9, 12)),
    ("left-arm", (14,)), ("right-arm", (15,)), ("left-leg", (16,)), ("right-leg", (17,)),
    ("left-shoe", (18,)), ("right-shoe", (19,)),
)
# ATR's twins of the same nine (dress, belt and bag left out as LIP's dress is).
ATR_JOINT_GROUPS = (
    ("head", (1, 2, 3, 11)), ("upper-body", (4, 17)), ("lower-body", (5, 6)),
    ("left-arm", (14,)), ("right-arm", (15,)), ("left-leg", (12,)), ("right-leg", (13,)),
    ("left-shoe", (9,)), ("right-shoe", (10,)),
)
# CCP has no sides and one skin class (face, arms and legs together), so only the groups
# that keep a meaning are declared: head without the face, the two clothing regions, and
# both shoes as one region (its centre lies between the feet, still a stable body point).
# Skin is left out: the centre of face + arms + legs moves with whichever is visible.
CCP_JOINT_GROUPS = (
    ("head", (1, 2, 4)), ("upper-body", (5, 7, 11)), ("lower-body", (9, 12)), ("shoes", (14,)),
)

# --- LIP pose (16 joints, CSV column order) ----------------------------------------------
LIP_JOINTS = (
    "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "B_Pelvis", "B_Spine",
    "B_Neck", "B_Head", "R_Wrist", "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow",
    "L_Wrist",
)
NUM_LIP_JOINTS = len(LIP_JOINTS)
LIP_JOINT_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
UPPER_NECK_JOINT = 8
HEAD_TOP_JOINT = 9
# Joints pooled into LIP's PCKh "Avg" (pelvis 6 and spine 7 are excluded by LIP's tool).
PCKH_AVG_JOINTS = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)
# Skeleton edges for drawing, and one RGB colour per joint (right side warm, left cool).
LIP_SKELETON = (
    (0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 8), (13, 8), (13, 14), (14, 15),
)
LIP_JOINT_COLOURS = np.array(
    [
        (255, 0, 0), (255, 85, 0), (255, 170, 0), (0, 170, 255), (0, 85, 255), (0, 0, 255),
        (170, 170, 170), (200, 200, 200), (255, 255, 255), (255, 255, 0),
        (255, 0, 85), (255, 0, 170), (255, 0, 255), (0, 255, 170), (0, 255, 85),
        (0, 255, 0),
    ],
    dtype=np.uint8,
)

# --- DensePose -------------------------------------------------------------------------
# Fine surface patches I = 1..24 (0 = background), in DensePose-COCO order.
DENSEPOSE_PATCHES = (
    "Background", "Torso back", "Torso front", "Right hand", "Left hand", "Left foot",
    "Right foot", "Upper leg right back", "Upper leg left back", "Upper leg right front",
    "Upper leg left front", "Lower leg right back", "Lower leg left back",
    "Lower leg right front", "Lower leg left front", "Upper arm left back",
    "Upper arm right back", "Upper arm left front", "Upper arm right front",
    "Lower arm left back", "Lower arm right back", "Lower arm left front",
    "Lower arm right front", "Head right", "Head left",
)
NUM_DENSEPOSE_PATCHES = len(DENSEPOSE_PATCHES) - 1  # 24; the I head has 25 logits
# Coarse part masks (dp_masks) 1..14, 0 = background.
DENSEPOSE_COARSE_PARTS = (
    "Background", "Torso", "Right hand", "Left hand", "Left foot", "Right foot",
    "Upper leg right", "Upper leg left", "Lower leg right", "Lower leg left",
    "Upper arm left", "Upper arm right", "Lower arm left", "Lower arm right", "Head",
)
NUM_DENSEPOSE_COARSE_PARTS = len(DENSEPOSE_COARSE_PARTS) - 1  # 14
# Patch index after a horizontal flip (DensePose's own I symmetry table).
DENSEPOSE_I_FLIP = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    dtype=np.int64,
)
# Coarse part index after a horizontal flip (left/right hands, feet, legs, arms swap).
DENSEPOSE_COARSE_FLIP = np.array(
    [0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.int64
)
# Coarse part of every fine patch (patch -> dp_masks value).
DENSEPOSE_PATCH_TO_COARSE = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14],
    dtype=np.int64,
)


def flip_permutation(num: int, pairs) -> np.ndarray:
    """Index permutation that swaps each (a, b) in `pairs`: perm[a] = b, perm[b] = a."""
    perm = np.arange(num)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


LIP_CLASS_FLIP = flip_permutation(NUM_LIP_CLASSES, LIP_FLIP_PAIRS)
LIP_JOINT_FLIP = flip_permutation(NUM_LIP_JOINTS, LIP_JOINT_FLIP_PAIRS)




def colorize(labels: np.ndarray, palette=LIP_PALETTE) -> np.ndarray:
    """Index map [H, W] -> RGB image; ignore (255) and out-of-palette values render white."""
    labels = np.asarray(labels)
    rgb = np.full(labels.shape + (3,), 255, dtype=np.uint8)
    palette = np.asarray(palette, np.uint8)
    valid = labels < len(palette)
    rgb[valid] = palette[labels[valid]]
    return rgb


# --- label sets: the class vocabulary a model is trained in ------------------------------


def _default_palette(num_classes: int) -> tuple:
    """PASCAL VOC's bit-interleaved colour map: distinct colours for any class count."""
    colours = []
    for index in range(num_classes):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append((r, g, b))
    return tuple(colours)


# --- validating tables read from JSON: every entry checked, the error names it ---------------


def integer(value, where: str) -> int:
    """An integer (numpy's too; not a bool, float or string), else a ValueError naming `where`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where} is {value!r}, not an integer")
    return int(value)


def entries(value, where: str) -> tuple:
    """A JSON list (or tuple) as a tuple, else a ValueError naming `where`."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{where} must be a list, got {value!r}")
    return tuple(value)


def integer_rows(value, where: str, width: int, low: int, high: int) -> tuple:
    """Rows of `width` integers in low..high (palette colours, index pairs), each checked by index."""
    rows = []
    for index, row in enumerate(entries(value, where)):
        row = entries(row, f"{where}[{index}]")
        if len(row) != width:
            raise ValueError(f"{where}[{index}] is {list(row)!r}: needs {width} integers in {low}..{high}")
        numbers = tuple(integer(v, f"{where}[{index}]") for v in row)
        if any(not low <= v <= high for v in numbers):
            raise ValueError(f"{where}[{index}] is {list(numbers)}: values must be in {low}..{high}")
        rows.append(numbers)
    return tuple(rows)


def names(value, owner: str, field: str, kind: str) -> tuple:
    """Non-empty, distinct name strings (of `kind`: class, joint), each checked by index."""
    where = f"{owner}: {field}"
    found = entries(value, where)
    for index, name in enumerate(found):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}[{index}] is {name!r} ({type(name).__name__}), not a non-empty name string")
    repeated = sorted({name for name in found if found.count(name) > 1})
    if repeated:
        raise ValueError(f"{owner}: {kind} names repeat: {repeated}")
    return found


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """A parsing vocabulary: class names, palette, left/right flip pairs, ignore value and
    the joint groups of the structure-sensitive loss (`spd_tf.losses.structure`).

    The model config carries one, so training (flip swaps), inference (flip TTA), data
    validation, pictures and metrics all read the same tables. Frozen and made of tuples
    so it hashes and round-trips through JSON (`to_dict` / `from_dict`).
    """

    name: str
    classes: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...] = ()
    flip_pairs: Tuple[Tuple[int, int], ...] = ()
    ignore_label: int = IGNORE_LABEL
    # (name, class ids) per group; JSON gives {"name": [ids], ...}. Empty: no SSL loss.
    joint_groups: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"label set name {self.name!r} must be a non-empty string")
        where = f"label set {self.name!r}"
        classes = names(self.classes, where, "classes", "class")
        if not 2 <= len(classes) <= 255:
            raise ValueError(f"{where}: needs 2..255 classes, got {len(classes)}")
        palette = integer_rows(self.palette, f"{where}: palette", 3, 0, 255) or _default_palette(len(classes))
        if len(palette) != len(classes):
            raise ValueError(f"{where}: palette must hold {len(classes)} RGB triples in 0..255 (one per class), "
                             f"got {len(palette)}")
        pairs = integer_rows(self.flip_pairs, f"{where}: flip_pairs", 2, 1, len(classes) - 1)
        used = [v for pair in pairs for v in pair]
        if len(set(used)) != len(used):
            raise ValueError(f"{where}: flip_pairs {[list(p) for p in pairs]} must be disjoint (left, right) pairs")
        ignore_label = integer(self.ignore_label, f"{where}: ignore_label")
        if not len(classes) <= ignore_label <= 255:
            raise ValueError(f"{where}: ignore_label {ignore_label} must be in {len(classes)}..255")
        groups = self.joint_groups
        groups = tuple(groups.items()) if isinstance(groups, dict) else entries(groups, f"{where}: joint_groups")
        checked = []
        for index, group in enumerate(groups):
            group = entries(group, f"{where}: joint_groups[{index}]")
            if len(group) != 2 or not isinstance(group[0], str) or not group[0]:
                raise ValueError(f"{where}: joint_groups must map group names to lists of class ids, got {group!r}")
            name, ids = group
            ids = tuple(integer(v, f"{where}: joint_groups[{name!r}]") for v in entries(ids, f"{where}: joint_groups[{name!r}]"))
            if not ids or any(not 0 < v < len(classes) for v in ids):
                raise ValueError(f"{where}: joint_groups[{name!r}] is {list(ids)}: needs class ids in 1..{len(classes) - 1}")
            checked.append((name, ids))
        groups = tuple(checked)
        grouped = [v for _, ids in groups for v in ids]
        if len({name for name, _ in groups}) != len(groups) or len(set(grouped)) != len(grouped):
            raise ValueError(f"{where}: joint_groups {dict(groups)} must be disjoint groups with distinct names")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "joint_groups", groups)
        object.__setattr__(self, "flip_pairs", pairs)
        object.__setattr__(self, "ignore_label", ignore_label)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Class index after a horizontal mirror (identity for a set without sides)."""
        return flip_permutation(self.num_classes, self.flip_pairs)

    def flip_table(self) -> np.ndarray:
        """256-entry lookup of `flip_permutation`, so ignore and padding values pass unchanged."""
        table = np.arange(256, dtype=np.int32)
        table[: self.num_classes] = self.flip_permutation
        return table

    @property
    def palette_array(self) -> np.ndarray:
        return np.asarray(self.palette, np.uint8)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "ignore_label": self.ignore_label,
            "joint_groups": {name: list(ids) for name, ids in self.joint_groups},
        }

    @classmethod
    def from_dict(cls, values: dict, origin: str = "label set") -> "LabelSet":
        check_keys(values, cls, ("name", "classes"), origin)
        registered = LABEL_SETS.get(values["name"]) if isinstance(values["name"], str) else None
        if ("joint_groups" not in values and registered is not None
                and list(values["classes"] or ()) == list(registered.classes)):
            # Written before label sets declared joint groups: a registered set keeps its own.
            values = dict(values, joint_groups=registered.joint_groups)
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{origin}: {error}") from None


LABEL_SETS = {
    "lip": LabelSet("lip", LIP_CLASSES, tuple(map(tuple, LIP_PALETTE)), LIP_FLIP_PAIRS,
                    joint_groups=LIP_JOINT_GROUPS),
    # CIHP's index 10 (torso skin) is, like LIP's jumpsuits, in no group.
    "cihp": LabelSet("cihp", CIHP_CLASSES, tuple(map(tuple, LIP_PALETTE)), LIP_FLIP_PAIRS,
                     joint_groups=LIP_JOINT_GROUPS),
    "atr": LabelSet("atr", ATR_CLASSES, (), ATR_FLIP_PAIRS, joint_groups=ATR_JOINT_GROUPS),
    "ccp": LabelSet("ccp", CCP_CLASSES, CCP_PALETTE, joint_groups=CCP_JOINT_GROUPS),
    "surreal": LabelSet("surreal", SURREAL_CLASSES, (), SURREAL_FLIP_PAIRS),
}


def get_label_set(spec) -> LabelSet:
    """A registered name (`lip`, `atr`, `cihp`, `ccp`, `surreal`), a JSON file path, a dict or a LabelSet.

    JSON file: {"name": ..., "classes": [...], "palette": [[r, g, b], ...] (optional),
    "flip_pairs": [[left, right], ...] (optional), "ignore_label": 255 (optional),
    "joint_groups": {"head": [class ids], ...} (optional; needed by --structure-loss ssl)}.
    """
    return resolve_spec(spec, LabelSet, LABEL_SETS, "label set")


def resolve_spec(spec, cls, registry: dict, kind: str):
    """A `cls` instance from itself, a dict, a registered name or a JSON file (label and
    keypoint sets alike); every error names the file and the problem."""
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, dict):
        return cls.from_dict(spec)
    text = str(spec)
    if text in registry:
        return registry[text]
    if not text.endswith(".json"):
        raise ValueError(f"{kind} {text!r} is neither a registered set {tuple(registry)} nor a .json file")
    try:
        with open(text) as f:
            values = json.load(f)
    except OSError as error:
        raise ValueError(f"{kind} file {text}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{kind} file {text}: not valid JSON ({error})") from None
    return cls.from_dict(values, origin=f"{kind} file {text}")


def check_keys(values, cls, required: Tuple[str, ...], origin: str) -> None:
    """A JSON object with only `cls`'s fields and every `required` one, else a ValueError."""
    if not isinstance(values, dict):
        raise ValueError(f"{origin}: expected a JSON object, got {type(values).__name__}")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{origin}: unknown key(s) {unknown}")
    missing = [key for key in required if key not in values]
    if missing:
        raise ValueError(f"{origin}: missing key(s) {missing}")


# --- declared mappings between label sets (cross-dataset evaluation) ---------------------


@dataclasses.dataclass(frozen=True)
class LabelMapping:
    """How a model trained in `source` is scored on ground truth in `target`.

    `table[c]` is the target class of predicted source class c; ground-truth target
    classes in `ignored_targets` have no source twin and are ignored, so the model is
    neither rewarded nor punished for them.
    """

    source: str
    target: str
    table: Tuple[int, ...]
    ignored_targets: Tuple[int, ...] = ()

    def map_prediction(self, predicted: np.ndarray) -> np.ndarray:
        predicted = np.asarray(predicted)
        bad = (predicted < 0) | (predicted >= len(self.table))
        if bad.any():
            raise ValueError(
                f"predicted labels {np.unique(predicted[bad]).tolist()} are not {self.source} "
                f"classes 0..{len(self.table) - 1}"
            )
        return np.asarray(self.table, np.uint8)[predicted]

    def map_ground_truth(self, ground_truth: np.ndarray) -> np.ndarray:
        ground_truth = np.array(ground_truth, dtype=np.uint8, copy=True)
        if self.ignored_targets:
            ground_truth[np.isin(ground_truth, self.ignored_targets)] = IGNORE_LABEL
        return ground_truth


LABEL_MAPPINGS = {
    ("lip", "atr"): LabelMapping("lip", "atr", tuple(int(v) for v in LIP_TO_ATR),
                                 ATR_CLASSES_WITHOUT_LIP_TWIN),
    ("lip", "ccp"): LabelMapping("lip", "ccp", LIP_TO_CCP),
    # CIHP shares LIP's indices except 10 (Torso-skin for LIP's Jumpsuits): scored index for
    # index, as LIP-trained models are usually scored on CIHP.
    ("lip", "cihp"): LabelMapping("lip", "cihp", tuple(range(NUM_LIP_CLASSES))),
}


def label_mapping(source: LabelSet, target: LabelSet) -> Optional[LabelMapping]:
    """The declared mapping from `source` to `target`; None when they are the same set.

    Sets are the same when their class lists are equal (a run's stored copy of `lip`
    equals the registered one). No declared mapping is a clear error, never a relabel.
    """
    if source.classes == target.classes:
        return None
    mapping = LABEL_MAPPINGS.get((source.name, target.name))
    if mapping is None or LABEL_SETS[source.name].classes != source.classes:
        declared = ", ".join(f"{a}->{b}" for a, b in LABEL_MAPPINGS)
        raise ValueError(
            f"no declared mapping from label set {source.name!r} ({source.num_classes} classes) "
            f"to {target.name!r} ({target.num_classes} classes); declared: {declared}"
        )
    return mapping
