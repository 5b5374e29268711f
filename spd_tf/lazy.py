"""A module imported on first use, so a module can name TensorFlow (or Keras) at its top and
still be imported on a host without it, as long as only its TensorFlow-free parts run."""

import importlib
import types


class LazyModule(types.ModuleType):
    """Stands for `name` until an attribute is read; then imports it and reads from it."""

    def __init__(self, name: str):
        super().__init__(name)
        self._module = None

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)
