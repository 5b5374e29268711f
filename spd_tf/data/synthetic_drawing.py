"""Drawing primitives of the synthetic people: colour families, textures, a label-aware canvas.

`Canvas.paint` writes the image, the LIP parsing map and the DensePose patch map in one
call, which is what keeps the three label types of spd_tf.data.synthetic consistent.
Shapes are rasterised by OpenCV with sub-pixel fixed-point coordinates. The appearance
helpers (skin, garment and hair textures, background) and the DensePose record builder are
shared by the flat people (synthetic.py) and the 3D ones (synthetic3d.py).
"""

from typing import Optional

import cv2
import numpy as np

from spd_tf import labels

_SUB = 4  # cv2 fixed-point shift: sub-pixel accurate drawing
_SCALE = float(1 << _SUB)

# Colour families, OpenCV HSV: (hue centre, hue jitter, saturation range, value range).
# hue None = any hue (achromatic families).
COLOUR_FAMILIES = {
    "Hat": (0, 7, (150, 255), (120, 230)),
    "Glove": (140, 7, (120, 230), (90, 220)),
    "Sunglasses": (None, 0, (0, 60), (10, 50)),
    "UpperClothes": (112, 9, (120, 255), (100, 240)),
    "Dress": (165, 7, (110, 230), (130, 240)),
    "Coat": (60, 9, (90, 220), (70, 200)),
    "Socks": (None, 0, (0, 40), (185, 255)),
    "Pants": (92, 7, (100, 220), (60, 170)),
    "Jumpsuits": (27, 3, (160, 255), (170, 255)),
    "Scarf": (45, 5, (150, 255), (150, 255)),
    "Skirt": (12, 3, (200, 255), (190, 255)),
    "Shoes": (10, 10, (0, 150), (20, 90)),
}
HAIR_FAMILIES = ((None, 0, (0, 60), (15, 55)), (12, 3, (120, 200), (50, 110)), (23, 3, (100, 170), (160, 215)))
SKIN_LIGHT, SKIN_DARK = np.array([245, 215, 190]), np.array([85, 55, 40])  # RGB
DENSEPOSE_MASK_SIZE = 256  # DensePose-COCO stores dp_masks at 256x256 in the bbox frame


