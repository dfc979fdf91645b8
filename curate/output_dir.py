"""Whether a directory that a command will write can be one, checked before any work starts: a path that
is a file, lies under a file or cannot be written would otherwise fail as an OSError midway. curate's
output.dir and --out and train's output flags all ask this one function; each words the fix its way.
"""

from __future__ import annotations

import os
from pathlib import Path


def output_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a directory to write, naming it; None when it can."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        under = "" if existing == path else f" is under {existing}, which"
        return f"{path}{under} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write {path}: {existing} is not writable"
    return None
