"""dedup_fuzzy: recall and precision on planted near-duplicates, datasketch-identical MinHash, the GPU
kernel's arithmetic, distributed components, and the same output for any worker count."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from datasketch import MinHash
from rich.console import Console

from curate import cli_dedup
from curate.config import load_pipeline
from curate.dedup import components
from curate.dedup.components import send_edges
from curate.dedup.exchange import exchange
from curate.dedup.minhash import (
    MERSENNE_61,
    Permutations,
    permutations,
    resolve_device,
    signatures,
    signatures_numba,
    signatures_numpy,
)
from curate.dedup.minhash_torch import _chunk_bounds, signatures_torch, signatures_triton
from curate.dedup.normalize import normalize_fuzzy
from curate.dedup.phases import PhaseRunner
from curate.dedup.shingles import Shingles
from curate.engine import run_pipeline
from curate.stages.dedup_fuzzy import DedupFuzzy, DedupFuzzyConfig, Shingling
from tests.curate.dedup_corpus import InlineContext, planted_corpus, read_parts, write_shards

HIGH = (0.95, 0.9, 0.85)  # variants of one original: every pair in such a group has J >= ~0.8
LOW = (0.45,)  # an original and one rewrite far below any threshold


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus(seed=7, groups={HIGH: 60, LOW: 40, (0.3,): 20}, singles=150)


def run_inline(corpus, tmp_path, **config) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run the stage without Dask; return (kept, rejected, details)."""
    ctx = InlineContext(
        parts=write_shards(corpus.docs, tmp_path / "in", shards=4),
        work_dir=tmp_path / "work",
        rejects_dir=tmp_path / "rejects",
    )
    result = DedupFuzzy(DedupFuzzyConfig(**config)).run(ctx)
    kept, rejected = read_parts(ctx.work_dir), read_parts(ctx.rejects_dir)
    counter = result.counter
    assert counter.docs_in == len(corpus.docs) == counter.kept + sum(counter.dropped.values())
    assert (counter.kept, counter.dropped.get("near_duplicate", 0)) == (len(kept), len(rejected))
    assert not (ctx.work_dir / "scratch").exists(), "the shuffle files are removed when the stage is done"
    return kept, rejected, result.details


def clusters(kept: pd.DataFrame, rejected: pd.DataFrame) -> pd.Series:
    everything = pd.concat([kept, rejected], ignore_index=True)
    return everything.set_index("id")["dup_cluster"]


@pytest.mark.parametrize("verify", [True, False])
def test_finds_near_duplicates_and_keeps_the_smallest_id(corpus, tmp_path, verify):
    kept, rejected, details = run_inline(corpus, tmp_path, verify=verify)
    cluster = clusters(kept, rejected)
    pairs = corpus.pairs()
    similar = pairs[pairs["jaccard"] >= 0.85]
    recall = (cluster[similar["a"]].to_numpy() == cluster[similar["b"]].to_numpy()).mean()
    assert len(similar) > 200 and recall >= 0.95, f"recall {recall:.3f} on {len(similar)} pairs"
    # Every cluster keeps exactly one document: the one with the smallest id, which names the cluster.
    assert kept["dup_cluster"].is_unique
    for name, members in cluster.groupby(cluster).groups.items():
        assert name == min(members)
    assert set(kept["id"]) == set(cluster.groupby(cluster).groups)
    assert (rejected["drop_reason"] == "near_duplicate").all()
    assert details["components"] == cluster.duplicated(keep=False).groupby(cluster).any().sum()
    assert details["documents_removed"] == len(rejected)
    assert set(details["seconds"]) >= {"signatures", "buckets", "components", "remove"}
    if verify:
        assert 0 < details["verified_pairs"] < details["candidate_pairs"], "verification rejects some"
        dissimilar = pairs[pairs["jaccard"] < 0.5]
        assert len(dissimilar) >= 60
        assert (cluster[dissimilar["a"]].to_numpy() != cluster[dissimilar["b"]].to_numpy()).all()


def test_normalization_folds_case_punctuation_digits_and_spaces():
    texts = pa.array(["Price: $12.99 -- TODAY!", "  Hello,\u00a0WORLD\n\n", None, "北京欢迎你 ok"])
    assert normalize_fuzzy(texts).to_pylist() == ["price 0 0 today", "hello world", "", "北 京 欢 迎 你 ok"]


