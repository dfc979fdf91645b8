"""SwiGLU's activation, silu(gate) · up, over the fused gate/up projection, forward and backward (CUDA, Triton).

The feed-forward's gate and up run as one matmul to [M, 2·F] (train.model.SwiGLU). Compiled from the
PyTorch code, the backward becomes one pointwise kernel over the [M, 2·F] gradient (inductor's
`cat_mul_silu_silu_backward`), a concatenation of the two halves' gradients in which each element loads
the inputs of its own half, so gate and the incoming gradient are fetched for both. It took 1.6–1.7 ms of
a 30 ms 124m step on an H200 (~2.3 TB/s of the minimal traffic), the largest after the matmuls and
attention (bench/RESULTS.md). Here a program takes one [rows × columns] tile of the gate, reads gate,
up and the gradient once and writes both halves of the projection's gradient. The math runs in fp32
and rounds once, as the compiled PyTorch code does.

`swiglu` is a `torch.library.triton_op` with its backward registered (as train/rope_kernels.py), used by
train.model for CUDA tensors when this module imports and `ENABLED` is true; the CPU path is PyTorch's.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

ENABLED = True
BLOCK_ROWS, BLOCK_COLUMNS = 8, 256


@triton.jit
def _swiglu_kernel(
    gate_up_ptr,
    grad_ptr,
    out_ptr,
    rows,
    F,
    FORWARD: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLUMNS: tl.constexpr,
):
    """Forward: out [rows, F] = silu(gate) · up. Backward: out [rows, 2F] = (d gate, d up) from grad."""
    row = (tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)).to(tl.int64)[:, None]
    column = tl.program_id(1) * BLOCK_COLUMNS + tl.arange(0, BLOCK_COLUMNS)[None, :]
    inside = (row < rows) & (column < F)
    gate_at = gate_up_ptr + row * (2 * F) + column
    gate = tl.load(gate_at, mask=inside, other=0.0).to(tl.float32)
    up = tl.load(gate_at + F, mask=inside, other=0.0).to(tl.float32)
    sigmoid = tl.sigmoid(gate)
    silu = gate * sigmoid
    dtype = out_ptr.dtype.element_ty
    if FORWARD:
        tl.store(out_ptr + row * F + column, (silu * up).to(dtype), mask=inside)
    else:
        grad = tl.load(grad_ptr + row * F + column, mask=inside, other=0.0).to(tl.float32)
        d_gate = grad * up * sigmoid * (1.0 + gate * (1.0 - sigmoid))
        out_at = out_ptr + row * (2 * F) + column
        tl.store(out_at, d_gate.to(dtype), mask=inside)
        tl.store(out_at + F, (grad * silu).to(dtype), mask=inside)


def _launch(gate_up: torch.Tensor, grad: torch.Tensor, out: torch.Tensor, forward: bool) -> None:
    rows, F = gate_up.shape[0], gate_up.shape[1] // 2
    grid = (triton.cdiv(rows, BLOCK_ROWS), triton.cdiv(F, BLOCK_COLUMNS))
    wrap_triton(_swiglu_kernel)[grid](
        gate_up, grad, out, rows, F,
        FORWARD=forward, BLOCK_ROWS=BLOCK_ROWS, BLOCK_COLUMNS=BLOCK_COLUMNS, num_warps=4,
    )  # fmt: skip


@triton_op("webcrawl_lm::swiglu", mutates_args={})
def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up [M, 2F] (gate in the first F columns) on a CUDA device → silu(gate) · up [M, F]."""
    gate_up = gate_up.contiguous()
    out = gate_up.new_empty(gate_up.shape[0], gate_up.shape[1] // 2)
    _launch(gate_up, out, out, True)  # the forward reads no gradient: `out` stands in for it
    return out


@triton_op("webcrawl_lm::swiglu_backward", mutates_args={})
def swiglu_backward(gate_up: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    gate_up = gate_up.contiguous()
    grad_gate_up = torch.empty_like(gate_up)
    _launch(gate_up, grad.contiguous(), grad_gate_up, False)
    return grad_gate_up


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    (gate_up,) = ctx.saved_tensors
    return swiglu_backward(gate_up, grad)


swiglu.register_autograd(_backward, setup_context=_setup_context)