def hsv_colour(rng, family) -> np.ndarray:
    hue, jitter, (s0, s1), (v0, v1) = family
    h = rng.uniform(0, 180) if hue is None else (hue + rng.uniform(-jitter, jitter)) % 180
    hsv = np.uint8([[[h, rng.uniform(s0, s1), rng.uniform(v0, v1)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def skin_colour(rng) -> np.ndarray:
    return SKIN_DARK + (SKIN_LIGHT - SKIN_DARK) * rng.uniform() + rng.uniform(-10, 10, 3)


def garment_texture(rng, family_name: str) -> "Texture":
    """A garment of LIP class `family_name` in its colour family, with a random pattern."""
    colour = hsv_colour(rng, COLOUR_FAMILIES[family_name])
    return Texture(rng, colour, rng.uniform(0.3, 1))


def hair_texture(rng) -> "Texture":
    family = HAIR_FAMILIES[rng.integers(len(HAIR_FAMILIES))]
    return Texture(rng, hsv_colour(rng, family), 0.2)


class Texture:
    """A colour with a random pattern (solid, stripes, checks or dots) and pixel noise.

    Evaluated only at the pixels being painted, so many garments per image stay cheap.
    """

    def __init__(self, rng: np.random.Generator, colour, strength: float = 1.0):
        self.rng = rng
        self.colour = np.asarray(colour, np.float32)
        self.kind = rng.integers(4)
        self.period = rng.uniform(3, 9)
        self.angle = rng.uniform(0, np.pi)
        shade = rng.uniform(0.55, 0.8) if rng.random() < 0.5 else rng.uniform(1.2, 1.4)
        self.factor = np.float32(1 + (shade - 1) * strength)

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        y, x, w = rows.astype(np.float32), cols.astype(np.float32), 2 * np.pi / self.period
        if self.kind == 1:
            pattern = np.sin((x * np.cos(self.angle) + y * np.sin(self.angle)) * w) > 0
        elif self.kind == 2:
            pattern = (np.floor(x / self.period) + np.floor(y / self.period)) % 2 > 0
        elif self.kind == 3:
            pattern = np.sin(x * w) * np.sin(y * w) > 0.6
        else:
            pattern = np.zeros(rows.shape, bool)
        values = self.colour * np.where(pattern, self.factor, np.float32(1))[:, None]
        values += self.rng.standard_normal((rows.size, 1), dtype=np.float32) * np.float32(6)
        return np.clip(values, 0, 255)


class Canvas:
    """Image, parsing, DensePose patch and person-id maps painted together, back to front
    (so a later person occludes an earlier one in all four). `person` is the id painted."""

    def __init__(self, image: np.ndarray):
        self.height, self.width = image.shape[:2]
        self.image = image
        self.parsing = np.zeros((self.height, self.width), np.uint8)
        self.patches = np.zeros((self.height, self.width), np.uint8)
        self.instances = np.zeros((self.height, self.width), np.uint8)
        self.person = 1

    def blank(self) -> np.ndarray:
        return np.zeros((self.height, self.width), np.uint8)

    def paint(self, mask: np.ndarray, cls: Optional[int], texture: Texture, patch: Optional[int] = None):
        """cls None paints the image only (background clutter); patch None keeps the
        surface underneath (a garment lying over a body part)."""
        rows, cols = np.nonzero(mask)
        self.image[rows, cols] = texture(rows, cols)
        if cls is not None:
            self.parsing[rows, cols] = cls
            self.instances[rows, cols] = self.person if cls else 0
        if patch is not None:
            self.patches[rows, cols] = patch

    def capsule(self, p0, p1, radius) -> np.ndarray:
        mask = self.blank()
        a, b = np.round(np.asarray(p0) * _SCALE), np.round(np.asarray(p1) * _SCALE)
        thickness = max(1, int(round(2 * radius)))
        cv2.line(mask, tuple(int(v) for v in a), tuple(int(v) for v in b), 1, thickness, cv2.LINE_8, _SUB)
        return mask

    def polygon(self, points) -> np.ndarray:
        mask = self.blank()
        cv2.fillPoly(mask, [np.round(np.asarray(points) * _SCALE).astype(np.int32)], 1, cv2.LINE_8, _SUB)
        return mask

    def ellipse(self, centre, axes, angle_deg) -> np.ndarray:
        mask = self.blank()
        c = tuple(int(v) for v in np.round(np.asarray(centre) * _SCALE))
        ax = tuple(max(1, int(v)) for v in np.round(np.asarray(axes) * _SCALE))
        cv2.ellipse(mask, c, ax, angle_deg, 0, 360, 1, -1, cv2.LINE_8, _SUB)
        return mask


def background(rng, height, width) -> np.ndarray:
    canvas = Canvas(np.zeros((height, width, 3), np.float32))
    base = Texture(rng, hsv_colour(rng, (None, 0, (0, 120), (60, 230))), rng.uniform(0, 0.4))
    canvas.paint(np.ones((height, width), np.uint8), None, base)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shading = 1 + rng.uniform(-0.25, 0.25) * (yy / height - 0.5) + rng.uniform(-0.25, 0.25) * (xx / width - 0.5)
    canvas.image *= shading[..., None]
    for _ in range(rng.integers(3, 13)):
        colour = hsv_colour(rng, (None, 0, (0, 200), (40, 255)))
        centre = rng.uniform(0, 1, 2) * (width, height)
        size = rng.uniform(0.05, 0.35, 2) * (width, height)
        shape = rng.integers(3)
        if shape == 0:
            mask = canvas.ellipse(centre, size / 2, rng.uniform(0, 180))
        elif shape == 1:
            mask = canvas.polygon([centre, centre + (size[0], 0), centre + size, centre + (0, size[1])])
        else:
            mask = canvas.capsule(centre, centre + size * rng.choice([-1, 1], 2), rng.uniform(1, 4))
        canvas.paint(mask, None, Texture(rng, colour, rng.uniform(0, 1)))
    return np.clip(canvas.image, 0, 255)


def _coarse_masks_png(patches: np.ndarray, bbox) -> bytes:
    """DensePose-COCO's dp_masks: coarse parts 0..14, 256x256 in the bbox frame, from the
    same patch map the points are sampled on."""
    x0, y0, w, h = (int(v) for v in bbox)
    coarse = labels.DENSEPOSE_PATCH_TO_COARSE[patches[y0:y0 + h, x0:x0 + w]].astype(np.uint8)
    size = DENSEPOSE_MASK_SIZE
    resized = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", resized)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a synthetic DensePose mask")
    return png.tobytes()


def densepose_record(patches: np.ndarray, person: np.ndarray, xs, ys, ii, us, vs) -> dict:
    """The densepose dict schema.encode_example takes: the box of the `person` pixels, their
    coarse masks from the patch map `patches`, and the points (lists of arrays, concatenated)."""
    rows, cols = np.nonzero(person)
    bbox = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
    return {
        "bbox": np.asarray(bbox, np.float32),
        "masks_png": _coarse_masks_png(np.where(person, patches, 0).astype(np.uint8), bbox),
        "x": np.concatenate(xs).astype(np.float32), "y": np.concatenate(ys).astype(np.float32),
        "i": np.concatenate(ii).astype(np.int64),
        "u": np.clip(np.concatenate(us), 0, 1).astype(np.float32),
        "v": np.clip(np.concatenate(vs), 0, 1).astype(np.float32),
    }
