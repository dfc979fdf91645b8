"""Paths a user names in a flag or a config file: text files to read and directories to write.

Each way such a path can be wrong is one ValueError that names the path (and the flag, when given) and
says what to change, raised before any work starts rather than as an OSError in the middle of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


def _where(flag: str) -> str:
    return f"{flag}: " if flag else ""


def read_text(path: Path, flag: str = "") -> str:
    """The text of the UTF-8 file `path` (named by `flag`)."""
    if not path.exists():
        raise ValueError(f"{_where(flag)}{path} does not exist")
    if not path.is_file():
        raise ValueError(f"{_where(flag)}{path} is a directory, not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{_where(flag)}{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ValueError(f"{_where(flag)}cannot read {path} ({err.strerror})") from None


def output_path(text: str, flag: str = "") -> Path:
    """The path `text` of something to write; an empty one is refused, since Path("") is the current
    directory: an unset shell variable would otherwise fill it."""
    if not text.strip():
        raise ValueError(f"{_where(flag)}the path is empty; name a directory (. for the current one)")
    return Path(text)


def check_output_dir(path: Path, flag: str = "") -> Path:
    """`path` if it is a directory or could be made one: not a file, not under a file, writable."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        under = "" if existing == path else f" is under {existing}, which"
        raise ValueError(f"{_where(flag)}{path}{under} is a file; name a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{_where(flag)}cannot write {path}: {existing} is not writable")
    return path


# A config field for a directory to write: named (not empty), and not a file or under one.
OutputDir = Annotated[
    Path,
    BeforeValidator(lambda value: output_path(value) if isinstance(value, str) else value),
    AfterValidator(check_output_dir),
]
