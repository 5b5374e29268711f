"""3D synthetic people: a posed skeleton with limb volumes, rendered by a pinhole camera with a
z-buffer, so depth, 2D/3D joints, Varol's 14 parts, LIP classes and DensePose charts all come
from one render and agree (the embedded data of the depth and pose3d tasks; numpy + cv2).

Body. The 16 `lip` joints (MPII order) are posed in a body frame (x = the person's left,
y = up, z = forward; metres) from random joint angles within human limits (spine lean, bend
and twist; head nod, turn and tilt; shoulder abduction/flexion, arm twist, elbow flexion;
hip flexion/abduction, knee flexion) and random proportions (height 1.45-1.95 m, each segment
+-8 %, shoulder width, a cartoon-sturdy build so a forearm stays wider than a stride-8 cell at
the demo's 128 px, as synthetic.py's). Volumes (synthetic3d_render): capsules for the limbs,
the neck and the shoulder line, ellipsoids for the chest, abdomen, hips, head, hands and
feet. Each volume belongs to one of SURREAL's 14 parts (labels.SURREAL_CLASSES; the neck and
shoulders are torso, as SMPL's parts 13-15 in gulvarol/surreal training/loader_SURREAL.lua:85).

Camera. The lowest point stands on the ground; the person turns by a uniform angle about
the vertical (0 = facing the camera, so back views are as common as any), 2.5-6 m from a
camera 0.7-1.7 m above the ground that aims at the body's middle with a small pan/tilt
jitter (OpenCV axes, contract). The focal length makes the person 55-90 % of the image
height; the principal point is the image centre.

Labels, from the nearest hit of each pixel's ray (synthetic3d_render.zbuffer): depth =
that hit's camera Z (0 = background); parts = its volume's part; LIP = its part plus
random garments read off the surface (sleeve/trouser/skirt lengths along the limb, hair and
hat on the head, a coat open at the front...), in synthetic.py's colour families; DensePose
I from its part and side: front/back of the radial direction against the part's forward
axis (Head right/left by the head's lateral axis); V along the part from the proximal end
(torso: neck to crotch; head: crown to chin), U across: around the limb from the person's
right (0) to left (1) on either side, as synthetic.py's capsules run across the limb; head
U from the midline outwards; hand/foot U, V over the ellipsoid's extent. DensePose points
are re-cast rays at random sub-pixel spots of each visible patch. Joints: pixel index =
K X / Z (pixel centre = integer), outside the image = (-1, -1, -1); 3D joints camera metres.
"""

from typing import Dict, NamedTuple

import numpy as np

from spd_tf import labels
from spd_tf.data import synthetic3d_render as render
from spd_tf.data import synthetic_drawing as drawing

C = {name: i for i, name in enumerate(labels.LIP_CLASSES)}
P = {name: i for i, name in enumerate(labels.DENSEPOSE_PATCHES)}
S = {name: i for i, name in enumerate(labels.SURREAL_CLASSES)}
J = {name: i for i, name in enumerate(labels.LIP_JOINTS)}
SIDES = (("Right", "R", -1), ("Left", "L", 1))  # (name, joint prefix, body-frame x sign)
HEAD, TORSO = S["Head"], S["Torso"]
HANDS = (S["RightHand"], S["LeftHand"])
FEET = (S["RightFoot"], S["LeftFoot"])
# DensePose base name of the limb parts: "<base> <side> front|back".
LIMB_PATCH = {S[f"{side}{part}"]: (base, side.lower()) for side, _, _ in SIDES for part, base in (
    ("UpperArm", "Upper arm"), ("Forearm", "Lower arm"), ("UpperLeg", "Upper leg"), ("LowerLeg", "Lower leg"))}
_LIMB_IDS = np.array(sorted(LIMB_PATCH))
# part -> patch id on the front (column 0) and the back (column 1) side; head: right, left.
PART_PATCH = np.zeros((len(labels.SURREAL_CLASSES), 2), np.int64)
for _part, (_base, _side) in LIMB_PATCH.items():
    PART_PATCH[_part] = P[f"{_base} {_side} front"], P[f"{_base} {_side} back"]
PART_PATCH[TORSO] = P["Torso front"], P["Torso back"]
PART_PATCH[HEAD] = P["Head right"], P["Head left"]
for _side, _, _ in SIDES:
    PART_PATCH[S[f"{_side}Hand"]] = P[f"{_side} hand"]
    PART_PATCH[S[f"{_side}Foot"]] = P[f"{_side} foot"]
