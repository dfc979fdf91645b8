"""Connected components of the duplicate graph, distributed: alternating Large-Star and Small-Star.

The algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014). Nodes are
document keys, ordered as strings. Each step is one task per hash partition of the nodes, reading the
adjacency rows (node, nbr) sent to it and sending its output edges on through a Parquet exchange:

- Large-Star: for each node u with m = min(u, its neighbours), link every neighbour v > u to m.
- Small-Star: for each node u with its smaller neighbours N and m = min(N), link all of N ∪ {u} to m.

Both keep connectivity and only ever link a node to a smaller one; they converge in O(log² n) rounds
to a forest of stars, each centred on the smallest key of its component. Convergence is checked
locally and exactly: every node is either a centre (no smaller neighbour) or a leaf (one neighbour,
a smaller one), which is a star forest, on which Large-Star changes nothing. The result is the same
for any number of workers and any task order: each step's output is a function of its input set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.dedup.documents import key_ids, key_shards
from curate.dedup.exchange import Exchange
from curate.dedup.phases import PhaseRunner

ADJACENCY_SCHEMA = {"node": "str", "nbr": "str"}
LABEL_SCHEMA = {"key": "str", "cluster": "str"}
MAX_ROUNDS = 64  # far above O(log² n) for any real graph: reaching it means a bug, so it raises
# Adjacency rows a Large-/Small-Star task holds at most (about 100 bytes each in pandas).
ADJACENCY_ROWS_PER_TASK = 2_000_000


def partition_of(keys: pd.Series, partitions: int) -> np.ndarray:
    """The partition that owns each node: a fixed hash of the key, mod `partitions`."""
    hashes = pd.util.hash_array(keys.to_numpy(dtype=object), categorize=False)
    return (hashes % np.uint64(partitions)).astype(np.int64)


def send_edges(target: Exchange, sender: str, hi: pd.Series, lo: pd.Series, partitions: int) -> int:
    """Send undirected edges as adjacency rows in both directions, each to its node's partition."""
    frame = pd.DataFrame(
        {"node": pd.concat([hi, lo], ignore_index=True), "nbr": pd.concat([lo, hi], ignore_index=True)}
    )
    return target.send(sender, frame, partition_of(frame["node"], partitions))


def _sorted_codes(adjacency: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Distinct (node, nbr) rows as integer codes in key order, sorted by node then nbr.

    Codes from a sorted factorization compare like the keys, and numpy on them is much faster than
    pandas grouping on Arrow strings (whose `min` runs in Python, group by group).
    """
    codes, keys = pd.factorize(pd.concat([adjacency["node"], adjacency["nbr"]], ignore_index=True), sort=True)
    n = len(keys)
    pairs = np.unique(codes[: len(adjacency)].astype(np.int64) * n + codes[len(adjacency) :])
    return pairs // n, pairs % n, keys


def _groups(node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each node's run of rows, and each row's run number (rows sorted by node)."""
    new = np.r_[True, node[1:] != node[:-1]] if len(node) else np.zeros(0, dtype=bool)
    return np.flatnonzero(new), np.cumsum(new) - 1


def _edges(keys: pd.Index, hi: np.ndarray, lo: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"hi": keys.take(hi), "lo": keys.take(lo)}).astype("str")


def large_star(adjacency: pd.DataFrame) -> tuple[pd.DataFrame, bool, int]:
    """(edges hi→lo, whether this partition is a star forest already, distinct edges seen)."""
    node, nbr, keys = _sorted_codes(adjacency)
    starts, group = _groups(node)
    # Sorted by nbr within a node, a node's first row holds its smallest neighbour.
    center = np.minimum(node[starts], nbr[starts])[group]
    up = nbr > node
    smaller = np.add.reduceat((nbr < node).astype(np.int64), starts) if len(starts) else starts
    degree = np.diff(np.r_[starts, len(node)])
    is_star = (smaller == 0) | ((degree == 1) & (smaller == 1))
    # Each undirected edge appears once as (smaller end, larger end), at the smaller end's partition.
    return _edges(keys, nbr[up], center[up]), bool(is_star.all()), int(up.sum())


