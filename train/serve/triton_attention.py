"""Triton kernels of the engine's CUDA path: RoPE fused with the KV-cache write, and paged decode
attention that reads K/V in place through the block table.

Flash-decoding: the grid is (sequence, KV head, split). Each program takes the query heads that share its
KV head (grouped-query attention reads each K/V block once per group), walks its split's share of the
sequence's blocks with an online softmax, and writes a partial result; a second kernel merges the splits.
Splits give a small batch enough programs to fill the GPU; a large batch uses one split and no merge.

A decode step is hundreds of small kernels, so fewer launches is most of the speed at small batches: one
kernel rotates q and k (rotate-half, as `train.model.apply_rope`, in fp32) and writes k and v to their slots.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from train.serve.pdl import active


@triton.jit
def _rope_cache_kernel(
    qkv_ptr,
    cos_ptr,
    sin_ptr,
    positions_ptr,
    slots_ptr,
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    N_HEADS: tl.constexpr,
    KV_HEADS: tl.constexpr,
    Q_PAD: tl.constexpr,
    KV_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HALF: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    half = HALF
    d = tl.arange(0, HALF)
    position = tl.load(positions_ptr + token)
    slot = tl.load(slots_ptr + token).to(tl.int64)
    # The tables hold [angles, angles]: each half of a head turns by the same angles.
    cos = tl.load(cos_ptr + position * HEAD_DIM + d)[None, :]
    sin = tl.load(sin_ptr + position * HEAD_DIM + d)[None, :]
    row = qkv_ptr + token * (N_HEADS + 2 * KV_HEADS) * HEAD_DIM

    h = tl.arange(0, Q_PAD)[:, None]
    ok = h < N_HEADS
    x1 = tl.load(row + h * HEAD_DIM + d[None, :], mask=ok).to(tl.float32)
    x2 = tl.load(row + h * HEAD_DIM + half + d[None, :], mask=ok).to(tl.float32)
    out = q_ptr + token * N_HEADS * HEAD_DIM + h * HEAD_DIM + d[None, :]
    tl.store(out, (x1 * cos - x2 * sin).to(q_ptr.dtype.element_ty), mask=ok)
    tl.store(out + half, (x2 * cos + x1 * sin).to(q_ptr.dtype.element_ty), mask=ok)

    h = tl.arange(0, KV_PAD)[:, None]
    ok = h < KV_HEADS
    k_row = row + N_HEADS * HEAD_DIM + h * HEAD_DIM + d[None, :]
    x1 = tl.load(k_row, mask=ok).to(tl.float32)
    x2 = tl.load(k_row + half, mask=ok).to(tl.float32)
    cache = (slot * KV_HEADS + h) * HEAD_DIM + d[None, :]
    tl.store(k_cache_ptr + cache, (x1 * cos - x2 * sin).to(k_cache_ptr.dtype.element_ty), mask=ok)
    tl.store(k_cache_ptr + cache + half, (x2 * cos + x1 * sin).to(k_cache_ptr.dtype.element_ty), mask=ok)
    v_row = k_row + KV_HEADS * HEAD_DIM
    tl.store(v_cache_ptr + cache, tl.load(v_row, mask=ok), mask=ok)
    tl.store(v_cache_ptr + cache + half, tl.load(v_row + half, mask=ok), mask=ok)


def rope_and_cache(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor,
    slots: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """Rotate q and k of qkv [N, (H + 2·KV)·D] by their positions (tables [max_len, D]); write k and v
    to their cache slots. Returns q [N, H, D]."""
    _, _, kv_heads, head_dim = k_cache.shape
    tokens = qkv.shape[0]
    q = torch.empty(tokens, n_heads, head_dim, dtype=qkv.dtype, device=qkv.device)
    _rope_cache_kernel[(tokens,)](
        qkv,
        cos,
        sin,
        positions,
        slots,
        q,
        k_cache,
        v_cache,
        N_HEADS=n_heads,
        KV_HEADS=kv_heads,
        Q_PAD=triton.next_power_of_2(n_heads),
        KV_PAD=triton.next_power_of_2(kv_heads),
        HEAD_DIM=head_dim,
        HALF=head_dim // 2,
    )
    return q


@triton.jit
def _decode_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    context_lens_ptr,
    out_ptr,
    partial_ptr,
    stats_ptr,
    scale,
    table_stride,
    N_HEADS: tl.constexpr,
    KV_HEADS: tl.constexpr,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE: tl.constexpr,
    TILES_PER_SPLIT: tl.constexpr,
    N_SPLITS: tl.constexpr,
    PDL: tl.constexpr,
):
    if PDL:  # pdl.py: let the next kernel's weight loads start, then wait for q and the cache write
        tl.extra.cuda.gdc_launch_dependents()
        tl.extra.cuda.gdc_wait()
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    context_len = tl.load(context_lens_ptr + seq)
    start = split * (TILES_PER_SPLIT * TILE)
    end = tl.minimum(start + TILES_PER_SPLIT * TILE, context_len)

    g = tl.arange(0, GROUP_PAD)
    d = tl.arange(0, HEAD_DIM)
    t = tl.arange(0, TILE)
    heads = kv_head * GROUP + g
    head_ok = g < GROUP  # tl.dot wants ≥ 16 rows: the group is padded with masked rows
    rows = seq * N_HEADS + heads
    q = tl.load(q_ptr + rows[:, None] * HEAD_DIM + d[None, :], mask=head_ok[:, None], other=0.0)

    m = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    denom = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)
    # A tile spans TILE / BLOCK_SIZE cache blocks: enough tokens per iteration to keep loads in flight.
    for tile_start in range(start, end, TILE):
        token = tile_start + t
        token_ok = token < end
        block = tl.load(block_tables_ptr + seq * table_stride + token // BLOCK_SIZE, mask=token_ok, other=0)
        slot = block.to(tl.int64) * BLOCK_SIZE + token % BLOCK_SIZE
        offsets = (slot[:, None] * KV_HEADS + kv_head) * HEAD_DIM + d[None, :]
        k = tl.load(k_cache_ptr + offsets, mask=token_ok[:, None], other=0.0)
        v = tl.load(v_cache_ptr + offsets, mask=token_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale
        s = tl.where(token_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m - m_new)
        denom = denom * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m = m_new

    if N_SPLITS == 1:
        out = acc / denom[:, None]
        tl.store(
            out_ptr + rows[:, None] * HEAD_DIM + d[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=head_ok[:, None],
        )
    else:
        # A split past the sequence's end stores m = -inf, denom = 0: the merge weighs it 0.
        part = rows * N_SPLITS + split
        tl.store(partial_ptr + part[:, None] * HEAD_DIM + d[None, :], acc, mask=head_ok[:, None])
        tl.store(stats_ptr + part * 2, m, mask=head_ok)
        tl.store(stats_ptr + part * 2 + 1, denom, mask=head_ok)


@triton.jit
def _merge_kernel(
    partial_ptr,
    stats_ptr,
    out_ptr,
    N_SPLITS: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    PDL: tl.constexpr,
):
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
        tl.extra.cuda.gdc_wait()
    row = tl.program_id(0)
    s = tl.arange(0, SPLITS_PAD)
    d = tl.arange(0, HEAD_DIM)
    ok = s < N_SPLITS
    part = row * N_SPLITS + s
    m = tl.load(stats_ptr + part * 2, mask=ok, other=float("-inf"))
    denom = tl.load(stats_ptr + part * 2 + 1, mask=ok, other=0.0)
    acc = tl.load(partial_ptr + part[:, None] * HEAD_DIM + d[None, :], mask=ok[:, None], other=0.0)
    weight = tl.exp(m - tl.max(m, 0))
    out = tl.sum(acc * weight[:, None], 0) / tl.sum(denom * weight, 0)
    tl.store(out_ptr + row * HEAD_DIM + d, out.to(out_ptr.dtype.element_ty))


def supports(head_dim: int, block_size: int, dtype: torch.dtype) -> bool:
    """Shapes the kernel handles: power-of-two tiles of at least 16 (tl.dot), half-precision operands."""
    return all(n >= 16 and n & (n - 1) == 0 for n in (head_dim, block_size)) and dtype in (
        torch.bfloat16,
        torch.float16,
    )


def num_splits(batch: int, kv_heads: int, tiles: int, multiprocessors: int) -> int:
    """Splits per sequence so that the grid has about two programs per multiprocessor."""
    wanted = -(-2 * multiprocessors // (batch * kv_heads))
    return max(1, min(tiles, wanted))


def tile_tokens(block_size: int) -> int:
    """Tokens a decode program reads per iteration."""
    return max(64, block_size)


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    splits: int,
) -> torch.Tensor:
    """As `attention.paged_decode_attention`: q [B, H, D], caches [blocks, block_size, KV, D] → [B, H·D]."""
    q = q.contiguous()
    batch, n_heads, head_dim = q.shape
    _, block_size, kv_heads, _ = k_cache.shape
    tile = tile_tokens(block_size)
    tiles = triton.cdiv(block_tables.shape[1] * block_size, tile)
    per_split = triton.cdiv(tiles, splits)
    splits = triton.cdiv(tiles, per_split)
    group = n_heads // kv_heads
    out = torch.empty_like(q)
    pdl = active(q)
    if splits > 1:
        partial = torch.empty(batch, n_heads, splits, head_dim, dtype=torch.float32, device=q.device)
        stats = torch.empty(batch, n_heads, splits, 2, dtype=torch.float32, device=q.device)
    else:
        partial = stats = out  # not read: the kernel writes `out` directly
    _decode_kernel[(batch, kv_heads, splits)](
        q,
        k_cache,
        v_cache,
        block_tables,
        context_lens,
        out,
        partial,
        stats,
        head_dim**-0.5,
        block_tables.stride(0),
        N_HEADS=n_heads,
        KV_HEADS=kv_heads,
        GROUP=group,
        GROUP_PAD=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        TILE=tile,
        TILES_PER_SPLIT=per_split,
        N_SPLITS=splits,
        PDL=pdl,
        launch_pdl=pdl,
    )
    if splits > 1:
        _merge_kernel[(batch * n_heads,)](
            partial,
            stats,
            out,
            N_SPLITS=splits,
            SPLITS_PAD=triton.next_power_of_2(splits),
            HEAD_DIM=head_dim,
            PDL=pdl,
            launch_pdl=pdl,
        )
    return out.view(batch, -1)
