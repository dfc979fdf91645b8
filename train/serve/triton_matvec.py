"""Fused matrix-vector kernels for decode steps of a few sequences (at most MAX_ROWS rows).

At batch 1 a decode step reads every weight once and does almost no arithmetic, so its floor is the
weights' bytes over the memory bandwidth (~0.2 ms for a 0.5B model on an H200). Done as cuBLAS matmuls
plus separate norm, activation, RoPE and residual kernels, a layer is ~10 launches of a few µs each,
most of them latency, not bandwidth (bench/RESULTS.md measured 6× the floor). Here each projection is
one kernel that also does what sits around it:

- `norm_matvec_rope_cache`: RMSNorm of the residual stream (the prologue), the fused q/k/v projection,
  RoPE on q and k, q written out and k, v written to their cache slots;
- `norm_matvec_silu`: RMSNorm, the fused gate/up projection, SiLU(gate) · up;
- `matvec_add`: a projection added to the residual stream (attention output, FFN down);
- `norm_matvec`: RMSNorm then a projection (the LM head after the final norm).

A program owns BLOCK_N output columns (for RoPE and SiLU two blocks that belong together: the two halves
of a head, gate and up), streams their weight rows in BLOCK_K-wide tiles and reduces in fp32 registers;
the activations are a few KB and come from L2. At these sizes a kernel's time is mostly a few
dependent memory round trips, not bytes, so each kernel makes one: the epilogue's operands (residual,
RoPE angles, slots) are loaded up front, and the norm is applied after the dot product, in fp32
(rms_norm(x) · W = inv_rms · ((x ⊙ gain) · W), the sum of squares gathered in the same pass), where the
unfused path rounds the normalized input to bf16 twice first; a projection's output is still rounded
before RoPE or SiLU, as there. Tiles follow a rule measured on an H200 (`_tile`).

On Hopper the kernels launch with programmatic dependent launch (pdl.py): a program loads its first
weight tile before it waits for the previous kernel, so a projection's weights are on their way while
the attention or projection before it finishes; in the loop the next tile's loads go out before the
current tile is used.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from train.serve.pdl import active

MAX_ROWS = 4
# Epilogues, as constexpr globals so that the kernel may read them.
PLAIN, RESIDUAL, SILU, ROPE = (tl.constexpr(mode) for mode in range(4))


def supports(head_dim: int, dtype: torch.dtype) -> bool:
    """Shapes the kernels handle: half-precision activations, a head whose half is a power of two ≥ 4."""
    half = head_dim // 2
    return dtype in (torch.bfloat16, torch.float16) and half >= 4 and half & (half - 1) == 0


def _tile(rows: int, k: int, columns: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, warps) for `rows` (padded) rows of k inputs: the whole row up to 4,096 inputs
    in one tile, as many output columns as keep a program's fp32 products at 8,192 (64 a thread), at
    most `columns` (8; a RoPE program's columns lie in one half head).

    scripts/matvec_tile_sweep.py timed 32 tiles per projection of the 0.5B serve model at one row on an
    H200, as the engine runs them (CUDA graph, PDL, 24 weight copies so the weights come from HBM): this
    rule's (8, 1,024, 4 warps) was fastest for the four 1,024-input projections and (2, 4,096, 8 warps)
    for the 4,096-input down projection, 3.9 µs against 7.4 µs for the 4- and 8-column 1,024-wide tiles
    that `triton.autotune` had chosen. Autotune timed each tile on one weight read again and again, from
    L2, which rewards different tiles than a step that streams every weight once from HBM.
    """
    block_k = min(triton.next_power_of_2(k), 4096)
    block_n = max(1, min(columns, 8192 // (rows * block_k)))
    return block_n, block_k, 8 if block_k >= 4096 else 4


@triton.jit
def _matvec_kernel(
    x_ptr,
    w_ptr,
    norm_ptr,
    out_ptr,
    res_ptr,
    cos_ptr,
    sin_ptr,
    positions_ptr,
    slots_ptr,
    k_cache_ptr,
    v_cache_ptr,
    M,
    N,
    eps,
    K: tl.constexpr,
    MODE: tl.constexpr,
    NORM: tl.constexpr,
    M_PAD: tl.constexpr,
    N_HEADS: tl.constexpr,
    KV_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    PDL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
    pid = tl.program_id(0)
    j = tl.arange(0, BLOCK_N)
    HALF = HEAD_DIM // 2
    if MODE == ROPE:
        # Columns j of this program's half-head block and their partners HALF further on.
        per_head = HALF // BLOCK_N
        head = pid // per_head
        col = (pid % per_head) * BLOCK_N + j
        rows_a = head * HEAD_DIM + col
        rows_b = rows_a + HALF
    else:
        head = 0
        col = j
        rows_a = pid * BLOCK_N + j
        rows_b = rows_a + N  # SILU: the up row of each gate row
    ok_n = rows_a < N
    m = tl.arange(0, M_PAD)
    ok_m = m < M
    w_a = w_ptr + rows_a.to(tl.int64)[:, None] * K
    w_b = w_ptr + rows_b.to(tl.int64)[:, None] * K
    x_rows = x_ptr + m[:, None] * K
    dtype = x_ptr.dtype.element_ty

    ok = ok_m[:, None] & ok_n[None, :]
    # Before the wait (pdl.py), what no kernel of the step writes: the first weight tile, and the RoPE
    # angles of the step's positions (inputs copied in before the step's first kernel).
    k = tl.arange(0, BLOCK_K)
    ok_w = ok_n[:, None] & (k < K)[None, :]
    w = tl.load(w_a + k[None, :], mask=ok_w, other=0.0)
    if MODE >= SILU:
        w_partner = tl.load(w_b + k[None, :], mask=ok_w, other=0.0)
    if MODE == ROPE:
        position = tl.load(positions_ptr + m, mask=ok_m, other=0)
        slot = tl.load(slots_ptr + m, mask=ok_m, other=0).to(tl.int64)
        # The tables hold [angles, angles]: both halves of a head turn by the angles of columns < HALF.
        angle_at = position[:, None] * HEAD_DIM + col[None, :]
        cos = tl.load(cos_ptr + angle_at, mask=ok, other=1.0)
        sin = tl.load(sin_ptr + angle_at, mask=ok, other=0.0)
    if PDL:
        tl.extra.cuda.gdc_wait()
    # The residual next, so that its load overlaps the weights' rather than follows them.
    if MODE == RESIDUAL:
        residual = tl.load(res_ptr + m[:, None] * N + rows_a[None, :], mask=ok, other=0.0).to(tl.float32)

    # One pass: rms_norm(x) · W = inv_rms · ((x ⊙ gain) · W), the sum of squares gathered on the way.
    squares = tl.zeros([M_PAD], tl.float32)
    acc_a = tl.zeros([M_PAD, BLOCK_N], tl.float32)
    acc_b = tl.zeros([M_PAD, BLOCK_N], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        ok_k = k < K
        x = tl.load(x_rows + k[None, :], mask=ok_m[:, None] & ok_k[None, :], other=0.0).to(tl.float32)
        # The next weight tile is requested before this one is used: two tiles in flight per program.
        ok_next = ok_n[:, None] & (k + BLOCK_K < K)[None, :]
        w_next = tl.load(w_a + BLOCK_K + k[None, :], mask=ok_next, other=0.0)
        if MODE >= SILU:
            w_partner_next = tl.load(w_b + BLOCK_K + k[None, :], mask=ok_next, other=0.0)
        if NORM:
            squares += tl.sum(x * x, 1)
            x = x * tl.load(norm_ptr + k, mask=ok_k, other=0.0).to(tl.float32)[None, :]
        acc_a += tl.sum(x[:, None, :] * w.to(tl.float32)[None, :, :], 2)
        w = w_next
        if MODE >= SILU:
            acc_b += tl.sum(x[:, None, :] * w_partner.to(tl.float32)[None, :, :], 2)
            w_partner = w_partner_next
    if NORM:
        inv_rms = tl.rsqrt(squares / K + eps)[:, None]
        acc_a *= inv_rms
        acc_b *= inv_rms

    if MODE == PLAIN:
        tl.store(out_ptr + m[:, None] * N + rows_a[None, :], acc_a.to(dtype), mask=ok)
    elif MODE == RESIDUAL:
        tl.store(out_ptr + m[:, None] * N + rows_a[None, :], (residual + acc_a).to(dtype), mask=ok)
    elif MODE == SILU:
        gate = acc_a.to(dtype).to(tl.float32)
        up = acc_b.to(dtype).to(tl.float32)
        tl.store(
            out_ptr + m[:, None] * N + rows_a[None, :], (gate * tl.sigmoid(gate) * up).to(dtype), mask=ok
        )
    else:
        a = acc_a.to(dtype).to(tl.float32)
        b = acc_b.to(dtype).to(tl.float32)
        if head < N_HEADS + KV_HEADS:
            a, b = a * cos - b * sin, b * cos + a * sin
        if head < N_HEADS:
            q = out_ptr + m[:, None] * (N_HEADS * HEAD_DIM) + head * HEAD_DIM + col[None, :]
            tl.store(q, a.to(dtype), mask=ok)
            tl.store(q + HALF, b.to(dtype), mask=ok)
        else:
            kv_head = (head - N_HEADS) % KV_HEADS
            at = (slot[:, None] * KV_HEADS + kv_head) * HEAD_DIM + col[None, :]
            if head < N_HEADS + KV_HEADS:
                tl.store(k_cache_ptr + at, a.to(dtype), mask=ok)
                tl.store(k_cache_ptr + at + HALF, b.to(dtype), mask=ok)
            else:
                tl.store(v_cache_ptr + at, a.to(dtype), mask=ok)
                tl.store(v_cache_ptr + at + HALF, b.to(dtype), mask=ok)


def _launch(x, weight, out, mode, outputs, norm=None, eps=0.0, residual=None, rope=None):
    """Run the kernel over `outputs` columns (SILU: gate columns; ROPE: all q/k/v columns)."""
    x = x.contiguous()
    rows, k = x.shape
    if rows > MAX_ROWS:
        raise ValueError(f"the matvec kernels take at most {MAX_ROWS} rows, got {rows}")
    cos, sin, positions, slots, k_cache, v_cache, n_heads = rope or (x, x, x, x, x, x, 1)
    kv_heads, head_dim = (k_cache.shape[2], k_cache.shape[3]) if rope else (1, 8)
    pdl = active(x)
    rows_pad = triton.next_power_of_2(rows)
    block_n, block_k, warps = _tile(rows_pad, k, min(8, head_dim // 2) if mode is ROPE else 8)
    grid = (outputs // 2 // block_n,) if mode is ROPE else (triton.cdiv(outputs, block_n),)
    _matvec_kernel[grid](
        x,
        weight,
        x if norm is None else norm,
        out,
        x if residual is None else residual,
        cos,
        sin,
        positions,
        slots,
        k_cache,
        v_cache,
        rows,
        outputs,
        eps,
        K=k,
        MODE=mode.value,
        NORM=norm is not None,
        M_PAD=rows_pad,
        N_HEADS=n_heads,
        KV_HEADS=kv_heads,
        HEAD_DIM=head_dim,
        PDL=pdl,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        num_warps=warps,
        launch_pdl=pdl,
    )
    return out


def norm_matvec(x: torch.Tensor, norm: torch.Tensor, eps: float, weight: torch.Tensor) -> torch.Tensor:
    """linear(rms_norm(x, norm), weight): x [M, K], weight [N, K] → [M, N]."""
    out = torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    return _launch(x, weight, out, PLAIN, weight.shape[0], norm=norm, eps=eps)


def matvec_add(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """residual + linear(x, weight): x [M, K], weight [N, K], residual [M, N] → a new [M, N]."""
    out = torch.empty_like(residual)
    return _launch(x, weight, out, RESIDUAL, weight.shape[0], residual=residual.contiguous())


def norm_matvec_silu(x: torch.Tensor, norm: torch.Tensor, eps: float, weight: torch.Tensor) -> torch.Tensor:
    """silu(gate) · up of linear(rms_norm(x, norm), weight), weight = [gate; up] [2F, K] → [M, F]."""
    hidden = weight.shape[0] // 2
    out = torch.empty(x.shape[0], hidden, dtype=x.dtype, device=x.device)
    return _launch(x, weight, out, SILU, hidden, norm=norm, eps=eps)


def norm_matvec_rope_cache(
    x: torch.Tensor,
    norm: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor,
    slots: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """q/k/v = linear(rms_norm(x, norm), weight), weight [(H + 2·KV)·D, K]; q and k rotated by their
    positions (tables [max_len, D]); k and v written to their cache slots (caches [blocks, block_size,
    KV, D]). Returns q [M, H, D]."""
    head_dim = k_cache.shape[3]
    q = torch.empty(x.shape[0], n_heads, head_dim, dtype=x.dtype, device=x.device)
    rope = (cos, sin, positions, slots, k_cache, v_cache, n_heads)
    return _launch(x, weight, q, ROPE, weight.shape[0], norm=norm, eps=eps, rope=rope)
