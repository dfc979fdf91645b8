"""Part files written atomically: a stream of batches goes to a temp file renamed on commit.

A killed task leaves only `*.tmp-*` files behind, never a half-written part under its final name.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def remove_orphaned_temp_files(root: Path) -> int:
    """Delete temp files that killed tasks left behind; call only while no task of this run writes."""
    orphans = [p for p in root.rglob("*.tmp-*") if p.is_file()]
    for path in orphans:
        path.unlink()
    return len(orphans)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def arrow_table(batch: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Batch to Arrow with a stable schema: columns that are all-null in this batch become strings."""
    if schema is not None:
        return pa.Table.from_pandas(batch, schema=schema, preserve_index=False)
    table = pa.Table.from_pandas(batch, preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    # Drop pandas metadata: it records the pandas version and dtypes, not data.
    return table.cast(pa.schema(fields))


class PartWriter:
    """Append batches to one part file (`.parquet` or `.jsonl.gz`); `commit` publishes it atomically."""

    def __init__(self, path: Path, columns: list[str] | None = None) -> None:
        self.path = path
        self.tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
        self.columns = columns
        self._parquet: pq.ParquetWriter | None = None
        self._jsonl = None
        self._empty_schema: pd.DataFrame | None = None
        path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def is_jsonl(self) -> bool:
        return self.path.name.endswith((".jsonl", ".jsonl.gz"))

    def write(self, batch: pd.DataFrame) -> None:
        if self.columns is not None:
            batch = batch[[c for c in self.columns if c in batch.columns]]
        if batch.empty:
            self._empty_schema = batch if self._empty_schema is None else self._empty_schema
            return
        if self.is_jsonl:
            self._write_jsonl(batch)
        else:
            self._write_parquet(batch)

    def _write_parquet(self, batch: pd.DataFrame) -> None:
        if self._parquet is None:
            table = arrow_table(batch).replace_schema_metadata(None)
            self._parquet = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        else:
            table = arrow_table(batch, self._parquet.schema)
        self._parquet.write_table(table)

    def _write_jsonl(self, batch: pd.DataFrame) -> None:
        if self._jsonl is None:
            # No name and mtime=0: the gzip header, and so the file, is identical across reruns.
            raw = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit()
            self._jsonl = (
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0)
                if self.path.suffix == ".gz"
                else raw
            )
        lines = (json.dumps(rec, ensure_ascii=False, default=str) for rec in _records(batch))
        self._jsonl.write(("\n".join(lines) + "\n").encode())

    def commit(self) -> Path:
        """Close the temp file and rename it to its final name (an empty part if nothing was written)."""
        if self._parquet is not None:
            self._parquet.close()
        elif self._jsonl is not None:
            fileobj = getattr(self._jsonl, "fileobj", None)
            self._jsonl.close()
            if fileobj is not None:
                fileobj.close()
        elif self.is_jsonl:
            self._write_jsonl_empty()
        else:
            empty = self._empty_schema if self._empty_schema is not None else pd.DataFrame()
            pq.write_table(arrow_table(empty).replace_schema_metadata(None), self.tmp, compression="zstd")
        os.replace(self.tmp, self.path)
        return self.path

    def _write_jsonl_empty(self) -> None:
        with open(self.tmp, "wb") as raw:
            if self.path.suffix == ".gz":
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0).close()

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)


def _records(batch: pd.DataFrame):
    columns = list(batch.columns)
    for row in batch.itertuples(index=False, name=None):
        yield {c: (None if _is_missing(v) else _plain(v)) for c, v in zip(columns, row, strict=True)}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def read_part(path: Path) -> pd.DataFrame:
    """Read one Parquet part into pandas."""
    return pq.read_table(path).to_pandas()
