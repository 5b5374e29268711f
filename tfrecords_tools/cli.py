"""`spd-convert DATASET [flags]`: one entry point for the dataset converters.

Each dataset's flags are its converter's (`spd-convert lip --help`); they share --data for
the dataset directory and --out for the shards.
"""

import importlib
import sys
from typing import Optional, Sequence
from spd_tf import cli_args

CONVERTERS = {
    "lip": "tfrecords_tools.convert_lip",
    "atr": "tfrecords_tools.convert_atr",
    "cihp": "tfrecords_tools.convert_cihp",
    "ccp": "tfrecords_tools.convert_ccp",
    "fashionista": "tfrecords_tools.convert_fashionista",
    "surreal": "tfrecords_tools.convert_surreal",
    "synthetic": "tfrecords_tools.convert_synthetic",
}
USAGE = f"usage: spd-convert {{{','.join(CONVERTERS)}}} [-h] ...\n\n{__doc__}"


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in CONVERTERS:
        print(f"{USAGE}\nspd-convert: error: unknown dataset {argv[0]!r}; choose from {', '.join(CONVERTERS)}",
              file=sys.stderr)
        return 2
    converter = importlib.import_module(CONVERTERS[argv[0]])
    program, sys.argv[0] = sys.argv[0], f"spd-convert {argv[0]}"  # argparse's prog: usage and errors
    try:
        return converter.main(argv[1:]) or 0
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    sys.exit(main())
