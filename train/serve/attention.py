"""Attention for the engine: prefill over each new sequence, decode over the paged KV cache.

Prefill attends within the tokens of one step (no sequence has cached tokens before its prefill: there is
no prefix caching, and a preempted sequence is recomputed whole), so it is the model's own causal SDPA,
one sequence at a time. On CUDA it keeps off cuDNN attention, PyTorch's first choice on Hopper: cuDNN
builds an execution plan for every new shape (tens of milliseconds each, and cached per shape), and almost
every prompt length is a new shape; FlashAttention has no plan to build. Decode gathers each sequence's K/V through its block table and masks the slots past
its length; on CUDA `triton_attention` reads the blocks in place instead.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

PREFILL_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq_lens: list[int]) -> torch.Tensor:
    """q [N, H, D], k and v [N, KV, D] for sequences of `seq_lens` tokens laid end to end → [N, H·D]."""
    gqa = q.shape[1] != k.shape[1]
    out = []
    backends = sdpa_kernel(PREFILL_BACKENDS, set_priority=True) if q.is_cuda else contextlib.nullcontext()
    with backends:
        for qs, ks, vs in zip(q.split(seq_lens), k.split(seq_lens), v.split(seq_lens), strict=True):
            # [1, heads, T, D], as train.model.Attention calls it.
            y = F.scaled_dot_product_attention(
                qs.transpose(0, 1)[None],
                ks.transpose(0, 1)[None],
                vs.transpose(0, 1)[None],
                is_causal=True,
                enable_gqa=gqa,
            )
            out.append(y[0].transpose(0, 1).reshape(len(qs), -1))
    return torch.cat(out)


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
) -> torch.Tensor:
    """One query token per sequence, q [B, H, D], over the first `context_lens[b]` tokens that
    `block_tables` [B, W] points to in the caches [blocks, block_size, KV, D] → [B, H·D]."""
    batch = q.shape[0]
    k = k_cache[block_tables].flatten(1, 2).transpose(1, 2)  # [B, KV, W·block_size, D]
    v = v_cache[block_tables].flatten(1, 2).transpose(1, 2)
    visible = torch.arange(k.shape[2], device=q.device) < context_lens[:, None]
    y = F.scaled_dot_product_attention(
        q[:, :, None], k, v, attn_mask=visible[:, None, None, :], enable_gqa=q.shape[1] != k.shape[1]
    )
    return y.reshape(batch, -1)
