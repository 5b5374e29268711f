"""Procedural synthetic people with parsing, pose and DensePose labels that agree.

The built-in dataset of `train.py` and of the tests: no download, deterministic by seed,
and learnable by a small model in minutes, yet not trivial. Each person is drawn from a
random articulated skeleton (LIP joint order); every primitive (limb capsule, torso, head,
garment) is painted into the image, the LIP parsing map and a DensePose patch map at once,
so the three label types cannot disagree. DensePose points are sampled on the visible
surface of each body part with U across and V along the part (0 at the proximal joint).

Appearance: every clothing class has its own colour family (hue band plus saturation and
value ranges) with per-person variation and a random texture; skin tones vary; left and
right differ only by body layout, and back views (no face, back patches) are the cue that
swaps them. Backgrounds are a shaded base colour with random clutter shapes.

Keypoints are written as pixel indices (pixel centre = integer, as LIP); DensePose points
and the box are continuous coordinates (pixel (r, c) covers [c, c+1) x [r, r+1)), as
DensePose-COCO. The input pipeline reads both conventions the same way.

Scenes (`DataConfig.synthetic_scene`): "single" draws one person per image; "multi" draws
2-4 overlapping people back to front on one background, so occlusion is the same in the
image, the parsing and the person-id map (`instance/encoded`, ids 1..N from back to front).
Keypoints and DensePose are those of the front person only (N): the schema holds one
person's pose and DensePose per example, and the front person is the one never occluded.
"3d" draws one posed 3D person seen by a pinhole camera (spd_tf.data.synthetic3d), written as
dataset "synthetic3d" with its depth PNG and 3D joints, and its parsing in LIP's classes or,
with label_set "surreal", in Varol's 14 body parts.
"""

import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from spd_tf import config, fileio, labels, progress
from spd_tf.data import schema
from spd_tf.data import synthetic_drawing as drawing
from spd_tf.data.synthetic3d import generate_person3d
from spd_tf.data.writer import ShardedWriter

# Bump when the drawing changes: cached datasets are keyed by it.
GENERATOR_VERSION = 5  # 4: DensePose coarse masks (dp_masks); 5: the "3d" scene (depth, 3D joints, parts)
DENSEPOSE_MASK_SIZE = drawing.DENSEPOSE_MASK_SIZE
COMPLETE_MARKER = "COMPLETE"
REPORT_NAME = "report.json"
# Size for standalone generation (convert_synthetic, tests). train.py generates at its
# model input size, so the random scale range (0.75-1.25) centres on the evaluation scale.
DEFAULT_IMAGE_SIZE = (96, 96)
SCENES = config.SYNTHETIC_SCENES
SCENE_PEOPLE = (2, 4)  # people per multi-person scene, inclusive
# Label sets a synthetic parsing map can be written in: LIP's classes (every scene) or
# Varol's 14 body parts (labels.SURREAL_CLASSES; the 3d scene only).
LABEL_SETS = {"lip": labels.LIP_CLASSES, "surreal": labels.SURREAL_CLASSES}

C = {name: i for i, name in enumerate(labels.LIP_CLASSES)}
P = {name: i for i, name in enumerate(labels.DENSEPOSE_PATCHES)}


