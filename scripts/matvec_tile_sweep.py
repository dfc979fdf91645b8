"""Which tiles the fused decode matvecs (train/serve/triton_matvec.py) run fastest at one row on this GPU:
every (BLOCK_N, BLOCK_K, warps) of a grid, per projection of the serve benchmark's model, each timed as
bench/matvec_throughput.py times it (one CUDA graph of 24 calls on 24 weight copies), with PDL as the
engine runs it. The compiles run first, in parallel processes (Triton's cache is on disk, shared); the
timing after, alone on the GPU. What it prints is what triton_matvec._tile's rule is drawn from.

    python3 scripts/matvec_tile_sweep.py --json $OUT/tiles.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from matvec_throughput import FFN, D, ops, per_call_seconds  # noqa: E402

TILES = [(n, k, w) for n in (1, 2, 4, 8) for k in (512, 1024, 2048, 4096) for w in (4, 8)]
INPUTS = {"down projection + residual": FFN}  # every other projection reads the d-wide residual stream


def candidates(name: str) -> list[tuple[int, int, int]]:
    inputs = INPUTS.get(name, D)
    two = name.startswith(("norm + gate", "norm + qkv"))  # two weight tiles a program
    return [t for t in TILES if t[1] <= inputs and t[0] * t[1] * (2 if two else 1) <= 16384]


def run(jobs: list[tuple[str, tuple[int, int, int]]], repeat: int) -> list[float]:
    """Seconds per call of each (projection, tile); repeat 0: only compile them."""
    from train.serve import triton_matvec as tm

    rule, device = tm._tile, torch.device("cuda")
    torch.manual_seed(0)
    out = []
    with torch.inference_mode():
        table = ops(1, device)
        for name, tile in jobs:
            tm._tile = lambda rows, k, columns, tile=tile: tile
            ours = table[name][0]
            if repeat:
                out.append(per_call_seconds(ours, repeat))
            else:
                ours(0)
                torch.cuda.synchronize()
    tm._tile = rule
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8, help="processes compiling")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("matvec_tile_sweep: needs a CUDA GPU")
        return 0
    names = list(ops(1, torch.device("cuda")))
    jobs = [(name, tile) for name in names for tile in candidates(name)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.starmap(run, [(jobs[i :: args.workers], 0) for i in range(args.workers)])
    seconds = run(jobs, args.repeat)
    with torch.inference_mode():
        table = ops(1, torch.device("cuda"))
        ruled = {name: per_call_seconds(table[name][0], args.repeat) for name in names}
        nbytes = {name: table[name][2] for name in names}
    result = {"gpu": torch.cuda.get_device_name(), "projections": {}}
    for name in names:
        timed = sorted((s, tile) for (n, tile), s in zip(jobs, seconds, strict=True) if n == name)
        result["projections"][name] = {
            "rule_us": 1e6 * ruled[name],
            "tiles": [
                {"tile": list(tile), "us": 1e6 * s, "TBps": nbytes[name] / s / 1e12} for s, tile in timed
            ],
        }
        best = ", ".join(f"{t} {1e6 * s:.2f} µs ({nbytes[name] / s / 1e12:.2f} TB/s)" for s, t in timed[:4])
        print(f"{name}: the rule's tile {1e6 * ruled[name]:.2f} µs; best (BLOCK_N, BLOCK_K, warps): {best}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
