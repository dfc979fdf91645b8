"""Packing: several SFT examples share one row, and each attends only to itself.

Rows are filled in order (next fit: a row is closed when the next example does not fit). In a packed row
token i may attend to token j when both belong to the same example and j ≤ i: a block-diagonal causal
mask, given to SDPA as a boolean `attn_mask`. RoPE positions restart at 0 with every example, so each
example is computed exactly as if it were alone in its row (`tests/train/test_sft.py` checks this).
Padding after the last example forms one more block, attends only to itself and is never a target.

`Transformer.forward` takes no mask or positions, so `packed_logits` runs the model's submodules itself:
the computation of `Transformer.forward`, except that it calls every linear layer as a module where the
model fuses q/k/v and gate/up into one matmul over their weights; a called layer is where LoRA applies
its input dropout. Every finetuning forward goes through it (DPO's rows are one example each). A boolean
mask takes SDPA off the FlashAttention kernel on GPU (onto memory-efficient attention); `--no-pack`
gives each example its own padded row, with the same losses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from train.finetune.data import IGNORE_INDEX, Example, pad_rows
from train.model import Attention, Transformer, apply_rope


class PackedBatch(NamedTuple):
    tokens: torch.Tensor  # [B, T] input ids
    targets: torch.Tensor  # [B, T] ids to predict; IGNORE_INDEX at prompt tokens and padding
    positions: torch.Tensor  # [B, T] RoPE positions, from 0 in every example
    segments: torch.Tensor  # [B, T] index of the example in its row; padding is one past the last

    def to(self, device: torch.device) -> PackedBatch:
        return PackedBatch(*(t.to(device) for t in self))


def pack(examples: list[Example], seq_len: int, enabled: bool = True) -> list[list[Example]]:
    """Examples, in order, grouped into rows of at most `seq_len` tokens; one per row if not `enabled`."""
    rows: list[list[Example]] = []
    row: list[Example] = []
    used = 0
    for example in examples:
        if row and (not enabled or used + len(example.inputs) > seq_len):
            rows.append(row)
            row, used = [], 0
        row.append(example)
        used += len(example.inputs)
    if row:
        rows.append(row)
    return rows


def collate(rows: list[list[Example]], pad_id: int) -> PackedBatch:
    """Rows of examples as tensors, right-padded to the longest row."""
    tokens = [[t for ex in row for t in ex.inputs] for row in rows]
    targets = [[t for ex in row for t in ex.targets] for row in rows]
    positions = [[p for ex in row for p in range(len(ex.inputs))] for row in rows]
    segments = [[s for s, ex in enumerate(row) for _ in ex.inputs] for row in rows]
    padding_segment = max(len(row) for row in rows)
    return PackedBatch(
        pad_rows(tokens, pad_id),
        pad_rows(targets, IGNORE_INDEX),
        pad_rows(positions, 0),
        pad_rows(segments, padding_segment),
    )


def block_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] booleans, True where query i may attend key j: same segment and j ≤ i."""
    T = segments.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    return ((segments[:, :, None] == segments[:, None, :]) & causal).unsqueeze(1)


def packed_logits(model: Transformer, batch: PackedBatch) -> torch.Tensor:
    """Logits [B, T, padded vocab] of packed rows: `Transformer.forward` with per-example attention
    and positions, every linear layer called as a module."""
    if batch.tokens.shape[1] > model.cfg.max_seq_len:
        raise ValueError(f"rows of {batch.tokens.shape[1]} tokens exceed max_seq_len {model.cfg.max_seq_len}")
    # Rotate-half tables gathered per token, [B, 1, T, head_dim]: they broadcast over the heads.
    cos = model.rope_cos[batch.positions].unsqueeze(1)
    sin = model.rope_sin[batch.positions].unsqueeze(1)
    mask = block_causal_mask(batch.segments)
    x = model.tok_emb(batch.tokens)
    for block in model.blocks:
        x = x + _masked_attention(block.attn, block.attn_norm(x), cos, sin, mask)
        h = block.ffn_norm(x)
        x = x + block.ffn.w_down(F.silu(block.ffn.w_gate(h)) * block.ffn.w_up(h))
    x = model.norm(x)
    weight = model.tok_emb.weight if model.output is None else model.output.weight
    return F.linear(x, weight)


def _masked_attention(
    attn: Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """`Attention.forward` with an explicit mask in place of `is_causal`, q, k and v called one by one."""
    B, T, _ = x.shape
    q = attn.wq(x).view(B, T, attn.n_head, attn.head_dim).transpose(1, 2)
    k = attn.wk(x).view(B, T, attn.n_kv_head, attn.head_dim).transpose(1, 2)
    v = attn.wv(x).view(B, T, attn.n_kv_head, attn.head_dim).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=attn.n_kv_head != attn.n_head)
    return attn.wo(y.transpose(1, 2).reshape(B, T, -1))
