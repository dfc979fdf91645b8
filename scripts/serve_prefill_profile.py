"""Where a prefill step of `train.serve` spends its time, on the serve benchmark's model (GPU).

    TORCH_LOGS=recompiles python3 scripts/serve_prefill_profile.py --requests 256

Runs the benchmark's requests through the engine's step loop and prints each prefill step's sequences,
tokens and milliseconds, then profiles one more prefill step with torch.profiler (top operators by GPU
and by CPU time). `TORCH_LOGS=recompiles` makes torch.compile say when a shape recompiles a function.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from serve_throughput import BENCH_MODEL, greedy, make_requests  # noqa: E402

from train.model import ModelConfig, Transformer  # noqa: E402
from train.serve import LLM  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--enforce-eager", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(0)
    cfg = ModelConfig(**BENCH_MODEL)
    with torch.device(device):
        model = Transformer(cfg).to(torch.bfloat16).eval()
    llm = LLM.from_model(
        model, None, max_num_seqs=256, max_num_batched_tokens=8192, enforce_eager=args.enforce_eager
    )
    engine = llm.engine
    requests = make_requests(args.requests, 100, 1024, cfg.vocab_size, 0)
    llm.generate([requests[0][0][:16]] * 2, greedy(8))
    for prompt, n in requests:
        engine.add_request(prompt, greedy(n))
    while engine.has_unfinished():
        batch_before = engine.scheduler.waiting and len(engine.scheduler.waiting)
        torch.cuda.synchronize()
        start = time.perf_counter()
        outs = engine.step()
        torch.cuda.synchronize()
        ms = 1e3 * (time.perf_counter() - start)
        if all(o.seq.num_output_tokens == 1 for o in outs):
            tokens = sum(len(o.seq) - 1 for o in outs)
            print(f"prefill: {len(outs)} seqs, {tokens} tokens, {ms:.1f} ms (waiting before {batch_before})")
    for prompt, _ in requests[:16]:
        engine.add_request(prompt, greedy(1))
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        engine.step()
        torch.cuda.synchronize()
    table = prof.key_averages()
    print(table.table(sort_by="cuda_time_total", row_limit=15))
    print(table.table(sort_by="cpu_time_total", row_limit=15))
    while engine.has_unfinished():
        engine.step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