class _Body:
    """A random skeleton: canonical offsets (units of person height) posed into pixels."""

    def __init__(self, rng, height, width):
        self.front = rng.random() < 0.85
        self.unit = rng.uniform(0.7, 0.97) * height
        # Sturdy, cartoon-like limbs: a forearm must stay wider than one output-stride-8
        # cell at the CPU demo's 128 px, or no small model can segment it.
        self.build = rng.uniform(1.15, 1.5)
        tilt = np.deg2rad(rng.uniform(-10, 10))
        self.rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
        # The pelvis is half a person height below the crown and above the soles; one person
        # in ten may run off the bottom edge (joints outside the image are "missing").
        cx = rng.uniform(0.3, 0.7) * width
        lo, hi = 0.5 * self.unit + 0.02 * height, height - 0.5 * self.unit - 0.01 * height
        cy = rng.uniform(lo, max(lo, hi)) if rng.random() < 0.9 else rng.uniform(lo, height)
        self.origin = np.array([cx, cy])
        self.joints = np.zeros((labels.NUM_LIP_JOINTS, 2))
        self._pose(rng)

    def side(self, name: str) -> int:
        """Image-x sign of the person's `name` ("Right"/"Left") side."""
        sign = -1 if name == "Right" else 1
        return sign if self.front else -sign

    def at(self, x, y) -> np.ndarray:
        return self.origin + self.unit * self.rot @ np.array([x, y], dtype=np.float64)

    def trapezoid(self, top_half_width, top, bottom_half_width, bottom) -> list:
        """Corners (top-left, top-right, bottom-right, bottom-left in the image when upright)."""
        return [self.at(-top_half_width, top), self.at(top_half_width, top),
                self.at(bottom_half_width, bottom), self.at(-bottom_half_width, bottom)]

    def _limb(self, start, lengths, angles, lateral):
        points, angle = [np.asarray(start)], 0.0
        for length, delta in zip(lengths, angles):
            angle += delta
            step = np.array([lateral * np.sin(angle), np.cos(angle)]) * length
            points.append(points[-1] + step)
        return points

    def _pose(self, rng):
        b = self.build
        self.canonical = {
            "pelvis": (0.0, 0.0), "thorax": (0.0, -0.30), "neck": (0.0, -0.355),
            "top": (0.0, -0.48), "head": (0.0, -0.43),
        }
        for side in ("Right", "Left"):
            lat = self.side(side)
            shoulder = np.array([lat * 0.105 * b, -0.325])
            arm_angles = (rng.uniform(-0.35, 2.4), rng.uniform(-1.8, 1.2))  # radians, outwards
            arm = self._limb(shoulder, rng.uniform(0.15, 0.17, 2), arm_angles, lat)
            hip = np.array([lat * 0.06 * b, 0.0])
            leg_angles = (rng.uniform(-0.15, 0.45), rng.uniform(-0.5, 0.25))
            leg = self._limb(hip, rng.uniform(0.21, 0.235, 2), leg_angles, lat)
            s = side[0]
            for part, point in zip(("Shoulder", "Elbow", "Wrist"), arm):
                self.canonical[f"{s}_{part}"] = point
            for part, point in zip(("Hip", "Knee", "Ankle"), leg):
                self.canonical[f"{s}_{part}"] = point
        names = {"B_Pelvis": "pelvis", "B_Spine": "thorax", "B_Neck": "neck", "B_Head": "top"}
        for j, name in enumerate(labels.LIP_JOINTS):
            self.joints[j] = self.at(*self.canonical[names.get(name, name)])

    def point(self, name) -> np.ndarray:
        return self.at(*self.canonical[name])


