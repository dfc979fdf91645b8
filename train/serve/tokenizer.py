"""The checkpoint's tokenizer for serving: text ↔ ids, the end-of-text token and the chat template.

A checkpoint holds the `tokenizer.json` of the shards it was trained on. An HF-style
`tokenizer_config.json` next to it, if present, may name the `eos_token` and give a Jinja `chat_template`.
Both are read, and the template compiled, by finetuning's `ChatFormat` (train/finetune/chat_template.py):
one loader and one sandboxed Jinja setup, so a checkpoint's template renders here as it did in finetuning,
and a broken one fails when the tokenizer loads, not at the first chat request. Without a tokenizer config
the end-of-text token is curate's default document separator `<|endoftext|>`, and chats use
chat_template.TRANSCRIPT_CHAT_TEMPLATE.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from train.finetune.chat_template import TRANSCRIPT_CHAT_TEMPLATE, ChatFormat


class ServingTokenizer:
    """Encode prompts, decode outputs, render chats; `eos_token_id` ends a generation."""

    def __init__(self, chat: ChatFormat) -> None:
        self.chat = chat
        self.tokenizer = chat.tokenizer
        self.eos_token_id = chat.eos_id

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, eos_token: str | None = None) -> ServingTokenizer:
        """`tokenizer.json` of a checkpoint directory, with `tokenizer_config.json` when it has one.

        `eos_token` overrides the end-of-text token; a ValueError says what to pass when none is found, or
        names the file whose chat template does not compile.
        """
        return cls(
            ChatFormat.from_checkpoint(
                checkpoint, eos_token=eos_token, default_template=TRANSCRIPT_CHAT_TEMPLATE
            )
        )

    @property
    def chat_template(self) -> str:
        return self.chat.config["chat_template"]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def fewest_tokens(self, text: str) -> int:
        """A lower bound on len(encode(text)) at no tokenizing cost, so that a text far past the context is
        refused before encoding it holds the server up (encoding keeps the GIL: 12 MB took 16 s); 0 when
        the tokenizer has a normalizer, which may shorten the text."""
        if self.tokenizer.normalizer is not None:
            return 0
        return len(text.encode()) // self._most_bytes_per_token

    @cached_property
    def _most_bytes_per_token(self) -> int:
        pieces = self.tokenizer.decode_batch([[i] for i in range(self.vocab_size)], skip_special_tokens=False)
        return max(len(piece.encode()) for piece in pieces) + 1  # + 1: a decoder may drop a leading space

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The prompt text of a chat, ending where the assistant's reply starts."""
        return self.chat.render(messages, add_generation_prompt=True)
