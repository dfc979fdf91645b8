"""Where a batch-1 decode step of `train.serve` spends its GPU time, on the serve benchmark's model.

    python3 scripts/serve_decode_profile.py --json $OUT/decode_profile.json

Decodes one request (512-token prompt) to fill the cache, then profiles `--replays` replays of the
batch-1 CUDA graph with torch.profiler and prints the GPU time per kernel name per step, the sum, the
and the replay's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from serve_throughput import BENCH_MODEL, greedy  # noqa: E402

from train.model import ModelConfig, Transformer  # noqa: E402
from train.serve import LLM  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replays", type=int, default=50)
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = ModelConfig(**BENCH_MODEL)
    with torch.device("cuda"):
        model = Transformer(cfg).to(torch.bfloat16).eval()
    llm = LLM.from_model(model, None, max_num_seqs=256, max_num_batched_tokens=8192)
    llm.generate([list(range(1, 513))], greedy(128))
    graph = llm.engine.runner.graphs[1][0]
    for _ in range(20):
        graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.replays):
        graph.replay()
    torch.cuda.synchronize()
    wall_ms = 1e3 * (time.perf_counter() - start) / args.replays

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.replays):
            graph.replay()
        torch.cuda.synchronize()
    kernels: dict[str, list[float]] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(event.name, []).append(event.device_time_total)
    rows = sorted(
        (
            (name[:90], len(times) / args.replays, sum(times) / args.replays)
            for name, times in kernels.items()
        ),
        key=lambda row: -row[2],
    )
    print(f"batch-1 graph replay: {wall_ms:.3f} ms wall; GPU time per step by kernel (µs):")
    for name, calls, us in rows:
        print(f"{us:9.1f}  {calls:5.1f} calls  {name}")
    print(f"{sum(r[2] for r in rows):9.1f}  total kernel time per step")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_ms": wall_ms, "kernels_us": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
