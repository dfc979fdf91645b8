"""Supervised finetuning: next-token cross-entropy on the assistant's tokens of packed rows.

Prompt tokens and padding are IGNORE_INDEX targets and count nowhere: a step's loss is the sum over
its rows' assistant tokens divided by their number (each micro-batch contributes its sum), so packing,
padding and accumulation leave it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.finetune.chat_template import ChatFormat
from train.finetune.data import IGNORE_INDEX, Example, encode_example
from train.finetune.packing import collate, pack, packed_logits
from train.model import Transformer


def build_rows(
    chat: ChatFormat, conversations: list[list[dict]], seq_len: int, packed: bool
) -> tuple[list[list[Example]], int]:
    """Conversations as rows of at most `seq_len` tokens, and how many conversations were cut short."""
    examples, truncated = [], 0
    for conversation in conversations:
        example, cut = encode_example(chat, conversation, seq_len)
        examples.append(example)
        truncated += cut
    return pack(examples, seq_len, packed), truncated


class SFTObjective:
    """Cross-entropy on the assistant's tokens; a row weighs as much as it has of them."""

    unit = "tokens"

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def weight(self, row: list[Example]) -> int:
        return sum(example.target_count for example in row)

    def tokens(self, row: list[Example]) -> int:
        return sum(len(example.inputs) for example in row)

    def loss_sum(
        self, model: Transformer, rows: list[list[Example]], device: torch.device
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Summed cross-entropy over the rows' assistant tokens (no other statistics)."""
        batch = collate(rows, self.pad_id).to(device)
        logits = packed_logits(model, batch)
        # fp32 softmax, as in pretraining: bf16 log-probabilities are too coarse for a faithful loss.
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        return loss, {}