EYE_COLOUR = np.array([30, 25, 25], np.float32)


def _rot(axis: int, angle: float) -> np.ndarray:
    """Right-handed rotation by `angle` radians about the x (0), y (1) or z (2) axis."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _unit(v):
    return v / np.linalg.norm(v)


def _about(v, axis, angle):
    """`v` turned by `angle` about the unit `axis` (Rodrigues)."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


class Frame(NamedTuple):
    """A part's chart frame: V along `along` from `origin` over `length`; `fwd` is the part's
    front, `left` the person's left; `radii` (along, fwd, left) scale head/hand/foot charts."""
    origin: np.ndarray
    along: np.ndarray
    fwd: np.ndarray
    left: np.ndarray
    length: float
    radii: np.ndarray = np.ones(3)

    def moved(self, rot, shift):
        return Frame(rot @ self.origin + shift, rot @ self.along, rot @ self.fwd, rot @ self.left,
                     self.length, self.radii)


def _deg(rng, lo, hi, p=1.0, lo2=None, hi2=None):
    """An angle in radians, uniform in [lo, hi] degrees (with probability 1-p in [lo2, hi2])."""
    if p < 1 and rng.random() >= p:
        lo, hi = lo2, hi2
    return np.deg2rad(rng.uniform(lo, hi))