class _Person:
    """Paints one person onto a canvas and records the body-part geometry for DensePose."""

    def __init__(self, rng, canvas: drawing.Canvas, body: _Body):
        self.rng, self.canvas, self.body = rng, canvas, body
        self.surfaces = []  # (patch, kind, geometry) sampled later for DensePose points
        self.skin = drawing.Texture(rng, drawing.skin_colour(rng), 0.0)

    def garment(self, family_name: str) -> drawing.Texture:
        return drawing.garment_texture(self.rng, family_name)

    def patch(self, base: str, side: Optional[str] = None) -> int:
        """DensePose patch id: "Upper arm" + side + front/back, named as labels.py does."""
        view = "front" if self.body.front else "back"
        if base in ("Torso",):
            return P[f"Torso {view}"]
        if base in ("hand", "foot"):
            return P[f"{side} {base}"]
        return P[f"{base} {side.lower()} {view}"]

    def limb(self, a, b, radius, cls, texture, patch):
        u = self.body.unit
        self.canvas.paint(self.canvas.capsule(a, b, radius * u), cls, texture, patch)
        if patch is not None:
            self.surfaces.append((patch, "capsule", (np.asarray(a), np.asarray(b), radius * u)))

    def bare_limb(self, side: str, joints, radii, cls: int, patch_names):
        """Two skin segments (e.g. shoulder-elbow-wrist), each its own DensePose patch."""
        points = [self.body.point(f"{side[0]}_{joint}") for joint in joints]
        for k, (radius, name) in enumerate(zip(radii, patch_names)):
            self.limb(points[k], points[k + 1], radius * self.body.build, cls, self.skin, self.patch(name, side))
        return points

    def cover(self, points, length: float, radii, cls: int, texture):
        """A sleeve or trouser leg; `length` in segments (1 = to the elbow/knee, 2 = to the end)."""
        for k, radius in enumerate(radii):
            reach = min(length - k, 1.0) * (0.95 if k else 1.0)
            if reach > 0:
                end = points[k] + (points[k + 1] - points[k]) * reach
                self.limb(points[k], end, radius * self.body.build, cls, texture, None)

    def blob(self, centre, rx, ry, cls: int, texture, patch: int):
        """A hand or foot: an ellipse aligned with the body, its own DensePose patch."""
        angle = np.rad2deg(np.arctan2(self.body.rot[1, 0], self.body.rot[0, 0]))
        self.canvas.paint(self.canvas.ellipse(centre, (rx, ry), angle), cls, texture, patch)
        self.surfaces.append((patch, "ellipse", (centre, rx, ry)))

    def draw(self):
        rng, body = self.rng, self.body
        outfit = rng.choice(["dress", "jumpsuit", "top"], p=[0.15, 0.1, 0.75])
        bottom = "pants" if outfit == "top" and rng.random() < 0.7 else "skirt"
        wear_coat = outfit == "top" and rng.random() < 0.3
        # Leg cover: (class name, length in leg segments: 1 = to the knee, 2 = to the ankle).
        cover = None
        if outfit == "jumpsuit":
            cover = ("Jumpsuits", 2.0)
        elif outfit == "top" and bottom == "pants":
            cover = ("Pants", rng.choice([0.45, 1.5, 2.0], p=[0.25, 0.2, 0.55]))
        socks = (cover is None or cover[1] < 2.0) and rng.random() < 0.35
        long_hair = rng.random() < 0.35
        hair = drawing.hair_texture(rng) if rng.random() < 0.93 else None
        if hair is not None and long_hair:  # behind everything else
            strands = body.trapezoid(0.075, -0.45, 0.085, -0.29)
            self.canvas.paint(self.canvas.polygon(strands), C["Hair"], hair)
        self.legs(cover, socks)
        self.torso(outfit, bottom, wear_coat)
        self.arms(outfit, wear_coat)
        self.head(hair)

    def legs(self, cover, socks):
        body, b = self.body, self.body.build
        cover_tex = self.garment(cover[0]) if cover else None
        sock_tex = self.garment("Socks") if socks else None
        shoe_tex = self.garment("Shoes")
        for side in ("Right", "Left"):
            hip, knee, ankle = self.bare_limb(
                side, ("Hip", "Knee", "Ankle"), (0.055, 0.045), C[f"{side}-leg"], ("Upper leg", "Lower leg")
            )
            if sock_tex is not None:
                self.limb(ankle + (knee - ankle) * 0.45, ankle, 0.047 * b, C["Socks"], sock_tex, None)
            if cover:
                self.cover((hip, knee, ankle), cover[1], (0.065, 0.054), C[cover[0]], cover_tex)
            foot = ankle + body.rot @ np.array([body.side(side) * 0.02, 0.03]) * body.unit
            self.blob(foot, 0.055 * body.unit, 0.036 * body.unit, C[f"{side}-shoe"], shoe_tex, P[f"{side} foot"])
        if cover:
            crotch = body.trapezoid(0.105 * b, -0.05, 0.1 * b, 0.07)
            self.canvas.paint(self.canvas.polygon(crotch), C[cover[0]], cover_tex, None)

    def torso(self, outfit, bottom, wear_coat):
        body, b = self.body, self.body.build
        quad = body.trapezoid(0.115 * b, -0.34, 0.09 * b, 0.03)
        name = {"dress": "Dress", "jumpsuit": "Jumpsuits", "top": "UpperClothes"}[outfit]
        self.top_texture = self.garment(name)
        self.top_class = C[name]
        self.canvas.paint(self.canvas.polygon(quad), self.top_class, self.top_texture, self.patch("Torso"))
        self.surfaces.append((self.patch("Torso"), "quad", np.array(quad)))
        if outfit == "dress" or bottom == "skirt" and outfit == "top":
            if outfit == "dress":
                cls, tex = self.top_class, self.top_texture
            else:
                cls, tex = C["Skirt"], self.garment("Skirt")
            hem, flare = self.rng.uniform(0.12, 0.33), self.rng.uniform(1.1, 1.6)
            skirt = body.trapezoid(0.1 * b, -0.06, 0.12 * b * flare, hem)
            self.canvas.paint(self.canvas.polygon(skirt), cls, tex, None)
        if wear_coat:
            self.coat_texture, gap = self.garment("Coat"), self.rng.uniform(0.015, 0.04)
            tail = self.rng.uniform(0.05, 0.2)
            for lat in (-1, 1):
                panel = [body.at(lat * 0.125 * b, -0.345), body.at(lat * gap, -0.345),
                         body.at(lat * gap, tail), body.at(lat * 0.11 * b, tail)]
                self.canvas.paint(self.canvas.polygon(panel), C["Coat"], self.coat_texture, None)

    def arms(self, outfit, wear_coat):
        body, b, rng = self.body, self.body.build, self.rng
        sleeve = rng.choice([0.0, 0.5, 1.5, 2.0]) if outfit != "jumpsuit" else rng.choice([0.0, 2.0])
        gloves = self.garment("Glove") if rng.random() < 0.25 else None
        for side in ("Right", "Left"):
            arm_cls = C[f"{side}-arm"]
            points = self.bare_limb(
                side, ("Shoulder", "Elbow", "Wrist"), (0.036, 0.031), arm_cls, ("Upper arm", "Lower arm")
            )
            self.cover(points, sleeve, (0.046, 0.04), self.top_class, self.top_texture)
            if wear_coat:
                self.cover(points, 1.9, (0.046, 0.04), C["Coat"], self.coat_texture)
            _, elbow, wrist = points
            hand = wrist + (wrist - elbow) / (np.linalg.norm(wrist - elbow) + 1e-6) * 0.025 * body.unit
            cls, tex = (C["Glove"], gloves) if gloves is not None else (arm_cls, self.skin)
            self.blob(hand, 0.042 * body.unit, 0.042 * body.unit, cls, tex, P[f"{side} hand"])

    def head(self, hair):
        body, rng, u = self.body, self.rng, self.body.unit
        if rng.random() < 0.3:  # scarf
            scarf = self.garment("Scarf")
            self.limb(body.at(-0.07, -0.345), body.at(0.07, -0.345), 0.03, C["Scarf"], scarf, None)
            end = body.at(rng.uniform(-0.06, 0.06), rng.uniform(-0.2, -0.1))
            self.limb(body.at(0.03, -0.345), end, 0.025, C["Scarf"], scarf, None)
        self.limb(body.point("neck"), body.at(0, -0.38), 0.028, C["Face"], self.skin, None)
        centre, axes = body.point("head"), np.array([0.058, 0.072]) * u
        angle = np.rad2deg(np.arctan2(body.rot[1, 0], body.rot[0, 0]))
        mask = self.canvas.ellipse(centre, axes, angle)
        lateral = body.rot @ np.array([1.0, 0.0])
        yy, xx = np.mgrid[0:self.canvas.height, 0:self.canvas.width]
        across = (xx + 0.5 - centre[0]) * lateral[0] + (yy + 0.5 - centre[1]) * lateral[1]
        right_half = across * body.side("Right") > 0
        for side, half in (("Right", right_half), ("Left", ~right_half)):
            patch = P[f"Head {side.lower()}"]
            self.canvas.paint(mask * half, C["Face"], self.skin, patch)
        self.surfaces.append((None, "head", (centre, axes, body.rot, body.side("Right"))))
        if hair is not None:
            hair_mask = mask
            if body.front:  # a band over the forehead and sides; the back view is all hair
                face = self.canvas.ellipse(centre + body.rot @ (0, 0.022 * u), axes * (0.92, 0.82), angle)
                hair_mask = mask * (1 - face)
            self.canvas.paint(hair_mask, C["Hair"], hair, None)
        if body.front:
            for lat in (-1, 1):
                eye = self.canvas.ellipse(body.at(lat * 0.022, -0.43), (0.008 * u, 0.005 * u), angle)
                self.canvas.paint(eye, C["Face"], drawing.Texture(rng, (30, 25, 25), 0.0), None)
            if rng.random() < 0.35:  # sunglasses
                glasses = self.canvas.capsule(body.at(-0.04, -0.432), body.at(0.04, -0.432), 0.021 * u)
                self.canvas.paint(glasses * mask, C["Sunglasses"], self.garment("Sunglasses"), None)
        if rng.random() < 0.3:
            hat = self.garment("Hat")
            brim = self.canvas.ellipse(body.at(0, -0.47), (0.07 * u, 0.04 * u), angle)
            crown = self.canvas.polygon(body.trapezoid(0.06, -0.535, 0.065, -0.47))
            self.canvas.paint(brim | crown, C["Hat"], hat, None)


