"""MinHash signatures per second (issue #5): curate's CPU path against datasketch's `MinHash.bulk`,
per core, in the same run; on a machine with a CUDA GPU, the GPU path too, checked bit-equal to the CPU.

Input: `--docs` documents generated as bench/dedup_scale.py generates them (100-300 words from a
50,000-word Zipf vocabulary), shingled as dedup_fuzzy shingles them (normalized word 5-grams hashed to
64 bits). Every side gets the same shingle hashes and the same 112 permutations (seed 1); datasketch
runs `scheme="legacy"` with the low 32 bits of each hash as its input, so the signatures of all sides
are compared bit for bit, and the run fails if any differ.

CPU sides, one thread each, best of `--repeat` by CPU seconds of this process (`time.process_time`, so
other load on a shared machine inflates wall time, not the figure): curate's CPU path
(`minhash.signatures_numba`, compiled on a warm-up call that is timed apart), the numpy reference
(`signatures_numpy`), and datasketch's `MinHash.bulk` on per-document lists of the hashes (building
those lists is not timed). docs/s per core = documents / CPU seconds.

GPU (when torch sees one): `--gpu-docs` documents (the corpus repeated), signatures from numpy hashes in
to numpy signatures out (`minhash_torch.signatures_torch`: pinned chunked copies overlapped with the
Triton kernel; wall seconds after a synchronize; with torch's default host threads gathering the hashes
into pinned buffers, and with one), the kernel alone (CUDA events, inputs already on the GPU) for a few tile shapes, and the
eager torch kernel for comparison. Speed-up = GPU docs/s / curate's CPU docs/s on one core of the same
machine (measured on the same documents in the same run). Each figure is the best of `--repeat`.

    python bench/minhash_throughput.py                                  # 5,000 documents
    python bench/minhash_throughput.py --json runs/bench/minhash.json
    python bench/minhash_throughput.py --gpu-docs 400000 --json $OUT/minhash.json   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from curate.dedup.minhash import Permutations, permutations, signatures_numba, signatures_numpy  # noqa: E402
from curate.dedup.normalize import normalize_fuzzy  # noqa: E402
from curate.dedup.shingles import Shingles, shingle  # noqa: E402

NUM_PERM, SEED = 112, 1
# Triton tiles tried on a GPU: (shingles, permutations) per program step; the first is the default.
GPU_TILES = [(32, 16), (16, 16), (64, 16), (128, 16), (32, 32)]


def corpus_shingles(docs: int, seed: int) -> Shingles:
    """Word 5-gram shingle hashes of `docs` generated documents (bench/dedup_scale.py's generator)."""
    from dedup_scale import generate

    with tempfile.TemporaryDirectory(prefix="minhash-bench-") as folder:
        generate(Path(folder), docs, docs, seed)
        texts = pq.read_table(Path(folder) / "shard-0000.parquet", columns=["text"]).column("text")
    return shingle(normalize_fuzzy(texts.combine_chunks()), "word", 5)


def best_cpu(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(best CPU seconds, wall seconds of that run, its result)."""
    best = (float("inf"), 0.0, None)
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        result = run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if cpu < best[0]:
            best = (cpu, wall, result)
    return best


def cpu_sides(shingles: Shingles, perms: Permutations, repeat: int) -> dict:
    from datasketch import MinHash

    n = len(shingles.counts)
    rows: dict[str, dict] = {}

    started = time.perf_counter()
    signatures_numba(Shingles(shingles.hashes[:1], np.ones(1, dtype=np.int64)), perms)
    compile_s = time.perf_counter() - started

    def row(cpu: float, wall: float) -> dict:
        return {"cpu_s": round(cpu, 4), "wall_s": round(wall, 4), "docs_per_s_per_core": round(n / cpu, 1)}

    cpu, wall, ours = best_cpu(lambda: signatures_numba(shingles, perms), repeat)
    rows["curate CPU path (numba)"] = row(cpu, wall) | {"first_call_compile_s": round(compile_s, 2)}
    cpu, wall, reference = best_cpu(lambda: signatures_numpy(shingles, perms), max(1, repeat // 2))
    rows["curate numpy reference"] = row(cpu, wall)

    inputs = [doc.tolist() for doc in np.split(shingles.hashes, np.cumsum(shingles.counts)[:-1])]
    cpu, wall, sketches = best_cpu(
        lambda: MinHash.bulk(
            inputs, num_perm=NUM_PERM, seed=SEED, scheme="legacy", hashfunc=lambda h: h & 0xFFFFFFFF
        ),
        max(1, repeat // 2),
    )
    rows["datasketch MinHash.bulk (legacy)"] = row(cpu, wall)
    theirs = np.array([m.hashvalues for m in sketches], dtype=np.uint32)
    if not (np.array_equal(ours, theirs) and np.array_equal(reference, theirs)):
        raise AssertionError("signatures differ between curate and datasketch on the same shingle hashes")
    return rows


def gpu_sides(
    shingles: Shingles, perms: Permutations, repeat: int, report: Callable[[dict], None], device: str = "cuda"
) -> dict:
    import torch

    from curate.dedup.minhash_torch import device_inputs, fold_triton, signatures_eager, signatures_torch

    n = len(shingles.counts)
    result: dict = {"gpu": torch.cuda.get_device_name(), "docs": n, "shingles": int(shingles.counts.sum())}

    signatures_numba(Shingles(shingles.hashes[:1], np.ones(1, dtype=np.int64)), perms)  # compiled
    cpu, wall, expected = best_cpu(lambda: signatures_numba(shingles, perms), 1)
    result["curate CPU path, one core of this machine"] = {
        "cpu_s": round(cpu, 3),
        "docs_per_s": round(n / cpu, 1),
    }
    report(result)

    def wall_best(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
        run()  # warm-up: Triton compiles, the allocator grows
        best, got = float("inf"), None
        for _ in range(repeat):
            torch.cuda.synchronize()
            started = time.perf_counter()
            got = run()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        return best, got

    cpu_rate = n / cpu
    # The host gathers the hashes' low halves into pinned buffers with torch's intra-op threads; one
    # thread shows what the GPU path costs the host.
    threads = torch.get_num_threads()
    for host_threads in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(host_threads)
        seconds, got = wall_best(lambda: signatures_torch(shingles, perms, device))
        if not np.array_equal(got, expected):
            raise AssertionError("GPU signatures differ from the CPU path's")
        result[f"end to end (numpy hashes in, numpy signatures out), {host_threads} host threads"] = {
            "s": round(seconds, 5),
            "docs_per_s": round(n / seconds, 1),
            "speedup_vs_one_cpu_core": round(n / seconds / cpu_rate, 1),
        }
        report(result)
    torch.set_num_threads(threads)

    inputs = device_inputs(shingles, perms, device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    kernels = {}
    for tile in GPU_TILES:
        out = fold_triton(*inputs, *tile)  # compile
        times = []
        for _ in range(repeat):
            start.record()
            out = fold_triton(*inputs, *tile)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        equal = np.array_equal(out.cpu().numpy().view(np.uint32), expected)
        kernels[f"{tile[0]} shingles x {tile[1]} perms"] = {
            "s": round(min(times), 6),
            "docs_per_s": round(n / min(times), 1),
            "speedup_vs_one_cpu_core": round(n / min(times) / cpu_rate, 1),
            "equal_to_cpu": equal,
        }
        if not equal:
            raise AssertionError(f"Triton tile {tile}: signatures differ from the CPU path's")
        result["kernel only (inputs on the GPU)"] = kernels
        report(result)

    few = Shingles(shingles.hashes[: int(shingles.counts[:5000].sum())], shingles.counts[:5000])
    seconds, got = wall_best(lambda: signatures_eager(few, perms, device))
    if not np.array_equal(got, expected[:5000]):
        raise AssertionError("eager torch GPU signatures differ from the CPU path's")
    result["eager torch kernel, end to end, 5,000 docs"] = {
        "s": round(seconds, 4),
        "docs_per_s": round(len(few.counts) / seconds, 1),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=5000, help="documents generated and signed")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side; the best counts")
    parser.add_argument(
        "--gpu-docs", type=int, default=400_000, help="documents for the GPU (corpus repeated)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here (rewritten after each step)")
    args = parser.parse_args()

    result: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "docs": args.docs,
        "permutations": NUM_PERM,
    }

    def report(part: dict | None = None, key: str = "gpu") -> None:
        if part is not None:
            result[key] = part
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2))

    shingles = corpus_shingles(args.docs, args.seed)
    perms = permutations(NUM_PERM, SEED)
    result["shingles"] = int(shingles.counts.sum())
    result["cpu"] = cpu_sides(shingles, perms, args.repeat)
    ours = result["cpu"]["curate CPU path (numba)"]["docs_per_s_per_core"]
    theirs = result["cpu"]["datasketch MinHash.bulk (legacy)"]["docs_per_s_per_core"]
    result["cpu_speedup_vs_datasketch_per_core"] = round(ours / theirs, 1)
    report()
    print(json.dumps(result, indent=2), flush=True)

    import torch  # only now: a CPU-only run should not pay for it before the CPU figures

    if torch.cuda.is_available():
        reps = -(-args.gpu_docs // args.docs)
        many = Shingles(np.tile(shingles.hashes, reps), np.tile(shingles.counts, reps))
        gpu_sides(many, perms, args.repeat, report)
        print(json.dumps(result["gpu"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