class Body:
    """Posed joints, volumes (synthetic3d_render primitives) and part frames in the body frame."""

    def __init__(self, rng):
        h = self.height = rng.uniform(1.45, 1.95)
        b = self.build = rng.uniform(1.1, 1.45)
        seg = lambda fraction: fraction * h * rng.uniform(0.92, 1.08)
        spine, neck, shoulder = seg(0.29), seg(0.045), 0.105 * h * rng.uniform(0.9, 1.12)
        self.joints = np.zeros((labels.NUM_LIP_JOINTS, 3))
        self.prims, self.frames = [], {}
        up, fwd = np.array([0.0, 1, 0]), np.array([0.0, 0, 1])
        lean, bend, twist = _deg(rng, -8, 20), _deg(rng, -8, 8), _deg(rng, -25, 25)
        chest = _rot(0, lean) @ _rot(2, bend) @ _rot(1, twist)
        half = _rot(0, lean / 2) @ _rot(2, bend / 2) @ _rot(1, twist / 2)  # the abdomen's
        thorax = chest @ up * spine
        head_rot = chest @ _rot(0, _deg(rng, -20, 25)) @ _rot(1, _deg(rng, -45, 45)) @ _rot(2, _deg(rng, -10, 10))
        upper_neck = thorax + chest @ up * neck
        head_radii = np.array([0.072, 0.066, 0.058]) * h  # along (crown-chin), front, side
        head_centre = upper_neck + head_rot @ np.array([0, 0.062 * h, 0.008 * h])
        self.joints[J["B_Spine"]], self.joints[J["B_Neck"]] = thorax, upper_neck  # the pelvis is the origin
        self.joints[J["B_Head"]] = head_centre + head_rot @ up * 0.93 * head_radii[0]
        self._ellipsoid(head_centre, head_rot, head_radii[[2, 0, 1]], HEAD)
        self.frames[HEAD] = Frame(head_centre, -head_rot @ up, head_rot @ fwd, head_rot @ np.array([1.0, 0, 0]),
                                  head_radii[0], head_radii)
        self.prims.append(render.Capsule(thorax - chest @ up * 0.03 * h, upper_neck + head_rot @ up * 0.02 * h,
                                         0.03 * h * np.sqrt(b), TORSO, "neck"))
        # Torso: chest, abdomen and hips ellipsoids, a capsule along the shoulder line.
        width = shoulder * (0.95 + 0.1 * (b - 1.1))
        self._ellipsoid(chest @ up * 0.66 * spine, chest, np.array([width, 0.37 * spine, 0.072 * h * b]), TORSO)
        self._ellipsoid(half @ up * 0.28 * spine, half, np.array([0.82 * width, 0.32 * spine, 0.066 * h * b]), TORSO)
        self._ellipsoid(np.array([0, -0.015 * h, -0.005 * h]), np.eye(3),
                        np.array([0.105 * h * b ** 0.5, 0.075 * h, 0.068 * h * b]), TORSO)
        crotch = np.array([0.0, -0.085 * h, 0])
        down = _unit(crotch - upper_neck)
        front = _unit(chest @ fwd - (chest @ fwd @ down) * down)
        self.frames[TORSO] = Frame(upper_neck, down, front, np.cross(front, down), np.linalg.norm(crotch - upper_neck),
                                   np.array([1, 0.07 * h * b, width]))
        shoulders = {lat: thorax + chest @ np.array([lat * shoulder, -0.015 * h, -0.01 * h]) for _, _, lat in SIDES}
        self.prims.append(render.Capsule(shoulders[-1], shoulders[1], 0.042 * h * b, TORSO, "shoulders"))
        for side, s, lat in SIDES:
            arm = (_deg(rng, 5, 95, 0.8, 95, 170), _deg(rng, -35, 70, 0.8, 70, 160), _deg(rng, -30, 80),
                   _deg(rng, 0, 60, 0.6, 60, 145))
            self._limb(side, s, lat, ("Shoulder", "Elbow", "Wrist"), shoulders[lat], chest, arm,
                       (seg(0.17), seg(0.15)), (0.036 * h * b, 0.031 * h * b), ("UpperArm", "Forearm"))
            hip = np.array([lat * 0.056 * h, -0.02 * h, 0])
            leg = (_deg(rng, -5, 30), _deg(rng, -20, 40, 0.85, 40, 95), 0.0, -_deg(rng, 0, 50, 0.8, 50, 125))
            self._limb(side, s, lat, ("Hip", "Knee", "Ankle"), hip, np.eye(3), leg,
                       (seg(0.245), seg(0.245)), (0.055 * h * b, 0.045 * h * b), ("UpperLeg", "LowerLeg"))
        self.lowest = min(self._lowest(p) for p in self.prims)

    def _ellipsoid(self, centre, axes, radii, part, tag=""):
        self.prims.append(render.Ellipsoid(centre, axes, radii, part, tag))

    def _limb(self, side, s, lat, names, root, base, angles, lengths, radii, parts):
        """Two segments from `root`: abduction/flexion of the first, a twist, then the hinge
        (elbow forwards, knee backwards: a negative bend) of the second."""
        abduct, flex, twist, bend = angles
        rot = base @ _rot(2, lat * abduct) @ _rot(0, -flex)
        along, front = rot @ np.array([0.0, -1, 0]), rot @ np.array([0.0, 0, 1])
        front = _about(front, along, lat * twist)
        points = [root]
        for k, (length, radius, part) in enumerate(zip(lengths, radii, parts)):
            if k:
                along, front = (np.cos(bend) * along + np.sin(bend) * front,
                                np.cos(bend) * front - np.sin(bend) * along)
            points.append(points[-1] + along * length)
            part_id = S[f"{side}{part}"]
            self.prims.append(render.Capsule(points[-2], points[-1], radius, part_id))
            self.frames[part_id] = Frame(points[-2], along, front, np.cross(front, along), length)
        for name, point in zip(names, points):
            self.joints[J[f"{s}_{name}"]] = point
        end, left, h = points[-1], np.cross(front, along), self.height
        if names[0] == "Shoulder":  # the hand: flat, along the forearm
            radii3 = np.array([0.05, 0.022, 0.04]) * h  # along, front, left
            centre, axes, part = end + along * 0.8 * radii3[0], np.stack([along, front, left], 1), S[f"{side}Hand"]
        else:  # the foot: forwards from the ankle, on the sole
            radii3 = np.array([0.075, 0.03, 0.036]) * h  # along (toes), up, left
            centre, axes, part = (end + front * 0.55 * radii3[0] + along * 0.028 * h,
                                  np.stack([front, -along, left], 1), S[f"{side}Foot"])
        self._ellipsoid(centre, axes, radii3, part)
        self.frames[part] = Frame(centre, axes[:, 0], axes[:, 1], left, radii3[0], radii3)

    @staticmethod
    def _lowest(prim) -> float:
        if isinstance(prim, render.Capsule):
            return min(prim.a[1], prim.b[1]) - prim.radius
        return prim.centre[1] - np.linalg.norm(prim.axes[1] * prim.radii)


class Camera(NamedTuple):
    K: np.ndarray
    R: np.ndarray  # body frame -> camera
    t: np.ndarray

    def project(self, points):
        pix = points @ self.K.T
        return pix[:, :2] / pix[:, 2:]


