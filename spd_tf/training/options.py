"""RunOptions: what a training run needs besides its three configs (paths and switches).

Not part of the run's identity: changing them never changes the run directory's digest or
refuses a resume.
"""

import dataclasses
import os
from pathlib import Path
from typing import Optional

from spd_tf.config import option

DEFAULT_SYNTHETIC_DIR = Path(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "spd_tf", "synthetic"
)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    run_dir: Optional[Path] = option(None, "run directory (default: runs/<variant>-<synthetic|data>-<config digest>)")
    synthetic_dir: Path = option(DEFAULT_SYNTHETIC_DIR, "cache directory of the synthetic set (generated once)")
    skip_corrupt_records: bool = option(
        False, "read a truncated/corrupted TFRecord shard up to its damage (all shards are scanned at start "
        "and the damaged ones counted) instead of stopping with its name")
    xla: bool = option(False, "jit-compile the train step (variants s/sp only: crop_and_resize has no XLA kernel)")
    evaluate: bool = option(True, "skip the final evaluation", flag="eval")
    export: bool = option(True, "skip the SavedModel export")
    export_dir: Optional[Path] = option(None, "SavedModel export directory (default: <run-dir>/export)",
                                        flag="out", aliases=("--export",), metavar="DIR")
