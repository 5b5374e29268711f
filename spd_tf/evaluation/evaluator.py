"""Dataset-level evaluation: ground truth x predictions -> metrics (DESIGN §6), tables, JSON.

Ground truth comes from TFRecords (`tfrecord_examples`) or a dataset directory in its own
layout (`directory_examples`, via spd_tf.data.layouts); predictions from any predictor of
spd_tf.evaluation.predictors (LIP submission files or a model). `evaluate` streams the examples once,
resizes each prediction to its image's original size, maps LIP predictions to ATR classes
when scoring ATR, and scores every task present in both the ground truth and the predictor;
a task the predictor cannot produce (PCKh for variant `sd`) is reported as a note, and the
other metrics are still computed. A prediction that is missing or unusable (a label PNG
that does not decode or holds labels outside the class range, a malformed pose row) is
reported and scored as wrong, never left out; `strict=True` raises on an unusable one.
Instance-level parsing (CIHP's AP^r and AP^p, spd_tf.evaluation.instance_metrics) is scored when the
ground truth has person ids and the predictor returns `instances` + `instance_scores`;
when either is absent, one note says so.
SURREAL and the 3D synthetic people (`surreal`, `synthetic3d`) add the references' own figures
(spd_tf.evaluation.surreal_metrics): Varol's part IoU when the model parses `surreal` parts and
BodyNet's PCK beside PCKh; depth RMSE and MPJPE come from the depth and pose3d tasks' metrics.
"""

import contextlib
import dataclasses
import itertools
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np

from spd_tf import labels
from spd_tf import tasks as task_registry
from spd_tf.inference import output_spec
from spd_tf.config import DENSEPOSE, POSE, SEGMENTATION
from spd_tf.errors import SettingFileNotFoundError, SettingValueError
from spd_tf.evaluation.instance_metrics import PartInstanceAP, PersonAP
from spd_tf.evaluation.densepose_metrics import DensePoseMetric, GeodesicTables
from spd_tf.evaluation.metrics import ParsingMetric, PCKhMetric
from spd_tf.evaluation.predictors import Prediction
from spd_tf.evaluation.surreal_metrics import BodyNetPCK, PartIoU
from spd_tf.tasks.densepose import dequantize_iuv, quantize_iuv
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet, get_keypoint_set
from spd_tf.progress import Progress

# Dataset -> the label set of its ground truth (None: the evaluated model's, as the 3D synthetic
# people are rendered in any label set).
DATASET_LABEL_SETS = {"lip": "lip", "atr": "atr", "cihp": "cihp", "ccp": "ccp", "fashionista": "ccp",
                      "synthetic": "lip", "surreal": "surreal", "synthetic3d": None}
DATASETS = tuple(DATASET_LABEL_SETS)
# Dataset -> the keypoint set of its pose ground truth (datasets with joints).
DATASET_KEYPOINT_SETS = {"lip": "lip", "fashionista": "fashionista", "synthetic": "lip", "surreal": "lip",
                         "synthetic3d": "lip"}
# Datasets scored with SURREAL's / BodyNet's metrics besides ours (TFRecords only).
SURREAL_DATASETS = ("surreal", "synthetic3d")

RESULT_UNITS = {
    "parsing": "fractions in [0, 1]; mean_iou = plain mean over all classes incl. background",
    "pose": "PCKh (and PCK of the torso) in percent; med_pixels in original-image pixels",
    "densepose": "GPS / GPSm / uv_similarity_within_part in [0, 1]; i_accuracy and "
                 "foreground_iou fractions",
    "instances": "AP in [0, 1] per region-IoU threshold; ap_vol = mean over thresholds "
                 "(CIHP_PGN's AP^r can exceed 1 when a person is split, as in its code)",
    "part_iou": "Varol's 14-part IoU in [0, 1], background left out",
    "bodynet_pck": "BodyNet's PCK@0.5 in percent",
    "depth": "Varol's depth RMSE in 45 mm bins and in mm",
    "pose3d": "MPJPE in mm (pelvis-aligned, no Procrustes)",
}