def small_star(adjacency: pd.DataFrame) -> pd.DataFrame:
    """Edges hi→lo; `adjacency` holds each edge once, at its larger end (nbr < node)."""
    node, nbr, keys = _sorted_codes(adjacency)
    starts, group = _groups(node)
    center = nbr[starts]  # the smallest neighbour of each node
    others = nbr != center[group]
    hi = np.r_[node[starts], nbr[others]]
    lo = np.r_[center, center[group][others]]
    n = max(len(keys), 1)
    pairs = np.unique(hi * n + lo)
    return _edges(keys, pairs // n, pairs % n)


@dataclass(frozen=True)
class StarJob:
    partition: int
    source: Exchange
    target: Exchange
    partitions: int


def _large_star_task(job: StarJob) -> dict:
    edges, converged, seen = large_star(job.source.receive(job.partition))
    # Small-Star groups each edge at its larger end.
    frame = pd.DataFrame({"node": edges["hi"], "nbr": edges["lo"]})
    job.target.send(f"{job.partition:05d}", frame, partition_of(frame["node"], job.partitions))
    return {"converged": converged, "edges": seen}


def _small_star_task(job: StarJob) -> int:
    edges = small_star(job.source.receive(job.partition))
    return send_edges(job.target, f"{job.partition:05d}", edges["hi"], edges["lo"], job.partitions)


@dataclass(frozen=True)
class LabelJob:
    partition: int
    source: Exchange
    labels: Exchange


def _label_task(job: LabelJob) -> dict:
    """On the converged star forest: every leaf, sent to its shard with its centre's id as cluster."""
    adjacency = job.source.receive(job.partition).drop_duplicates(ignore_index=True)
    leaves = adjacency[adjacency["nbr"] > adjacency["node"]]
    labels = pd.DataFrame({"key": leaves["nbr"], "cluster": key_ids(leaves["node"])})
    if len(labels):
        job.labels.send(f"{job.partition:05d}", labels, key_shards(labels["key"]))
    sizes = leaves.groupby("node").size() + 1
    return {
        "components": len(sizes),
        "largest": int(sizes.max()) if len(sizes) else 0,
        "documents": int(sizes.sum()),
    }


def connected_components(phases: PhaseRunner, edges: Exchange, adjacency_rows: int) -> tuple[Exchange, dict]:
    """Components of the graph whose adjacency rows (both directions) were sent to `edges`.

    `edges` is partitioned like the stage's shuffles (`phases.partitions`); the rounds after the
    first use as many partitions as `adjacency_rows` needs at ADJACENCY_ROWS_PER_TASK each. The
    duplicate graph is usually far smaller than the corpus, and a partition per shard would spend its
    time on thousands of tiny exchange files.

    Returns the exchange holding, per shard, every document that is not its component's smallest
    (key, cluster = the smallest id), and figures: distinct edges, rounds, components, largest.
    """
    partitions = max(1, min(phases.partitions, -(-adjacency_rows // ADJACENCY_ROWS_PER_TASK)))
    source, source_partitions = edges, phases.partitions
    for round_ in range(MAX_ROUNDS):
        small = phases.exchange(f"cc{round_:02d}-small", ADJACENCY_SCHEMA)
        jobs = [StarJob(p, source, small, partitions) for p in range(source_partitions)]
        large = phases.map(_large_star_task, jobs, f"cc{round_:02d}-large-star", timer="components")
        if round_ == 0:
            distinct_edges = sum(r["edges"] for r in large)
        if all(r["converged"] for r in large):
            break
        source, source_partitions = phases.exchange(f"cc{round_ + 1:02d}-large", ADJACENCY_SCHEMA), partitions
        jobs = [StarJob(p, small, source, partitions) for p in range(partitions)]
        phases.map(_small_star_task, jobs, f"cc{round_:02d}-small-star", timer="components")
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    labels = phases.exchange("labels", LABEL_SCHEMA)
    jobs = [LabelJob(p, source, labels) for p in range(source_partitions)]
    sizes = phases.map(_label_task, jobs, "cc-labels", timer="components")
    return labels, {
        "edges": distinct_edges,
        "rounds": round_ + 1,
        "partitions": partitions,
        "components": sum(s["components"] for s in sizes),
        "largest_component": max((s["largest"] for s in sizes), default=0),
        "documents_in_components": sum(s["documents"] for s in sizes),
    }