def _sample_surface(rng, kind, geometry, count):
    """`count` candidate points (x, y, u, v, patch or -1) on one body-part surface."""
    a, b = rng.uniform(0.03, 0.97, count), rng.uniform(0.03, 0.97, count)
    patch = np.full(count, -1)
    if kind == "capsule":
        p0, p1, radius = geometry
        along = p1 - p0
        normal = np.array([-along[1], along[0]]) / (np.linalg.norm(along) + 1e-6)
        xy = p0 + a[:, None] * along + ((2 * b - 1) * radius)[:, None] * normal
        u, v = b, a
    elif kind == "quad":
        tl, tr, br, bl = geometry
        top, bottom = tl + a[:, None] * (tr - tl), bl + a[:, None] * (br - bl)
        xy = top + b[:, None] * (bottom - top)
        u, v = a, b
    else:
        centre, rx, ry = geometry[:3] if kind == "ellipse" else (geometry[0], *geometry[1])
        angle, radius = 2 * np.pi * a, 0.95 * np.sqrt(b)
        local = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
        rot = np.eye(2) if kind == "ellipse" else geometry[2]
        xy = centre + (local * (rx, ry)) @ rot.T
        u, v = (local[:, 0] + 1) / 2, (local[:, 1] + 1) / 2
        if kind == "head":  # U from the midline outwards, V from crown to chin
            right = local[:, 0] * geometry[3] > 0
            patch = np.where(right, P["Head right"], P["Head left"])
            u = np.abs(local[:, 0])
    return xy, u, v, patch


