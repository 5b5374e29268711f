"""Fashionista -> sharded TFRecords of the spd_tf schema: 15 `ccp` classes and 14 joints.

Layout under ROOT (../shared/data/fashionista, see its SOURCES.md):
  images/NNNNNN.jpg     the photos (400x600 chictopia street fashion)
  labels/NNNNNN.png     8-bit tag indices 0..58, CCP's 59 tags in CCP's order (0 = null)
  tags.txt              the 59 tag names
  pose.csv              header, then `image,x1,y1,...,x14,y14` (the `fashionista` keypoint set)
  {split}_id.txt        split lists (one id per line)
Every split with a list is written as OUT/{split}-*-of-*.tfrecord (else split `all`), the
keypoints tagged with their set so training picks it (`--keypoint-set` defaults to it). Bad
inputs are named in OUT/fashionista-report.json with their reason and the rest is written: a
listed id with no photo, a label of another size or with a tag > 58 (photo skipped), a pose
row with the wrong field count or a non-number (photo written without pose).

  spd-convert fashionista --data ../shared/data/fashionista --out data/fashionista
"""

import sys
from typing import Optional, Sequence

from spd_tf import labels
from spd_tf.data import ccp, fashionista
from tfrecords_tools import common
from spd_tf import cli_args

NUM_CLASSES = labels.LABEL_SETS["ccp"].num_classes


def convert_fashionista(root, out_dir, *, workers: int = 1, examples_per_shard: int = 1000,
                        report_path=None) -> dict:
    """Every {split}_id.txt split of ROOT (or split `all`) -> shards; returns the report."""
    report = common.ConversionReport("fashionista", root, out_dir)
    for split in ccp.split_lists(root) or [None]:
        common.convert_listing(report, fashionista.list_fashionista(root, split), "fashionista", NUM_CLASSES,
                               out_dir, workers, examples_per_shard)
    return report.write(report_path or f"{out_dir}/fashionista-report.json")


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    return common.dataset_main("fashionista", __doc__, convert_fashionista, argv)


if __name__ == "__main__":
    sys.exit(main())
