#!/usr/bin/env python
"""Train SPD. `python train.py --help` lists every flag with its default; without --data it
runs the synthetic CPU demo (train, evaluate, export, contact sheet)."""

import os
import sys

# TensorFlow's C++ info lines (oneDNN, CUDA probing) would bury the training output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from spd_tf.training.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