def place(rng, body: Body, height: int, width: int) -> Camera:
    """Stands the body on the ground, turns it, and aims a camera at it (module docstring)."""
    distance, camera_height = rng.uniform(2.5, 6.0), rng.uniform(0.7, 1.7)
    # Body frame (x left, y up, z forward) to a levelled camera frame (X right, Y down, Z
    # forward) facing the camera, then a turn about the vertical.
    turn = rng.uniform(0, 2 * np.pi)
    to_world = _rot(1, turn) @ np.diag([1.0, -1, -1])
    top = max(centre[1] + radius for centre, radius in (p.bounds() for p in body.prims))
    shift = np.array([0, camera_height + body.lowest, distance])  # lowest point on Y = camera height
    middle_y = camera_height - (top - body.lowest) / 2
    f = rng.uniform(0.55, 0.9) * height * distance / body.height
    dx, dy = rng.uniform(-0.18, 0.18) * width, rng.uniform(-0.08, 0.08) * height
    pan, tilt = -np.arctan(dx / f), np.arctan2(middle_y, distance) - np.arctan(dy / f)
    z = np.array([np.sin(pan) * np.cos(tilt), np.sin(tilt), np.cos(pan) * np.cos(tilt)])
    x = np.array([np.cos(pan), 0, -np.sin(pan)])
    world_to_camera = np.stack([x, np.cross(z, x), z])
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    return Camera(K, world_to_camera @ to_world, world_to_camera @ shift)


class Person3D:
    """One posed, placed person: primitives, frames and joints in camera coordinates."""

    def __init__(self, rng, height: int, width: int):
        self.body = Body(rng)
        self.camera = place(rng, self.body, height, width)
        R, t = self.camera.R, self.camera.t
        self.prims = []
        for p in self.body.prims:
            if isinstance(p, render.Capsule):
                self.prims.append(render.Capsule(R @ p.a + t, R @ p.b + t, p.radius, p.part, p.tag))
            else:
                self.prims.append(render.Ellipsoid(R @ p.centre + t, R @ p.axes, p.radii, p.part, p.tag))
        self.frames = {part: frame.moved(R, t) for part, frame in self.body.frames.items()}
        self.joints = self.body.joints @ R.T + t

    def surface(self, points: np.ndarray, owner: np.ndarray) -> Dict[str, np.ndarray]:
        """Part, DensePose patch/U/V and part-frame coordinates of hit `points` [N, 3]."""
        part = np.array([p.part for p in self.prims] + [0])[owner]
        tag = np.array([p.tag for p in self.prims] + [""])[owner]
        fields = {k: np.zeros(len(points)) for k in ("a", "f", "l", "u", "v")}
        front = np.zeros(len(points), bool)
        for pid, frame in self.frames.items():
            sel = part == pid
            rel = points[sel] - frame.origin
            a, f, l = rel @ frame.along, rel @ frame.fwd, rel @ frame.left
            if pid == HEAD:
                a, f, l = a / frame.radii[0], f / frame.radii[1], l / frame.radii[2]
                u, v = np.abs(l), (a + 1) / 2
            elif pid in HANDS or pid in FEET:
                a, l = a / frame.radii[0], l / frame.radii[2]
                u, v = (l + 1) / 2, (a + 1) / 2
            else:  # around the part: person's right (0) to left (1), on the front and on the back
                f, l = f / frame.radii[1], l / frame.radii[2]
                u, v = (np.arctan2(l, np.abs(f)) + np.pi / 2) / np.pi, a / frame.length
            for key, value in zip("afluv", (a, f, l, u, v)):
                fields[key][sel] = value
            front[sel] = (l < 0) if pid == HEAD else (f >= 0)
        patch = PART_PATCH[part, np.where(front, 0, 1)] * (part > 0)
        return {"part": part, "tag": tag, "patch": patch, "front": front, **fields,
                "u": np.clip(fields["u"], 0, 1), "v": np.clip(fields["v"], 0, 1)}


