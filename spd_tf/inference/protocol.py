"""What every inference path shares, without TensorFlow: request limits, test protocols, the
model-frame output names and the person-grouping settings (the numpy path and a deployment
host import only this, spd_tf.inference.numpy_path and spd_tf.inference.output_spec)."""

import dataclasses
from typing import Optional, Sequence, Tuple

# The instance branch's model-frame outputs (spd_tf.model.instance builds them).
CENTER_KEY = "instance_center"
OFFSET_KEY = "instance_offset"


# Encoded-image markers the size, truncation and orientation checks read (graph and numpy).
PNG_MAGIC, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
JPEG_MAGIC, JPEG_SCAN, JPEG_END = b"\xff\xd8\xff", b"\xff\xda", b"\xff\xd9"

# EXIF orientation (phones store portraits landscape with tag 6): the APP1 segment's "Exif\0\0"
# is looked for in a JPEG's first bytes, and the tag among IFD0's first entries.
EXIF_HEADER = b"Exif\x00\x00"
EXIF_SEARCH_BYTES = 1 << 16
EXIF_MAX_ENTRIES = 64
EXIF_TIFF_BYTES = 2048  # of the TIFF block read: IFD0 sits near its start (offset 8 in practice)
ORIENTATION_TAG = 0x0112

# Largest image side accepted (a bogus header cannot make us allocate a 16k x 16k image).
MAX_IMAGE_SIDE = 4096


# Pixel budget of one request (see the module docstring): one 4096 x 4096 image, four of
# 2048 x 2048, ... With probabilities (80 more bytes per pixel) exports take a quarter of it.
MAX_REQUEST_PIXELS = 4096 * 4096


# Float values per band of rows in post-processing (16 MB per temporary).
BAND_VALUES = 1 << 22


POSE_DECODINGS = ("subpixel", "jppnet")


@dataclasses.dataclass(frozen=True)
class TestProtocol:
    """How predictions are fused at test time.

    scales: input scales (1 = the model's input size); flip: also run the mirrored image
    (classes and joints swapped back); stage_mean: average every parsing stage's logits
    (JPPNet) rather than take the last; at_image_size: fuse at each image's original size
    (JPPNet; needs a batch of one size) rather than on the scale-1 output grid (fast).
    Pose always takes the last stage (JPPNet's evaluate_pose), decoded without JPPNet's
    nearest-resize bias (`fuse`, `heatmap_keypoints`; docs/evaluation.md).
    """

    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    stage_mean: bool = False
    at_image_size: bool = False
    # subpixel: spd_tf's unbiased decoding (`heatmap_keypoints`); jppnet: JPPNet's, every pass's
    # heatmaps resized nearest to the output and the argmax pixel taken (kept to compare).
    pose_decoding: str = "subpixel"

    def __post_init__(self):
        scales = tuple(float(s) for s in self.scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"test-time scales {self.scales!r} must be positive")
        if 1.0 not in scales:
            raise ValueError(f"test-time scales {self.scales!r} must include 1 (the output grid the others are "
                             "fused on)")
        if self.pose_decoding not in POSE_DECODINGS:
            raise ValueError(f"pose_decoding {self.pose_decoding!r} is not one of {POSE_DECODINGS}")
        object.__setattr__(self, "scales", scales)


# JPPNet's evaluate_parsing_JPPNet-s2.py / evaluate_pose_JPPNet-s2.py, and a quick look.
PROTOCOLS = {
    "paper": TestProtocol(scales=(1.0, 0.75, 1.25), flip=True, stage_mean=True, at_image_size=True),
    "fast": TestProtocol(),
}


def scaled_size(input_size: Sequence[int], scale: float) -> Tuple[int, int]:
    """The input size of a test-time scale, int(side x scale) as JPPNet."""
    return tuple(max(1, int(side * scale)) for side in input_size)


CHARTS = ("densepose_i", "densepose_u", "densepose_v", "densepose_coarse")


POSE_PASSES = "pose_passes"  # the per-scale heatmaps a multi-scale protocol fused


POSE_ARGMAX = "pose_argmax"  # set (True) by fuse: decode by the argmax pixel (JPPNet)


PERSON_IUV, PERSON_BOXES = "person_densepose_iuv", "person_densepose_boxes"



DENSEPOSE_FEATURES = "densepose_features"


# Centre peaks: 3x3 max-pool NMS on the head's grid; at output stride 8 it spans 24 input
# pixels (Panoptic-DeepLab: 7x7 at full resolution), and ties of an upsampled map never arise.
CENTER_NMS_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class InstanceGrouping:
    """What grouping needs besides the maps: the model input size (offsets are in its
    pixels), K = the most persons kept, and the least centre score that is a person."""

    input_size: Tuple[int, int]
    max_instances: int = 8
    threshold: float = 0.1


def instance_grouping(model_config) -> Optional[InstanceGrouping]:
    """The grouping of a ModelConfig with the instance branch, else None."""
    if not model_config.instance_branch:
        return None
    return InstanceGrouping(tuple(model_config.input_size), model_config.max_instances,
                            model_config.instance_threshold)


# Heatmap value of the cells of other persons when one person's joints are read (below any
# peak a linear heatmap head gives).
OTHER_PERSON = -1e4


# The log heatmap's floor, relative to the peak: far below any Gaussian target value the
# three refinement cells hold (exp(-30) at 2.5 cells from a 0.32-cell sigma), yet finite.
LOG_FLOOR = 1e-12