@dataclasses.dataclass
class Example:
    """Ground truth of one person image; None for an absent task."""

    source_id: str
    height: int
    width: int
    image: Optional[np.ndarray] = None  # RGB uint8 [H, W, 3], only when a model needs it
    parsing: Optional[np.ndarray] = None  # uint8 [H, W], 255 = ignore
    keypoints: Optional[np.ndarray] = None  # [J, 3] (x, y, v) of the dataset's keypoint set, missing = -1
    densepose: Optional[dict] = None  # x, y, i, u, v points in image pixels; mask [H, W] or None
    instance_ids: Optional[np.ndarray] = None  # int [H, W] person ids, 0 = no person
    depth: Optional[np.ndarray] = None  # float32 [H, W] camera Z of the surface in metres, 0 = background
    joints3d: Optional[np.ndarray] = None  # float32 [J, 4] (X, Y, Z camera metres, v), v = -1 missing


# --- ground-truth sources ----------------------------------------------------------------


def tfrecord_examples(patterns: Sequence[str], skip_corrupt: bool = False,
                      num_joints: int = labels.NUM_LIP_JOINTS) -> tuple:
    """(count, iterator of Example) over TFRecord files matching the glob `patterns`, keypoints
    read as `num_joints` joints (the evaluated model's keypoint set).

    A truncated or corrupted shard is a CorruptRecordError naming it and the offset, found
    before anything is scored; with skip_corrupt its records up to the damage are used and
    the damaged shards are warned about with a count.
    """
    import tensorflow as tf

    from spd_tf.data.pipeline import CorruptRecordError, read_shard, scan_shards
    from spd_tf.data.schema import decode_example

    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise SettingFileNotFoundError("{tfrecord_examples.patterns} {patterns}: no TFRecord file matches",
                                       patterns=" ".join(patterns))
    counts, damaged = scan_shards(files)
    if damaged and not skip_corrupt:
        raise CorruptRecordError("{damage}; {tfrecord_examples.skip_corrupt} scores the records before the damage",
                                 damage=damaged[0])
    if damaged:
        warnings.warn(f"{len(damaged)} damaged shard(s) read only up to the damage: {'; '.join(damaged)}")

    def generate() -> Iterator[Example]:
        records = tf.data.Dataset.from_tensor_slices(files).flat_map(lambda path: read_shard(path, skip_corrupt))
        for record in records.map(lambda serialized: decode_example(serialized, num_joints)):
            yield _example_from_record({k: v.numpy() for k, v in record.items()})

    return sum(counts.values()), generate()


def _example_from_record(r: dict) -> Example:
    height, width = int(r["height"]), int(r["width"])
    densepose = None
    if r["has_densepose"]:
        densepose = {k: r[f"densepose_{k}"] for k in ("x", "y", "i", "u", "v")}
        densepose["mask"] = _mask_in_image(r["densepose_masks"], r["densepose_bbox"], height, width)
    return Example(
        source_id=r["source_id"].decode(),
        height=height,
        width=width,
        image=r["image"],
        parsing=r["parsing"] if r["has_segmentation"] else None,
        keypoints=r["keypoints"] if r["has_pose"] else None,
        densepose=densepose,
        instance_ids=r["instance_ids"] if r.get("has_instances") else None,
        depth=r["depth"] if r.get("has_depth") else None,
        joints3d=r["joints3d"] if r.get("has_pose3d") else None,
    )


def _mask_in_image(masks: np.ndarray, bbox: np.ndarray, height: int, width: int):
    """DensePose part masks (bbox frame) -> person mask [H, W] bool, as DensePose's GPSm."""
    if masks.size == 0:
        return None
    x0, y0, w, h = (float(v) for v in bbox)
    size = (max(int(w), 1), max(int(h), 1))
    resized = cv2.resize((masks > 0).astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5
    out = np.zeros((height, width), bool)
    x0, y0 = int(x0), int(y0)
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + size[0], width), min(y0 + size[1], height)
    if xe > xs and ye > ys:
        out[ys:ye, xs:xe] = resized[ys - y0:ye - y0, xs - x0:xe - x0]
    return out