def test_short_texts_are_one_shingle_and_empty_texts_none():
    words = Shingling("word", 5).of(pa.array(["a b c d e f", "a b", "", "x"]))
    assert words.counts.tolist() == [2, 1, 0, 1]
    again = Shingling("word", 5).of(pa.array(["A, b!", "b a"]))
    assert again.hashes[0] == words.hashes[2], "the same short text, the same shingle"
    assert again.hashes[1] != again.hashes[0], "word order matters"
    assert Shingling("char", 3).of(pa.array(["abcd", "ab"])).counts.tolist() == [2, 1]


def test_signatures_and_estimates_match_datasketch(corpus):
    pairs = corpus.pairs().sample(200, random_state=1)
    texts = corpus.docs.set_index("id")["text"]
    shingles = Shingling("word", 5).of(pa.array(texts[pairs["a"]].tolist() + texts[pairs["b"]].tolist()))
    ours = signatures_numpy(shingles, permutations(112, 1))
    theirs = []
    for doc in shingles.per_document():
        sketch = MinHash(num_perm=112, seed=1, scheme="legacy", hashfunc=lambda h: h & 0xFFFFFFFF)
        sketch.update_batch(doc.tolist())
        theirs.append(sketch.hashvalues)
    assert np.array_equal(ours, np.array(theirs, dtype=np.uint64))
    half = len(pairs)
    ours_estimate = (ours[:half] == ours[half:]).mean(axis=1)
    theirs_estimate = np.array(
        [
            MinHash(hashvalues=a, scheme="legacy").jaccard(MinHash(hashvalues=b, scheme="legacy"))
            for a, b in zip(theirs[:half], theirs[half:], strict=True)
        ]
    )
    assert np.abs(ours_estimate - theirs_estimate).mean() < 0.02
    # And both estimate the true similarity (112 permutations: standard error about 0.04).
    assert np.abs(ours_estimate - pairs["jaccard"].to_numpy()).mean() < 0.05


def random_shingles(rng, counts) -> Shingles:
    counts = np.asarray(counts, dtype=np.int64)
    hashes = rng.integers(0, 1 << 64, size=int(counts.sum()), dtype=np.uint64, endpoint=False)
    hashes[:4] = [0, 0xFFFFFFFF, 0xFFFFFFFF_FFFFFFFF, 1 << 32]  # the edges of the 32-bit input range
    return Shingles(hashes=hashes, counts=counts)


@pytest.mark.parametrize("num_perm", [112, 260])
def test_gpu_kernel_gives_the_cpu_signatures(num_perm):
    """The torch kernel (run here on the CPU device) computes the numpy path's bits, with documents
    of no shingles and documents spanning several blocks."""
    shingles = random_shingles(np.random.default_rng(num_perm), [5, 0, 1, 700, 33, 0, 2000, 1])
    perms = permutations(num_perm, 42)
    expected = signatures_numpy(shingles, perms, block=64)
    assert np.array_equal(signatures_numpy(shingles, perms), expected)
    assert np.array_equal(signatures_torch(shingles, perms, "cpu", block=100), expected)
    assert (expected[[1, 5]] == 0xFFFFFFFF).all(), "no shingles: datasketch's empty signature"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_signatures_match_cpu():
    shingles = random_shingles(np.random.default_rng(0), [300] * 500 + [5, 0, 1, 700, 33, 0, 2000, 1])
    perms = permutations(112, 1)
    expected = signatures_numpy(shingles, perms)
    assert resolve_device("auto") == "cuda"
    assert np.array_equal(signatures_torch(shingles, perms, "cuda"), expected)
    # Many chunks through the two pinned buffers, and documents longer than a chunk.
    assert np.array_equal(signatures_triton(shingles, perms, "cuda", chunk=1000), expected)


def test_chunks_cover_every_document_once():
    counts = np.array([5, 0, 1, 700, 33, 0, 2000, 1, 0])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    bounds = _chunk_bounds(offsets, 100)
    assert bounds[0] == 0 and bounds[-1] == len(counts) and (np.diff(bounds) > 0).all()
    sizes = np.diff(offsets[bounds])
    # A chunk holds at most 100 shingles, unless it is one document longer than that.
    assert ((sizes <= 100) | (np.diff(bounds) == 1)).all()
    assert list(bounds) == [0, 3, 4, 6, 7, 9]


def datasketch_formula(perms: Permutations, h: int) -> np.ndarray:
    """datasketch's legacy permutation of one 32-bit input, in Python integers."""
    values = [
        ((int(a) * h + int(b)) % (1 << 64)) % MERSENNE_61 & 0xFFFFFFFF
        for a, b in zip(perms.a, perms.b, strict=True)
    ]
    return np.array(values, dtype=np.uint32)


