"""Clothing Co-Parsing (CCP) -> sharded TFRecords of the spd_tf schema, in the 15 `ccp` classes.

Layout under ROOT, as the CCP repository publishes it:
  photos/NNNN.jpg                   street-fashion photos (one person, mostly 550x832)
  annotations/pixel-level/NNNN.mat  `groundtruth`: uint8 H x W tag indices (read with scipy)
  label_list.mat                    the 59 tag names (0 = null)
  {split}_id.txt                    optional split lists (one id per line)
Every split with a list is written as OUT/{split}-*-of-*.tfrecord; with no list, every
labelled photo goes to split `all`. Tags are grouped into the `ccp` label set
(spd_tf.labels.CCP_TAGS_BY_CLASS); accessories, bags, belts, jewellery... become 255
(ignored). Bad inputs (unreadable .mat, missing photo, size mismatch, tag outside 0..58,
corrupt image) are skipped with their reason in OUT/ccp-report.json.

  spd-convert ccp --data clothing-co-parsing --out data/ccp
"""

import sys
from pathlib import Path
from typing import Optional, Sequence

from spd_tf import labels
from spd_tf.data import ccp
from tfrecords_tools import common
from spd_tf import cli_args

NUM_CLASSES = labels.LABEL_SETS["ccp"].num_classes


def convert_ccp(root, out_dir, *, workers: int = 1, examples_per_shard: int = 1000,
                report_path=None) -> dict:
    """Every {split}_id.txt split of ROOT (or split `all`) -> shards; returns the report."""
    out_dir = Path(out_dir)
    report = common.ConversionReport("ccp", root, out_dir)
    for split in ccp.split_lists(root) or [None]:
        common.convert_listing(report, ccp.list_ccp(root, split), "ccp", NUM_CLASSES, out_dir,
                               workers, examples_per_shard)
    return report.write(report_path or out_dir / "ccp-report.json")


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    return common.dataset_main("ccp", __doc__, convert_ccp, argv)


if __name__ == "__main__":
    sys.exit(main())
