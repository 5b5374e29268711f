"""The console scripts of the tools that need TensorFlow: each checks for it first, so a host
with the TensorFlow-free install (`pip install "spd_tf[client]"`) gets one line naming the
extra to install, not a traceback. spd-predict and spd-client run without it (spd_tf.deploy)."""

import importlib
import sys

from spd_tf.errors import require_tensorflow


def _run(prog: str, module: str, argv=None) -> int:
    try:
        require_tensorflow(prog)
    except ImportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return importlib.import_module(module).main(argv)


def train(argv=None) -> int:
    return _run("spd-train", "spd_tf.training.cli", argv)


def evaluate(argv=None) -> int:
    return _run("spd-evaluate", "spd_tf.evaluation.cli", argv)


def export(argv=None) -> int:
    return _run("spd-export", "spd_tf.deploy.cli", argv)


def convert(argv=None) -> int:
    return _run("spd-convert", "tfrecords_tools.cli", argv)
