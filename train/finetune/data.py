"""Finetuning data: JSONL files of conversations or preference pairs, and the token rows made from them.

SFT lines are `{"messages": [{"role": ..., "content": ...}, ...]}`, or `{"prompt": ..., "response": ...}`
for one user turn and one assistant turn. DPO lines are `{"prompt": ..., "chosen": ..., "rejected": ...}`:
the prompt is a string (one user turn) or a list of messages, the two answers are assistant turns. A bad
line stops the run with its file and line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from train.finetune.chat_template import ChatFormat
from train.user_files import read_text

# F.cross_entropy's default ignore_index: a target the loss skips (prompt tokens, padding).
IGNORE_INDEX = -100


class Message(BaseModel):
    # Extra fields (name, tool calls...) go through to the chat template, as in HF.
    model_config = ConfigDict(extra="allow")

    role: str
    content: str


class ChatLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1)

    def conversation(self) -> list[dict]:
        return [m.model_dump() for m in self.messages]


class PromptResponseLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    response: str

    def conversation(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.response}]


class PreferenceLine(BaseModel):
    """A prompt, the answer preferred for it and the answer rejected."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | list[Message]
    chosen: str
    rejected: str

    def conversations(self) -> tuple[list[dict], list[dict]]:
        """The prompt followed by the chosen answer, and by the rejected one."""
        if isinstance(self.prompt, str):
            prompt = [{"role": "user", "content": self.prompt}]
        else:
            prompt = [m.model_dump() for m in self.prompt]
        return (
            prompt + [{"role": "assistant", "content": self.chosen}],
            prompt + [{"role": "assistant", "content": self.rejected}],
        )


def _read_jsonl(path: Path, adapter: TypeAdapter, expected: str, flag: str) -> list:
    records = []
    for number, line in enumerate(read_text(path, flag).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(adapter.validate_python(json.loads(line)))
        except json.JSONDecodeError as err:
            raise ValueError(f"{flag}: {path}:{number}: not JSON ({err.msg})") from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise ValueError(
                f"{flag}: {path}:{number}: expected {expected}; {where}: {first['msg']}"
            ) from None
    if not records:
        raise ValueError(f"{flag}: {path} holds no examples")
    return records


def read_conversations(path: Path, flag: str = "--data") -> list[list[dict]]:
    """The conversations of an SFT JSONL file (named by `flag` in errors)."""
    lines = _read_jsonl(
        path,
        TypeAdapter(ChatLine | PromptResponseLine),
        '{"messages": [{"role", "content"}, ...]} or {"prompt", "response"}',
        flag,
    )
    return [line.conversation() for line in lines]


def read_preferences(path: Path, flag: str = "--data") -> list[PreferenceLine]:
    """The preference pairs of a DPO JSONL file (named by `flag` in errors)."""
    return _read_jsonl(path, TypeAdapter(PreferenceLine), '{"prompt", "chosen", "rejected"}', flag)


@dataclass(frozen=True)
class Example:
    """One tokenized conversation: `inputs[i]` predicts `targets[i]`, which is IGNORE_INDEX where the
    token to predict is not the assistant's."""

    inputs: list[int]
    targets: list[int]

    @property
    def target_count(self) -> int:
        return sum(t != IGNORE_INDEX for t in self.targets)


def make_example(ids: list[int], is_response: list[bool], seq_len: int) -> tuple[Example, bool]:
    """Tokens as at most `seq_len` input/target pairs, with targets only where the token to predict is
    a response token, and whether they had to be cut short."""
    truncated = len(ids) > seq_len + 1
    ids, is_response = ids[: seq_len + 1], is_response[: seq_len + 1]
    targets = [t if learn else IGNORE_INDEX for t, learn in zip(ids[1:], is_response[1:], strict=True)]
    return Example(ids[:-1], targets), truncated


def encode_example(chat: ChatFormat, conversation: list[dict], seq_len: int) -> tuple[Example, bool]:
    """A conversation as an Example (see `make_example`): the assistant's tokens are the targets."""
    return make_example(*chat.encode(conversation), seq_len)


def pad_rows(rows: list[list[int]], value: int) -> torch.Tensor:
    """Rows of different lengths as one int64 tensor, right-padded with `value`."""
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
