"""The command-line vocabulary every spd_tf tool shares, and the flags generated from configs.

Same names everywhere: `--data` for inputs, `--out` for outputs, `--model` for a local
model path (the client's server-side name is `--model-name`); sizes are `N`, `H,W`, `HxW`
or `H W`. Older names (`--root`, `--lip-root`, `--out-dir`, `--output`, `--export`) still
work as deprecated aliases, with a warning.

A config field declared with `spd_tf.config.option` gets its flag here (type from the
annotation, help and defaults from the metadata), so a new field is one edit. Library errors
name settings (`ModelConfig.output_stride`); `Parser.explain` words them with the flags
that set them, from the same field -> flag table.

Every tool also takes `--quiet` and `--no-progress` (see spd_tf.progress), added here once.
"""

import argparse
import dataclasses
import errno
import functools
import os
import sys
import typing
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence

from spd_tf.errors import SettingError
from spd_tf.fileio import disk_errno


def typed(value) -> str:
    """A value as it is typed on the command line (tuples as `a,b,c`, label sets by name)."""
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in value)
    if isinstance(value, (str, int, float, Path)):
        return str(value)
    return str(getattr(value, "name", value))  # a labels.LabelSet


def numbers(text: str, flag: str, count: Optional[int] = None, cast=float) -> tuple:
    """`a,b,c` -> a tuple of `count` (any number when None) values of `cast`."""
    kind = "integers" if cast is int else "numbers"
    expected = f"expected {count} comma-separated {kind}" if count else f"expected comma-separated {kind}"
    try:
        values = tuple(cast(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: {expected}") from None
    if count is not None and len(values) != count:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: {expected}")
    return values


class SizeAction(argparse.Action):
    """`N` (square), `H,W`, `HxW` or `H W` -> (height, width) of positive integers."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            size = numbers(",".join(values), option_string, cast=int)
        except argparse.ArgumentTypeError:
            size = ()
        if len(size) not in (1, 2) or min(size) < 1:
            parser.error(f"{option_string} {' '.join(values)!r}: expected N, H,W or H W (positive integers)")
        setattr(namespace, self.dest, size * 2 if len(size) == 1 else size)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and appends each flag's default as it is typed."""

    def _get_help_string(self, action):
        default = action.default
        if "default:" in (action.help or "") or default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return f"{action.help} (default: {typed(default)})"


def add_output_flags(container) -> None:
    """--quiet and --no-progress: the same two output switches in every tool."""
    output = container.add_argument_group("output")
    output.add_argument("--quiet", "-q", action="store_true",
                        help="no progress and no info lines; results, warnings and errors still print")
    output.add_argument("--no-progress", action="store_true",
                        help="no progress bar (on a terminal) or progress lines (in a log)")


DEBUG_VARIABLE = "SPD_DEBUG"
_LAST_PARSER = None


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that knows which flag sets which library setting, and warns on aliases.

    It carries the shared output flags, and parsing them sets spd_tf.progress's mode."""

    def __init__(self, *args, **kwargs):
        global _LAST_PARSER
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        add_output_flags(self)
        self.add_argument("--debug", action="store_true",
                          help=f"on an error, show its traceback instead of one line (or set {DEBUG_VARIABLE}=1)")
        _LAST_PARSER = self  # the tool's parser, so one_error_path words an error with its flags

    def parse_known_args(self, args=None, namespace=None):
        from spd_tf import progress

        args = sys.argv[1:] if args is None else list(args)
        for action in self._actions:
            for alias in getattr(action, "deprecated", ()):
                if any(arg == alias or arg.startswith(alias + "=") for arg in args):
                    print(f"{self.prog}: warning: {alias} is deprecated; use {action.option_strings[0]}",
                          file=sys.stderr)
        namespace, extras = super().parse_known_args(args, namespace)
        progress.configure(progress=not namespace.no_progress, quiet=namespace.quiet)
        return namespace, extras

    def flag_names(self) -> Dict[str, str]:
        """Setting name (`ModelConfig.output_stride`, `backbone_weights`, ...) -> its flag."""
        return {setting: action.option_strings[0] for action in self._actions
                for setting in getattr(action, "settings", ())}

    def explain(self, error: BaseException) -> str:
        """An error as one line in this tool's terms: settings called by their flags."""
        text = error.worded(self.flag_names()) if isinstance(error, SettingError) else str(error)
        return f"{self.prog}: error: {text}"


def add(container, *names: str, settings: Iterable[str] = (), deprecated: Sequence[str] = (), **kwargs):
    """`add_argument` plus the settings the flag sets (for `Parser.explain`) and deprecated aliases."""
    action = container.add_argument(*names, *deprecated, **kwargs)
    action.settings = tuple(settings)
    action.deprecated = tuple(deprecated)
    return action


def add_data(container, help: str, **kwargs):
    """--data: what a tool reads (TFRecord globs, a dataset directory)."""
    return add(container, "--data", **{"dest": "data", "help": help, **kwargs})


def add_out(container, help: str, **kwargs):
    """--out: the directory a tool writes."""
    return add(container, "--out", **{"dest": "out", "type": Path, "metavar": "DIR", "help": help, **kwargs})


def add_model(container, help: str, **kwargs):
    """--model: a local model (run directory, SavedModel, TFLite/ONNX export)."""
    return add(container, "--model", **{"dest": "model", "help": help, **kwargs})


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def add_batch_size(container, default: int, **kwargs):
    return add(container, "--batch-size", **{"type": positive_int, "default": default, "help": "images per model call",
                                             **kwargs})


# --- flags generated from config dataclasses ------------------------------------------------------

def flag_fields(config_cls) -> list:
    """The fields of `config_cls` declared with `option` (those that have a flag)."""
    return [field for field in dataclasses.fields(config_cls) if "help" in field.metadata]


def _unoptional(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if typing.get_origin(annotation) is typing.Union and len(args) == 1 else annotation


def _is_size(annotation) -> bool:
    return typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (int, int)


def _parsing(field: dataclasses.Field, flag: str) -> dict:
    """add_argument keywords that parse `field`'s annotation: bools, sizes, lists, scalars."""
    annotation = _unoptional(field.type)
    if annotation is bool:
        return {"action": "store_false" if field.default else "store_true"}
    metavar = field.metadata.get("metavar", flag.lstrip("-").upper().replace("-", "_"))
    if _is_size(annotation):
        return {"action": SizeAction, "metavar": field.metadata.get("metavar", "N|H,W")}
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if items[0] is str:
            return {"nargs": "+", "metavar": metavar}
        count = None if items[-1] is Ellipsis else len(items)
        return {"type": lambda text: numbers(text, flag, count, cast=items[0]), "metavar": metavar}
    return {"type": annotation if annotation in (int, float, str, Path) else str, "metavar": metavar}


def add_config_flags(container, config_cls, demo_label: Optional[str] = None) -> None:
    """One flag per `option` field of `config_cls`; unset flags parse to None (see config_values)."""
    for field in flag_fields(config_cls):
        meta = field.metadata
        name = meta.get("flag", field.name.replace("_", "-"))
        flag = f"--no-{name}" if field.type is bool and field.default else f"--{name}"
        choices = meta.get("choices")
        shown = (lambda v: typed(v[:1] if v[0] == v[1] else v)) if _is_size(field.type) else typed
        help_text = meta["help"]
        if field.type is not bool and field.default not in (None, ()):
            defaults = [f"default: {shown(field.default)}"]
            if "demo" in meta and demo_label:
                defaults.append(f"{demo_label}: {shown(meta['demo'])}")
            help_text = f"{help_text} ({'; '.join(defaults)})"
        parsing = _parsing(field, flag)
        if choices:
            parsing["choices"] = choices() if callable(choices) else choices
            if "metavar" not in meta:
                parsing.pop("metavar")  # argparse shows {a,b,c}
        add(container, flag, dest=field.name, default=None, help=help_text,
            settings=(f"{config_cls.__name__}.{field.name}", field.name), deprecated=meta.get("aliases", ()),
            **parsing)


def config_values(config_cls, args: argparse.Namespace, demo: bool = False) -> dict:
    """The flags given for `config_cls` (else, with `demo`, the demo defaults) as field values."""
    values = {}
    for field in flag_fields(config_cls):
        value = getattr(args, field.name)
        if value is None and demo:
            value = field.metadata.get("demo")
        if value is not None:
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values



# --- the one error path of every tool ---------------------------------------------------------

_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.EROFS: "the file system is read-only"}
_KEPT = "files written before it are complete and kept; nothing partial was left under a final name"


def one_error_path(main: Callable) -> Callable:
    """Wraps a tool's `main(argv)`: any error a tool did not word itself becomes one line,
    `<tool>: error: <what, naming the file>`, exit status 2 for a bad setting and 1 for a failure;
    `--debug` or SPD_DEBUG=1 re-raises it with its traceback."""

    @functools.wraps(main)
    def run(argv=None):
        given = sys.argv[1:] if argv is None else list(argv)
        debug = "--debug" in given or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
        try:
            return main(argv)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 (this is the one place every error lands)
            if debug:
                raise
            parser = _LAST_PARSER
            prog = parser.prog if parser is not None else Path(sys.argv[0]).name
            print(f"{prog}: error: {one_line(error, parser)}", file=sys.stderr)
            return 2 if isinstance(error, SettingError) else 1

    return run


def one_line(error: BaseException, parser: Optional["Parser"] = None) -> str:
    """An error as one line: settings by their flags, files by their paths, TensorFlow's first line."""
    if isinstance(error, SettingError):
        return error.worded(parser.flag_names()) if parser is not None else str(error)
    if isinstance(error, OSError) and error.errno is not None:
        what = _DISK_ERRORS.get(error.errno, error.strerror or str(error))
        where = error.filename or "a file"
        return f"{where}: {what} ({_KEPT})" if error.errno in _DISK_ERRORS else f"{where}: {what}"
    message = getattr(error, "message", None) or str(error)  # TensorFlow's OpError keeps `message`
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    first = lines[0][:400] if lines else type(error).__name__
    if type(error).__module__.startswith(("tensorflow", "onnxruntime")):
        number = disk_errno(first)
        return f"{first} ({_DISK_ERRORS[number]}; {_KEPT})" if number in _DISK_ERRORS else first
    if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, ImportError, RuntimeError)):
        return first
    return f"{type(error).__name__}: {first} (an unexpected error; rerun with --debug for its traceback)"
