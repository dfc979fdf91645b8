"""LSH banding: signatures to bucket keys, and bucket groups to candidate pairs.

A signature of `bands * rows` values is cut into `bands` bands; a band's `rows` values hash to one
64-bit bucket key (seeded by the band number, so equal values in different bands never share a key).
Two documents become candidates when any band's key is equal, which happens with probability
1 - (1 - s^rows)^bands at Jaccard similarity s: 14 x 8 puts the 50% point near s = 0.72.

A bucket group is linked through anchors, its `anchors` smallest keys, not through all its pairs:
every other member pairs with each anchor (and the anchors pair with each other), so the pairs grow
linearly with the group (a boilerplate page can fill a bucket with thousands of documents). Without
verification one anchor already connects the group. With verification a member joins the group only
if it passes against an anchor: a member similar to some non-anchor member but to no anchor is missed
by that band, and is found only if another band puts it with a similar anchor. Two anchors (as NeMo
Curator uses) make that miss rare for the usual cluster of copies of one page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from curate.backend import PANDAS, Backend
from curate.dedup.hashing import CHAIN_START, chain

BUCKET_SCHEMA = {"band": "uint16", "bucket": "uint64", "key": "str"}


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) uint64 bucket keys of (docs, bands * rows) signatures.

    numpy on every backend: per batch of 1,000 documents this is ~1 ms of CPU, while on a GPU its
    ~900 tiny CuPy kernels cost more in launches (and in time-slicing between worker processes that
    share the GPU) than the work; measured on an H200, bench/RESULTS.md."""
    keys = np.empty((len(signatures), bands), dtype=np.uint64)
    for band in range(bands):
        state = chain(np.full(len(signatures), CHAIN_START, dtype=np.uint64), np.full(1, band))
        for column in range(band * rows, (band + 1) * rows):
            state = chain(state, signatures[:, column])
        keys[:, band] = state
    return keys


def bucket_rows(doc_keys: np.ndarray, keys: np.ndarray) -> pd.DataFrame:
    """One (band, bucket, key) row per document and band."""
    n_docs, bands = keys.shape
    return pd.DataFrame(
        {
            "band": np.tile(np.arange(bands, dtype=np.uint16), n_docs),
            "bucket": keys.ravel(),
            "key": pd.array(np.repeat(doc_keys, bands), dtype="str"),
        }
    )


def candidate_pairs(rows: Any, anchors: int, backend: Backend = PANDAS) -> pd.DataFrame:
    """Distinct (a, b) pairs, a > b, sorted, linking each bucket group's members to its `anchors`
    smallest keys. `rows` is a frame of `backend`; the same operations run on pandas and on cuDF."""
    group = ["band", "bucket"]
    shared = rows[rows.duplicated(group, keep=False)]
    shared = shared.drop_duplicates().sort_values([*group, "key"], ignore_index=True)
    # A member's rank in its group: its row minus the group's first row (rows are sorted by key).
    shared["rank"] = backend.xp.arange(len(shared))
    shared["rank"] = shared["rank"] - shared.groupby(group)["rank"].transform("min")
    parts = []
    for j in range(anchors):
        anchor = shared.loc[shared["rank"] == j, [*group, "key"]].rename(columns={"key": "b"})
        members = shared.loc[shared["rank"] > j, [*group, "key"]].rename(columns={"key": "a"})
        parts.append(members.merge(anchor, on=group)[["a", "b"]])
    pairs = backend.frames.concat(parts, ignore_index=True).drop_duplicates()
    return backend.to_pandas(pairs.sort_values(["a", "b"], ignore_index=True)).astype("str")
