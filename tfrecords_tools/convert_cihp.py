"""CIHP (for evaluation) -> sharded TFRecords of the spd_tf schema (labels only).

Expected layout under ROOT (one split folder, e.g. CIHP's Validation/):
  images/*.jpg + labels/*.png          (the CIHP_PGN layout), or
  Images/*.jpg + Category_ids/*.png    (the official instance-level-human-parsing release)
  optional {split}_id.txt or {split}.txt ("/images/x.jpg /labels/x.png" lines) in ROOT,
  ROOT/list/ or ROOT/lists/ choosing the images,
  optional Human_ids/*.png beside the label folder: person ids (0 none, 1..N).
Labels are 8-bit class indices in the LIP 20-class scheme (index 10 = torso skin), 255 =
ignore. Each multi-person image becomes one example (`image/dataset` = cihp); its person
ids, when present, go to `instance/encoded`. A person-id PNG of another size than its label,
with more persons than --max-instances (default 8), or whose ids disagree with the label's
person pixels (more than 1 %: an id on background, none on a person) skips that image with the
file and the count in the report: persons are never merged. Output:
OUT/{split}-*-of-*.tfrecord (split `all` without a list) and OUT/cihp-report.json.
"""

import sys
from typing import Optional, Sequence

from spd_tf import labels
from tfrecords_tools import common
from spd_tf import cli_args


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    return common.labelled_main("cihp", __doc__, labels.NUM_LIP_CLASSES, argv)


if __name__ == "__main__":
    sys.exit(main())
