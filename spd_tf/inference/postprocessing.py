"""What the tasks' graph post-processing is made of (spd_tf.inference.results runs them):
parsing upsampled in bands of rows, joints decoded below the grid cell, DensePose IUV pasted in
its box, persons grouped."""

from typing import Callable, Mapping, Sequence

import tensorflow as tf

from spd_tf.labels import IGNORE_LABEL
from spd_tf.inference.protocol import BAND_VALUES, CHARTS, LOG_FLOOR, OTHER_PERSON, PERSON_BOXES, PERSON_IUV


def person_keypoints(heatmaps: tf.Tensor, input_ids: tf.Tensor, scores: tf.Tensor, image_size) -> tf.Tensor:
    """[B, h, w, J] heatmaps, person ids at the input size [B, H, W] and scores [B, K] ->
    [B, K, J, 3] (x, y, peak) in image pixels, as `heatmap_keypoints` reads each joint but
    only among the cells grouped to that person (bottom-up pose: joints go to persons
    through the grouping). Cells are grouped before the parsing mask, so a wrist just off
    the parsed silhouette still counts. Zeros for unused slots and for a person with no
    cell on the heatmap grid. One person at a time, so memory does not grow with K."""
    heatmaps = tf.cast(heatmaps, tf.float32)
    ids = tf.image.resize(input_ids[..., None], tf.shape(heatmaps)[1:3], method="nearest")

    def one(person):
        mine = tf.equal(ids, person + 1)
        joints = heatmap_keypoints(tf.where(mine, heatmaps, OTHER_PERSON), image_size)
        present = (tf.gather(scores, person, axis=1) > 0) & tf.reduce_any(mine, axis=[1, 2, 3])
        return tf.where(present[:, None, None] & (joints[..., 2:] > OTHER_PERSON / 2), joints, 0.0)

    count = scores.shape[1]
    per_person = tf.map_fn(one, tf.range(count), fn_output_signature=tf.TensorSpec([None, heatmaps.shape[-1], 3]),
                           parallel_iterations=1)
    return tf.transpose(per_person, [1, 0, 2, 3])


def instances_at_image_size(input_ids: tf.Tensor, labels: tf.Tensor, image_size, canvas) -> tf.Tensor:
    """Person ids at the input size -> at each image's size (nearest), kept on the parsing
    foreground only (class 1..C-1), padded with the output's fill."""
    fill = 0

    def one(args):
        ids, size = args
        resized = tf.image.resize(ids[..., None], size, method="nearest")[..., 0]
        return pad_to(resized, canvas, fill)

    ids = tf.map_fn(one, (input_ids, image_size), fn_output_signature=tf.TensorSpec([None, None], tf.int32),
                    parallel_iterations=1)
    foreground = (labels != 0) & (labels != IGNORE_LABEL)
    return tf.where(foreground, ids, fill)


def pad_to(value: tf.Tensor, canvas: tf.Tensor, fill) -> tf.Tensor:
    """A spatial result [h, w, ...] padded to `canvas` [2] with `fill`."""
    extra = tf.stack([tf.zeros([2], tf.int32), canvas - tf.shape(value)[:2]], axis=1)
    rest = tf.zeros([tf.rank(value) - 2, 2], tf.int32)
    return tf.pad(value, tf.concat([extra, rest], 0), constant_values=tf.cast(fill, value.dtype))


