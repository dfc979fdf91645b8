"""How fast train.model's memory-bound Triton kernels run at the 124m shape, per tile and warp count; what
it prints is where the modules' tile constants come from. Each kernel is timed by triton.testing.do_bench
next to a copy of its input (the GPU's read + write speed over those bytes).

- ce (train/cross_entropy_kernels.py), 16 × 1,024 rows × 32k vocabulary, bf16: the forward alone, the
  forward that also writes the gradient (linear_cross_entropy's), the backward; tile = columns a program
  takes per block, warps.
- rope (train/rope_kernels.py), 16 × 1,024 tokens × (12 + 2 × 12) heads of 64, bf16: the move kernel
  forward (the projection's output to rotated q, k, v) and backward; tile = tokens a program moves, warps.

    python3 scripts/train_kernel_sweep.py --json $OUT/kernel_sweep.json
    python3 scripts/train_kernel_sweep.py --kernels rope
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:  # Triton comes with CUDA builds of torch
    import triton
    from triton.testing import do_bench

    from train import cross_entropy_kernels as ce
    from train import rope_kernels
    from train.model import rope_tables
except ImportError:
    triton = None

# A case: (name, the kernel's run for a (tile, warps), how many copies' worth of bytes it moves at least).
Case = tuple[str, Callable[[int, int], Callable[[], object]], float]


def ce_cases(rows: int = 16 * 1024, vocab: int = 32000) -> tuple[torch.Tensor, list[Case], tuple]:
    torch.manual_seed(0)
    logits = torch.randn(rows, vocab, device="cuda").mul_(4).to(torch.bfloat16)
    work = logits.clone()  # the gradient-writing forward overwrites its input
    targets = torch.randint(0, vocab, (rows,), device="cuda")
    losses, lse = torch.empty(rows, device="cuda"), torch.empty(rows, device="cuda")
    dlosses = torch.full((rows,), 1.0 / rows, device="cuda")
    dlogits = torch.empty_like(logits)

    def forward(write_grad: bool):
        def make(block: int, warps: int):
            return lambda: ce._forward_kernel[(rows,)](
                work, targets, losses, lse, vocab, work.stride(0),
                IGNORE=ce.IGNORE_INDEX, BLOCK=block, WRITE_GRAD=write_grad, WHOLE_ROW=vocab <= block,
                num_warps=warps,
            )  # fmt: skip

        return make

    def backward(block: int, warps: int):
        return lambda: ce._backward_kernel[(rows, triton.cdiv(vocab, block))](
            logits, targets, lse, dlosses, dlogits, vocab, logits.stride(0),
            IGNORE=ce.IGNORE_INDEX, BLOCK=block, num_warps=warps,
        )  # fmt: skip

    # The forward reads the logits once (half a copy); with the gradient and the backward, a copy.
    cases = [
        ("forward", forward(False), 0.5),
        ("forward + gradient", forward(True), 1.0),
        ("backward", backward, 1.0),
    ]
    # 32,768 columns: a whole row of the 32k vocabulary in one block, read once.
    return logits, cases, ((2048, 4096, 8192, 16384, 32768), (4, 8, 16, 32))


def rope_cases(batch: int = 16, seq: int = 1024, heads: int = 12, kv: int = 12, head_dim: int = 64):
    cos, sin = (t[:seq].cuda() for t in rope_tables(head_dim, seq, 10000.0))
    qkv = torch.randn(batch, seq, (heads + 2 * kv) * head_dim, device="cuda").to(torch.bfloat16)
    grads = [torch.randn_like(t) for t in rope_kernels.rope_split(qkv, cos, sin, heads, kv)]

    def tiled(run: Callable[[], object], constant: str):
        def make(tokens: int, warps: int):
            def launch():
                setattr(rope_kernels, constant, (tokens, warps))
                return run()

            return launch

        return make

    cases = [
        (
            "rope forward",
            tiled(lambda: rope_kernels.rope_split(qkv, cos, sin, heads, kv), "FORWARD_TILE"),
            1.0,
        ),
        (
            "rope backward",
            tiled(lambda: rope_kernels.rope_split_backward(*grads, cos, sin, heads, kv), "BACKWARD_TILE"),
            1.0,
        ),
    ]
    return qkv, cases, ((16, 32, 64, 128), (1, 2, 4, 8))


FAMILIES = {"ce": ce_cases, "rope": rope_cases}


def sweep(data: torch.Tensor, cases: list[Case], grid: tuple) -> list[dict]:
    work = torch.empty_like(data)
    copy_ms = do_bench(lambda: work.copy_(data))
    print(
        f"{torch.cuda.get_device_name()} · {tuple(data.shape)} bf16 = {data.nbytes / 1e9:.3f} GB; copy {copy_ms:.3f} ms"
    )
    rows = []
    for (name, make, copies), (tile, warps) in itertools.product(cases, itertools.product(*grid)):
        ms = do_bench(make(tile, warps))
        floor = copy_ms * copies
        rows.append({"kernel": name, "tile": tile, "warps": warps, "ms": ms, "floor_ms": floor})
        print(
            f"  {name:<20} tile {tile:>5} · {warps:>2} warps: {ms:.3f} ms ({floor / ms:.0%} of the copy speed)"
        )
    for name, _, _ in cases:
        best = min((r for r in rows if r["kernel"] == name), key=lambda r: r["ms"])
        print(f"best {name}: tile {best['tile']}, {best['warps']} warps, {best['ms']:.3f} ms")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kernels", default=",".join(FAMILIES), help=f"comma-separated: {', '.join(FAMILIES)}"
    )
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args(argv)
    families = args.kernels.split(",")
    if unknown := sorted(set(families) - FAMILIES.keys()):
        parser.error(f"--kernels: unknown {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    if triton is None or not torch.cuda.is_available():
        print("needs a CUDA device and Triton")
        return 0
    report = {family: sweep(*FAMILIES[family]()) for family in families}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
