"""Ray casting for the 3D synthetic people (spd_tf.data.synthetic3d): capsules and ellipsoids
seen by a pinhole camera at the origin, with a per-pixel z-buffer.

Camera coordinates are OpenCV's (X right, Y down, Z forward, metres). The ray of a point
with pixel-index coordinates (col, row) (pixel centre = integer, as keypoints) is
d = K^-1 (col, row, 1): its Z component is 1, so the ray parameter t of a hit IS its camera
Z, and the depth map is the smallest t over all primitives (closed-form ray-capsule and
ray-ellipsoid intersections), never a painting order. Each primitive is evaluated only on
the pixels of its projected bounding box.
"""

from typing import Sequence

import numpy as np

_EPS = 1e-9


def ray_directions(K: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[..., 3] directions K^-1 (col, row, 1) (Z = 1) of pixel-index coordinates."""
    x = (np.asarray(cols, np.float64) - K[0, 2]) / K[0, 0]
    y = (np.asarray(rows, np.float64) - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], -1)


def _sphere_hit(d: np.ndarray, dd: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Nearest t > 0 with |t d - centre| = radius (inf on a miss)."""
    dc = d @ centre
    h = dc * dc - dd * (centre @ centre - radius * radius)
    t = (dc - np.sqrt(np.maximum(h, 0))) / dd
    return np.where((h >= 0) & (t > 0), t, np.inf)


class Capsule:
    """Segment a-b swept by a sphere of `radius` (a limb). `part`: the body part it belongs to."""

    def __init__(self, a, b, radius: float, part: int, tag: str = ""):
        self.a, self.b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        self.radius, self.part, self.tag = float(radius), part, tag

    def bounds(self):
        return (self.a + self.b) / 2, np.linalg.norm(self.b - self.a) / 2 + self.radius

    def hit(self, d: np.ndarray) -> np.ndarray:
        """Nearest t of the union of the open cylinder and the two end spheres: the first
        hit of a union is the smallest of its members' first hits."""
        dd = np.einsum("...k,...k->...", d, d)
        ba, oa = self.b - self.a, -self.a
        baba, baoa, oaoa = ba @ ba, ba @ oa, oa @ oa
        bard, rdoa = d @ ba, d @ oa
        qa = baba * dd - bard * bard
        qb = baba * rdoa - bard * baoa
        qc = baba * oaoa - baoa * baoa - self.radius ** 2 * baba
        h = qb * qb - qa * qc
        t = (-qb - np.sqrt(np.maximum(h, 0))) / np.maximum(qa, _EPS)
        y = baoa + t * bard
        side = np.where((h >= 0) & (qa > _EPS) & (t > 0) & (y > 0) & (y < baba), t, np.inf)
        caps = np.minimum(_sphere_hit(d, dd, self.a, self.radius), _sphere_hit(d, dd, self.b, self.radius))
        return np.minimum(side, caps)

    def normal(self, p: np.ndarray) -> np.ndarray:
        ba = self.b - self.a
        s = np.clip((p - self.a) @ ba / max(ba @ ba, _EPS), 0, 1)
        n = p - (self.a + s[:, None] * ba)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), _EPS)


class Ellipsoid:
    """Centre, orthonormal axes (columns of `axes`) and semi-axis lengths `radii`."""

    def __init__(self, centre, axes, radii, part: int, tag: str = ""):
        self.centre = np.asarray(centre, np.float64)
        self.axes, self.radii = np.asarray(axes, np.float64), np.asarray(radii, np.float64)
        self.part, self.tag = part, tag

    def bounds(self):
        return self.centre, float(self.radii.max())

    def hit(self, d: np.ndarray) -> np.ndarray:
        o = (self.axes.T @ -self.centre) / self.radii  # the ray in the unit sphere's frame
        q = (d @ self.axes) / self.radii
        qq = np.einsum("...k,...k->...", q, q)
        qo = q @ o
        h = qo * qo - qq * (o @ o - 1)
        t = (-qo - np.sqrt(np.maximum(h, 0))) / qq
        return np.where((h >= 0) & (t > 0), t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        n = (((p - self.centre) @ self.axes) / self.radii ** 2) @ self.axes.T
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), _EPS)


def _window(prim, K, height: int, width: int):
    """Pixel rows/cols slices that hold the projection of the primitive's bounding sphere:
    the projection of its bounding cube's corners (perspective keeps convexity)."""
    centre, radius = prim.bounds()
    if centre[2] - radius <= 1e-3:  # reaches behind the camera: all pixels
        return slice(0, height), slice(0, width)
    corners = centre + radius * np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    pix = corners @ K.T
    cols, rows = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    c0, c1 = max(0, int(np.floor(cols.min()))), min(width, int(np.ceil(cols.max())) + 1)
    r0, r1 = max(0, int(np.floor(rows.min()))), min(height, int(np.ceil(rows.max())) + 1)
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def zbuffer(prims: Sequence, K: np.ndarray, height: int, width: int):
    """(depth [H, W] float64 camera Z of the nearest surface, inf where none; owner [H, W]
    int: index of the primitive seen, -1 where none; directions [H, W, 3])."""
    rows, cols = np.mgrid[0:height, 0:width]
    dirs = ray_directions(K, cols, rows)
    depth = np.full((height, width), np.inf)
    owner = np.full((height, width), -1)
    for index, prim in enumerate(prims):
        rs, cs = _window(prim, K, height, width)
        if rs.stop <= rs.start or cs.stop <= cs.start:
            continue
        t = prim.hit(dirs[rs, cs])
        nearer = t < depth[rs, cs]
        depth[rs, cs] = np.where(nearer, t, depth[rs, cs])
        owner[rs, cs] = np.where(nearer, index, owner[rs, cs])
    return depth, owner, dirs


def cast(prims: Sequence, dirs: np.ndarray):
    """(t [N], owner [N]) of the nearest primitive along each of the rays `dirs` [N, 3]."""
    depth, owner = np.full(len(dirs), np.inf), np.full(len(dirs), -1)
    for index, prim in enumerate(prims):
        t = prim.hit(dirs)
        nearer = t < depth
        depth, owner = np.where(nearer, t, depth), np.where(nearer, index, owner)
    return depth, owner


def normals(prims: Sequence, owner: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Unit outward normals [N, 3] at the hit `points` [N, 3] of the primitives `owner` [N]."""
    out = np.zeros_like(points)
    for index in np.unique(owner[owner >= 0]):
        sel = owner == index
        out[sel] = prims[index].normal(points[sel])
    return out
