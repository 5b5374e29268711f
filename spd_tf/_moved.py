"""Old module paths of the flat layout, kept importable for one release (0.2 removes them).

`import spd_tf.metrics` (or `from spd_tf.metrics import X`) gives a stand-in whose attributes
are the new module's, with a DeprecationWarning naming the new path. `python -m <old path>`
does not run: the console scripts (spd-export, spd-predict, ...) never changed.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

MOVED = {
    "spd_tf.metrics": "spd_tf.evaluation.metrics",
    "spd_tf.instance_metrics": "spd_tf.evaluation.instance_metrics",
    "spd_tf.predictions": "spd_tf.evaluation.predictors",
    "spd_tf.evaluate_cli": "spd_tf.evaluation.cli",
    "spd_tf.segmentation_losses": "spd_tf.losses.segmentation",
    "spd_tf.structure_loss": "spd_tf.losses.structure",
    "spd_tf.outputs": "spd_tf.inference.output_spec",
    "spd_tf.export": "spd_tf.deploy.cli",
    "spd_tf.export_tflite": "spd_tf.deploy.export_tflite",
    "spd_tf.export_onnx": "spd_tf.deploy.export_onnx",
    "spd_tf.portable": "spd_tf.deploy.model_frame",
    "spd_tf.runtimes": "spd_tf.deploy.runtimes",
    "spd_tf.client": "spd_tf.deploy.client",
    "spd_tf.predict": "spd_tf.deploy.predict",
    "spd_tf.pretrained.package": "spd_tf.deploy.package",
}


def forwarding(old: str, new: str):
    """A module-level `__getattr__` for `old` that reads `new`'s attributes with a warning."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:  # a package's own submodule (`from spd_tf.evaluation import metrics`) is no old name
            return importlib.import_module(f"{old}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{old}.{name}":
                raise
        target = importlib.import_module(new)
        if not hasattr(target, name):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old}.{name} moved to {new}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(target, name)

    return __getattr__


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}", DeprecationWarning, stacklevel=2)
        module = types.ModuleType(spec.name, f"Moved to {MOVED[spec.name]}.")
        module.__getattr__ = forwarding(spec.name, MOVED[spec.name])
        return module

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
