"""The numpy twin of the graph's pre- and post-processing (and OpenCV's decoder), for
models run by other runtimes (TFLite / onnxruntime, spd_tf.deploy): a deployment host needs no
TensorFlow. Resizes use tf.image.resize's bilinear weights, so results match the graph path."""

from typing import Callable, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from spd_tf.inference.protocol import (CENTER_NMS_KERNEL, CHARTS, DENSEPOSE_FEATURES, EXIF_HEADER, EXIF_MAX_ENTRIES,
                                       EXIF_SEARCH_BYTES, EXIF_TIFF_BYTES, JPEG_END, JPEG_MAGIC, JPEG_SCAN, LOG_FLOOR,
                                       MAX_IMAGE_SIDE, MAX_REQUEST_PIXELS, ORIENTATION_TAG, OTHER_PERSON,
                                       PERSON_BOXES, PNG_END, PNG_MAGIC, InstanceGrouping)


def resize_bilinear(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """float32 [h, w, ...] -> [H, W, ...] as tf.image.resize(method="bilinear") computes it.

    Gathers and lerps (width first, as TF), no matrix products: BLAS threads spinning on a
    busy CPU made a product version 100x slower than this.
    """
    array = np.asarray(array, np.float32)
    for axis in (1, 0):
        low, high, fraction = _interpolation(array.shape[axis], size[axis])
        fraction = fraction.reshape([-1 if i == axis else 1 for i in range(array.ndim)])
        before = np.take(array, low, axis=axis)
        array = before + (np.take(array, high, axis=axis) - before) * fraction
    return array


def _interpolation(in_size: int, out_size: int):
    """Source indices and weights: half-pixel centres, edges clamped (TF's bilinear)."""
    position = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    low = np.floor(position)
    fraction = (position - low).astype(np.float32)
    return np.clip(low, 0, in_size - 1).astype(int), np.clip(low + 1, 0, in_size - 1).astype(int), fraction


def preprocess_numpy(images: Sequence[np.ndarray], input_size: Sequence[int],
                     max_side: int = MAX_IMAGE_SIDE) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images of any sizes -> (float32 [B, h, w, 3] at input_size, image_size [B, 2]).

    An empty list, a zero-size image or a side over `max_side` is a ValueError.
    """
    if not len(images):
        raise ValueError("the request holds no images (empty batch)")
    sizes = np.array([np.shape(image)[:2] for image in images], np.int32).reshape(-1, 2)
    for index, (height, width) in enumerate(sizes):
        if min(height, width) < 1 or max(height, width) > max_side:
            raise ValueError(f"image {index} is {height}x{width} pixels; sides must be 1..{max_side}")
    return np.stack([resize_bilinear(image, input_size) for image in images]), sizes


def person_boxes_numpy(input_ids: np.ndarray, segmentation: np.ndarray, count: int):
    """`person_boxes` in numpy: (boxes [B, K, 4] normalised (y0, x0, y1, x1), present [B, K])."""
    grid = np.shape(segmentation)[1:3]
    ids = np.stack([resize_nearest(one, grid) for one in input_ids])
    foreground = np.asarray(segmentation).argmax(-1) != 0
    mine = (ids[..., None] == np.arange(1, count + 1)) & foreground[..., None]  # [B, h, w, K]

    def extent(along):  # [B, n, K] -> first, one-past-last / n (0, 1/n when absent, as argmax)
        size = along.shape[1]
        first = along.argmax(axis=1)
        last = size - 1 - along[:, ::-1].argmax(axis=1)
        return first / size, (last + 1) / size

    rows, cols = mine.any(axis=2), mine.any(axis=1)
    (y0, y1), (x0, x1) = extent(rows), extent(cols)
    return np.stack([y0, x0, y1, x1], -1).astype(np.float32), rows.any(axis=1)


def person_densepose_numpy(outputs: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray],
                            input_ids: np.ndarray, densepose_head: Callable[[dict], dict], image_size) -> dict:
    """`person_densepose` + `_person_densepose_pasted` in numpy: the head file run on one ROI
    per grouped person (features repeated per person: at most K copies), each person's IUV
    pasted on that person's pixels; an image with no person keeps its one-box IUV."""
    scores, instances = results["instance_scores"], results["instances"]
    boxes, present = person_boxes_numpy(input_ids, outputs["segmentation"], scores.shape[1])
    present &= scores > 0
    where = np.argwhere(present)
    pixel_boxes = np.where(present[..., None], _pixel_boxes_numpy(boxes, image_size[:, None]), 0.0)
    iuv = np.where(present.any(axis=1)[:, None, None, None], 0.0, results["densepose_iuv"]).astype(np.float32)
    if len(where):
        charts = densepose_head({DENSEPOSE_FEATURES: np.asarray(outputs[DENSEPOSE_FEATURES])[where[:, 0]],
                                 PERSON_BOXES: boxes[where[:, 0], where[:, 1]]})
        person_iuv = _iuv_of_numpy(np.concatenate([np.asarray(charts[k], np.float32) for k in CHARTS], -1),
                                   np.shape(charts["densepose_i"])[-1])
        for (row, person), patch in zip(where, person_iuv):
            top, left, bottom, right = _pixel_extent_numpy(pixel_boxes[row, person], image_size[row])
            size = (bottom - top, right - left)
            pasted = np.concatenate([resize_nearest(patch[..., :1], size), resize_bilinear(patch[..., 1:], size)], -1)
            pasted = np.where(pasted[..., :1] > 0, pasted, 0.0)
            mine = instances[row, top:bottom, left:right] == person + 1
            iuv[row, top:bottom, left:right] = np.where(mine[..., None], pasted, iuv[row, top:bottom, left:right])
    return {"densepose_iuv": iuv, "person_boxes": pixel_boxes.astype(np.float32)}


def resize_nearest(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """[h, w, ...] -> [H, W, ...] as tf.image.resize(method="nearest") picks (half-pixel centres)."""
    array = np.asarray(array)
    for axis in (0, 1):
        scale = array.shape[axis] / size[axis]
        index = np.minimum(np.floor((np.arange(size[axis]) + 0.5) * scale).astype(int), array.shape[axis] - 1)
        array = np.take(array, index, axis=axis)
    return array


def group_instances_numpy(center: np.ndarray, offset: np.ndarray, grouping: InstanceGrouping):
    """`group_instances` in numpy: (person ids [B, H, W] at the input size, scores [B, K])."""
    center = np.asarray(center, np.float32)[..., 0]
    batch, height, width = center.shape
    count, pad = grouping.max_instances, CENTER_NMS_KERNEL // 2
    padded = np.pad(center, [[0, 0], [pad, pad], [pad, pad]], constant_values=-np.inf)
    pooled = np.max([padded[:, i : i + height, j : j + width]
                     for i in range(CENTER_NMS_KERNEL) for j in range(CENTER_NMS_KERNEL)], axis=0)
    flat = np.where((center >= pooled) & (center > grouping.threshold), center, -1.0).reshape(batch, -1)
    flat = np.pad(flat, [[0, 0], [0, count]], constant_values=-1.0)
    index = np.argsort(-flat, axis=1, kind="stable")[:, :count]  # top_k: ties to the lower index
    values = np.take_along_axis(flat, index, axis=1)
    valid = values > grouping.threshold
    stride = np.asarray(grouping.input_size, np.float32) / np.asarray([height, width], np.float32)
    centers = (np.stack([index // width, index % width], -1).astype(np.float32) + 0.5) * stride - 0.5
    rows = np.arange(grouping.input_size[0], dtype=np.float32)[:, None, None]
    cols = np.arange(grouping.input_size[1], dtype=np.float32)[None, :, None]
    ids = np.zeros((batch, *grouping.input_size), np.int32)
    for row in np.flatnonzero(valid.any(axis=1)):
        pixel_offset = resize_bilinear(offset[row], grouping.input_size)
        distance = (np.square(rows + pixel_offset[..., :1] - centers[row, :, 0])
                    + np.square(cols + pixel_offset[..., 1:] - centers[row, :, 1]))
        ids[row] = np.where(valid[row], distance, np.inf).argmin(-1) + 1
    return ids, np.where(valid, values, 0.0).astype(np.float32)


def person_keypoints_numpy(heatmaps: np.ndarray, input_ids: np.ndarray, scores: np.ndarray, image_size) -> np.ndarray:
    """`person_keypoints` in numpy: [B, K, J, 3] (x, y, peak) per grouped person."""
    heatmaps = np.asarray(heatmaps, np.float32)
    ids = np.stack([resize_nearest(one, heatmaps.shape[1:3]) for one in input_ids])[..., None]
    per_person = []
    for person in range(scores.shape[1]):
        mine = ids == person + 1
        joints = heatmap_keypoints_numpy(np.where(mine, heatmaps, OTHER_PERSON), image_size)
        present = (scores[:, person] > 0) & mine.any(axis=(1, 2, 3))
        per_person.append(np.where(present[:, None, None] & (joints[..., 2:] > OTHER_PERSON / 2), joints, 0.0))
    return np.stack(per_person, axis=1).astype(np.float32)


def heatmap_keypoints_numpy(heatmaps: np.ndarray, image_size) -> np.ndarray:
    """`heatmap_keypoints` in numpy (one pass): [B, h, w, J] -> [B, J, 3] (x, y, peak) in image pixels."""
    heatmaps = np.asarray(heatmaps, np.float32)
    batch, height, width, joints = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(batch, joints, -1)
    index = flat.argmax(-1)
    score = flat.max(-1)
    y, x = np.divmod(index, width)
    x = x + _axis_offset_numpy(flat, index, x, width, 1)
    y = y + _axis_offset_numpy(flat, index, y, height, width)
    size = np.asarray(image_size, np.float32)
    x = (x + 0.5) * size[:, None, 1] / width - 0.5
    y = (y + 0.5) * size[:, None, 0] / height - 0.5
    return np.stack([x, y, score], axis=-1).astype(np.float32)


def _axis_offset_numpy(flat: np.ndarray, index: np.ndarray, coord: np.ndarray, limit: int, step: int) -> np.ndarray:
    """`_axis_offset` in numpy."""
    def at(where):
        return np.take_along_axis(flat, where[..., None], -1)[..., 0]

    start = np.clip(coord - 1, 0, max(limit - 3, 0))
    usable = limit >= 3
    values = [at(index + (start + k - coord) * step if usable else index) for k in range(3)]
    peak = at(index)
    positive = peak > 0
    floor = np.where(positive, peak, 1.0) * LOG_FLOOR
    first, middle, last = (np.where(positive, np.log(np.maximum(v, floor)), v) for v in values)
    curvature = first - 2.0 * middle + last
    vertex = start + 1.0 - 0.5 * (last - first) / np.where(curvature < 0, curvature, -1.0)
    offset = np.clip(vertex - coord, -0.5, 0.5)
    return np.where(usable & (curvature < 0), offset, 0.0).astype(np.float32)


def densepose_numpy(outputs: Mapping[str, np.ndarray], image_size: np.ndarray, canvas) -> dict:
    """`_densepose` in numpy: the ROI I/U/V pasted into the person box at image size, I = 0
    where the coarse head says background."""
    boxes = _pixel_boxes_numpy(np.asarray(outputs["densepose_box"], np.float32), image_size)
    charts = np.concatenate([np.asarray(outputs[k], np.float32) for k in CHARTS], -1)
    parts = outputs["densepose_i"].shape[-1]
    iuv = np.zeros((len(image_size), *canvas, 3), np.float32)
    for row, (size, box) in enumerate(zip(image_size, boxes)):
        top, left, bottom, right = _pixel_extent_numpy(box, size)
        iuv[row, top:bottom, left:right] = _iuv_of_numpy(resize_bilinear(charts[row], (bottom - top, right - left)),
                                                         parts)
    return {"densepose_iuv": iuv, "densepose_box": boxes}


def _pixel_boxes_numpy(boxes: np.ndarray, image_size) -> np.ndarray:
    """`_pixel_boxes` in numpy: normalised (y0, x0, y1, x1) [..., 4] -> (x0, y0, x1, y1) pixels."""
    y0, x0, y1, x1 = np.moveaxis(np.asarray(boxes, np.float32), -1, 0)
    size = np.asarray(image_size, np.float32)
    return np.stack([x0 * size[..., 1], y0 * size[..., 0], x1 * size[..., 1], y1 * size[..., 0]], -1)


def _pixel_extent_numpy(pixel_box: np.ndarray, shape) -> tuple:
    """`_pixel_extent` in numpy, as (top, left, bottom, right)."""
    height, width = int(shape[0]), int(shape[1])
    top = int(np.clip(np.floor(pixel_box[1]), 0, height - 1))
    left = int(np.clip(np.floor(pixel_box[0]), 0, width - 1))
    bottom = int(np.clip(np.ceil(pixel_box[3]), top + 1, height))
    right = int(np.clip(np.ceil(pixel_box[2]), left + 1, width))
    return top, left, bottom, right


def _iuv_of_numpy(charts: np.ndarray, parts: int) -> np.ndarray:
    """`_iuv_of` in numpy: charts [..., I, U, V (`parts` channels each), coarse] -> IUV [..., 3]."""
    body = charts[..., 3 * parts:].argmax(-1) > 0  # the coarse head says body
    patch = np.where(body, charts[..., :parts].argmax(-1), 0)
    u = np.take_along_axis(charts[..., parts : 2 * parts], patch[..., None], -1)[..., 0]
    v = np.take_along_axis(charts[..., 2 * parts : 3 * parts], patch[..., None], -1)[..., 0]
    on_body = (patch > 0).astype(np.float32)
    return np.stack([patch.astype(np.float32), np.clip(u, 0, 1) * on_body, np.clip(v, 0, 1) * on_body], -1)


# ---- encoded images ----------------------------------------------------------------------------
# JPEG frame headers (SOF0..SOF15 without DHT, JPG and DAC), which carry the image size.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(data: bytes, index: int = 0) -> Tuple[int, int]:
    """(height, width) from a PNG IHDR or JPEG frame header, read before anything is decoded;
    a ValueError naming image `index` for anything else (the graph's checks, decode.py)."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if data.startswith(JPEG_MAGIC):
        position = 2
        while position + 4 <= len(data) and data[position] == 0xFF:
            marker = data[position + 1]
            if marker == 0xFF:  # fill byte
                position += 1
                continue
            length = int.from_bytes(data[position + 2 : position + 4], "big")
            if marker in _JPEG_FRAMES and position + 9 <= len(data):
                return (int.from_bytes(data[position + 5 : position + 7], "big"),
                        int.from_bytes(data[position + 7 : position + 9], "big"))
            if marker == JPEG_SCAN[1]:
                break
            position += 2 + length
        raise ValueError(f"image {index} is a JPEG without a readable frame header ({len(data)} bytes)")
    raise ValueError(f"image {index} is not a JPEG or PNG image ({len(data)} bytes)")


def decode_images_numpy(images: Sequence[bytes], input_size: Sequence[int], max_side: int = MAX_IMAGE_SIDE,
                        max_pixels: int = MAX_REQUEST_PIXELS) -> list:
    """Encoded JPEG/PNG images -> RGB uint8 arrays, with `decode.decode_images`'s checks in the
    same order (format, size, truncation, then the request's pixel budget) before any decoding."""
    if not len(images):
        raise ValueError("the request holds no images (empty batch)")
    sizes, orientations = [], [exif_orientation(data) for data in images]
    for index, (data, orientation) in enumerate(zip(images, orientations)):
        size = header_size(data, index)
        size = size[::-1] if orientation >= 5 else size  # as people see it
        if min(size) < 1:
            raise ValueError(f"image {index} has zero size {list(size)}")
        if max(size) > max_side:
            raise ValueError(f"image {index} is {list(size)} pixels (height, width); sides over {max_side} are refused")
        if not _has_end_marker(data):
            raise ValueError(f"image {index} is truncated (no end-of-image marker; {len(data)} bytes)")
        sizes.append(size)
    pixels = len(sizes) * max(max(h for h, _ in sizes) * max(w for _, w in sizes), int(np.prod(input_size)))
    if pixels > max_pixels:
        raise ValueError(f"the request is {pixels} pixels (batch size x largest height x largest width, at least the "
                         f"model input per image); at most {max_pixels} are accepted per request: send fewer or "
                         "smaller images per request")
    return [decode_rgb(data, index, orientation) for index, (data, orientation) in enumerate(zip(images, orientations))]


def decode_rgb(data: bytes, index: int = 0, orientation: Optional[int] = None) -> np.ndarray:
    """One encoded image -> RGB uint8 pixels (gray/RGBA -> RGB), upright: a JPEG's EXIF
    orientation (read here unless given) applied as `decode.decode_images` applies it in the graph."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError(f"image {index} could not be decoded ({len(data)} bytes)")
    orientation = exif_orientation(data) if orientation is None else orientation
    return orient(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), orientation)


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of a JPEG's APP1 segment; 1 (as stored) when it has none
    or it cannot be read. The graph reads the same bytes the same way (decode.exif_orientation)."""
    if not data.startswith(JPEG_MAGIC):
        return 1
    start = data.find(EXIF_HEADER, 0, EXIF_SEARCH_BYTES)
    if start < 0:
        return 1
    tiff = data[start + len(EXIF_HEADER):][:EXIF_TIFF_BYTES]
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd < 8:
        return 1
    count = min(int.from_bytes(tiff[ifd:ifd + 2], order), EXIF_MAX_ENTRIES) if len(tiff) >= ifd + 2 else 0
    for entry in range(count):
        at = ifd + 2 + 12 * entry
        if len(tiff) >= at + 10 and int.from_bytes(tiff[at:at + 2], order) == ORIENTATION_TAG:
            value = int.from_bytes(tiff[at + 8:at + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> as people see them, for EXIF orientation 1..8."""
    if orientation in (5, 6, 7, 8):
        image = np.swapaxes(image, 0, 1)  # transpose first: 5 is a plain transpose
    if orientation in (2, 3, 6, 7):
        image = image[:, ::-1]
    if orientation in (3, 4, 7, 8):
        image = image[::-1]
    return np.ascontiguousarray(image)


def _has_end_marker(data: bytes) -> bool:
    """A PNG holds IEND; a JPEG's last scan reaches the end-of-image marker (decode.py's rule)."""
    if data.startswith(PNG_MAGIC):
        return PNG_END in data
    return JPEG_END in data.rsplit(JPEG_SCAN, 1)[-1]
