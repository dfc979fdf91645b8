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

The move still copies v, a third of the forward's bytes, only because attention is another op:
`rope_attention` is RoPE, the split and cuDNN's attention in one op, so that v is read in place in the
projection's output and only q and k move. Its backward calls cuDNN's and then the same merge.

Both are `torch.library.triton_op`s with their backward registered, so that torch.compile keeps each
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
# (tokens per program, warps) of the move kernel; scripts/train_kernel_sweep.py times a grid of them.
TILE = (32, 4)
# train.model takes rope_attention instead of rope_split + SDPA where q and kv heads are equal (the shapes
# tested) and cudnn_attention_usable says so: off until a GPU run has measured it against the two ops
# (bench/train_throughput.py, ours-rope-attention).
WITH_ATTENTION = False


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
    """Move every head between src and q, k, v; with v None only q's and k's (v stays in the projection)."""
    batch, seq, _ = src.shape
    head_dim = q.shape[-1]
    block, warps = TILE
    heads = n_head + n_kv_head + (0 if v is None else n_kv_head)
    v = k if v is None else v  # a pointer the kernel never follows: the grid ends before v's heads
    grid = (triton.cdiv(batch * seq, block), heads)
    wrap_triton(_move_kernel)[grid](
        src, q, k, v, cos, sin, batch * seq, seq, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
        WIDTH=src.shape[-1], N_HEAD=n_head, N_KV=n_kv_head, HEAD_DIM=head_dim,
        FORWARD=forward, BLOCK_T=block, num_warps=warps,
    )  # fmt: skip


def _qk_buffers(qkv, n_head, n_kv_head):
    """Empty q [B, H, T, hd] and k [B, KV, T, hd] for the projection qkv, in TOKEN_MAJOR's layout."""
    batch, seq, width = qkv.shape
    head_dim = width // (n_head + 2 * n_kv_head)
    if TOKEN_MAJOR:
        q = qkv.new_empty(batch, seq, n_head, head_dim).transpose(1, 2)
        k = qkv.new_empty(batch, seq, n_kv_head, head_dim).transpose(1, 2)
    else:
        q = qkv.new_empty(batch, n_head, seq, head_dim)
        k = qkv.new_empty(batch, n_kv_head, seq, head_dim)
    return q, k


def _merged_gradient(dq, dk, dv, cos, sin, n_head, n_kv_head):
    """dq, dk (rotated back) and dv in any layout with a contiguous last dimension → the projection's
    gradient [B, T, (H + 2·KV)·hd]."""
    dq, dk, dv = (g if g.stride(-1) == 1 else g.contiguous() for g in (dq, dk, dv))
    batch, _, seq, head_dim = dq.shape
    dqkv = dq.new_empty(batch, seq, (n_head + 2 * n_kv_head) * head_dim)
    _launch(dqkv, dq, dk, dv, cos, sin, n_head, n_kv_head, False)
    return dqkv


def _value_view(qkv, n_head, n_kv_head):
    """v [B, KV, T, hd] where it lies in the contiguous projection qkv: a view, no copy."""
    head_dim = qkv.shape[-1] // (n_head + 2 * n_kv_head)
    v = qkv[..., (n_head + n_kv_head) * head_dim :]
    return v.unflatten(-1, (n_kv_head, head_dim)).transpose(1, 2)


# torch.compile calls it while tracing and takes the answer as a constant: a check per layer inside the
# compiled forward would otherwise break the graph at every layer.
@torch.compiler.assume_constant_result
def cudnn_attention_usable(device_index: int, n_head: int, head_dim: int, dtype: torch.dtype) -> bool:
    """Whether SDPA could run cuDNN's causal attention, with a backward, for heads of this size and dtype on
    this GPU, with the backends enabled now (train.model.attention_kernels). rope_attention calls cuDNN's
    op directly, past SDPA's choice and its fallbacks, so train.model asks this first: a GPU or a cuDNN
    without it, or a backend order that leaves cuDNN out (--attention flash), keeps rope_split + SDPA."""
    device = torch.device("cuda", device_index)
    probe = torch.empty(1, n_head, 128, head_dim, device=device, dtype=dtype, requires_grad=True)
    params = torch.backends.cuda.SDPAParams(probe, probe, probe, None, 0.0, True, False)
    return torch.backends.cuda.can_use_cudnn_attention(params)


