"""`dedup_exact`: drop documents whose (normalized) text another document has; keep the smallest id.

Phases, each one Dask task per shard or per hash partition, rows moving through Parquet exchange files
so no task holds more than its share:

1. `hashes` (per shard): xxh64 of each normalized text, sent as (hash, key) to partition hash mod N.
2. `groups` (per partition): documents sharing a hash; all but the one with the smallest id are sent
   back to their shard as duplicates.
3. `remove` (per shard): drop those (`exact_duplicate`), write the part and the rejects.

A 64-bit hash makes a false match (two different texts, one hash) a ~n²/2^65 event: about 3e-8 for
a billion documents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from curate.backend import resolve_backend
from curate.dedup.documents import key_shards, keyed_texts
from curate.dedup.exchange import Exchange
from curate.dedup.hashing import hash_strings
from curate.dedup.normalize import ExactNormalization, normalize_exact
from curate.dedup.phases import PhaseRunner
from curate.dedup.removal import removal_jobs, remove_duplicates, stage_counter
from curate.global_run import GlobalContext, GlobalResult
from curate.registry import register
from curate.stage import GlobalStage, StageConfig

REASON = "exact_duplicate"
HASH_SCHEMA = {"hash": "uint64", "key": "str"}
DROP_SCHEMA = {"key": "str"}


class DedupExactConfig(StageConfig):
    normalize: ExactNormalization = Field(
        "whitespace_lowercase",
        description="Text normalization before hashing: 'none' (byte-identical texts) or "
        "'whitespace_lowercase' (case and whitespace runs ignored).",
    )
    partitions: int | None = Field(
        None, ge=1, description="Hash partitions of the shuffle; default one per shard, at most 256."
    )


@dataclass(frozen=True)
class HashJob:
    shard: int
    shard_id: str
    part: Path
    normalize: ExactNormalization
    partitions: int
    hashes: Exchange


@dataclass(frozen=True)
class GroupJob:
    partition: int
    hashes: Exchange
    drops: Exchange
    backend: str


def _hash_shard(job: HashJob) -> int:
    frames = [
        pd.DataFrame({"hash": hash_strings(normalize_exact(texts, job.normalize).to_pylist()), "key": keys})
        for keys, texts in keyed_texts(job.part, job.shard)
    ]
    if not frames:
        return 0
    rows = pd.concat(frames, ignore_index=True)
    return job.hashes.send(job.shard_id, rows, rows["hash"].to_numpy() % np.uint64(job.partitions))


def _group_partition(job: GroupJob) -> dict:
    backend = resolve_backend(job.backend)
    rows = backend.from_pandas(job.hashes.receive(job.partition))
    rows = rows.sort_values(["hash", "key"], ignore_index=True)
    # Sorted by key within a hash, the first of each group is the one to keep.
    duplicate = rows.duplicated("hash", keep="first")
    groups = int(rows.loc[duplicate, "hash"].nunique())
    drops = backend.to_pandas(rows.loc[duplicate, ["key"]])
    if len(drops):
        job.drops.send(f"{job.partition:05d}", drops, key_shards(drops["key"]))
    return {"groups": groups, "duplicates": len(drops)}


@register
class DedupExact(GlobalStage):
    """Exact dedup: one document per distinct normalized text, the one with the smallest id."""

    name = "dedup_exact"
    Config = DedupExactConfig

    def run(self, ctx: GlobalContext) -> GlobalResult:
        started = time.perf_counter()
        phases = PhaseRunner(ctx, self.config.partitions)
        hashes = phases.exchange("hashes", HASH_SCHEMA)
        drops = phases.exchange("drops", DROP_SCHEMA)
        phases.map(
            _hash_shard,
            [
                HashJob(i, sid, path, self.config.normalize, phases.partitions, hashes)
                for i, (sid, path) in enumerate(ctx.parts)
            ],
            "hashes",
        )
        groups = phases.map(
            _group_partition,
            [GroupJob(p, hashes, drops, ctx.backend) for p in range(phases.partitions)],
            "groups",
        )
        removed = phases.map(
            remove_duplicates, removal_jobs(ctx, drops, REASON, with_cluster=False), "remove"
        )
        phases.close()
        counter = stage_counter(ctx.stage_id, self.name, REASON, removed, time.perf_counter() - started)
        details = {
            "groups": sum(g["groups"] for g in groups),
            "duplicates": sum(g["duplicates"] for g in groups),
            "partitions": phases.partitions,
            "seconds": phases.seconds,
        }
        return GlobalResult(counter=counter, details=details)