def _axis_weights(out_size: tf.Tensor, in_size: tf.Tensor, positions: tf.Tensor):
    """Bilinear source indices and weights of output `positions` (tf.image.resize's
    half-pixel rule: source = (i + 0.5) * in / out - 0.5, clamped at the borders)."""
    scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    source = (tf.cast(positions, tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(source)
    lower = tf.maximum(tf.cast(floor, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(source), tf.int32), in_size - 1)
    return lower, upper, source - floor


def _banded(grid: tf.Tensor, out_size: tf.Tensor, per_band: Callable, dtype, canvas: tf.Tensor,
            offset=(0, 0), fill=0) -> tf.Tensor:
    """per_band(tf.image.resize(grid [h, w, C], out_size) rows) placed at `offset` of a
    `canvas` [H, W, ...] filled with `fill`, computed band of rows after band (same
    arithmetic in the same order as tf.image.resize) so nothing of all C channels, nor a
    second full-size copy, is ever held."""
    shape = tf.shape(grid)
    rows = tf.maximum(1, BAND_VALUES // (out_size[1] * shape[2]))
    x_lower, x_upper, x_weight = _axis_weights(out_size[1], shape[1], tf.range(out_size[1]))
    columns = [[offset[1], canvas[1] - out_size[1] - offset[1]]]

    def band(start):
        positions = tf.range(start, tf.minimum(start + rows, canvas[0])) - offset[0]
        inside = (positions >= 0) & (positions < out_size[0])
        y_lower, y_upper, y_weight = _axis_weights(out_size[0], shape[0], tf.clip_by_value(positions, 0, out_size[0] - 1))

        def across(source_rows):
            left = tf.gather(source_rows, x_lower, axis=1)
            return left + (tf.gather(source_rows, x_upper, axis=1) - left) * x_weight[None, :, None]

        top = across(tf.gather(grid, y_lower))
        value = per_band(top + (across(tf.gather(grid, y_upper)) - top) * y_weight[:, None, None])
        value = tf.pad(value, tf.concat([[[0, 0]], columns, tf.zeros([tf.rank(value) - 2, 2], tf.int32)], 0),
                       constant_values=fill)
        mask = tf.reshape(inside, tf.concat([[-1], tf.ones([tf.rank(value) - 1], tf.int32)], 0))
        return tf.where(mask, value, tf.cast(fill, dtype))

    starts = tf.range(0, canvas[0], rows)
    bands = tf.TensorArray(dtype, size=tf.size(starts), infer_shape=False)
    _, bands = tf.while_loop(lambda i, _: i < tf.size(starts), lambda i, ta: (i + 1, ta.write(i, band(starts[i]))),
                             (0, bands), parallel_iterations=1)
    return bands.concat()


def segmentation_at_image_size(logits: tf.Tensor, image_size, canvas, include_probabilities: bool) -> dict:
    num_classes = logits.shape[-1]

    def one(args):
        grid, size = args
        labels = _banded(grid, size, lambda band: tf.argmax(band, axis=-1, output_type=tf.int32), tf.int32,
                         canvas, fill=IGNORE_LABEL)
        if not include_probabilities:
            return labels
        return labels, _banded(grid, size, lambda band: tf.nn.softmax(band, axis=-1), tf.float32, canvas, fill=0.0)

    spec = tf.TensorSpec([None, None], tf.int32)
    if include_probabilities:
        spec = (spec, tf.TensorSpec([None, None, num_classes], tf.float32))
    mapped = tf.map_fn(one, (tf.cast(logits, tf.float32), image_size), fn_output_signature=spec,
                       parallel_iterations=1)
    if include_probabilities:
        return {"labels": mapped[0], "probabilities": mapped[1]}
    return {"labels": mapped}


def map_at_image_size(grid: tf.Tensor, image_size, canvas, per_band: Callable, dtype, fill=0) -> tf.Tensor:
    """per_band(bilinear resize of grid [B, h, w, C]) at each image's size [B, H, W] on a
    `canvas`, `fill` outside an image's real part (band by band, as the parsing)."""
    def one(args):
        values, size = args
        return _banded(values, size, per_band, dtype, canvas, fill=fill)

    return tf.map_fn(one, (tf.cast(grid, tf.float32), image_size),
                     fn_output_signature=tf.TensorSpec([None, None], dtype), parallel_iterations=1)


def probability_at_image_size(logits: tf.Tensor, image_size, canvas) -> tf.Tensor:
    """One-channel logits [B, h, w, 1] -> sigmoid probabilities [B, H, W] at each image's size
    (bilinear in bands, as the parsing), 0 outside an image's real part."""
    return map_at_image_size(logits, image_size, canvas, lambda band: tf.sigmoid(band[..., 0]), tf.float32, 0.0)


def heatmap_keypoints(heatmaps: tf.Tensor, image_size, passes: Sequence[tf.Tensor] = (),
                      refine: bool = True) -> tf.Tensor:
    """[B, h, w, J] heatmaps -> [B, J, 3] (x, y, peak value) in image pixels, without bias.

    Each joint is the argmax cell refined to a sub-cell position: the vertex of the parabola
    through the log heatmap at three cells along each axis (exact for a Gaussian, the shape
    of the training targets; Zhang et al., "Distribution-Aware Coordinate Representation of
    Keypoints", CVPR 2020), then mapped to the image with half-pixel centres (the usual
    quarter cell towards the larger neighbour jumps half a cell when a peak sits between two
    cells; this does not). With `passes`
    (the per-scale maps `heatmaps` fuses), the fused map picks the mode and each pass is
    refined on its own grid near it, the positions averaged by their peak values: resampling
    a narrow peak onto another grid moves it, decoding it on its own grid does not.
    `refine=False`: the argmax cell's centre (JPPNet's decoding).
    """
    heatmaps = tf.cast(heatmaps, tf.float32)
    score = tf.reduce_max(heatmaps, axis=[1, 2])
    size = tf.cast(image_size, tf.float32)
    x, y, _ = _refined_peak(heatmaps, size, refine=refine)
    if len(passes) > 1:
        weighted, total = tf.zeros_like(tf.stack([x, y], -1)), tf.zeros_like(x)
        for one in passes:
            px, py, value = _refined_peak(tf.cast(one, tf.float32), size, near=(x, y))
            weight = tf.maximum(value, 0.0) + 1e-6
            weighted += tf.stack([px, py], -1) * weight[..., None]
            total += weight
        x, y = tf.unstack(weighted / total[..., None], axis=-1)
    return tf.stack([x, y, score], axis=-1)


def _refined_peak(heatmaps: tf.Tensor, size: tf.Tensor, near=None, refine: bool = True):
    """(x, y, value) [B, J] in image pixels of each joint's peak: the argmax cell, or with
    `near` (x, y in image pixels) the best cell of the 3x3 cells around that point; refined
    to a sub-cell position (`_axis_offset`)."""
    shape = tf.shape(heatmaps)
    height, width = shape[1], shape[2]
    flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [shape[0], shape[3], -1])
    if near is None:
        index = tf.argmax(flat, axis=-1, output_type=tf.int32)
    else:
        col = _grid_cell(near[0], size[:, None, 1], width)
        row = _grid_cell(near[1], size[:, None, 0], height)
        candidates = [tf.clip_by_value(row + dr, 0, height - 1) * width + tf.clip_by_value(col + dc, 0, width - 1)
                      for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        candidates = tf.stack(candidates, axis=-1)
        best = tf.argmax(tf.gather(flat, candidates, batch_dims=2), axis=-1, output_type=tf.int32)
        index = tf.gather(candidates, best, batch_dims=2)
    value = tf.gather(flat, index, batch_dims=2)
    row, col = index // width, index % width
    x, y = tf.cast(col, tf.float32), tf.cast(row, tf.float32)
    if refine:
        x += _axis_offset(flat, index, col, width, 1)
        y += _axis_offset(flat, index, row, height, width)
    x = (x + 0.5) * size[:, None, 1] / tf.cast(width, tf.float32) - 0.5
    y = (y + 0.5) * size[:, None, 0] / tf.cast(height, tf.float32) - 0.5
    return x, y, value


def _grid_cell(coordinate: tf.Tensor, image_side: tf.Tensor, cells) -> tf.Tensor:
    """The cell of a grid of `cells` over `image_side` pixels that holds an image coordinate."""
    cell = tf.floor((coordinate + 0.5) * tf.cast(cells, tf.float32) / image_side)
    return tf.clip_by_value(tf.cast(cell, tf.int32), 0, cells - 1)


def _axis_offset(flat: tf.Tensor, index: tf.Tensor, coord: tf.Tensor, limit, step) -> tf.Tensor:
    """Sub-cell offset in [-0.5, 0.5] of the peak at `index` along one axis: the vertex of the
    parabola through the log heatmap at three neighbouring cells on that axis (the peak's
    neighbours, or the two cells inward at a border); through the values themselves where the
    peak is not positive. Continuous in the heatmap: where the peak sits between two cells,
    both give the same point. An axis of under 3 cells: no offset."""
    start = tf.clip_by_value(coord - 1, 0, tf.maximum(limit - 3, 0))
    usable = limit >= 3
    values = [tf.gather(flat, tf.where(usable, index + (start + k - coord) * step, index), batch_dims=2)
              for k in range(3)]
    peak = tf.gather(flat, index, batch_dims=2)
    positive = peak > 0
    floor = tf.where(positive, peak, 1.0) * LOG_FLOOR
    first, middle, last = (tf.where(positive, tf.math.log(tf.maximum(v, floor)), v) for v in values)
    curvature = first - 2.0 * middle + last
    vertex = tf.cast(start, tf.float32) + 1.0 - 0.5 * (last - first) / tf.where(curvature < 0, curvature, -1.0)
    offset = tf.clip_by_value(vertex - tf.cast(coord, tf.float32), -0.5, 0.5)
    return tf.where(usable & (curvature < 0), offset, 0.0)


def densepose_at_image_size(outputs: Mapping[str, tf.Tensor], image_size, canvas) -> dict:
    """The one-box IUV and its box in image pixels (`_pasted_iuv`)."""
    iuv, box = _pasted_iuv([outputs[k] for k in CHARTS], outputs["densepose_box"], image_size, canvas)
    return {"densepose_iuv": iuv, "densepose_box": box}


def person_densepose_pasted(outputs: Mapping[str, tf.Tensor], results: Mapping[str, tf.Tensor],
                             image_size, canvas) -> dict:
    """IUV of each person on that person's pixels (person after person, so one extra image
    of IUV is the largest temporary), and the person boxes in image pixels (0 for unused
    slots). An image with no person keeps its one-box IUV."""
    instances, scores = results["instances"], results["instance_scores"]
    boxes = tf.stack([_pixel_boxes(box, image_size) for box in tf.unstack(outputs[PERSON_BOXES], axis=1)], axis=1)
    boxes *= tf.cast(scores > 0, tf.float32)[..., None]
    anyone = tf.reduce_any(scores > 0, axis=1)[:, None, None, None]
    start = tf.where(anyone, tf.zeros_like(results["densepose_iuv"]), results["densepose_iuv"])

    def add(iuv, person):
        def paste():
            pasted = _pasted_person_iuv(tf.gather(outputs[PERSON_IUV], person, axis=1),
                                        tf.gather(outputs[PERSON_BOXES], person, axis=1), image_size, canvas)
            return tf.where(tf.equal(instances, person + 1)[..., None], pasted, iuv)
        return tf.cond(tf.reduce_any(tf.gather(scores, person, axis=1) > 0), paste, lambda: iuv)

    iuv = tf.foldl(add, tf.range(scores.shape[1]), initializer=start, parallel_iterations=1)
    return {"densepose_iuv": iuv, "person_boxes": boxes}


def _iuv_of(charts: tf.Tensor, parts: int) -> tf.Tensor:
    """Charts (I, U, V, coarse concatenated; I has `parts` channels) -> IUV: I = the fine
    argmax where the coarse head says body (detectron2), else 0; U/V of that patch, 0 off
    the body."""
    body = tf.argmax(charts[..., 3 * parts:], axis=-1, output_type=tf.int32) > 0
    patch = tf.argmax(charts[..., :parts], axis=-1, output_type=tf.int32)
    patch = tf.where(body, patch, tf.zeros_like(patch))
    batch_dims = len(charts.shape) - 1
    u = tf.gather(charts[..., parts : 2 * parts], patch[..., None], batch_dims=batch_dims)[..., 0]
    v = tf.gather(charts[..., 2 * parts : 3 * parts], patch[..., None], batch_dims=batch_dims)[..., 0]
    on_body = tf.cast(patch > 0, tf.float32)
    return tf.stack([tf.cast(patch, tf.float32), tf.clip_by_value(u, 0.0, 1.0) * on_body,
                     tf.clip_by_value(v, 0.0, 1.0) * on_body], axis=-1)


def _pixel_boxes(boxes: tf.Tensor, image_size) -> tf.Tensor:
    """Normalised (y0, x0, y1, x1) [B, 4] -> (x0, y0, x1, y1) in each image's pixels."""
    y0, x0, y1, x1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    size = tf.cast(image_size, tf.float32)
    return tf.stack([x0 * size[:, 1], y0 * size[:, 0], x1 * size[:, 1], y1 * size[:, 0]], axis=-1)


def _pixel_extent(pixel_box: tf.Tensor, shape: tf.Tensor):
    """(top, left, height, width) of the whole pixels a box (x0, y0, x1, y1) touches, inside
    an image of `shape` and at least one pixel."""
    top = tf.clip_by_value(tf.cast(tf.floor(pixel_box[1]), tf.int32), 0, shape[0] - 1)
    left = tf.clip_by_value(tf.cast(tf.floor(pixel_box[0]), tf.int32), 0, shape[1] - 1)
    bottom = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[3]), tf.int32), top + 1, shape[0])
    right = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[2]), tf.int32), left + 1, shape[1])
    return top, left, bottom - top, right - left