def test_every_kernel_computes_the_formula_at_the_reduction_edges():
    """Permutations (h = 8) whose x = a * h + b covers every edge of the reduction mod p = 2^61 - 1:
    x >> 61 from 0 to 7, and x & p at and around p - (x >> 61), where subtracting p once flips."""
    p = MERSENNE_61
    xs = [
        k * (1 << 61) + low
        for k in range(8)
        for low in sorted({p - k - 1, p - k, p - k + 1, p, 0, 1, 1 << 31, (1 << 32) - 1, 1 << 32})
        if low <= p
    ]
    # a < 2^61 and b < 2^61, as datasketch draws them.
    perms = Permutations(
        a=np.array([x // 8 for x in xs], dtype=np.uint64),
        b=np.array([x % 8 for x in xs], dtype=np.uint64),
    )
    # Only the 32 low bits of a shingle hash are an input; the second document takes a minimum of two.
    shingles = Shingles(
        hashes=np.array([(123 << 32) | 8, 8, 0xFFFFFFFF], dtype=np.uint64), counts=np.array([1, 2])
    )
    expected = np.stack(
        [
            datasketch_formula(perms, 8),
            np.minimum(datasketch_formula(perms, 8), datasketch_formula(perms, 0xFFFFFFFF)),
        ]
    )
    kernels = {
        "numpy": signatures_numpy(shingles, perms),
        "numba": signatures_numba(shingles, perms),
        "torch eager": signatures_torch(shingles, perms, "cpu"),
    }
    if torch.cuda.is_available():
        kernels["cuda"] = signatures_torch(shingles, perms, "cuda")
    for name, got in kernels.items():
        assert np.array_equal(got, expected), name


@pytest.mark.parametrize("num_perm", [112, 260])
def test_cpu_path_gives_the_reference_signatures(num_perm):
    """The compiled CPU loop (what `signatures` runs on CPU) against the numpy reference, documents
    without shingles and long ones included."""
    shingles = random_shingles(np.random.default_rng(num_perm + 1), [5, 0, 1, 700, 33, 0, 2000, 1])
    perms = permutations(num_perm, 7)
    expected = signatures_numpy(shingles, perms)
    assert np.array_equal(signatures(shingles, perms, "cpu"), expected)
    assert np.array_equal(signatures_numba(shingles, perms), expected)
    empty = Shingles(hashes=np.zeros(0, dtype=np.uint64), counts=np.zeros(0, dtype=np.int64))
    assert signatures(empty, perms, "cpu").shape == (0, num_perm)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_device_cuda_without_a_gpu_is_an_error_not_a_fallback():
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="no GPU"):
        resolve_device("cuda")


def test_components_match_union_find(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    nodes = [f"n{i:04d}\0{i % 5:06d}{i:010d}" for i in rng.permutation(600)]
    edges = {tuple(sorted(rng.choice(nodes, 2, replace=False))) for _ in range(450)}
    # A long path: the worst case for label propagation, a few rounds here.
    edges |= {(nodes[i], nodes[i + 1]) for i in range(100, 300)}
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    ctx = InlineContext(parts=[(f"s{i}", tmp_path) for i in range(5)], work_dir=tmp_path / "work")
    phases = PhaseRunner(ctx, partitions=5)
    start = phases.exchange("edges", {"node": "str", "nbr": "str"})
    hi, lo = pd.Series([b for a, b in edges], dtype="str"), pd.Series([a for a, b in edges], dtype="str")
    rows = send_edges(start, "test", hi, lo, phases.partitions)
    # Later rounds are sized by the graph: 4 partitions here, after the 5 the edges arrived in.
    monkeypatch.setattr(components, "ADJACENCY_ROWS_PER_TASK", -(-rows // 4))
    labels, stats = components.connected_components(phases, start, rows)
    got = pd.concat([labels.receive(shard) for shard in range(5)], ignore_index=True)
    expected = {n: find(n).split("\0")[0] for n in nodes if find(n) != n}
    assert dict(zip(got["key"], got["cluster"], strict=True)) == expected
    roots = {find(n) for a, b in edges for n in (a, b)}
    assert stats["components"] == len(roots)
    assert stats["rounds"] >= 2 and stats["partitions"] == 4


def test_exchange_delivers_rows_in_sender_order_typed_even_when_empty(tmp_path):
    rows = exchange(tmp_path, "x", {"key": "str", "n": "int64"})
    assert rows.send("b", pd.DataFrame({"key": ["p", "q", "r"], "n": [1, 2, 3]}), np.array([1, 0, 1])) == 3
    assert rows.send("a", pd.DataFrame({"key": ["s"], "n": [4]}), np.array([1])) == 1
    assert rows.send("c", pd.DataFrame({"key": [], "n": []}), np.array([], dtype=int)) == 0
    assert rows.receive(1)["key"].tolist() == ["s", "p", "r"]
    nothing = rows.receive(2)
    assert nothing.empty and nothing.dtypes.astype(str).tolist() == ["str", "int64"]


def test_presets_fill_what_the_pipeline_leaves_open():
    nemo = DedupFuzzyConfig(preset="nemo")
    assert (nemo.shingle, nemo.ngram, nemo.bands, nemo.rows) == ("char", 24, 20, 13)
    assert DedupFuzzyConfig(preset="nemo", bands=10).bands == 10
    default = DedupFuzzyConfig()
    assert (default.shingle, default.ngram, default.bands * default.rows) == ("word", 5, 112)


def test_permutations_beyond_the_bound_are_a_config_error():
    # 1000 x 1000: signing one 276-shingle document ran out of 6 GiB (a worker dies at its memory limit).
    with pytest.raises(
        ValueError, match=r"bands x rows = 1000 x 1000 = 1,000,000 permutations, more than 4,096"
    ):
        DedupFuzzyConfig(bands=1000, rows=1000)
    with pytest.raises(ValueError, match="20 x 300 = 6,000 permutations"):
        DedupFuzzyConfig(preset="nemo", rows=300)
    assert DedupFuzzyConfig(bands=64, rows=64).bands == 64


def test_char_shingles_find_near_duplicates(tmp_path):
    small = planted_corpus(seed=11, groups={(0.95,): 10}, singles=10)
    kept, rejected, details = run_inline(small, tmp_path, preset="nemo")
    assert details["permutations"] == 260
    assert len(rejected) >= 9 and set(rejected["group"]).issubset(range(10))


def engine_pipeline(parquet_glob: str, out, workers: int) -> dict:
    return {
        "input": {"paths": [parquet_glob]},
        "output": {"dir": str(out), "rejects": True},
        "executor": {"workers": workers, "dashboard_address": ":0"},
        "stages": [
            {"stage": "read_parquet"},
            {"stage": "dedup_exact"},
            {"stage": "dedup_fuzzy", "verify": True},
            {"stage": "write_parquet"},
        ],
    }


def test_same_kept_documents_for_any_worker_count_and_rerun(write_pipeline, tmp_path):
    small = planted_corpus(seed=5, groups={HIGH: 15, LOW: 10}, singles=40)
    docs = pd.concat([small.docs, small.docs.iloc[:5].assign(id=lambda d: d["id"] + "-copy")])
    write_shards(docs, tmp_path / "in", shards=3)
    glob = str(tmp_path / "in" / "*.parquet")
    for name, workers in [("one", 1), ("two", 2)]:
        config = engine_pipeline(glob, tmp_path / name, workers)
        run_pipeline(load_pipeline(write_pipeline(config, f"{name}.yaml")))
    # The rerun goes through `curate dedup`, which builds the same pipeline.
    parser = argparse.ArgumentParser()
    cli_dedup.add_command(parser.add_subparsers())
    args = parser.parse_args(["dedup", glob, "--out", str(tmp_path / "again"), "--verify", "--workers", "2"])
    assert args.func(args, Console(quiet=True)) == 0
    outputs = {
        name: {p.name: p.read_bytes() for p in sorted((tmp_path / name / "dataset").glob("*.parquet"))}
        for name in ("one", "two", "again")
    }
    assert outputs["one"] and outputs["one"] == outputs["two"] == outputs["again"]
    stats = json.loads((tmp_path / "two" / "stats.json").read_text())
    exact, fuzzy = stats["stages"][1], stats["stages"][2]
    assert exact["dropped"] == {"exact_duplicate": 5}
    assert fuzzy["in"] == exact["kept"] and fuzzy["dropped"]["near_duplicate"] >= 40
    kept = pd.read_parquet(tmp_path / "two" / "dataset")
    assert len(kept) == stats["stages"][-1]["kept"]
    assert docs.groupby("group")["id"].min().isin(kept["id"]).all(), "each group keeps its smallest id"