def _densepose(rng, canvas: drawing.Canvas, surfaces, points_per_part: int, person: np.ndarray) -> dict:
    """Visible DensePose points, box and coarse masks of the person whose pixels are `person`."""
    xs, ys, ii, us, vs = [], [], [], [], []
    for patch, kind, geometry in surfaces:
        count = points_per_part * (2 if kind == "quad" else 1)
        xy, u, v, patches = _sample_surface(rng, kind, geometry, count)
        patches = np.where(patches < 0, patch if patch is not None else 0, patches)
        col, row = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
        inside = (col >= 0) & (col < canvas.width) & (row >= 0) & (row < canvas.height)
        visible = np.zeros(count, bool)
        visible[inside] = canvas.patches[row[inside], col[inside]] == patches[inside]
        visible &= patches > 0
        xs.append(xy[visible, 0]), ys.append(xy[visible, 1]), ii.append(patches[visible])
        us.append(u[visible]), vs.append(v[visible])
    return drawing.densepose_record(canvas.patches, person, xs, ys, ii, us, vs)


def generate_person(rng: np.random.Generator, height: int, width: int, points_per_part: int = 6) -> dict:
    """One synthetic person.

    Returns image uint8 [H, W, 3] RGB, parsing uint8 [H, W] (LIP classes), keypoints
    float32 [16, 3] (x, y, v as pixel indices; v=0 visible, a joint outside the image is
    -1, -1, -1),
    densepose dict (bbox x0, y0, w, h; x, y, i, u, v) as schema.encode_example takes it,
    and patches uint8 [H, W], the visible DensePose patch of every pixel (0 = none).
    """
    return _draw(rng, height, width, 1, points_per_part)


