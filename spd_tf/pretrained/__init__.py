"""Models shipped inside the package, loaded by name: `artifacts.load("ccp-small")`.

A shipped model is a folder spd_tf/pretrained/<name with '_' for '-'>/ (ccp-small ->
ccp_small/) written by `python -m spd_tf.deploy.package`: a weights-only run directory
(config.json + model.weights.h5, the layout spd_tf.artifacts reads) with its label set,
MODEL_CARD.md and a reference prediction. The folders present are the registry: a package
dropped in is loadable by its name. SPD_PRETRAINED_DIR points the registry at another root
(tests; a user's own collection).
"""

import os
from pathlib import Path
from typing import List, Optional, Union

from spd_tf.errors import SettingFileNotFoundError

ROOT_ENV = "SPD_PRETRAINED_DIR"
PACKAGE_ROOT = Path(__file__).resolve().parent


def root() -> Path:
    """Where packages live: $SPD_PRETRAINED_DIR, else this package's folder."""
    return Path(os.environ[ROOT_ENV]) if os.environ.get(ROOT_ENV) else PACKAGE_ROOT


def folder_name(name: str) -> str:
    """A model name -> its folder name (a Python package's data folder has no '-')."""
    return name.replace("-", "_")


def names(where: Optional[Path] = None) -> List[str]:
    """The model names present under `where` (default: root()), sorted."""
    where = Path(where) if where is not None else root()
    if not where.is_dir():
        return []
    return sorted(p.name.replace("_", "-") for p in where.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")))


def resolve(name_or_path: Union[str, os.PathLike], where: Optional[Path] = None) -> Path:
    """An existing path as is; a shipped model's name -> its folder; else a one-line error
    listing the known names (a string that looks like a path gets the path's own error later)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    text = str(name_or_path)
    where = Path(where) if where is not None else root()
    folder = where / folder_name(text)
    if text in names(where):
        return folder
    if os.sep in text or "." in path.name:
        return path  # a path that does not exist: the loader names what is missing there
    known = ", ".join(names(where)) or "none installed"
    raise SettingFileNotFoundError("{load.path}={value!r} is not a file, a directory or a shipped model "
                                   "(known: {known}; folders of {where})", value=text, known=known, where=where)