class Outfit:
    """Random garments, read off the surface as LIP classes, and their textures."""

    def __init__(self, rng):
        self.outfit = rng.choice(["dress", "jumpsuit", "top"], p=[0.15, 0.1, 0.75])
        self.top = {"dress": "Dress", "jumpsuit": "Jumpsuits", "top": "UpperClothes"}[self.outfit]
        self.bottom = None  # class of the hips below the waist (None: the top's)
        self.cover = ("Jumpsuits", 2.0) if self.outfit == "jumpsuit" else None  # (class, leg segments)
        self.hem = rng.uniform(0.15, 0.85) if self.outfit == "dress" else 0.0  # a dress covers the thigh to here
        if self.outfit == "top":
            if rng.random() < 0.7:
                self.bottom = "Pants"
                self.cover = ("Pants", rng.choice([0.45, 1.5, 2.0], p=[0.25, 0.2, 0.55]))
            else:
                self.bottom, self.hem = "Skirt", rng.uniform(0.15, 0.85)
        self.coat = rng.uniform(0.12, 0.35) if self.outfit == "top" and rng.random() < 0.3 else 0.0  # front gap
        self.sleeve = rng.choice([0.0, 2.0]) if self.outfit == "jumpsuit" else rng.choice([0.0, 0.5, 1.5, 2.0])
        self.socks = (self.cover is None or self.cover[1] < 2.0) and rng.random() < 0.35
        self.hair, self.long_hair = rng.random() < 0.93, rng.random() < 0.35
        self.hat, self.glasses, self.scarf = rng.random() < 0.3, rng.random() < 0.35, rng.random() < 0.3
        self.gloves = rng.random() < 0.25
        self.waist = rng.uniform(0.68, 0.78)
        self.textures = {C["Face"]: drawing.Texture(rng, drawing.skin_colour(rng), 0.0)}
        for side in ("Left", "Right"):  # one skin for face, arms and legs
            self.textures[C[f"{side}-arm"]] = self.textures[C[f"{side}-leg"]] = self.textures[C["Face"]]
        self.textures[C["Hair"]] = drawing.hair_texture(rng)
        shoes = drawing.garment_texture(rng, "Shoes")
        self.textures[C["Left-shoe"]] = self.textures[C["Right-shoe"]] = shoes
        for name in ("Hat", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
                     "Jumpsuits", "Scarf", "Skirt"):
            self.textures[C[name]] = drawing.garment_texture(rng, name)

    def classes(self, s: Dict[str, np.ndarray]) -> np.ndarray:
        """LIP class of every surface point of Person3D.surface."""
        part, a, f, l, v = s["part"], s["a"], s["f"], s["l"], s["v"]
        lip = np.zeros(len(part), np.uint8)
        sided = {S[f"{side}{p}"]: side for side, _, _ in SIDES for p in ("UpperArm", "Forearm", "Hand",
                                                                           "UpperLeg", "LowerLeg", "Foot")}
        for pid, side in sided.items():
            sel = part == pid
            name = labels.SURREAL_CLASSES[pid]
            lip[sel] = C[f"{side}-shoe"] if "Foot" in name else C[f"{side}-{'leg' if 'Leg' in name else 'arm'}"]
            seg = 1.0 if ("Forearm" in name or "Lower" in name) else 0.0  # segments before this one
            if "Hand" in name:
                lip[sel & self.gloves] = C["Glove"]
            elif "Arm" in name or "Forearm" in name:
                lip[sel & (v + seg < self.sleeve)] = C[self.top]
                lip[sel & (v + seg < 1.9) & bool(self.coat)] = C["Coat"]
            elif "Leg" in name:
                lip[sel & self.socks & (seg > 0) & (v > 0.55)] = C["Socks"]
                if self.cover:
                    lip[sel & (v + seg < self.cover[1])] = C[self.cover[0]]
                lip[sel & (seg == 0) & (v < self.hem)] = C[self.top if self.outfit == "dress" else "Skirt"]
        torso = part == TORSO
        neck = torso & (s["tag"] == "neck")
        lip[torso] = C[self.top]
        if self.bottom:
            lip[torso & (v > self.waist)] = C[self.bottom]
        if self.coat:  # open at the front: the top shows in a band of the torso's width
            lip[torso & ~neck & ((f < 0) | (np.abs(l) > self.coat))] = C["Coat"]
        if self.hair and self.long_hair:  # down the upper back
            lip[torso & ~neck & (f < 0) & (v < 0.35) & (np.abs(l) < 0.55)] = C["Hair"]
        lip[neck] = C["Scarf"] if self.scarf else C["Face"]
        head = part == HEAD
        up = -a
        lip[head] = C["Face"]
        if self.hair:
            hair = (up > 0.4) | (f < -0.1) | ((np.abs(l) > 0.8) & (up > -0.3) & (f < 0.4))
            lip[head & (hair | (self.long_hair & (f < 0.3)))] = C["Hair"]
        if self.glasses:
            lip[head & (f > 0.5) & (np.abs(up - 0.12) < 0.14) & (np.abs(l) < 0.7)] = C["Sunglasses"]
        if self.hat:
            lip[head & (up > 0.55)] = C["Hat"]
        return lip


