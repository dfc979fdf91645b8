"""Paths a user names in a flag or a config file: text files to read and directories to write.

Each way such a path can be wrong is one ValueError that names the path (and the flag, when given) and
says what to change, raised before any work starts rather than as an OSError in the middle of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from curate.output_dir import output_dir_problem


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
    if problem := output_dir_problem(path):
        raise ValueError(f"{_where(flag)}{problem}; name a directory")
    return path


# A config field for a directory to write: named (not empty), and not a file or under one.
OutputDir = Annotated[
    Path,
    BeforeValidator(lambda value: output_path(value) if isinstance(value, str) else value),
    AfterValidator(check_output_dir),
]
