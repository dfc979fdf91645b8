"""Where the dedup stages' columnar work runs: pandas and numpy on the CPU, or cuDF and CuPy on a GPU.

A pipeline's `backend:` picks it: `pandas`; `cudf` (a config error when cuDF does not import or sees no
GPU); `auto`, cuDF when it imports and a GPU is visible, else pandas. On the `cudf` backend the batches
of the dedup phases' grouping work are cuDF DataFrames: LSH buckets into candidate pairs, exact-hash
groups (cuDF sorts, groupbys and joins). The MinHash kernel runs on the GPU whenever one is
visible, whatever the backend (`curate.dedup.minhash.resolve_device`).

What stays on the CPU, and why:
- The partition stages (extraction, language id, heuristic filters, PII, the classifier): each is
  per-document Python over trafilatura, fastText or Presidio, so a cuDF batch would be copied to the
  host and back at every stage for nothing. NeMo Curator draws the same line: GPU for dedup, CPU for
  text heuristics.
- The exchange files between phases: Parquet through pyarrow, so pandas and cuDF workers can share a
  run, and a retried task rewrites the same bytes either way.
- Connected components: numpy over integer codes; the duplicate graph is a small part of the corpus.

The shared code is written once against the API that pandas and cuDF have in common, so the two
backends run the same operations; their results are equal because hashes are fixed functions and
strings sort by code point on both (cuDF compares UTF-8 bytes, which orders as code points do).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd

BackendName = Literal["auto", "pandas", "cudf"]


@dataclass(frozen=True)
class Backend:
    """A DataFrame library and its array library: (pandas, numpy) or (cudf, cupy)."""

    name: str
    frames: ModuleType
    xp: ModuleType

    def from_pandas(self, frame: pd.DataFrame) -> Any:
        return frame if self.frames is pd else self.frames.from_pandas(frame)

    def to_pandas(self, frame: Any) -> pd.DataFrame:
        return frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()


PANDAS = Backend("pandas", pd, np)


def cudf_problem() -> str | None:
    """Why the cuDF backend cannot run in this process, or None when it can."""
    try:
        import cudf  # noqa: F401
        import cupy
    except ImportError as err:
        return f"cuDF does not import ({err})"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "CUDA sees no GPU"
    except cupy.cuda.runtime.CUDARuntimeError as err:
        return f"CUDA fails to start ({err})"
    return None


@lru_cache(maxsize=4)
def resolve_backend(name: BackendName) -> Backend:
    """The backend for `name` in this process (each Dask worker resolves its own)."""
    if name == "pandas":
        return PANDAS
    problem = cudf_problem()
    if problem is None:
        import cudf
        import cupy

        return Backend("cudf", cudf, cupy)
    if name == "cudf":
        raise RuntimeError(f"backend 'cudf': {problem}; use backend 'auto' or 'pandas'")
    return PANDAS
