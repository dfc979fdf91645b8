"""`dedup_fuzzy`: near-duplicate removal with MinHash LSH; keep the smallest id of each cluster.

Phases, each one Dask task per shard or per hash partition, rows moving through Parquet exchange files
so no task holds more than its share (the `curate.dedup` modules hold the details):

1. `signatures` (per shard): normalize, shingle, MinHash (numpy, or torch on a GPU: the same bits),
   band keys; (band, bucket, key) rows sent to partition bucket mod N.
2. `buckets` (per partition): documents sharing a band bucket become candidate pairs, each member
   with the group's anchors (its smallest keys), so pairs grow linearly with a group.
3. with `verify`: `shingles` (per shard) sends the shingle sets of the documents that other shards'
   pairs need; `verify` (per shard of a pair's first document) keeps pairs whose exact Jaccard
   similarity reaches `threshold`. Only candidates' texts are re-read and re-shingled: nothing is
   stored for documents that have no candidate.
4. `components`: connected components over the edges, Large-Star/Small-Star rounds until converged.
5. `remove` (per shard): every document gets `dup_cluster`, the smallest id of its component (its own
   id when it has no near-duplicate); all but that smallest one are dropped as `near_duplicate`.

Near-duplication is not transitive, and components follow chains: with verification off, a chain of
candidate pairs can link two documents that are not alike at all (A ~ B ~ C); verification cuts the
links that are not real pairs but keeps chains of real ones, which is the usual (MinHash-dedup) choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, ValidationInfo, field_validator, model_validator

from curate.backend import resolve_backend
from curate.dedup.components import ADJACENCY_SCHEMA, connected_components, send_edges
from curate.dedup.documents import key_rows, key_shards, keyed_texts, texts_at
from curate.dedup.exchange import Exchange
from curate.dedup.lsh import BUCKET_SCHEMA, band_keys, bucket_rows, candidate_pairs
from curate.dedup.minhash import Device, permutations, resolve_device, signatures
from curate.dedup.normalize import normalize_fuzzy
from curate.dedup.phases import PhaseRunner
from curate.dedup.removal import removal_jobs, remove_duplicates, stage_counter
from curate.dedup.shingles import ShingleKind, Shingles, jaccard, shingle
from curate.global_run import GlobalContext, GlobalResult
from curate.registry import register
from curate.stage import GlobalStage, StageConfig

REASON = "near_duplicate"
PAIR_SCHEMA = {"a": "str", "b": "str"}
NEED_SCHEMA = {"key": "str", "dest": "int64"}
SHINGLE_SCHEMA = {"key": "str", "shingle": "uint64"}
# Memory grows with the permutations: 4 bytes per document each, and the signing temporaries are
# CPU_BLOCK x permutations uint64 (16 MB at this bound; 10^6 permutations ran out of 6 GiB on one page).
MAX_PERMUTATIONS = 4096
# Values a preset sets unless the pipeline sets them itself.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"shingle": "word", "ngram": 5, "bands": 14, "rows": 8},
    "nemo": {"shingle": "char", "ngram": 24, "bands": 20, "rows": 13},
}


class DedupFuzzyConfig(StageConfig):
    preset: Literal["default", "nemo"] = Field(
        "default",
        description="'default': word 5-grams, 14 bands x 8 rows (112 permutations, threshold ~0.72); "
        "'nemo': NeMo Curator's 24-character shingles, 20 x 13. Keys set explicitly win over it.",
    )
    shingle: ShingleKind = Field("word", description="Shingle unit: 'word' or 'char' n-grams.")
    ngram: int = Field(5, ge=1, description="Shingle length in words or characters.")
    bands: int = Field(14, ge=1, description="LSH bands; permutations = bands x rows.")
    rows: int = Field(
        8, ge=1, description=f"Signature rows per band; bands x rows at most {MAX_PERMUTATIONS}."
    )
    seed: int = Field(1, description="Seed of the MinHash permutations (datasketch's default is 1).")
    verify: bool = Field(False, description="Check candidate pairs' exact Jaccard similarity before linking.")
    threshold: float = Field(
        0.8, gt=0, le=1, description="Jaccard similarity a verified pair must reach (with verify)."
    )
    anchors: int = Field(2, ge=1, description="Anchors per LSH bucket group that its members pair with.")
    device: Device = Field(
        "auto", description="MinHash on 'cpu' (numpy), 'cuda' (torch), or 'auto' (a GPU when present)."
    )
    partitions: int | None = Field(
        None, ge=1, description="Hash partitions of the shuffles; default one per shard, at most 256."
    )

    @field_validator("rows")
    @classmethod
    def _permutations_bounded(cls, rows: int, info: ValidationInfo) -> int:
        bands = info.data.get("bands")
        if bands is not None and bands * rows > MAX_PERMUTATIONS:
            raise ValueError(
                f"bands x rows = {bands} x {rows} = {bands * rows:,} permutations, more than "
                f"{MAX_PERMUTATIONS:,}; use e.g. 14 x 8 (the default) or 20 x 13 (preset: nemo)"
            )
        return rows

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        preset = data.get("preset", "default") if isinstance(data, dict) else None
        # An unknown preset is left for the field's own validation to report.
        return {**PRESETS[preset], **data} if preset in PRESETS else data


@dataclass(frozen=True)
class Shingling:
    """How texts become shingle sets; every phase that shingles uses this one."""

    kind: ShingleKind
    n: int

    def of(self, texts: pa.Array) -> Shingles:
        return shingle(normalize_fuzzy(texts), self.kind, self.n)


@dataclass(frozen=True)
class SignatureJob:
    shard: int
    shard_id: str
    part: Path
    shingling: Shingling
    bands: int
    rows: int
    seed: int
    device: Device
    partitions: int
    buckets: Exchange


def _signature_shard(job: SignatureJob) -> dict:
    device = resolve_device(job.device)
    perms = permutations(job.bands * job.rows, job.seed)
    frames, without_shingles = [], 0
    for keys, texts in keyed_texts(job.part, job.shard):
        shingles = job.shingling.of(texts)
        # A document without shingles has nothing to be similar by; it is never a candidate.
        has = shingles.counts > 0
        sigs = signatures(shingles, perms, device)[has]
        frames.append(bucket_rows(keys[has], band_keys(sigs, job.bands, job.rows)))
        without_shingles += int((~has).sum())
    if frames:
        rows = pd.concat(frames, ignore_index=True)
        job.buckets.send(job.shard_id, rows, (rows["bucket"].to_numpy() % np.uint64(job.partitions)))
    return {"without_shingles": without_shingles, "device": device}


@dataclass(frozen=True)
class BucketJob:
    partition: int
    buckets: Exchange
    anchors: int
    partitions: int
    pairs: Exchange | None  # with verify: pairs, at their first document's shard
    needs: Exchange | None  # with verify: which shard needs which document's shingles
    edges: Exchange | None  # without verify: straight to connected components
    backend: str


def _bucket_partition(job: BucketJob) -> int:
    """Candidate pairs of one bucket partition; returns the adjacency rows sent (without verify)."""
    backend = resolve_backend(job.backend)
    pairs = candidate_pairs(backend.from_pandas(job.buckets.receive(job.partition)), job.anchors, backend)
    sender = f"{job.partition:05d}"
    if not len(pairs):
        return 0
    if job.edges is not None:
        return send_edges(job.edges, sender, pairs["a"], pairs["b"], job.partitions)
    first_shard = key_shards(pairs["a"])
    job.pairs.send(sender, pairs, first_shard)
    needs = pd.DataFrame({"key": pairs["b"], "dest": first_shard}).drop_duplicates()
    job.needs.send(sender, needs, key_shards(needs["key"]))
    return 0


@dataclass(frozen=True)
class ShingleJob:
    shard: int
    shard_id: str
    part: Path
    shingling: Shingling
    needs: Exchange
    shingles: Exchange


def _send_shingles(job: ShingleJob) -> int:
    """Send the shingle sets of this shard's documents to the shards whose pairs need them."""
    needs = job.needs.receive(job.shard).drop_duplicates(ignore_index=True)
    if not len(needs):
        return 0
    wanted = needs["key"].drop_duplicates()
    sets = dict(
        zip(wanted, job.shingling.of(texts_at(job.part, key_rows(wanted))).per_document(), strict=True)
    )
    per_need = [sets[k] for k in needs["key"]]
    lengths = [len(s) for s in per_need]
    frame = pd.DataFrame(
        {"key": np.repeat(needs["key"].to_numpy(), lengths), "shingle": np.concatenate(per_need)}
    )
    return job.shingles.send(job.shard_id, frame, np.repeat(needs["dest"].to_numpy(), lengths))


