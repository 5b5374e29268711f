#!/usr/bin/env python
"""Score SPD predictions (`spd-evaluate`); `python evaluate.py --help` lists the flags."""

import sys

from spd_tf.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