def generate_scene(rng: np.random.Generator, height: int, width: int, points_per_part: int = 6) -> dict:
    """2-4 overlapping people (module docstring): generate_person's dict for the front
    person's keypoints and DensePose, the parsing of all, plus instances uint8 [H, W]
    (0 none, 1..N back to front)."""
    return _draw(rng, height, width, int(rng.integers(SCENE_PEOPLE[0], SCENE_PEOPLE[1] + 1)), points_per_part)


def _draw(rng, height: int, width: int, count: int, points_per_part: int) -> dict:
    canvas = drawing.Canvas(drawing.background(rng, height, width))
    for index in range(1, count + 1):
        canvas.person = index
        body = _Body(rng, height, width)
        person = _Person(rng, canvas, body)
        person.draw()
    keypoints = np.concatenate([body.joints - 0.5, np.zeros((labels.NUM_LIP_JOINTS, 1))], 1)
    outside = (body.joints < 0).any(1) | (body.joints[:, 0] >= width) | (body.joints[:, 1] >= height)
    keypoints[outside] = -1
    front = canvas.instances == count
    return {
        "image": np.clip(np.round(canvas.image), 0, 255).astype(np.uint8),
        "parsing": canvas.parsing,
        "keypoints": keypoints.astype(np.float32),
        "densepose": _densepose(rng, canvas, person.surfaces, points_per_part, front),
        "patches": np.where(front, canvas.patches, 0).astype(np.uint8),
        "instances": canvas.instances,
    }