def generate_person3d(rng: np.random.Generator, height: int, width: int, points_per_part: int = 6) -> dict:
    """One 3D synthetic person (module docstring).

    Returns synthetic.generate_person's keys (image uint8 [H, W, 3] RGB, parsing uint8 [H, W]
    LIP classes, keypoints float32 [16, 3] pixel indices, densepose dict, patches uint8 [H, W],
    instances uint8 [H, W]) plus depth float32 [H, W] (camera Z in metres of the visible
    surface, 0 = background), joints3d float32 [16, 4] (X, Y, Z camera metres, v = 0), parts
    uint8 [H, W] (labels.SURREAL_CLASSES) and camera float64 [3, 3] (K).
    """
    image = drawing.background(rng, height, width)
    person, outfit = Person3D(rng, height, width), Outfit(rng)
    depth, owner, dirs = render.zbuffer(person.prims, person.camera.K, height, width)
    fg = owner >= 0
    rows, cols = np.nonzero(fg)
    points = dirs[fg] * depth[fg][:, None]
    surf = person.surface(points, owner[fg])
    lip = outfit.classes(surf)
    colour = np.zeros((rows.size, 3), np.float32)
    for cls in np.unique(lip):
        sel = lip == cls
        colour[sel] = outfit.textures[cls](rows[sel], cols[sel])
    eyes = ((surf["part"] == HEAD) & (lip == C["Face"]) & (surf["f"] > 0.6) & (np.abs(-surf["a"] - 0.12) < 0.08)
            & (np.abs(np.abs(surf["l"]) - 0.35) < 0.12))
    colour[eyes] = EYE_COLOUR
    light = _unit(np.array([rng.uniform(-0.5, 0.5), rng.uniform(-1, -0.3), -1]))
    ambient = rng.uniform(0.45, 0.6)
    lambert = np.clip(render.normals(person.prims, owner[fg], points) @ light, 0, 1)
    image[rows, cols] = colour * (ambient + (1 - ambient) * lambert)[:, None]
    maps = {k: np.zeros((height, width), np.uint8) for k in ("parsing", "parts", "patches")}
    for key, value in (("parsing", lip), ("parts", surf["part"]), ("patches", surf["patch"])):
        maps[key][rows, cols] = value
    pix = person.camera.project(person.joints)
    keypoints = np.concatenate([pix, np.zeros((len(pix), 1))], 1)
    keypoints[(pix < -0.5).any(1) | (pix[:, 0] >= width - 0.5) | (pix[:, 1] >= height - 0.5)] = -1
    return {
        "image": np.clip(np.round(image), 0, 255).astype(np.uint8),
        "parsing": maps["parsing"], "keypoints": keypoints.astype(np.float32),
        "densepose": _densepose(rng, person, maps["patches"], fg, points_per_part),
        "patches": maps["patches"], "instances": fg.astype(np.uint8),
        "depth": np.where(fg, depth, 0).astype(np.float32),
        "joints3d": np.concatenate([person.joints, np.zeros((len(pix), 1))], 1).astype(np.float32),
        "parts": maps["parts"], "camera": person.camera.K.copy(),
    }


def _densepose(rng, person: Person3D, patches: np.ndarray, fg: np.ndarray, points_per_part: int) -> dict:
    """Points at random sub-pixel spots of each visible patch (twice as many on the torso, as
    synthetic.py), each re-cast so I, U, V are those of its own nearest surface point."""
    spots = []
    for patch in np.unique(patches[fg]):
        rows, cols = np.nonzero(patches == patch)
        count = min(rows.size, points_per_part * (2 if patch in (P["Torso front"], P["Torso back"]) else 1))
        pick = rng.choice(rows.size, count, replace=False)
        spots.append(np.stack([cols[pick], rows[pick]], 1) + rng.uniform(0, 1, (count, 2)))
    xy = np.concatenate(spots) if spots else np.zeros((0, 2))
    dirs = render.ray_directions(person.camera.K, xy[:, 0] - 0.5, xy[:, 1] - 0.5)
    t, owner = render.cast(person.prims, dirs)
    hit = owner >= 0
    surf = person.surface(dirs[hit] * t[hit][:, None], owner[hit])
    xy = xy[hit]
    return drawing.densepose_record(patches, fg, [xy[:, 0]], [xy[:, 1]], [surf["patch"]], [surf["u"]], [surf["v"]])
