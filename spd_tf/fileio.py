"""Atomic file and directory writes: a reader never sees a half-written output.

Everything the project writes for others to read (TFRecord shards, reports, metrics JSON,
SavedModels, predictions) goes to a temporary sibling name first and is renamed into place
only when complete; an interrupted write leaves at most a `.tmp-*` name behind.
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, os.PathLike]
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(final: PathLike, directory: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside `final`; renames it to `final` if the block succeeds.

    With directory=True the temporary path is a fresh directory (e.g. for a SavedModel).
    An existing `final` is replaced. On error the temporary path is removed, and a disk error
    (full, read-only, permission; TensorFlow's too) is an OSError naming `final`, not the
    temporary name.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + final.name + ".", dir=final.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX + final.name + ".", dir=final.parent)
            os.close(fd)
            temp = Path(name)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(final)) from None
    try:
        yield temp
        # mkstemp/mkdtemp create private (0600/0700) paths; give the output the permissions
        # any other new file would get, so e.g. TF Serving running as another user can read it.
        os.chmod(temp, (0o777 if directory else 0o666) & ~_umask())
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
    except BaseException as error:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        elif temp.exists():
            temp.unlink()
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(final)) from None
        disk = file_error(error, final) if type(error).__module__.startswith("tensorflow") else error
        if disk is not error:
            raise disk from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a lock or temp file of a dead one is stale)."""
    if pid <= 0:  # 0 and negative pids name process groups, never one process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def ensure_writable_dir(directory: PathLike, what: str = "output directory") -> Path:
    """Creates `directory` and proves it is writable: one clear error instead of a late crash."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise NotADirectoryError(f"{what} {directory} is not writable: {error.strerror or error}") from None
    return directory


def write_bytes_atomic(final: PathLike, data: bytes) -> None:
    with atomic_path(final) as temp:
        temp.write_bytes(data)


def json_bytes(value, indent: int = 2) -> bytes:
    """`value` as JSON text (NaN written as null so every JSON reader accepts it)."""
    return (json.dumps(_nan_to_none(value), indent=indent, sort_keys=False) + "\n").encode()


def write_json_atomic(final: PathLike, value, indent: int = 2) -> None:
    """Writes `value` as JSON (`json_bytes`)."""
    write_bytes_atomic(final, json_bytes(value, indent))


def _nan_to_none(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


_ERRNO_OF = (("no space left", errno.ENOSPC), ("disk quota", errno.EDQUOT), ("permission denied", errno.EACCES),
             ("read-only file system", errno.EROFS))


def disk_errno(message: str) -> Optional[int]:
    """The errno a file error's text names (TensorFlow's and onnxruntime's carry only text), or None."""
    message = message.lower()
    return next((number for text, number in _ERRNO_OF if text in message), None)


def file_error(error: Exception, path) -> Exception:
    """TensorFlow's file error (its message names a temporary file) as the OSError it wraps,
    naming `path` (the file being made); another error as it is."""
    number = disk_errno(str(getattr(error, "message", error)))
    return error if number is None else OSError(number, os.strerror(number), str(path))
