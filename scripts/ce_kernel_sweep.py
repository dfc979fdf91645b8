"""How fast train/cross_entropy_kernels.py's kernels run at the 124m shape (16 × 1,024 rows, 32k
vocabulary, bf16) for each block size and warp count: the forward alone, the forward that also writes the
gradient (linear_cross_entropy's), and the backward. Each is timed by triton.testing.do_bench; the
HBM-time floor of its bytes is printed next to it. What it prints is where the module's BLOCK constants
come from.

    python3 scripts/ce_kernel_sweep.py --json $OUT/ce_sweep.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:  # Triton comes with CUDA builds of torch
    import triton
    from triton.testing import do_bench

    from train import cross_entropy_kernels as ce
except ImportError:
    triton = None

BLOCKS, WARPS = (2048, 4096, 8192, 16384), (4, 8, 16, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16 * 1024)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args(argv)
    if triton is None or not torch.cuda.is_available():
        print("needs a CUDA device and Triton")
        return 0
    rows, vocab = args.rows, args.vocab
    torch.manual_seed(0)
    logits = torch.randn(rows, vocab, device="cuda").mul_(4).to(torch.bfloat16)
    work = logits.clone()
    targets = torch.randint(0, vocab, (rows,), device="cuda")
    losses = torch.empty(rows, device="cuda")
    lse = torch.empty(rows, device="cuda")
    dlosses = torch.full((rows,), 1.0 / rows, device="cuda")
    dlogits = torch.empty_like(logits)
    gigabytes = logits.numel() * logits.element_size() / 1e9
    copy_ms = do_bench(lambda: work.copy_(logits))  # the GPU's read + write speed over these bytes
    print(
        f"{torch.cuda.get_device_name()} · {rows} × {vocab} bf16 = {gigabytes:.2f} GB; copy {copy_ms:.3f} ms"
    )

    def forward(block: int, warps: int, write_grad: bool):
        def run():
            ce._forward_kernel[(rows,)](
                work, targets, losses, lse, vocab, work.stride(0),
                IGNORE=ce.IGNORE_INDEX, BLOCK=block, WRITE_GRAD=write_grad, num_warps=warps,
            )  # fmt: skip

        return run

    def backward(block: int, warps: int):
        def run():
            ce._backward_kernel[(rows, triton.cdiv(vocab, block))](
                logits, targets, lse, dlosses, dlogits, vocab, logits.stride(0),
                IGNORE=ce.IGNORE_INDEX, BLOCK=block, num_warps=warps,
            )  # fmt: skip

        return run

    kernels = {
        "forward": (lambda b, w: forward(b, w, False), 1),  # passes over the logits' bytes in HBM
        "forward + gradient": (lambda b, w: forward(b, w, True), 2),
        "backward": (backward, 2),
    }
    rows_out = []
    for (name, (make, passes)), block, warps in itertools.product(kernels.items(), BLOCKS, WARPS):
        work.copy_(logits)
        ms = do_bench(make(block, warps))
        floor = copy_ms / 2 * passes
        rows_out.append({"kernel": name, "block": block, "warps": warps, "ms": ms, "floor_ms": floor})
        print(
            f"  {name:<20} BLOCK {block:>5} · {warps:>2} warps: {ms:.3f} ms ({floor / ms:.0%} of the copy speed)"
        )
    for name in kernels:
        best = min((r for r in rows_out if r["kernel"] == name), key=lambda r: r["ms"])
        print(f"best {name}: BLOCK {best['block']}, {best['warps']} warps, {best['ms']:.3f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"copy_ms": copy_ms, "runs": rows_out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
