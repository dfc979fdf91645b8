"""RoPE fused with the head split of the attention's q/k/v projection, forward and backward (CUDA, Triton).

The projection is one matmul to [B, T, (H + 2·KV)·hd]; attention wants heads first, [B, H, T, hd], with
RoPE applied to q and k. Compiled from the PyTorch code the forward is fine, but the backward (RoPE's
backward, the transpose back to tokens first and the concatenation of dq, dk and dv into the matmul's
gradient) becomes one pointwise kernel with masked loads from three head-major inputs, at ~0.8 TB/s:
3.1 ms of a 30.6 ms 124m step on an H200 (bench/RESULTS.md). Here each direction is one kernel in which
a program moves a [tokens × head_dim] tile of one head, one 2·hd-byte row per token on each side, doing
the rotation in fp32 on the way (rotate-half, as `train.model.apply_rope`; RoPE's backward is the
rotation by the negative angle).

q, k and v come out token-major in memory ([B, T, H, hd] buffers, returned as their [B, H, T, hd]
transposes). cuDNN's attention allocates its output in q's layout, so the attention output is then
already [B, T, H·hd] for the output projection: no transpose copy. The backward takes gradients in any
layout whose last dimension is contiguous.

With `SEPARATE_V`, train.model projects v with a matmul of its own, whose output [B, T, KV·hd] is already
the token-major layout that cuDNN takes: `rope_split_qk` then moves q and k only, and in the backward dv
goes straight to that matmul, so v is not copied either way (the price: two narrower matmuls, and the two
input gradients to add).

`rope_split` is a `torch.library.triton_op` with its backward registered, so that torch.compile keeps it
whole in the graph and autograd differentiates through it. This module imports Triton (it comes with
CUDA builds of torch); train.model uses it for CUDA tensors when it imports and `ENABLED` is true (set it
False to run the PyTorch code on the GPU too, for an A/B). The CPU path, bit-exact resume included, is
the PyTorch code.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

ENABLED = True
# q, k and v token-major in memory (see above); False gives the head-major buffers used before, for A/B runs.
TOKEN_MAJOR = True
# (tokens per program, warps) of the move kernel each way; scripts/train_kernel_sweep.py times a grid of them.
FORWARD_TILE, BACKWARD_TILE = (32, 4), (32, 4)
# v from its own projection, q and k from one (see above): +0.5 to +0.9% tokens/s at 124m on an H100
# (bench/RESULTS.md); False gives the one q/k/v matmul and rope_split, for A/B runs.
SEPARATE_V = True


@triton.jit
def _move_kernel(
    src_ptr,
    q_ptr,
    k_ptr,
    v_ptr,
    cos_ptr,
    sin_ptr,
    rows,
    T,
    q_strides_b,
    q_strides_h,
    q_strides_t,
    k_strides_b,
    k_strides_h,
    k_strides_t,
    v_strides_b,
    v_strides_h,
    v_strides_t,
    WIDTH: tl.constexpr,
    N_HEAD: tl.constexpr,
    N_KV: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    FORWARD: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    """Forward: the projection's output src [B·T, WIDTH] → q, k, v [B, H, T, hd] (by their strides),
    rotating q and k. Backward: their gradients → src, rotating back."""
    head = tl.program_id(1)
    row = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)  # b · T + t
    ok = (row < rows)[:, None]
    b, t = (row // T).to(tl.int64), (row % T).to(tl.int64)
    HALF: tl.constexpr = HEAD_DIM // 2
    d = tl.arange(0, HALF)[None, :]
    projection = src_ptr + row.to(tl.int64)[:, None] * WIDTH + head * HEAD_DIM + d
    if head < N_HEAD:
        per_head = q_ptr + (b * q_strides_b + head * q_strides_h + t * q_strides_t)[:, None] + d
    elif head < N_HEAD + N_KV:
        per_head = k_ptr + (b * k_strides_b + (head - N_HEAD) * k_strides_h + t * k_strides_t)[:, None] + d
    else:
        per_head = (
            v_ptr + (b * v_strides_b + (head - N_HEAD - N_KV) * v_strides_h + t * v_strides_t)[:, None] + d
        )
    into = per_head if FORWARD else projection
    come_from = projection if FORWARD else per_head
    x1 = tl.load(come_from, mask=ok, other=0.0).to(tl.float32)
    x2 = tl.load(come_from + HALF, mask=ok, other=0.0).to(tl.float32)
    if head < N_HEAD + N_KV:
        # The tables hold [angles, angles]: both halves turn by the angles of the first.
        angle = t[:, None] * HEAD_DIM + d
        cos = tl.load(cos_ptr + angle, mask=ok, other=1.0)
        sin = tl.load(sin_ptr + angle, mask=ok, other=0.0)
        if not FORWARD:
            sin = -sin
        x1, x2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
    dtype = into.dtype.element_ty
    tl.store(into, x1.to(dtype), mask=ok)
    tl.store(into + HALF, x2.to(dtype), mask=ok)


def _launch(src, q, k, v, cos, sin, n_head, n_kv_head, forward):
    """Move every head between src and q, k, v (forward: src → heads, rotated; backward: heads → src);
    v None: src holds q and k only."""
    batch, seq, _ = src.shape
    head_dim = q.shape[-1]
    block, warps = FORWARD_TILE if forward else BACKWARD_TILE
    grid = (triton.cdiv(batch * seq, block), _heads(n_head, n_kv_head, v is not None))
    if v is None:  # no program of the grid takes a v head then, but the slot needs a tensor of its own:
        # under torch.compile the same tensor in two written slots gets two clones (pytorch#196657)
        v = k.new_empty(1, 1, 1, 1)
    wrap_triton(_move_kernel)[grid](
        src, q, k, v, cos, sin, batch * seq, seq, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
        WIDTH=src.shape[-1], N_HEAD=n_head, N_KV=n_kv_head, HEAD_DIM=head_dim,
        FORWARD=forward, BLOCK_T=block, num_warps=warps,
    )  # fmt: skip


def _heads(n_head, n_kv_head, with_v):
    """Heads in a projection: q's and k's, and v's when it holds them."""
    return n_head + n_kv_head * (2 if with_v else 1)