def _pasted_iuv(charts: Sequence[tf.Tensor], boxes: tf.Tensor, image_size, canvas):
    """Pastes ROI charts (I, U, V, coarse; [B, R, R, C]) into their boxes [B, 4] (normalised
    y0, x0, y1, x1) at image size, resizing the charts bilinearly before `_iuv_of` (in bands
    of rows). Returns (IUV [B, H, W, 3], boxes in pixels)."""
    box = _pixel_boxes(boxes, image_size)
    parts = charts[0].shape[-1]
    charts = tf.concat([tf.cast(chart, tf.float32) for chart in charts], -1)

    def one(args):
        chart, pixel_box, shape = args
        top, left, height, width = _pixel_extent(pixel_box, shape)
        return _banded(chart, tf.stack([height, width]), lambda band: _iuv_of(band, parts), tf.float32, canvas,
                       (top, left), 0.0)

    iuv = tf.map_fn(one, (charts, box, image_size), fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32),
                    parallel_iterations=1)
    return iuv, box


def _pasted_person_iuv(iuv: tf.Tensor, boxes: tf.Tensor, image_size, canvas) -> tf.Tensor:
    """One person's ROI IUV [B, R, R, 3] pasted into its boxes [B, 4] (normalised) at image
    size: I nearest, U/V bilinear; 0 outside the box."""

    def one(args):
        patch, pixel_box, shape = args
        top, left, height, width = _pixel_extent(pixel_box, shape)
        size = tf.stack([height, width])
        resized = tf.concat([tf.image.resize(patch[..., :1], size, method="nearest"),
                             tf.image.resize(patch[..., 1:], size, method="bilinear")], -1)
        resized = tf.where(resized[..., :1] > 0, resized, 0.0)
        return tf.pad(resized, [[top, canvas[0] - top - height], [left, canvas[1] - left - width], [0, 0]])

    return tf.map_fn(one, (iuv, _pixel_boxes(boxes, image_size), image_size),
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32), parallel_iterations=1)
