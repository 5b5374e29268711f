"""ATR (18 classes, for evaluation) -> sharded TFRecords of the spd_tf schema (labels only).

Expected layout under ROOT (the humanparsing release):
  JPEGImages/*.jpg             person images
  SegmentationClassAug/*.png   8-bit (or palette) class-index labels 0..17, 255 = ignore
  optional {split}_id.txt / {split}.txt in ROOT, ROOT/list/ or ROOT/lists/ choosing the split
Labels keep ATR's own class ids (`image/dataset` = atr); evaluate.py maps LIP predictions
to ATR with spd_tf.labels.LIP_TO_ATR. Output: OUT/{split}-*-of-*.tfrecord (split `all`
without a list) and OUT/atr-report.json listing every skipped input.
"""

import sys
from typing import Optional, Sequence

from spd_tf import labels
from tfrecords_tools import common
from spd_tf import cli_args


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    return common.labelled_main("atr", __doc__, labels.NUM_ATR_CLASSES, argv)


if __name__ == "__main__":
    sys.exit(main())
