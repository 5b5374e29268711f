"""DensePose: for each body pixel its surface patch I (1..24) and chart coordinates U, V.

Records `densepose/{bbox,x,y,i,u,v,masks}` (COCO DensePose: points in a person box, and the
coarse part masks); targets: points moved by the example's transform, U/V mirrored through
the symmetry table when flipped (without it flipped points are dropped), and the masks on the
head's grid; the DensePose-RCNN ROI head on res4 over the box the final parsing says
(spd_tf.model.densepose; the model takes an optional `densepose_box` input); loss: CE on I and
smooth-L1 on U, V at the points plus `densepose_coarse_weight` x CE of the coarse masks;
results `densepose_iuv` and `densepose_box`; files: the IUV PNG in DensePose's format.
"""

import cv2
import numpy as np

from spd_tf import labels as label_sets
from spd_tf import visualize
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task

tf = LazyModule("tensorflow")
keras = LazyModule("keras")
augment = LazyModule("spd_tf.data.augment")
targets = LazyModule("spd_tf.data.targets")
heads = LazyModule("spd_tf.model.densepose")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
numpy_path = LazyModule("spd_tf.inference.numpy_path")
presence = LazyModule("spd_tf.losses.presence")

NAME = "densepose"
BOX_KEY = "densepose_box"
CHARTS = ("densepose_i", "densepose_u", "densepose_v", "densepose_coarse")
POINT_KEYS = ("x", "y", "i", "u", "v")


