"""Class, joint and part names, palettes and flip tables: the one source of truth.

Every other module (targets, augmentation, metrics, visualisation, export) reads these
tables instead of repeating numbers, so a convention is changed in exactly one place.
Conventions follow LIP / JPPNet, ATR and DensePose-COCO (see ../shared/DESIGN.md §7).
"""

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


def lip_to_atr_prediction(labels: np.ndarray) -> np.ndarray:
    """Maps a predicted LIP label map to ATR classes (see LIP_TO_ATR)."""
    return LIP_TO_ATR[np.asarray(labels)]


def atr_ground_truth_for_lip_model(labels: np.ndarray) -> np.ndarray:
    """ATR ground truth with the classes a LIP model cannot predict set to ignore."""
    labels = np.array(labels, dtype=np.uint8, copy=True)
    labels[np.isin(labels, ATR_CLASSES_WITHOUT_LIP_TWIN)] = IGNORE_LABEL
    return labels


def colorize(labels: np.ndarray, palette: np.ndarray = LIP_PALETTE) -> np.ndarray:
    """Index map [H, W] -> RGB image; ignore (255) and out-of-palette values render white."""
    labels = np.asarray(labels)
    rgb = np.full(labels.shape + (3,), 255, dtype=np.uint8)
    valid = labels < len(palette)
    rgb[valid] = palette[labels[valid]]
    return rgb
