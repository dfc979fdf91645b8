"""Deterministic WARC files for the scripts that wrap local material as a crawl (html_dir_to_warc.py,
local_text_to_wet.py): records in the given order, `per_file` to a gzipped file, ids derived from the
record's URI and dates from its source file's mtime. warcio's gzip members carry no timestamp, so a
rerun over the same sources writes byte-identical files."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from warcio.warcwriter import WARCWriter

Item = TypeVar("Item")


def record_headers(uri: str, source: Path) -> dict[str, str]:
    """WARC-Record-ID and WARC-Date of a record: a UUID5 of its URI, its source file's mtime."""
    modified = datetime.fromtimestamp(int(source.stat().st_mtime), tz=timezone.utc)
    return {
        "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, uri)}>",
        "WARC-Date": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_warc_files(
    out: Path, name: str, items: Sequence[Item], per_file: int, write: Callable[[WARCWriter, Item], None]
) -> int:
    """Write `items` through `write(writer, item)`, `per_file` to a file named `name.format(index)` under
    out; returns the number of files."""
    for start in range(0, len(items), per_file):
        with (out / name.format(start // per_file)).open("wb") as file:
            writer = WARCWriter(file, gzip=True)
            for item in items[start : start + per_file]:
                write(writer, item)
    return -(-len(items) // per_file)