class DensePose(Task):
    name = NAME
    outputs = (
        Output("densepose_iuv", "float32", True, NAME, "[B, H, W, 3]",
               "I as float, U, V in [0, 1]; 0 outside the person box and off the body (instance branch: "
               "each person's own ROI on its pixels)"),
        Output("densepose_box", "float32", False, NAME, "[B, 4]", "person box (x0, y0, x1, y1) in image pixels"),
    )
    model_outputs = (*CHARTS, BOX_KEY)
    presence = "has_densepose"

    def record_features(self):
        return {
            "densepose/bbox": tf.io.VarLenFeature(tf.float32),
            **{f"densepose/{key}": tf.io.VarLenFeature(tf.int64 if key == "i" else tf.float32) for key in POINT_KEYS},
            "densepose/masks": tf.io.FixedLenFeature([], tf.string, default_value=""),
        }

    def decode(self, parsed, example, num_joints):
        dense = {key: tf.sparse.to_dense(parsed[f"densepose/{key}"]) for key in POINT_KEYS}
        bbox = tf.sparse.to_dense(parsed["densepose/bbox"])
        present = tf.logical_and(tf.size(dense["i"]) > 0, tf.equal(tf.size(bbox), 4))
        bbox = tf.cond(present, lambda: tf.reshape(bbox, [4]), lambda: tf.zeros([4]))
        has_masks = tf.strings.length(parsed["densepose/masks"]) > 0
        masks = tf.cond(has_masks, lambda: tf.io.decode_png(parsed["densepose/masks"], channels=1)[..., 0],
                        lambda: tf.zeros([0, 0], tf.uint8))
        return {"densepose_bbox": bbox, **{f"densepose_{key}": dense[key] for key in ("x", "y", "u", "v")},
                "densepose_i": tf.cast(dense["i"], tf.int32), "densepose_masks": masks,
                "has_densepose": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        px, py = augment.transform_points(example["densepose_x"], example["densepose_y"], frame.matrix)
        points = {"x": px, "y": py, **{key: example[f"densepose_{key}"] for key in ("i", "u", "v")}}
        present = example["has_densepose"] > 0
        if frame.uv_symmetry is not None:
            flipped_u, flipped_v = frame.uv_symmetry(points["i"], points["u"], points["v"])
            points["u"] = tf.where(frame.flipped, flipped_u, points["u"])
            points["v"] = tf.where(frame.flipped, flipped_v, points["v"])
        else:  # without the symmetry table a flipped U/V would be wrong: drop the points
            present = present & tf.logical_not(frame.flipped)
        points["i"] = tf.where(frame.flipped, augment.swap_patch_sides(points["i"]), points["i"])
        box = targets.person_box(example["densepose_bbox"], frame.matrix, frame.input_size)
        dense = targets.densepose_targets(points, box, frame.input_size, frame.data_config.max_densepose_points,
                                          present)
        masks = augment.warp_densepose_masks(example["densepose_masks"], example["densepose_bbox"], frame.matrix,
                                             box, output_size(frame.model_config))
        masks = tf.cond(frame.flipped, lambda: augment.swap_coarse_sides(masks), lambda: masks)
        has_masks = dense["has_densepose"] * tf.cast(tf.size(example["densepose_masks"]) > 0, tf.float32)
        features = {BOX_KEY: dense.pop(BOX_KEY)}
        return features, {"densepose_masks": tf.cast(masks, tf.int32), "has_densepose_masks": has_masks, **dense}

    def model_inputs(self):
        # The annotated person box when training; without it the parsing's foreground box.
        return {BOX_KEY: keras.Input((4,), name=BOX_KEY, optional=True)}

    def build_head(self, network):
        charts, box = heads.densepose_branch(network.features["middle"], network.outputs["segmentation"],
                                             network.inputs[BOX_KEY], network.config, dtype=network.dtype)
        return {**charts, BOX_KEY: box}

    def losses(self, outputs, labels, model_config, train_config):
        points = densepose_loss(outputs["densepose_i"], outputs["densepose_u"], outputs["densepose_v"],
                                labels["densepose_points"], labels["densepose_point_mask"])
        coarse = presence.masked(coarse_segmentation_loss(outputs["densepose_coarse"], labels["densepose_masks"]),
                        labels["has_densepose_masks"])
        return {NAME: (points + train_config.densepose_coarse_weight * coarse, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        return postprocessing.densepose_at_image_size(outputs, request.image_size, request.canvas)

    def postprocess_numpy(self, outputs, results, request):
        return numpy_path.densepose_numpy(outputs, request.image_size, request.canvas)

    def files(self, stem, image, result, picture):
        return {f"densepose/{stem}.png": visualize.encode(".png", quantize_iuv(result["densepose_iuv"]))}

    def panels(self, image, result, picture):
        iuv = result["densepose_iuv"]
        dense = visualize.uv_contours(image, iuv)
        mask = iuv[..., 0] > 0
        dense[mask] = (0.5 * dense[mask] + 0.5 * visualize.iuv_image(iuv)[mask]).astype(np.uint8)
        for box, colour in visualize.densepose_frames(result):
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(dense, (x0, y0), (x1 - 1, y1 - 1), colour, 1)
        return [("DensePose", dense)]


def output_size(model_config) -> int:
    """Side of the DensePose head's outputs: ROI x2 (deconvolution) x the bilinear factor."""
    return 2 * model_config.roi_size * model_config.densepose_upsample


def sample_roi(maps, points_xy):
    """Bilinear samples of maps [B, R, R, C] at box-frame points [B, P, 2] -> [B, P, C], in the
    ROI frame of spd_tf.model.densepose (point (x, y) -> output pixel (x*R - 0.5, y*R - 0.5))."""
    size = tf.shape(maps)[1:3]
    height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    x = tf.clip_by_value(points_xy[..., 0] * width - 0.5, 0.0, width - 1.0)
    y = tf.clip_by_value(points_xy[..., 1] * height - 0.5, 0.0, height - 1.0)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1 = tf.minimum(x0 + 1, size[1] - 1)
    y1 = tf.minimum(y0 + 1, size[0] - 1)
    flat = tf.reshape(maps, [tf.shape(maps)[0], -1, tf.shape(maps)[3]])

    def gather(yi, xi):
        return tf.gather(flat, yi * size[1] + xi, batch_dims=1)

    top = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def densepose_loss(i_logits, u_charts, v_charts, points, point_mask):
    """Per-example DensePose loss: CE on I plus smooth-L1 (Huber, delta 1) on U and V of the
    ground-truth patch, averaged over the image's points. Charts [B, R, R, P+1]; points
    [B, N, 5] (x, y, i, u, v)."""
    points = tf.cast(points, tf.float32)
    num_channels = tf.shape(i_logits)[-1]
    patch = tf.cast(tf.round(points[..., 2]), tf.int32)
    valid = tf.logical_and(tf.cast(point_mask, tf.float32) > 0, patch > 0)
    valid = tf.logical_and(valid, patch < num_channels)
    patch = tf.where(valid, patch, tf.zeros_like(patch))
    xy = points[..., :2]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=patch, logits=sample_roi(tf.cast(i_logits, tf.float32), xy))
    one_hot = tf.one_hot(patch, num_channels)
    huber = 0.0
    for chart, target in ((u_charts, points[..., 3]), (v_charts, points[..., 4])):
        predicted = tf.reduce_sum(sample_roi(tf.cast(chart, tf.float32), xy) * one_hot, -1)
        difference = tf.abs(predicted - target)
        huber += tf.where(difference < 1.0, 0.5 * tf.square(difference), difference - 0.5)
    valid = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum((ce + huber) * valid, axis=1), tf.reduce_sum(valid, axis=1))


def coarse_segmentation_loss(coarse_logits, masks):
    """Per-example CE of coarse logits [B, R, R, K] vs part masks [B, R, R] (255 ignored), over
    the whole box (detectron2's coarse segmentation)."""
    masks = tf.cast(masks, tf.int32)
    valid = masks != label_sets.IGNORE_LABEL
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(valid, masks, tf.zeros_like(masks)), logits=tf.cast(coarse_logits, tf.float32))
    valid = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(ce * valid, [1, 2]), tf.reduce_sum(valid, [1, 2]))


def quantize_iuv(iuv: np.ndarray) -> np.ndarray:
    """IUV -> uint8 (I, floor(255 U), floor(255 V)), DensePose's evaluation storage format."""
    iuv = np.asarray(iuv, np.float64)
    out = np.empty(iuv.shape, np.uint8)
    out[..., 0] = np.clip(np.rint(iuv[..., 0]), 0, label_sets.NUM_DENSEPOSE_PATCHES)
    out[..., 1:] = np.floor(np.clip(iuv[..., 1:] * 255.0, 0, 255))
    return out


def dequantize_iuv(iuv_uint8: np.ndarray) -> np.ndarray:
    iuv = np.asarray(iuv_uint8, np.float64).copy()
    iuv[..., 1:] /= 255.0
    return iuv


TASK = DensePose()