def _attention(q, k, v):
    """Causal attention → (output in q's layout, the softmax's log-sum-exp that the backward needs)."""
    if q.is_cuda:
        out = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, is_causal=True)
        return out[0], out[1]
    # Triton's interpreter runs the kernels on CPU tensors (tests); PyTorch's CPU flash kernel pairs with it.
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True)


def _attention_backward(dy, q, k, v, y, lse):
    if q.is_cuda:
        seq = q.shape[2]
        # No dropout: cuDNN reads neither the seed nor the offset, but the op takes both as tensors.
        unused = torch.empty((), dtype=torch.long, device=q.device)
        return torch.ops.aten._scaled_dot_product_cudnn_attention_backward(
            dy, q, k, v, y, lse, unused, unused, None, None, None, seq, seq, 0.0, True
        )
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(dy, q, k, v, y, lse, 0.0, True)


@triton_op("webcrawl_lm::rope_split", mutates_args={})
def rope_split(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_head: int, n_kv_head: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv [B, T, (H + 2·KV)·hd] on a CUDA device → q [B, H, T, hd], k and v [B, KV, T, hd], q and k
    rotated by the tables cos and sin [≥ T, hd] (fp32); in TOKEN_MAJOR's layout."""
    qkv = qkv.contiguous()
    q, k = _qk_buffers(qkv, n_head, n_kv_head)
    v = torch.empty_like(k)
    _launch(qkv, q, k, v, cos, sin, n_head, n_kv_head, True)
    return q, k, v


@triton_op("webcrawl_lm::rope_split_backward", mutates_args={})
def rope_split_backward(
    dq: torch.Tensor,
    dk: torch.Tensor,
    dv: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    n_head: int,
    n_kv_head: int,
) -> torch.Tensor:
    return _merged_gradient(dq, dk, dv, cos, sin, n_head, n_kv_head)


def _setup_context(ctx, inputs, output):
    _, cos, sin, ctx.n_head, ctx.n_kv_head = inputs
    ctx.save_for_backward(cos, sin)


def _backward(ctx, dq, dk, dv):
    cos, sin = ctx.saved_tensors
    return rope_split_backward(dq, dk, dv, cos, sin, ctx.n_head, ctx.n_kv_head), None, None, None, None


rope_split.register_autograd(_backward, setup_context=_setup_context)


@triton_op("webcrawl_lm::rope_attention", mutates_args={})
def rope_attention(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_head: int, n_kv_head: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """rope_split and causal attention in one op: qkv [B, T, (H + 2·KV)·hd] → the attention output
    [B, H, T, hd] (in q's layout), then q, k and the log-sum-exp, outputs only so that the backward has them.

    v is read where the projection wrote it, so the forward moves q and k only. The backward has cuDNN
    write dq, dk and dv and the move kernel merge them into the projection's gradient, as rope_split's does.
    """
    qkv = qkv.contiguous()
    q, k = _qk_buffers(qkv, n_head, n_kv_head)
    _launch(qkv, q, k, None, cos, sin, n_head, n_kv_head, True)
    y, lse = _attention(q, k, _value_view(qkv, n_head, n_kv_head))
    return y, q, k, lse


@triton_op("webcrawl_lm::rope_attention_backward", mutates_args={})
def rope_attention_backward(
    dy: torch.Tensor,
    qkv: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    y: torch.Tensor,
    lse: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    n_head: int,
    n_kv_head: int,
) -> torch.Tensor:
    v = _value_view(qkv.contiguous(), n_head, n_kv_head)
    dq, dk, dv = _attention_backward(dy, q, k, v, y, lse)
    return _merged_gradient(dq, dk, dv, cos, sin, n_head, n_kv_head)


def _setup_attention_context(ctx, inputs, output):
    qkv, cos, sin, ctx.n_head, ctx.n_kv_head = inputs
    y, q, k, lse = output
    # The projection's output stays alive for v instead of a copy of v: 2/3 of it more saved per layer.
    ctx.save_for_backward(qkv, q, k, y, lse, cos, sin)
    ctx.mark_non_differentiable(q, k, lse)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for those three


def _attention_backward_fn(ctx, dy, *_unused):
    qkv, q, k, y, lse, cos, sin = ctx.saved_tensors
    dqkv = rope_attention_backward(dy, qkv, q, k, y, lse, cos, sin, ctx.n_head, ctx.n_kv_head)
    return dqkv, None, None, None, None


rope_attention.register_autograd(_attention_backward_fn, setup_context=_setup_attention_context)
