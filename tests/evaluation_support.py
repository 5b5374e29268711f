"""Helpers shared by the evaluation tests: an oracle predictor and tiny TFRecords."""

import pickle

import cv2
import numpy as np
import tensorflow as tf
from scipy.io import savemat

from spd_tf import labels
from spd_tf.config import DENSEPOSE, POSE, SEGMENTATION
from spd_tf.data.schema import encode_example
from spd_tf.evaluation.predictors import Prediction


class Oracle:
    """Ground truth as prediction, optionally with keypoints shifted by `shift` pixels."""

    def __init__(self, tasks=(SEGMENTATION, POSE, DENSEPOSE), shift=(0.0, 0.0)):
        self.tasks = tasks
        self.shift = np.asarray(shift, np.float64)

    def __call__(self, example):
        prediction = Prediction()
        if example.parsing is not None and SEGMENTATION in self.tasks:
            prediction.labels = np.where(example.parsing == 255, 0, example.parsing)
        if example.keypoints is not None and POSE in self.tasks:
            prediction.keypoints = example.keypoints[:, :2] + self.shift
        if example.densepose is not None and DENSEPOSE in self.tasks:
            prediction.densepose_iuv = iuv_at_points(example.densepose, example.height, example.width)
        return prediction


class InstanceOracle:
    """A fake instance-branch model (MP_CONTRACT.md): ground-truth parsing and person map as
    `labels` / `instances` (everyone one person when the ground truth has no person ids),
    person k scored `scores[k - 1]`; tasks = segmentation only."""

    tasks = (SEGMENTATION,)
    label_set = labels.LABEL_SETS["cihp"]

    def __init__(self, scores=(0.9, 0.8, 0.7, 0.6), max_instances=16):
        self.scores = np.zeros(max_instances, np.float32)
        self.scores[: len(scores)] = scores

    def __call__(self, example):
        parsing = np.where(example.parsing == 255, 0, example.parsing)
        instances = example.instance_ids if example.instance_ids is not None else (parsing > 0).astype(np.int32)
        return Prediction(labels=parsing, instances=instances, instance_scores=self.scores)


def iuv_at_points(points, height, width):
    iuv = np.zeros((height, width, 3))
    for x, y, i, u, v in zip(*(points[k] for k in ("x", "y", "i", "u", "v"))):
        iuv[int(y), int(x)] = (i, u, v)
    return iuv


def write_tfrecord(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def synthetic_example(source_id, height=24, width=20, with_pose=True, with_densepose=True,
                      patches=tuple(range(1, 25))):
    rng = np.random.default_rng(len(source_id))
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    parsing = rng.integers(0, 20, (height, width)).astype(np.uint8)
    parsing[0, :] = 255
    keypoints = np.stack([rng.uniform(0, width, 16), rng.uniform(0, height, 16), np.zeros(16)], 1)
    keypoints[3] = -1
    densepose = None
    if with_densepose:
        densepose = {
            "bbox": np.array([2, 3, 12, 16]), "x": rng.uniform(2, 14, 9), "y": rng.uniform(3, 19, 9),
            "i": rng.choice(patches, 9), "u": rng.uniform(0, 1, 9), "v": rng.uniform(0, 1, 9),
            "masks_png": cv2.imencode(".png", np.full((8, 6), 2, np.uint8))[1].tobytes(),
        }
    return encode_example(
        cv2.imencode(".png", image)[1].tobytes(), height=height, width=width, source_id=source_id,
        dataset="synthetic", parsing_png=cv2.imencode(".png", parsing)[1].tobytes(),
        keypoints=keypoints if with_pose else None, densepose=densepose,
    )


def write_geodesic_tables(directory, pdist_format="pkl"):
    """A 4-point mesh: points 1, 2 on patch 2 (torso), 3, 4 on patch 23 (head); point p is
    vertex p. Geodesic distances: d(1,2)=0.351 d(1,3)=1 d(2,3)=1 d(1,4)=1 d(2,4)=1 d(3,4)=0.15."""
    savemat(directory / "SMPL_subdiv.mat", {
        "U_subdiv": np.array([[0.1, 0.9, 0.1, 0.9]]), "V_subdiv": np.array([[0.1, 0.9, 0.1, 0.9]]),
        "Part_ID_subdiv": np.array([[2, 2, 23, 23]]),
    })
    savemat(directory / "SMPL_SUBDIV_TRANSFORM.mat", {"index": np.array([[1], [2], [3], [4]])})
    # condensed order for a > b: (1,0) (2,0) (2,1) (3,0) (3,1) (3,2)
    pdist = np.array([[0.351], [1.0], [1.0], [1.0], [1.0], [0.15]])
    if pdist_format == "pkl":
        with open(directory / "Pdist_matrix.pkl", "wb") as f:
            pickle.dump({"Pdist_matrix": pdist}, f)
    else:
        savemat(directory / "Pdist_matrix.mat", {"Pdist_matrix": pdist})
