"""The serving engine's fused decode matvec kernels (train/serve/triton_matvec.py) against cuBLAS, per
layer shape, at 1, 2 and 4 rows: time per call, weight bytes per second, and the ratio (GPU only).

    python3 bench/matvec_throughput.py --json $OUT/matvec.json

Shapes: the serve benchmark's 0.47B model (d 1024, FFN 4096, 16/4 heads of 64, vocab 50,304 padded).
For each projection the peer is `F.linear` (cuBLAS) on the same input and weight, the matmul alone,
without the norm, RoPE, cache write, SiLU or residual add that ours also does (the unfused path runs
those as further kernels). As in a decode step, each call reads a different layer's copy of the weight
(24 copies, more bytes than L2 holds), and the calls run as one CUDA graph per side, so launch gaps are
those of the engine's graphs. Time per call = graph replay time / 24, median of `--repeat`. The
bandwidth column counts the weight bytes only; the copy bandwidth of the same GPU (device-to-device,
bytes read + written) is printed as the ceiling. Ours runs twice, with programmatic dependent launch
(train/serve/pdl.py, on Hopper: each call prefetches its weights while the previous one finishes) and
without.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from serve_throughput import copy_bandwidth  # noqa: E402

from train.model import rope_tables  # noqa: E402
from train.serve import pdl  # noqa: E402

D, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB, LAYERS = 1024, 4096, 16, 4, 64, 50_304, 24
EPS = 1e-5


def ops(rows: int, device: torch.device) -> dict[str, tuple]:
    """Per projection: (ours, cuBLAS peer, weight bytes), each side a function of the layer index."""
    from train.serve import triton_matvec as tm

    bf16 = {"device": device, "dtype": torch.bfloat16}
    x = torch.randn(rows, D, **bf16)
    act = torch.randn(rows, FFN, **bf16)
    gain = torch.ones(D, **bf16)
    cos, sin = (t.to(device) for t in rope_tables(HEAD_DIM, 2048, 10000.0))
    positions = torch.arange(rows, device=device) + 600
    slots = torch.arange(rows, device=device)
    k_cache = torch.zeros(8, 16, KV_HEADS, HEAD_DIM, **bf16)
    v_cache = torch.zeros_like(k_cache)

    def weights(n: int, k: int, copies: int = LAYERS) -> list[torch.Tensor]:
        return [torch.randn(n, k, **bf16) / k**0.5 for _ in range(copies)]

    wqkv = weights((HEADS + 2 * KV_HEADS) * HEAD_DIM, D)
    wo = weights(D, HEADS * HEAD_DIM)
    w_gate_up = weights(2 * FFN, D)
    w_down = weights(D, FFN)
    lm_head = weights(VOCAB, D, copies=1) * LAYERS  # one matrix, already bigger than L2

    def qkv_rope(w: torch.Tensor) -> torch.Tensor:
        return tm.norm_matvec_rope_cache(x, gain, EPS, w, cos, sin, positions, slots, k_cache, v_cache, HEADS)

    # (projection, ours on a weight, the peer's input, the weight's copies)
    table = [
        ("norm + qkv + RoPE + cache write", qkv_rope, x, wqkv),
        ("output projection + residual", lambda w: tm.matvec_add(x, w, x), x, wo),
        ("norm + gate/up + SiLU", lambda w: tm.norm_matvec_silu(x, gain, EPS, w), x, w_gate_up),
        ("down projection + residual", lambda w: tm.matvec_add(act, w, x), act, w_down),
        ("final norm + LM head", lambda w: tm.norm_matvec(x, gain, EPS, w), x, lm_head),
    ]
    return {
        name: (
            lambda i, fn=fn, copies=copies: fn(copies[i]),
            lambda i, inp=inp, copies=copies: F.linear(inp, copies[i]),
            copies[0].numel() * copies[0].element_size(),
        )
        for name, fn, inp, copies in table
    }


def per_call_seconds(fn, repeat: int) -> float:
    """One CUDA graph of LAYERS calls (layer i's weight each), replayed; seconds per call, median."""
    for i in range(LAYERS):  # compile, autotune, cuBLAS heuristics: outside the capture
        fn(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(LAYERS):
            fn(i)
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / LAYERS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("matvec_throughput: needs a CUDA GPU (the kernels are Triton's)")
        return 0
    device = torch.device("cuda")
    torch.manual_seed(0)
    ceiling = copy_bandwidth(device, 1 << 30)
    result: dict = {"gpu": torch.cuda.get_device_name(), "copy_bandwidth_TBps": ceiling / 1e12, "rows": {}}
    print(f"{result['gpu']}: copy bandwidth {ceiling / 1e12:.2f} TB/s (read + write)")
    print(
        f"{'rows':>4}  {'projection':34} {'ours µs':>8} {'TB/s':>5} {'no PDL µs':>9} "
        f"{'cuBLAS µs':>9} {'TB/s':>5} {'cuBLAS/ours':>11}"
    )
    with torch.inference_mode():
        for rows in (1, 2, 4):
            table = {}
            for name, (ours, peer, nbytes) in ops(rows, device).items():
                t_ours, t_peer = per_call_seconds(ours, args.repeat), per_call_seconds(peer, args.repeat)
                pdl.ENABLED = False
                t_plain = per_call_seconds(ours, args.repeat)
                pdl.ENABLED = True
                table[name] = {
                    "ours_us": 1e6 * t_ours,
                    "ours_TBps": nbytes / t_ours / 1e12,
                    "ours_without_pdl_us": 1e6 * t_plain,
                    "cublas_us": 1e6 * t_peer,
                    "cublas_TBps": nbytes / t_peer / 1e12,
                    "ratio": t_peer / t_ours,
                    "weight_bytes": nbytes,
                }
                row = table[name]
                print(
                    f"{rows:>4}  {name:34} {row['ours_us']:8.2f} {row['ours_TBps']:5.2f} {1e6 * t_plain:9.2f} "
                    f"{row['cublas_us']:9.2f} {row['cublas_TBps']:5.2f} {row['ratio']:11.2f}"
                )
            result["rows"][rows] = table
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
