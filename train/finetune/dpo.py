"""DPO (Rafailov et al., 2023): learn from preference pairs, against a frozen reference model.

For a prompt x with a chosen answer y_w and a rejected one y_l, an answer's implicit reward is
r(y) = β · (log π(y | x) − log π_ref(y | x)), log-probabilities summed over the answer's tokens, and the
loss is −log σ(r(y_w) − r(y_l)). Reported with it: both rewards, their margin r(y_w) − r(y_l), and the
accuracy (the share of pairs with a positive margin). Each answer is a row of its own, right-padded;
the reference is a copy of the base model taken before training, without gradients, never updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train.finetune.chat_template import ChatFormat
from train.finetune.data import IGNORE_INDEX, Example, PreferenceLine, encode_example
from train.finetune.packing import PackedBatch, collate, packed_logits
from train.model import Transformer


@dataclass(frozen=True)
class Pair:
    chosen: Example
    rejected: Example


def build_pairs(chat: ChatFormat, preferences: list[PreferenceLine], seq_len: int) -> tuple[list[Pair], int]:
    """Preference lines as pairs of rows of at most `seq_len` tokens, and how many were cut short."""
    pairs, truncated = [], 0
    for line in preferences:
        (chosen, cut_chosen), (rejected, cut_rejected) = (
            encode_example(chat, conversation, seq_len) for conversation in line.conversations()
        )
        pairs.append(Pair(chosen, rejected))
        truncated += cut_chosen or cut_rejected
    return pairs, truncated


def sequence_logps(model: Transformer, batch: PackedBatch) -> torch.Tensor:
    """log π(answer | prompt) per row: the log-probabilities of the row's targets, summed."""
    logits = packed_logits(model, batch).float()
    nll = F.cross_entropy(logits.transpose(1, 2), batch.targets, ignore_index=IGNORE_INDEX, reduction="none")
    return -nll.sum(-1)


class DPOObjective:
    """The DPO loss of pairs; every pair weighs one."""

    unit = "pairs"

    def __init__(self, reference: Transformer, beta: float, pad_id: int) -> None:
        self.reference = reference
        self.beta = beta
        self.pad_id = pad_id

    def weight(self, pair: Pair) -> int:
        return 1

    def tokens(self, pair: Pair) -> int:
        return len(pair.chosen.inputs) + len(pair.rejected.inputs)

    def loss_sum(
        self, model: Transformer, pairs: list[Pair], device: torch.device
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Summed DPO loss of the pairs, and the summed rewards, margins and correct orderings."""
        batch = collate([[p.chosen] for p in pairs] + [[p.rejected] for p in pairs], self.pad_id).to(device)
        policy = sequence_logps(model, batch)
        with torch.no_grad():
            reference = sequence_logps(self.reference, batch)
        chosen, rejected = (self.beta * (policy - reference)).chunk(2)
        margin = chosen - rejected
        stats = {
            "reward_chosen": chosen.sum(),
            "reward_rejected": rejected.sum(),
            "reward_margin": margin.sum(),
            "reward_accuracy": (margin > 0).float().sum(),
        }
        return -F.logsigmoid(margin).sum(), {k: v.detach() for k, v in stats.items()}