@dataclass(frozen=True)
class VerifyJob:
    shard: int
    shard_id: str
    part: Path
    shingling: Shingling
    threshold: float
    partitions: int
    pairs: Exchange
    shingles: Exchange
    edges: Exchange


def _shingle_sets(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """{key: its shingles} from (key, shingle) rows that list each key's set contiguously."""
    keys = rows["key"].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], int)
    values = np.split(rows["shingle"].to_numpy(), starts[1:])
    return dict(zip(keys[starts], values, strict=True))


def _verify_shard(job: VerifyJob) -> dict:
    """Exact Jaccard of the candidate pairs whose first document lives in this shard."""
    pairs = job.pairs.receive(job.shard).drop_duplicates(ignore_index=True)
    if not len(pairs):
        return {"candidates": 0, "verified": 0, "adjacency_rows": 0}
    own = pairs["a"].drop_duplicates()
    own_sets = dict(zip(own, job.shingling.of(texts_at(job.part, key_rows(own))).per_document(), strict=True))
    other_sets = _shingle_sets(job.shingles.receive(job.shard))
    similar = np.array(
        [
            jaccard(own_sets[a], other_sets[b]) >= job.threshold
            for a, b in zip(pairs["a"], pairs["b"], strict=True)
        ]
    )
    verified = pairs[similar]
    sent = send_edges(job.edges, job.shard_id, verified["a"], verified["b"], job.partitions)
    return {"candidates": len(pairs), "verified": len(verified), "adjacency_rows": sent}


