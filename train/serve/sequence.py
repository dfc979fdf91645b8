"""One request as the engine tracks it: its tokens, KV blocks, sampling state and output so far."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import torch

from train.serve.detokenizer import OutputText
from train.serve.sampling_params import SamplingParams


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability under the model, and the `top` most likely alternatives."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass(eq=False)
class Sequence:
    """A prompt and its growing output. `token_ids` holds both; the last one is not in the KV cache yet."""

    request_id: str
    token_ids: list[int]
    params: SamplingParams
    max_tokens: int
    generator: torch.Generator | None
    text: OutputText | None
    num_prompt_tokens: int = field(init=False)
    status: Status = Status.WAITING
    block_table: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    arrival_time: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.num_prompt_tokens = len(self.token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens
