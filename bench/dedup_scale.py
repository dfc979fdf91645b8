"""Dedup at scale: exact + fuzzy dedup of 1,000,000 generated documents through the engine, and MinHash
signature throughput next to datasketch's on a subset, in the same run.

The corpus is generated as it is written (one Parquet shard of 25,000 documents at a time), so memory
never holds it: 100-300 words per document drawn from a 50,000-word Zipf vocabulary, with planted exact
copies (3%) and near-duplicates (10%: a copy of an earlier document, possibly from an earlier shard,
with 1-3% of its words replaced, a word 5-gram Jaccard similarity of about 0.73-0.9). The dedup run is
what `curate dedup` runs (`read_parquet → dedup_exact → dedup_fuzzy → write_parquet`, the pipeline
`curate.cli_dedup` builds) on a LocalCluster. Printed: wall seconds per phase (from stats.json),
documents removed against those planted, and the peak resident memory of this process and all its
children (Dask scheduler, nannies, workers), sampled every 0.2 s with psutil, in sum and for the
largest single process.

Signature throughput: ours (numpy, `curate.dedup.minhash`) and datasketch's `MinHash.bulk` with
`scheme="legacy"`, fed the same 32-bit shingle hashes (so the signatures are checked equal, bit for
bit), then end to end from text: ours (normalize, shingle, MinHash) against datasketch's usual use
(Python word 5-grams, its default SHA-1 hash). One process, one core, the same documents.

    python bench/dedup_scale.py                                   # 1,000,000 documents, 2 workers
    python bench/dedup_scale.py --docs 100000 --verify --json runs/bench/dedup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

VOCABULARY = 50_000
POOL = 20_000  # recent documents that near-duplicates and copies are drawn from
EXACT_RATE, NEAR_RATE = 0.03, 0.10


# ------------------------------------------------------------------------------------------- corpus


def vocabulary(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, size=k)) for k in rng.integers(2, 11, size=VOCABULARY * 2)}
    return np.array(sorted(words)[:VOCABULARY], dtype=object)


def generate(folder: Path, docs: int, per_shard: int, seed: int) -> dict:
    """Write the corpus shard by shard; return what was planted."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    weights /= weights.sum()
    pool: list[np.ndarray] = []
    planted = {"exact": 0, "near": 0}
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for shard in range((docs + per_shard - 1) // per_shard):
        n = min(per_shard, docs - written)
        lengths = rng.integers(100, 301, size=n)
        fresh = np.split(rng.choice(VOCABULARY, size=int(lengths.sum()), p=weights), np.cumsum(lengths)[:-1])
        kinds = rng.random(n)
        texts = []
        for i in range(n):
            words = fresh[i]
            if pool and kinds[i] < EXACT_RATE:
                words = pool[rng.integers(len(pool))]
                planted["exact"] += 1
            elif pool and kinds[i] < EXACT_RATE + NEAR_RATE:
                words = pool[rng.integers(len(pool))].copy()
                edits = max(1, int(len(words) * rng.uniform(0.01, 0.03)))
                words[rng.choice(len(words), size=edits, replace=False)] = rng.integers(
                    VOCABULARY, size=edits
                )
                planted["near"] += 1
            texts.append(" ".join(vocab[words]))
            if len(pool) < POOL:
                pool.append(words)
            else:
                pool[rng.integers(POOL)] = words
        ids = [f"doc-{shard:04d}-{i:06d}" for i in range(n)]
        pq.write_table(pa.table({"id": ids, "text": texts}), folder / f"shard-{shard:04d}.parquet")
        written += n
        print(f"\rgenerated {written:,} / {docs:,} documents", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return planted


# ------------------------------------------------------------------------------------------- memory


class PeakMemory:
    """Samples the RSS of this process and all its descendants; keeps the peaks."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.peak_total = 0
        self.peak_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        sizes = []
        for proc in [me, *me.children(recursive=True)]:
            try:
                sizes.append(proc.memory_info().rss)
            except self._psutil.Error:
                continue  # a process that exited between listing and reading
        self.peak_total = max(self.peak_total, sum(sizes))
        self.peak_process = max(self.peak_process, max(sizes))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------- throughput


def signature_throughput(part: Path, subset: int) -> dict:
    """Docs/s of our signatures and datasketch's on the same documents; asserts identical signatures."""
    from datasketch import MinHash

    from curate.dedup.minhash import permutations, signatures
    from curate.dedup.normalize import normalize_fuzzy
    from curate.stages.dedup_fuzzy import Shingling

    texts = pq.read_table(part, columns=["text"]).column("text").slice(0, subset).combine_chunks()
    shingling = Shingling("word", 5)
    perms = permutations(112, 1)
    rows = {}
    signatures(shingling.of(texts.slice(0, 10)), perms, "cpu")  # compile the CPU kernel outside the timing

    started = time.perf_counter()
    shingles = shingling.of(texts)
    ours = signatures(shingles, perms, "cpu")
    rows["ours, from text"] = time.perf_counter() - started
    started = time.perf_counter()
    signatures(shingles, perms, "cpu")
    rows["ours, from shingle hashes"] = time.perf_counter() - started

    inputs = [doc.tolist() for doc in np.split(shingles.hashes, np.cumsum(shingles.counts)[:-1])]
    started = time.perf_counter()
    theirs = MinHash.bulk(inputs, num_perm=112, seed=1, scheme="legacy", hashfunc=lambda h: h & 0xFFFFFFFF)
    rows["datasketch, from shingle hashes"] = time.perf_counter() - started
    if not np.array_equal(ours, np.array([m.hashvalues for m in theirs], dtype=np.uint32)):
        raise AssertionError("signatures differ from datasketch's on the same shingle hashes")

    started = time.perf_counter()
    words = [t.split() for t in normalize_fuzzy(texts).to_pylist()]
    grams = [[" ".join(w[i : i + 5]).encode() for i in range(max(len(w) - 4, 1))] for w in words]
    MinHash.bulk(grams, num_perm=112, seed=1, scheme="legacy")
    rows["datasketch, from text (SHA-1 of 5-gram strings)"] = time.perf_counter() - started
    return {name: {"seconds": round(s, 3), "docs_per_s": round(subset / s, 1)} for name, s in rows.items()}


# ------------------------------------------------------------------------------------------------ run


def run_dedup(input_glob: str, out: Path, workers: int, verify: bool) -> tuple[dict, float]:
    from rich.console import Console

    from curate.cli_dedup import pipeline_for
    from curate.config import load_pipeline
    from curate.engine import run_pipeline

    args = argparse.Namespace(
        input=input_glob, out=str(out), exact=True, fuzzy=True, verify=verify, workers=workers
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dedup.yaml"
    path.write_text(yaml.safe_dump(pipeline_for(args), sort_keys=False))
    started = time.perf_counter()
    run_pipeline(load_pipeline(path), console=Console(stderr=True, width=140))
    return json.loads((out / "stats.json").read_text()), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="documents to generate")
    parser.add_argument("--per-shard", type=int, default=25_000, help="documents per Parquet shard")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--verify", action="store_true", help="dedup_fuzzy with Jaccard verification")
    parser.add_argument("--subset", type=int, default=5000, help="documents for the throughput comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep corpus and outputs here (default: a temp dir, removed)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    try:
        started = time.perf_counter()
        planted = generate(workdir / "corpus", args.docs, args.per_shard, args.seed)
        generation = time.perf_counter() - started
        first_shard = sorted((workdir / "corpus").glob("*.parquet"))[0]
        throughput = signature_throughput(first_shard, args.subset)
        with PeakMemory() as memory:
            stats, wall = run_dedup(
                str(workdir / "corpus" / "*.parquet"), workdir / "out", args.workers, args.verify
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    stages = {s["name"]: s for s in stats["stages"]}
    exact, fuzzy = stats["global_stages"]["dedup_exact"], stats["global_stages"]["dedup_fuzzy"]
    partition_wall = wall - sum(exact["seconds"].values()) - sum(fuzzy["seconds"].values())
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "docs": args.docs,
        "shards": stats["shards"],
        "workers": args.workers,
        "verify": args.verify,
        "generation_seconds": round(generation, 1),
        "dedup_wall_seconds": round(wall, 1),
        "docs_per_second": round(args.docs / wall, 1),
        "phase_seconds": {
            "read_parquet + write_parquet segments (rest of the wall)": round(partition_wall, 1),
            **{f"dedup_exact · {k}": v for k, v in exact["seconds"].items()},
            **{f"dedup_fuzzy · {k}": v for k, v in fuzzy["seconds"].items()},
        },
        "peak_rss_gb": {
            "client + scheduler + workers": round(memory.peak_total / 2**30, 2),
            "largest process": round(memory.peak_process / 2**30, 2),
        },
        "planted": planted,
        "removed": {
            "exact_duplicate": stages["dedup_exact"]["dropped"].get("exact_duplicate", 0),
            "near_duplicate": stages["dedup_fuzzy"]["dropped"].get("near_duplicate", 0),
        },
        "fuzzy": {k: v for k, v in fuzzy.items() if k != "seconds"},
        "signature_throughput": throughput,
    }
    ours = throughput["ours, from shingle hashes"]["docs_per_s"]
    theirs = throughput["datasketch, from shingle hashes"]["docs_per_s"]
    result["signature_speedup_vs_datasketch"] = {
        "from shingle hashes": round(ours / theirs, 1),
        "from text": round(
            throughput["ours, from text"]["docs_per_s"]
            / throughput["datasketch, from text (SHA-1 of 5-gram strings)"]["docs_per_s"],
            1,
        ),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