def directory_examples(dataset: str, root, split: str = "val", with_images: bool = False) -> tuple:
    """(count, iterator of Example) for a LIP / ATR / CIHP / CCP directory in its own layout."""
    from spd_tf.data import layouts, listers

    if dataset not in listers.LISTERS:
        raise SettingValueError("{directory_examples.dataset} {dataset} has no on-disk layout reader; use TFRecords",
                                dataset=dataset)
    listing = listers.LISTERS[dataset](root, split)
    if listing.skipped:
        first = "; ".join(f"{s['item']}: {s['reason']}" for s in listing.skipped[:3])
        warnings.warn(f"{dataset} {root}: {len(listing.skipped)} input(s) skipped, e.g. {first}")

    def generate() -> Iterator[Example]:
        for record in listing:
            parsing = listing.load_label(record) if record.label_path else None
            image = layouts.load_image(record.image_path) if with_images or parsing is None else None
            height, width = (parsing if parsing is not None else image).shape[:2]
            # CIHP's Human_ids/<id>.png, found by layouts.list_cihp beside the labels
            persons = (layouts.load_person_ids(record.instance_path, record.label_path, (height, width))
                       if record.instance_path else None)
            yield Example(record.source_id, height, width, image, parsing, record.keypoints, instance_ids=persons)

    return len(listing), generate()


# --- the evaluation loop -------------------------------------------------------------------


class Evaluation:
    """Streams (Example, Prediction) pairs into the metrics; `result()` is the JSON dict."""

    def __init__(self, dataset: str, predictor_tasks: Sequence[str],
                 densepose_tables: Optional[GeodesicTables] = None,
                 predictor_label_set: labels.LabelSet = labels.LABEL_SETS["lip"],
                 ground_truth_label_set: Optional[labels.LabelSet] = None, strict: bool = False,
                 predictor_keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]):
        if dataset not in DATASETS and ground_truth_label_set is None:
            raise ValueError(f"dataset {dataset!r} is not one of {DATASETS}")
        self.dataset = dataset
        # A user's own label set has no dataset name: its ground truth is given with it.
        self.label_set = ground_truth_label_set or (
            predictor_label_set if DATASET_LABEL_SETS.get(dataset) is None else labels.LABEL_SETS[DATASET_LABEL_SETS[dataset]])
        # Scoring another label set's predictions needs a declared mapping (labels.py).
        self.mapping = labels.label_mapping(predictor_label_set, self.label_set)
        self.predictor_label_set = predictor_label_set
        self.predictor_tasks = tuple(predictor_tasks)
        self.parsing = ParsingMetric(self.label_set.classes)
        # Ground-truth joints are in the dataset's keypoint set (the model's for TFRecords of
        # a user's own data); predictions of another set cannot be scored against them.
        self.keypoint_set = get_keypoint_set(DATASET_KEYPOINT_SETS.get(dataset, predictor_keypoint_set))
        self.predictor_keypoint_set = predictor_keypoint_set
        self.keypoints_comparable = predictor_keypoint_set.joints == self.keypoint_set.joints
        self.pose = PCKhMetric(keypoint_set=self.keypoint_set)
        self.densepose = DensePoseMetric(densepose_tables)
        self.num_examples = 0
        self.ground_truth_counts = {SEGMENTATION: 0, POSE: 0, DENSEPOSE: 0}
        self.missing = {SEGMENTATION: [], POSE: [], DENSEPOSE: []}
        self.invalid = {SEGMENTATION: {}, POSE: {}, DENSEPOSE: {}}  # task -> {id: why}
        self.strict = strict
        self.resized = 0
        self.part_instance_ap = PartInstanceAP(self.label_set.classes, ignore_label=labels.IGNORE_LABEL)
        self.person_ap = PersonAP(self.label_set.num_classes, ignore_label=labels.IGNORE_LABEL)
        self.instance_counts = {"ground_truth": 0, "predicted": 0, "maps_without_truth": 0}
        self.instances_unscored = []  # examples with person ids but no parsing ground truth
        # Tasks that bring their own metric (spd_tf.tasks: `metric`), scored where the Example holds
        # the ground truth the metric names (`ground_truth`, default the parsing).
        self.task_metrics = {task.name: metric for task in task_registry.REGISTRY.values()
                             if task.name in self.predictor_tasks and (metric := task.metric(self.label_set))}
        # SURREAL's and BodyNet's figures (surreal_metrics), beside ours on those datasets.
        surreal = dataset in SURREAL_DATASETS
        self.part_iou = (PartIoU(self.label_set.classes) if surreal and SEGMENTATION in self.predictor_tasks
                         and self.label_set.name == predictor_label_set.name == "surreal" else None)
        self.bodynet_pck = (BodyNetPCK(self.keypoint_set.num_joints, joint_names=self.keypoint_set.joints)
                            if surreal and POSE in self.predictor_tasks and self.keypoints_comparable
                            and self.keypoint_set.name == "lip" else None)

    def update(self, example: Example, prediction: Prediction) -> None:
        self.num_examples += 1
        problems = prediction.problems
        if example.instance_ids is None and prediction.instances is not None:
            self.instance_counts["maps_without_truth"] += 1
        outputs = None
        for name, metric in self.task_metrics.items():
            if getattr(example, getattr(metric, "ground_truth", "parsing")) is not None:
                outputs = outputs if outputs is not None else {
                    key: self._resize(example, value, counted=False) if key in output_spec.SPATIAL else value
                    for key, value in prediction.outputs.items()}
                metric.update(example, outputs)
        if example.parsing is not None:
            scored = self._update_parsing(example, prediction.labels, problems.get(SEGMENTATION))
            if self.part_iou is not None:  # made only for a model that parses
                # unusable or missing: all background, every part pixel wrong (as the parsing scores it)
                self.part_iou.update_maps(scored[0], np.zeros_like(scored[0]) if scored[1] is None else scored[1],
                                          example.source_id)
            if example.instance_ids is not None:
                self._update_instances(example, prediction, *scored)
        elif example.instance_ids is not None:
            self.instances_unscored.append(example.source_id)
        if example.keypoints is not None:
            self.ground_truth_counts[POSE] += 1
            keypoints = self._usable(POSE, example, prediction.keypoints, problems.get(POSE))
            if keypoints is not False and not self.keypoints_comparable:
                keypoints = False  # another keypoint set: said in the notes
            if keypoints is not False:
                # A missing pose is placed at (1, 1) by PCKhMetric, as LIP's tool does: wrong.
                keypoints = np.full((self.keypoint_set.num_joints, 2), np.nan) if keypoints is None else keypoints
                self.pose.update(example.keypoints, keypoints, name=example.source_id)
                if self.bodynet_pck is not None:  # a missing (NaN) joint is wrong there too
                    self.bodynet_pck.update_points(example.keypoints, keypoints, example.source_id)
        if example.densepose is not None:
            self.ground_truth_counts[DENSEPOSE] += 1
            iuv = self._usable(DENSEPOSE, example, prediction.densepose_iuv, problems.get(DENSEPOSE))
            if iuv is not False:
                # Missing: background everywhere (every point wrong). Score the uint8 IUV
                # DensePose's own evaluation scores (and files store).
                iuv = np.zeros((example.height, example.width, 3)) if iuv is None else self._resize(example, iuv)
                self.densepose.update(example.densepose, dequantize_iuv(quantize_iuv(iuv)),
                                      example.densepose.get("mask"), name=example.source_id)

    def _usable(self, task: str, example: Example, value, problem: Optional[str] = None):
        """False: the predictor lacks the task (not scored); None: missing or unusable, to be
        scored as wrong (and reported); else the value to score."""
        if task not in self.predictor_tasks:
            return False
        if problem is not None:
            if self.strict:
                raise ValueError(problem)
            self.invalid[task][example.source_id] = problem
            return None
        if value is None:
            self.missing[task].append(example.source_id)
        return value

    def _resize(self, example: Example, array: np.ndarray, counted: bool = True) -> np.ndarray:
        """`array` at the image's size (nearest); `counted`: one more resized prediction (an
        image's person map is resized along with its labels, so it is not counted again)."""
        array = np.asarray(array)
        if array.shape[:2] == (example.height, example.width):
            return array
        if self.resized == 0:
            warnings.warn(
                f"{example.source_id}: prediction size {array.shape[:2]} != image size "
                f"{(example.height, example.width)}; resizing (nearest) to the ground truth "
                "(warned once; the count is in metrics.json)"
            )
        self.resized += counted
        if array.dtype == np.int64:  # cv2 has no 64-bit integer resize
            array = array.astype(np.int32)
        resized = cv2.resize(array, (example.width, example.height), interpolation=cv2.INTER_NEAREST)
        return resized.reshape((example.height, example.width) + array.shape[2:])

    def _update_parsing(self, example: Example, predicted: Optional[np.ndarray], problem: Optional[str]) -> tuple:
        """Scores the parsing; returns (ground truth, prediction or None) in the ground truth's classes."""
        self.ground_truth_counts[SEGMENTATION] += 1
        ground_truth = example.parsing
        if self.mapping is not None:
            ground_truth = self.mapping.map_ground_truth(ground_truth)
        if predicted is not None and problem is None:
            predicted = self._resize(example, predicted)
            classes = self.predictor_label_set.num_classes
            bad = (predicted < 0) | (predicted >= classes)
            if bad.any():
                problem = (f"{example.source_id}: predicted labels {np.unique(predicted[bad]).tolist()} "
                           f"are not {self.predictor_label_set.name} classes 0..{classes - 1}")
        predicted = self._usable(SEGMENTATION, example, predicted, problem)
        if predicted is False or predicted is None:
            if predicted is None:
                self.parsing.update_unpredicted(ground_truth, name=example.source_id)
            return ground_truth, None
        if self.mapping is not None:
            predicted = self.mapping.map_prediction(predicted)
        self.parsing.update(ground_truth, predicted, name=example.source_id)
        return ground_truth, predicted

    def _update_instances(self, example: Example, prediction: Prediction, ground_truth: np.ndarray,
                          parsing: Optional[np.ndarray]) -> None:
        """AP^r / AP^p of one image. No predicted person map (or no parsing to cut it into
        parts): nobody found, so every ground-truth person and part counts as missed."""
        self.instance_counts["ground_truth"] += 1
        instances, scores = prediction.instances, prediction.instance_scores
        if instances is None or parsing is None:
            instances = parsing = np.zeros((example.height, example.width), np.int32)
            scores = np.zeros(0)
        else:
            self.instance_counts["predicted"] += 1
            instances = self._resize(example, np.asarray(instances, np.int32), counted=False)
        # Ignored ground-truth pixels (255, or a mapping's classes without twin) are no part.
        for metric in (self.part_instance_ap, self.person_ap):
            metric.update(instances, scores, parsing, example.instance_ids, ground_truth, name=example.source_id)

    def notes(self) -> list:
        """Why a metric with ground truth was not (fully) computed."""
        notes = []
        for task, metric_name in ((SEGMENTATION, "parsing"), (POSE, "PCKh/mED"), (DENSEPOSE, "DensePose")):
            count = self.ground_truth_counts[task]
            if count and task not in self.predictor_tasks:
                notes.append(f"{metric_name} not computed: the predictor has no {task} output "
                             f"({count} examples have {task} ground truth)")
            missing = self.missing[task]
            if missing:
                notes.append(f"{metric_name}: no {task} prediction for {len(missing)} of {count} "
                             f"examples (scored as wrong), e.g. {', '.join(missing[:5])}")
            invalid = self.invalid[task]
            if invalid:
                notes.append(f"{metric_name}: unusable {task} prediction for {len(invalid)} of {count} "
                             f"examples (scored as wrong), e.g. {next(iter(invalid.values()))}")
        if self.ground_truth_counts[POSE] and POSE in self.predictor_tasks and not self.keypoints_comparable:
            notes.append(f"PCKh/mED not computed: the predictor's keypoint set {self.predictor_keypoint_set.name!r} "
                         f"is not the ground truth's {self.keypoint_set.name!r}")
        notes += self._instance_notes()
        if self.dataset in SURREAL_DATASETS and self.ground_truth_counts[SEGMENTATION] and self.part_iou is None \
                and SEGMENTATION in self.predictor_tasks:
            notes.append(f"SURREAL part IoU not computed: the model parses {self.predictor_label_set.name!r} classes "
                         f"and the ground truth is {self.label_set.name!r}; both must be 'surreal'")
        dp = self.densepose
        if dp.exact and dp.scores and len(dp.mask_ious) != len(dp.scores):
            notes.append(f"DensePose: GPSm not computed, {len(dp.scores) - len(dp.mask_ious)} of "
                         f"{len(dp.scores)} people have no DensePose mask in the ground truth")
        if not dp.exact and dp.scores:
            notes.append("DensePose: no DensePose eval_data tables, so exact GPS is not computed; "
                         "uv_similarity_within_part is an approximation, not GPS")
        return notes

    def _instance_notes(self) -> list:
        counts = self.instance_counts
        if self.instances_unscored:
            return [f"instance AP not computed for {len(self.instances_unscored)} examples with person ids "
                    f"but no parsing ground truth, e.g. {', '.join(self.instances_unscored[:5])}"]
        if counts["ground_truth"] and not counts["predicted"]:
            return [f"instance AP (AP^r, AP^p) not computed: the predictor returns no person map "
                    f"({counts['ground_truth']} examples have person ids)"]
        if counts["predicted"] < counts["ground_truth"]:
            return [f"instance AP: no person map (or no usable parsing) for "
                    f"{counts['ground_truth'] - counts['predicted']} of {counts['ground_truth']} examples "
                    "(their persons count as missed)"]
        if counts["maps_without_truth"] and not counts["ground_truth"]:
            return [f"instance AP (AP^r, AP^p) not computed: the ground truth of the {counts['maps_without_truth']} "
                    "examples with a predicted person map has no person ids (CIHP Human_ids/, TFRecord "
                    "instance/encoded)"]
        return []

    def instance_result(self) -> Optional[dict]:
        """AP^r and AP^p when person maps were predicted and scored against person ids."""
        if not self.instance_counts["predicted"]:
            return None
        return {"ap_r": self.part_instance_ap.result(), "ap_p": self.person_ap.result(),
                "num_examples": self.instance_counts["ground_truth"]}

    def result(self) -> dict:
        out = {"dataset": self.dataset, "num_examples": self.num_examples,
               "label_set": self.label_set.name,
               "predictor_label_set": self.predictor_label_set.name,
               "units": RESULT_UNITS, "resized_predictions": self.resized}
        if self.parsing.confusion.sum() or self.parsing.unpredicted.sum():
            out["parsing"] = self.parsing.result()
        if self.pose.num_images:
            out["pose"] = self.pose.result()
        if self.densepose.scores:
            out["densepose"] = self.densepose.result()
        instances = self.instance_result()
        if instances is not None:
            out["instances"] = instances
        if self.part_iou is not None and self.part_iou.num_images:
            out["part_iou"] = self.part_iou.result()
        if self.bodynet_pck is not None and self.bodynet_pck.num_images:
            out["bodynet_pck"] = self.bodynet_pck.result()
        out.update({name: metric.result() for name, metric in self.task_metrics.items()})
        out["missing_predictions"] = {k: v for k, v in self.missing.items() if v}
        out["invalid_predictions"] = {k: v for k, v in self.invalid.items() if v}
        out["notes"] = self.notes()
        return out


def evaluate(examples: Iterable[Example], predictor: Callable[[Example], Prediction],
             dataset: str, total: Optional[int] = None, writer=None,
             densepose_tables: Optional[GeodesicTables] = None, progress: bool = True,
             ground_truth_label_set: Optional[labels.LabelSet] = None, strict: bool = False,
             batch_size: int = 1) -> dict:
    """Scores every example; with `writer` (a PredictionWriter) also saves each prediction,
    and the prediction directory appears only if the whole evaluation succeeds.

    A predictor with `predict_batch` (a model, spd_tf.evaluation.predictors.ModelPredictor) gets
    `batch_size` examples at a time, of any sizes: the network runs them as one batch and
    every prediction still comes back at its own image's size. Scores and saved files are
    the same, in the same order, for every batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    evaluation = Evaluation(dataset, predictor.tasks, densepose_tables,
                            getattr(predictor, "label_set", labels.LABEL_SETS["lip"]),
                            ground_truth_label_set, strict,
                            getattr(predictor, "keypoint_set", KEYPOINT_SETS["lip"]))
    predict_batch = getattr(predictor, "predict_batch", None)
    if predict_batch is None:
        batch_size, predict_batch = 1, lambda chunk: [predictor(example) for example in chunk]
    with writer if writer is not None else contextlib.nullcontext():
        with Progress(total, "evaluating", "img", enabled=progress) as bar:
            for chunk in _chunks(examples, batch_size):
                for example, prediction in zip(chunk, predict_batch(chunk)):
                    if writer is not None:
                        writer.write(example.source_id, prediction)
                    evaluation.update(example, prediction)
                bar.update(len(chunk))
        if evaluation.num_examples == 0:
            raise ValueError("empty dataset: no examples to evaluate")
    return evaluation.result()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --- tables ----------------------------------------------------------------------------------


def load_densepose_tables(directory) -> Optional[GeodesicTables]:
    return GeodesicTables.load(Path(directory)) if directory else None
