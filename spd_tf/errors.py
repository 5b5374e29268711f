"""Errors that name the setting at fault, so every front end can word it in its own terms.

The library names a setting by its config field (`ModelConfig.output_stride`) or by the
argument of the function that refused it (`backbone_weights`); a command line re-words the
same error with its flag (`--output-stride`) through `SettingError.worded`, never by editing
the message text.
"""

import string
from typing import Mapping, Tuple


class _Wording(string.Formatter):
    """Fills `{value}` fields from the error's values and `{Owner.field}` fields with names."""

    def __init__(self, names: Mapping[str, str]):
        super().__init__()
        self.names = names

    def get_field(self, field_name, args, kwargs):
        if field_name in kwargs:
            return kwargs[field_name], field_name
        return self.names.get(field_name, field_name), field_name


class SettingError(Exception):
    """A bad value of one or more named settings (mixed into ValueError / FileNotFoundError).

    `template` is a format string whose fields are either keywords of `values` (the bad
    values, with the usual `!r` and format specs) or setting names, e.g.
    `SettingValueError("{ModelConfig.output_stride}={value!r} must be 8 or 16", value=12)`.
    """

    def __init__(self, template: str, **values):
        self.template = template
        self.values = values
        super().__init__(self.worded({}))

    @property
    def settings(self) -> Tuple[str, ...]:
        """The setting names the message mentions, in order."""
        return tuple(field for _, field, _, _ in string.Formatter().parse(self.template)
                     if field is not None and field not in self.values)

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each setting called by `names[setting]` (unknown ones unchanged)."""
        return _Wording(names).vformat(self.template, (), self.values)


class SettingValueError(SettingError, ValueError):
    """A setting's value is invalid."""


class SettingFileNotFoundError(SettingError, FileNotFoundError):
    """A setting names a file or directory that does not exist."""


def require_tensorflow(what: str) -> None:
    """An ImportError naming `what` and the extra to install, when TensorFlow is not installed
    (the base install is the TensorFlow-free deployment path: docs/deploy_without_tensorflow.md)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs TensorFlow, which is not installed: pip install 'spd_tf[train]' "
                          "(spd-predict and spd-client run TFLite / ONNX exports and TF Serving without it)") from None