def _example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Every example has its own stream, so any subset regenerates identically."""
    return np.random.default_rng([seed, ("train", "val").index(split), index])


def encode_person(person: dict, source_id: str, with_instances: bool = False, label_set: str = "lip") -> bytes:
    """Serialises a generated person or scene (JPEG image, PNG parsing, and the person-id
    PNG when `with_instances`) with schema.encode_example. A 3D person (generate_person3d)
    is dataset "synthetic3d" with its depth PNG and 3D joints; its parsing is in `label_set`
    ("lip" or "surreal": its `parts`)."""
    three_d = "depth" in person
    if label_set not in LABEL_SETS or (label_set != "lip" and not three_d):
        raise ValueError(f"{source_id}: label_set={label_set!r} must be 'lip' or, for a 3D person, 'surreal'")
    extra = {"depth_png": schema.encode_depth_png(person["depth"]), "joints3d": person["joints3d"]} if three_d else {}
    height, width = person["parsing"].shape
    bgr = cv2.cvtColor(person["image"], cv2.COLOR_RGB2BGR)
    ok_image, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    ok_label, png = cv2.imencode(".png", person["parts" if label_set == "surreal" else "parsing"])
    ok_ids, ids = cv2.imencode(".png", person["instances"]) if with_instances else (True, b"")
    if not (ok_image and ok_label and ok_ids):
        raise RuntimeError(f"{source_id}: OpenCV failed to encode the synthetic image")
    example = schema.encode_example(
        jpeg.tobytes(), height=height, width=width, source_id=source_id,
        dataset="synthetic3d" if three_d else "synthetic", parsing_png=png.tobytes(), instance_png=bytes(ids),
        keypoints=person["keypoints"], densepose=person["densepose"], **extra,
    )
    return example.SerializeToString()


def write_synthetic_dataset(
    out_dir, num_train: int = 2000, num_val: int = 200, image_size: Tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0, num_shards: int = 4, scene: str = "single", label_set: str = "lip",
) -> dict:
    """Writes train/val shards and report.json into `out_dir`; returns the report.

    scene: "single" (one person per image), "multi" (generate_scene, with person ids) or
    "3d" (generate_person3d: depth and 3D joints too). label_set: the parsing's classes,
    "lip", or "surreal" (Varol's 14 parts; scene "3d" only)."""
    if scene not in SCENES:
        raise ValueError(f"scene={scene!r} is not one of {SCENES}")
    if label_set not in LABEL_SETS or (label_set != "lip" and scene != "3d"):
        raise ValueError(f"label_set={label_set!r}: the {scene!r} scene is drawn in " +
                         ("'lip' or 'surreal'" if scene == "3d" else "'lip' only (surreal parts need scene 3d)"))
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train={num_train}, num_val={num_val} must be >= 0")
    height, width = image_size
    if min(height, width) < 32:
        raise ValueError(f"image_size={tuple(image_size)} must be at least 32x32")
    out_dir = Path(out_dir)
    report = {
        "generator_version": GENERATOR_VERSION, "image_size": [height, width], "seed": seed,
        "splits": {}, "class_image_fraction": {},
    }
    if scene != "single":  # single-person reports stay as before
        report["scene"] = scene
    if scene == "3d":
        report["label_set"] = label_set
    draw = {"single": generate_person, "multi": generate_scene, "3d": generate_person3d}[scene]
    class_names = LABEL_SETS[label_set]
    class_counts = np.zeros(len(class_names))
    for split, count in (("train", num_train), ("val", num_val)):
        if count == 0:
            continue
        points = 0
        shards = max(1, min(num_shards, count)) if split == "train" else 1
        with ShardedWriter(out_dir, split, shards) as writer:
            for index in progress.track(range(count), f"synthetic {split}", "img", leave=False):
                person = draw(_example_rng(seed, split, index), height, width)
                writer.write(encode_person(person, f"synthetic_{split}_{index:06d}", scene == "multi", label_set))
                class_counts[np.unique(person["parts" if label_set == "surreal" else "parsing"])] += 1
                points += person["densepose"]["i"].size
        tasks = ("segmentation", "pose", "densepose") + (("depth", "pose3d") if scene == "3d" else ())
        report["splits"][split] = {
            "examples": count, "shards": [p.name for p in writer.final_paths],
            "examples_per_task": {task: count for task in tasks},
            "densepose_points": points,
        }
    total = max(1, num_train + num_val)
    report["class_image_fraction"] = {n: round(c / total, 4) for n, c in zip(class_names, class_counts)}
    fileio.write_json_atomic(out_dir / REPORT_NAME, report)
    return report


def _settings_key(settings: Dict) -> str:
    text = json.dumps({**settings, "generator_version": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_synthetic_dataset(
    cache_dir, num_train: int = 2000, num_val: int = 200, image_size: Tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0, num_shards: int = 4, scene: str = "single", label_set: str = "lip",
) -> Tuple[str, str]:
    """Generates the dataset once per settings into `cache_dir`; returns (train_glob, val_glob).

    The dataset directory is keyed by a hash of the settings and the generator version and
    is built under a temporary name, renamed into place with its COMPLETE marker inside,
    so an interrupted run is simply regenerated next time.
    """
    settings = {
        "num_train": num_train, "num_val": num_val, "image_size": list(image_size),
        "seed": seed, "num_shards": num_shards,
    }
    if scene != "single":  # the single-person cache keeps its key
        settings["scene"] = scene
    if scene == "3d":  # and so do the 2D scenes': they are drawn in LIP's classes only
        settings["label_set"] = label_set
    final = Path(cache_dir) / f"synthetic-{_settings_key(settings)}"
    if not (final / COMPLETE_MARKER).exists():
        with fileio.atomic_path(final, directory=True) as temp:
            write_synthetic_dataset(temp, num_train, num_val, image_size, seed, num_shards, scene, label_set)
            fileio.write_json_atomic(temp / COMPLETE_MARKER, settings)
    return str(final / "train-*.tfrecord"), str(final / "val-*.tfrecord")
