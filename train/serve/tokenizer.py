"""The checkpoint's tokenizer for serving: text ↔ ids, the end-of-text token and the chat template.

A checkpoint holds the `tokenizer.json` of the shards it was trained on. An HF-style
`tokenizer_config.json` next to it, if present, may name the `eos_token` and give a Jinja `chat_template`
(rendered as HF renders it: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`). Without one,
the end-of-text token is curate's default document separator `<|endoftext|>`, and chats use
DEFAULT_CHAT_TEMPLATE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

# curate's tokenize stage appends this to every document unless configured otherwise.
DEFAULT_EOS_TOKEN = "<|endoftext|>"

# A plain-text transcript that a model pretrained on web text can continue:
#     System: You are terse.
#
#     User: Hello
#
#     Assistant:
# The model's reply ends at its end-of-text token, max_tokens, or a stop string such as "\n\nUser:".
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _token_text(value: str | dict | None) -> str | None:
    # tokenizer_config.json writes special tokens as strings or as {"content": ...} objects.
    return value.get("content") if isinstance(value, dict) else value


def _raise(message: str) -> None:
    raise TemplateError(message)


@dataclass
class ServingTokenizer:
    """Encode prompts, decode outputs, render chats; `eos_token_id` ends a generation."""

    tokenizer: Tokenizer
    eos_token_id: int | None
    chat_template: str = DEFAULT_CHAT_TEMPLATE
    bos_token: str = ""
    eos_token: str = ""

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, eos_token: str | None = None) -> ServingTokenizer:
        """`tokenizer.json` of a checkpoint directory, with `tokenizer_config.json` when it has one.

        `eos_token` overrides the end-of-text token; a ValueError says what to pass when none is found.
        """
        path = checkpoint / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{checkpoint} has no tokenizer.json")
        # Tokenizer.from_file, not curate's load_tokenizer: a prompt that spells a special token (a chat
        # template's markers) means that token here, whereas in a crawled document it is plain text.
        tokenizer = Tokenizer.from_file(str(path))
        config_path = checkpoint / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        template = config.get("chat_template") or DEFAULT_CHAT_TEMPLATE
        if isinstance(template, list):  # named templates: HF uses the one called "default"
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
            if template is None:
                raise ValueError(f"{config_path}: chat_template has no template named 'default'")
        eos = eos_token or _token_text(config.get("eos_token")) or DEFAULT_EOS_TOKEN
        eos_id = tokenizer.token_to_id(eos)
        if eos_id is None:
            raise ValueError(
                f"{path} has no end-of-text token {eos!r}; pass the one the shards were tokenized with "
                "(their metadata.json names it as eod_token)"
            )
        return cls(tokenizer, eos_id, template, _token_text(config.get("bos_token")) or "", eos)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @cached_property
    def _template(self):
        # Sandboxed, as HF renders templates: a checkpoint's template is code from whoever made it.
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        return env.from_string(self.chat_template)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The prompt text of a chat, ending where the assistant's reply starts."""
        return self._template.render(
            messages=messages, add_generation_prompt=True, bos_token=self.bos_token, eos_token=self.eos_token
        )