def _qk_buffers(projection, n_head, n_kv_head, with_v):
    """Empty q [B, H, T, hd] and k [B, KV, T, hd] for the projection, in TOKEN_MAJOR's layout."""
    batch, seq, width = projection.shape
    head_dim = width // _heads(n_head, n_kv_head, with_v)
    if TOKEN_MAJOR:
        q = projection.new_empty(batch, seq, n_head, head_dim).transpose(1, 2)
        k = projection.new_empty(batch, seq, n_kv_head, head_dim).transpose(1, 2)
    else:
        q = projection.new_empty(batch, n_head, seq, head_dim)
        k = projection.new_empty(batch, n_kv_head, seq, head_dim)
    return q, k


def _merged_gradient(dq, dk, dv, cos, sin, n_head, n_kv_head):
    """dq, dk (rotated back) and dv (or None) in any layout with a contiguous last dimension → the
    projection's gradient [B, T, (H + 2·KV)·hd], or [B, T, (H + KV)·hd] without dv."""
    dq, dk, dv = (g if g is None or g.stride(-1) == 1 else g.contiguous() for g in (dq, dk, dv))
    batch, _, seq, head_dim = dq.shape
    grad = dq.new_empty(batch, seq, _heads(n_head, n_kv_head, dv is not None) * head_dim)
    _launch(grad, dq, dk, dv, cos, sin, n_head, n_kv_head, False)
    return grad


@triton_op("webcrawl_lm::rope_split", mutates_args={})
def rope_split(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_head: int, n_kv_head: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv [B, T, (H + 2·KV)·hd] on a CUDA device → q [B, H, T, hd], k and v [B, KV, T, hd], q and k
    rotated by the tables cos and sin [≥ T, hd] (fp32); in TOKEN_MAJOR's layout."""
    qkv = qkv.contiguous()
    q, k = _qk_buffers(qkv, n_head, n_kv_head, with_v=True)
    v = torch.empty_like(k)
    _launch(qkv, q, k, v, cos, sin, n_head, n_kv_head, True)
    return q, k, v


@triton_op("webcrawl_lm::rope_split_qk", mutates_args={})
def rope_split_qk(
    qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_head: int, n_kv_head: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """rope_split for a projection without v, qk [B, T, (H + KV)·hd] → q and k (SEPARATE_V)."""
    qk = qk.contiguous()
    q, k = _qk_buffers(qk, n_head, n_kv_head, with_v=False)
    _launch(qk, q, k, None, cos, sin, n_head, n_kv_head, True)
    return q, k


@triton_op("webcrawl_lm::rope_split_backward", mutates_args={})
def rope_split_backward(
    dq: torch.Tensor,
    dk: torch.Tensor,
    dv: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    n_head: int,
    n_kv_head: int,
) -> torch.Tensor:
    return _merged_gradient(dq, dk, dv, cos, sin, n_head, n_kv_head)


def _setup_context(ctx, inputs, output):
    _, cos, sin, ctx.n_head, ctx.n_kv_head = inputs
    ctx.save_for_backward(cos, sin)


def _backward(ctx, dq, dk, *dv):
    """rope_split's gradients (dq, dk, dv) or rope_split_qk's (dq, dk) → the projection's."""
    cos, sin = ctx.saved_tensors
    dv = dv[0] if dv else None
    return rope_split_backward(dq, dk, dv, cos, sin, ctx.n_head, ctx.n_kv_head), None, None, None, None


rope_split.register_autograd(_backward, setup_context=_setup_context)
rope_split_qk.register_autograd(_backward, setup_context=_setup_context)