@register
class DedupFuzzy(GlobalStage):
    """Fuzzy dedup: MinHash LSH candidates, optional Jaccard check, components; smallest id kept."""

    name = "dedup_fuzzy"
    Config = DedupFuzzyConfig

    def run(self, ctx: GlobalContext) -> GlobalResult:
        started = time.perf_counter()
        cfg = self.config
        phases = PhaseRunner(ctx, cfg.partitions)
        shingling = Shingling(cfg.shingle, cfg.ngram)
        buckets = phases.exchange("buckets", BUCKET_SCHEMA)
        edges = phases.exchange("edges", ADJACENCY_SCHEMA)
        signature_jobs = [
            SignatureJob(
                i, sid, path, shingling, cfg.bands, cfg.rows, cfg.seed, cfg.device, phases.partitions, buckets
            )
            for i, (sid, path) in enumerate(ctx.parts)
        ]
        signed = phases.map(_signature_shard, signature_jobs, "signatures")
        if cfg.verify:
            pairs = self._verified_edges(ctx, phases, shingling, buckets, edges)
        else:
            jobs = [
                BucketJob(p, buckets, cfg.anchors, phases.partitions, None, None, edges, ctx.backend)
                for p in range(phases.partitions)
            ]
            rows = sum(phases.map(_bucket_partition, jobs, "buckets"))
            pairs = {"verified_pairs": None, "adjacency_rows": rows}
        labels, graph = connected_components(phases, edges, pairs.pop("adjacency_rows"))
        jobs = removal_jobs(ctx, labels, REASON, with_cluster=True)
        removed = phases.map(remove_duplicates, jobs, "remove")
        phases.close()
        counter = stage_counter(ctx.stage_id, self.name, REASON, removed, time.perf_counter() - started)
        details = {
            "permutations": cfg.bands * cfg.rows,
            "devices": sorted({s["device"] for s in signed}),
            "documents_without_shingles": sum(s["without_shingles"] for s in signed),
            # Without verification every distinct candidate pair is an edge of the graph.
            "candidate_pairs": pairs.get("candidate_pairs", graph["edges"]),
            "verified_pairs": pairs["verified_pairs"],
            "components": graph["components"],
            "largest_component": graph["largest_component"],
            "documents_in_components": graph["documents_in_components"],
            "documents_removed": sum(counter.dropped.values()),
            "component_rounds": graph["rounds"],
            "partitions": {"shuffle": phases.partitions, "components": graph["partitions"]},
            "seconds": phases.seconds,
        }
        return GlobalResult(counter=counter, details=details)

    def _verified_edges(
        self,
        ctx: GlobalContext,
        phases: PhaseRunner,
        shingling: Shingling,
        buckets: Exchange,
        edges: Exchange,
    ) -> dict:
        """Candidate pairs, then their exact Jaccard check; the pairs that pass go to `edges`."""
        cfg = self.config
        pairs = phases.exchange("pairs", PAIR_SCHEMA)
        needs = phases.exchange("needs", NEED_SCHEMA)
        shingles = phases.exchange("shingles", SHINGLE_SCHEMA)
        jobs = [
            BucketJob(p, buckets, cfg.anchors, phases.partitions, pairs, needs, None, ctx.backend)
            for p in range(phases.partitions)
        ]
        phases.map(_bucket_partition, jobs, "buckets")
        shards = list(enumerate(ctx.parts))
        jobs = [ShingleJob(i, sid, path, shingling, needs, shingles) for i, (sid, path) in shards]
        phases.map(_send_shingles, jobs, "shingles")
        jobs = [
            VerifyJob(i, sid, path, shingling, cfg.threshold, phases.partitions, pairs, shingles, edges)
            for i, (sid, path) in shards
        ]
        checked = phases.map(_verify_shard, jobs, "verify")
        return {
            "candidate_pairs": sum(c["candidates"] for c in checked),
            "verified_pairs": sum(c["verified"] for c in checked),
            "adjacency_rows": sum(c["adjacency_rows"] for c in checked),
        }
