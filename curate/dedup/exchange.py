"""A Parquet exchange: the shuffle between two phases of a global stage, through files.

Each sending task writes the rows meant for receiver r to `<name>/to-<r>/from-<sender>.parquet`
(atomically: a retried task rewrites the same file); each receiving task reads its own folder. So
data moves from every task of one phase to every task of the next without any task, or the client,
holding more than its share. Files are read in name order, so what a receiver sees does not depend on
which worker finished first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.part_files import PartWriter


@dataclass(frozen=True)
class Exchange:
    """One named exchange under a stage's scratch folder, with a fixed column schema (pandas dtypes)."""

    root: Path
    name: str
    schema: tuple[tuple[str, str], ...]

    def _folder(self, receiver: int) -> Path:
        return self.root / self.name / f"to-{receiver:05d}"

    def send(self, sender: str, frame: pd.DataFrame, receivers: np.ndarray) -> int:
        """Write each row of `frame` to the receiver at the same position in `receivers`; rows sent."""
        if not len(frame):
            return 0
        frame = frame[[c for c, _ in self.schema]].astype(dict(self.schema))
        # A stable sort by receiver keeps each receiver's rows in the sender's order.
        order = np.argsort(receivers, kind="stable")
        frame, receivers = frame.iloc[order], np.asarray(receivers)[order]
        targets, starts = np.unique(receivers, return_index=True)
        for receiver, start, end in zip(targets, starts, [*starts[1:], len(frame)], strict=True):
            writer = PartWriter(self._folder(int(receiver)) / f"from-{sender}.parquet")
            writer.write(frame.iloc[start:end])
            writer.commit()
        return len(frame)

    def receive(self, receiver: int) -> pd.DataFrame:
        """Every row sent to `receiver`, in sender-name order."""
        files = sorted(self._folder(receiver).glob("from-*.parquet"))
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in self.schema})
        table = pa.concat_tables([pq.read_table(f) for f in files])
        return table.to_pandas().astype(dict(self.schema))


def exchange(root: Path, name: str, schema: dict[str, str]) -> Exchange:
    """An exchange with `schema` given as {column: dtype}."""
    return Exchange(root=root, name=name, schema=tuple(schema.items()))
