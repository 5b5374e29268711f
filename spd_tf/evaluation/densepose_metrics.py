"""DensePose's evaluation: geodesic point similarity (GPS, GPSm) when its evaluation tables are
given (`GeodesicTables`), else a within-part UV similarity that is never called GPS; plus I
(patch) accuracy at the annotated points. Streaming as every metric (spd_tf.evaluation.metrics).
"""

import math
import pickle
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from spd_tf import labels
from spd_tf.errors import SettingFileNotFoundError
from spd_tf.evaluation.metrics import _named

# DensePose-COCO geodesic normalisation: mean geodesic distance (metres) per coarse part,
# and the coarse part of each fine patch 0..24 (DensePose's evaluation tables).
DENSEPOSE_MEAN_GEODESIC_DISTANCES = np.array(
    [0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150]
)
DENSEPOSE_EVAL_COARSE_PARTS = np.array(
    [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8]
)



class GeodesicTables:
    """DensePose's evaluation data: closest SMPL vertex per (patch, U, V) and geodesic distances.

    Needs SMPL_subdiv.mat (U_subdiv, V_subdiv, Part_ID_subdiv per subdivided-mesh point),
    SMPL_SUBDIV_TRANSFORM.mat (`index`: point -> 1-based vertex of the distance matrix) and
    Pdist_matrix (.pkl as detectron2, or .mat as the original DensePose, key `Pdist_matrix`:
    condensed pairwise geodesic distances, pair (a > b) at a * (a - 1) / 2 + b).
    """

    def __init__(self, uv: np.ndarray, part_ids: np.ndarray, transform: np.ndarray,
                 pdist: np.ndarray):
        self.part_ids = part_ids
        self.transform = transform
        self.pdist = pdist
        points = np.arange(1, uv.shape[1] + 1)
        self.part_uv = [uv[:, part_ids == p].T for p in range(1, labels.NUM_DENSEPOSE_PATCHES + 1)]
        self.part_points = [points[part_ids == p] for p in range(1, labels.NUM_DENSEPOSE_PATCHES + 1)]

    @classmethod
    def load(cls, directory) -> "GeodesicTables":
        """Loads and checks the three files; the error lists every missing or malformed one."""
        from scipy.io import loadmat

        directory = Path(directory)
        pdist_path = next(
            (p for p in (directory / "Pdist_matrix.pkl", directory / "Pdist_matrix.mat") if p.exists()),
            None,
        )
        missing = [
            name for name, path in (
                ("SMPL_subdiv.mat", directory / "SMPL_subdiv.mat"),
                ("SMPL_SUBDIV_TRANSFORM.mat", directory / "SMPL_SUBDIV_TRANSFORM.mat"),
                ("Pdist_matrix.pkl or Pdist_matrix.mat", pdist_path),
            ) if path is None or not path.exists()
        ]
        if missing:
            raise SettingFileNotFoundError(
                "{densepose_eval_data} {directory}: missing {missing} (DensePose's eval_data; exact GPS needs "
                "all three)", directory=directory, missing=", ".join(missing))
        subdiv = loadmat(directory / "SMPL_subdiv.mat")
        keys = ("U_subdiv", "V_subdiv", "Part_ID_subdiv")
        absent = [k for k in keys if k not in subdiv]
        if absent:
            raise ValueError(f"{directory / 'SMPL_subdiv.mat'}: missing variable(s) {absent}")
        u, v, part_ids = (np.asarray(subdiv[k], np.float64).ravel() for k in keys)
        transform_mat = loadmat(directory / "SMPL_SUBDIV_TRANSFORM.mat")
        if "index" not in transform_mat:
            raise ValueError(f"{directory / 'SMPL_SUBDIV_TRANSFORM.mat'}: missing variable 'index'")
        transform = np.asarray(transform_mat["index"]).ravel().astype(np.int64)
        pdist = _load_pdist(pdist_path).ravel()
        if not (u.size == v.size == part_ids.size == transform.size):
            raise ValueError(
                f"{directory}: U_subdiv/V_subdiv/Part_ID_subdiv/index sizes differ "
                f"({u.size}, {v.size}, {part_ids.size}, {transform.size})"
            )
        num_vertices = int(transform.max())
        expected = num_vertices * (num_vertices - 1) // 2
        if pdist.size < expected:
            raise ValueError(
                f"{pdist_path}: {pdist.size} distances, need >= {expected} for the "
                f"{num_vertices} vertices that SMPL_SUBDIV_TRANSFORM.mat indexes"
            )
        return cls(np.stack([u, v]), part_ids.astype(np.int64), transform, pdist)

    def closest_points(self, patch: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1-based mesh point nearest in (U, V) within each point's patch; -1 for patch 0."""
        out = np.full(patch.shape, -1, np.int64)
        for p in np.unique(patch[patch > 0]):
            sel = patch == p
            candidates = self.part_uv[p - 1]
            if not len(candidates):
                continue
            query = np.stack([u[sel], v[sel]], axis=1)
            squared = ((query[:, None, :] - candidates[None, :, :]) ** 2).sum(-1)
            out[sel] = self.part_points[p - 1][squared.argmin(axis=1)]
        return out

    def distances(self, gt_points: np.ndarray, pred_points: np.ndarray) -> np.ndarray:
        """Geodesic distance of each (gt, prediction) point pair; inf where no prediction,
        NaN where the gt point has no mesh point (only possible with incomplete tables)."""
        gt_vertex = self.transform[gt_points - 1] - 1
        pred_vertex = self.transform[np.maximum(pred_points, 1) - 1] - 1
        hi = np.maximum(gt_vertex, pred_vertex)
        lo = np.minimum(gt_vertex, pred_vertex)
        index = np.where(hi > lo, hi * (hi - 1) // 2 + lo, 0)  # diagonal: distance 0 below
        dist = np.where(hi == lo, 0.0, self.pdist[index])
        dist = np.where(pred_points > 0, dist, np.inf)
        # A gt point without a mesh point on its patch is left out, as DensePose does.
        return np.where(gt_points > 0, dist, np.nan)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what Pdist_matrix.pkl holds (a dict of numpy arrays): a user-given
    pickle must not be able to run code."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store the array bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)


def _load_pdist(path: Path) -> np.ndarray:
    if path.suffix == ".pkl":
        try:
            with open(path, "rb") as f:
                return np.asarray(_ArrayUnpickler(f, encoding="latin1").load()["Pdist_matrix"], np.float64)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a Pdist_matrix pickle ({error})") from None
    try:
        from scipy.io import loadmat

        return np.asarray(loadmat(path)["Pdist_matrix"], np.float64)
    except NotImplementedError:  # MATLAB v7.3 (HDF5), as DensePose ships it
        import h5py

        with h5py.File(path, "r") as f:
            return np.asarray(f["Pdist_matrix"], np.float64)


class DensePoseMetric:
    """Point similarity and patch accuracy at the annotated DensePose points.

    With `tables` it computes DensePose's exact per-person GPS (mean over points of
    exp(-g^2 / (2 k^2)), g geodesic distance, k the mean geodesic distance of the gt point's
    coarse part) and GPSm = sqrt(GPS * mask IoU) when masks are given. Without tables it
    reports `uv_similarity_within_part`: the same formula with g = |UV_pred - UV_gt| when
    the predicted patch equals the gt patch (0 otherwise) — an approximation, not GPS.
    A point whose predicted patch is 0 (background / outside the box) scores 0.
    """

    def __init__(self, tables: Optional[GeodesicTables] = None):
        self.tables = tables
        self.scores = []  # one per person
        self.mask_ious = []
        self.correct_patches = 0
        self.num_points = 0

    @property
    def exact(self) -> bool:
        return self.tables is not None

    def update(self, points: Dict[str, np.ndarray], predicted_iuv: np.ndarray,
               gt_mask: Optional[np.ndarray] = None, name: str = "") -> None:
        """points: x, y (image pixels), i (1..24), u, v of one person; predicted_iuv [H, W, 3]."""
        iuv = np.asarray(predicted_iuv, np.float64)
        if iuv.ndim != 3 or iuv.shape[-1] != 3:
            raise ValueError(f"{_named(name)}predicted IUV must be [H, W, 3], got {iuv.shape}")
        gt_i = np.asarray(points["i"]).astype(np.int64).ravel()
        if not gt_i.size:
            return
        # DensePose samples the point's pixel by truncation.
        px = np.asarray(points["x"], np.float64).astype(np.int64).ravel()
        py = np.asarray(points["y"], np.float64).astype(np.int64).ravel()
        inside = (px >= 0) & (py >= 0) & (px < iuv.shape[1]) & (py < iuv.shape[0])
        px, py = np.where(inside, px, 0), np.where(inside, py, 0)
        pred_i = np.where(inside, np.rint(iuv[py, px, 0]), 0).astype(np.int64)
        for what, patches, lowest in (("ground-truth", gt_i, 1), ("predicted", pred_i, 0)):
            bad = (patches < lowest) | (patches > labels.NUM_DENSEPOSE_PATCHES)
            if bad.any():
                raise ValueError(f"{_named(name)}{what} DensePose patches "
                                 f"{np.unique(patches[bad]).tolist()} are outside {lowest}..24")
        pred_u, pred_v = iuv[py, px, 1], iuv[py, px, 2]
        gt_u = np.asarray(points["u"], np.float64).ravel()
        gt_v = np.asarray(points["v"], np.float64).ravel()
        norm = DENSEPOSE_MEAN_GEODESIC_DISTANCES[DENSEPOSE_EVAL_COARSE_PARTS[gt_i]]
        if self.exact:
            dist = self.tables.distances(
                self.tables.closest_points(gt_i, gt_u, gt_v),
                self.tables.closest_points(pred_i, pred_u, pred_v),
            )
        else:
            dist = np.where(
                (pred_i == gt_i) & (pred_i > 0), np.hypot(pred_u - gt_u, pred_v - gt_v), np.inf
            )
        scored = ~np.isnan(dist)
        similarity = np.exp(-(dist[scored] ** 2) / (2 * norm[scored] ** 2))
        score = float(similarity.mean()) if similarity.size else 0.0
        self.scores.append(score)
        self.correct_patches += int((pred_i == gt_i).sum())
        self.num_points += gt_i.size
        if gt_mask is not None:
            gt_mask = np.asarray(gt_mask, bool)
            if gt_mask.shape != iuv.shape[:2]:
                raise ValueError(
                    f"{_named(name)}DensePose mask {gt_mask.shape} != IUV size {iuv.shape[:2]}"
                )
            pred_mask = iuv[..., 0] > 0
            union = (gt_mask | pred_mask).sum()
            self.mask_ious.append(float((gt_mask & pred_mask).sum() / union) if union else 0.0)

    def result(self) -> dict:
        scores = np.asarray(self.scores, np.float64)
        mean = float(scores.mean()) if scores.size else math.nan
        out = {
            "num_people": int(scores.size),
            "num_points": self.num_points,
            "i_accuracy": self.correct_patches / self.num_points if self.num_points else math.nan,
        }
        if self.mask_ious:
            # Predicted body (I > 0) vs the dp_masks person mask, mean over people.
            out["foreground_iou"] = float(np.mean(self.mask_ious))
            out["num_people_with_masks"] = len(self.mask_ious)
        if not self.exact:
            out["uv_similarity_within_part"] = mean
            return out
        out["gps"] = mean
        if len(self.mask_ious) == scores.size and scores.size:
            out["gpsm"] = float(np.mean(np.sqrt(scores * np.asarray(self.mask_ious))))
        return out
