"""Chat templates: how a conversation becomes tokens, and which of those tokens are the model's to learn.

A template is an HF-style Jinja `chat_template` string, rendered the way `transformers` renders one (a
sandboxed Jinja environment with `trim_blocks` and `lstrip_blocks`, `raise_exception`, `tojson`), so a
model exported to HF formats its prompts exactly as it was finetuned. The template travels with the
checkpoint in `tokenizer_config.json`, next to `tokenizer.json`, with the special tokens it refers to.

The assistant's tokens are found by rendering the conversation prefix by prefix: the text a turn adds
after the generation prompt is the assistant's. Each prompt and response piece is encoded on its own, so
a training sequence is token for token what generation sees: the encoded prompt, then the tokens the
model emits, up to and including the end-of-turn token.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from curate.part_files import atomic_write_text
from train.user_files import read_text

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# curate's tokenize stage appends its `eod_token` (this default) to every document and adds its
# `pad_token`: what a pretrain checkpoint, which has no tokenizer_config.json, ends text and pads with.
DEFAULT_EOS_TOKEN = "<|endoftext|>"
DEFAULT_PAD_TOKEN = "<|pad|>"

# Zephyr-style turns. The conversation starts with bos (our EOD: pretraining put one before every
# document), and every turn ends with eos, which is where generation stops.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    r"{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# What a checkpoint without a chat template of its own (a pretrain one) chats with, served by `train serve`
# or exported to HF: a plain-text transcript that a model pretrained on web text can continue,
#     System: You are terse.
#
#     User: Hello
#
#     Assistant:
# its reply ending at its end-of-text token, max_tokens, or a stop string such as "\n\nUser:". Finetuning
# uses DEFAULT_CHAT_TEMPLATE's turn markers instead, and the finetuned checkpoint carries that template.
TRANSCRIPT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_SPECIAL_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # transformers' override: Jinja's own tojson escapes HTML characters.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def token_text(value: str | dict | None) -> str | None:
    """A special token as tokenizer_config.json holds it: a string, or an AddedToken dict (`content`)."""
    return value["content"] if isinstance(value, dict) else value


def default_tokenizer_config(tokenizer: Tokenizer, chat_template: str = DEFAULT_CHAT_TEMPLATE) -> dict:
    """The tokenizer config of a checkpoint that has none (a pretrain checkpoint): curate's special
    tokens (pad only when the tokenizer has it) and the default chat template."""
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": DEFAULT_EOS_TOKEN,
        "eos_token": DEFAULT_EOS_TOKEN,
        "clean_up_tokenization_spaces": False,
        "chat_template": chat_template,
    }
    if tokenizer.token_to_id(DEFAULT_PAD_TOKEN) is not None:
        config["pad_token"] = DEFAULT_PAD_TOKEN
    return config


def read_tokenizer_config(
    checkpoint: Path,
    chat_template: str | None = None,
    eos_token: str | None = None,
    default_template: str = DEFAULT_CHAT_TEMPLATE,
) -> dict:
    """`tokenizer_config.json` of a checkpoint (or the default one, see above), with the chat template
    and the eos token replaced when given; a config without a template gets `default_template`."""
    tokenizer = _read_tokenizer(checkpoint)
    path = checkpoint / TOKENIZER_CONFIG_FILE
    if path.is_file():
        text = read_text(path)
        try:
            config = json.loads(text)
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    else:
        config = default_tokenizer_config(tokenizer, default_template)
    if chat_template is not None:
        config["chat_template"] = chat_template
    if isinstance(config.get("chat_template"), list):
        # HF's several named templates: the one called "default" formats plain conversations.
        named = {t["name"]: t["template"] for t in config["chat_template"]}
        if "default" not in named:
            raise ValueError(
                f"{path}: named chat templates {sorted(named)} have no 'default'; name one 'default' "
                "(or, to finetune, pass --chat-template)"
            )
        config["chat_template"] = named["default"]
    if not config.get("chat_template"):
        config["chat_template"] = default_template
    if eos_token is not None:
        config["eos_token"] = eos_token
    elif config.get("eos_token") is None:  # as with no tokenizer config at all: curate's separator
        config["eos_token"] = DEFAULT_EOS_TOKEN
    eos = token_text(config["eos_token"])
    if tokenizer.token_to_id(eos) is None:
        raise ValueError(
            f"{checkpoint}: the tokenizer has no end-of-turn token {eos!r}; pass --eos-token with one it has"
        )
    return config


def _read_tokenizer(checkpoint: Path) -> Tokenizer:
    # Tokenizer.from_file, not curate's load_tokenizer: a prompt that spells a special token (a chat
    # template's markers) means that token here, whereas in a crawled document it is plain text.
    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} has no tokenizer.json")
    return Tokenizer.from_file(str(path))


def write_tokenizer_config(directory: Path, config: dict) -> None:
    atomic_write_text(
        directory / TOKENIZER_CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    )


class ChatFormat:
    """A tokenizer and its chat template: conversations to text, to tokens, with the assistant's marked."""

    def __init__(self, tokenizer: Tokenizer, config: dict, origin: str = "the chat template") -> None:
        """`origin` names where `config["chat_template"]` comes from, for the error when it does not compile."""
        self.tokenizer = tokenizer
        self.config = config
        try:  # compiled here, so a broken template fails before any model loads or request comes
            self.template = _environment().from_string(config["chat_template"])
        except jinja2.TemplateSyntaxError as err:
            raise ValueError(f"{origin} is not valid Jinja (line {err.lineno}: {err.message})") from None
        self.special_tokens = {
            name: token_text(config[name]) for name in _SPECIAL_TOKENS if config.get(name) is not None
        }
        self.eos_id = tokenizer.token_to_id(self.special_tokens["eos_token"])
        pad = self.special_tokens.get("pad_token")
        # Padding is never attended to nor learned; any id does, and eos is always there.
        self.pad_id = self.eos_id if pad is None else tokenizer.token_to_id(pad)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Path,
        chat_template: str | None = None,
        eos_token: str | None = None,
        default_template: str = DEFAULT_CHAT_TEMPLATE,
    ) -> ChatFormat:
        """The checkpoint's tokenizer.json (special tokens in text are special, as in HF's tokenizers)
        with its tokenizer config, see `read_tokenizer_config`; `chat_template` comes from --chat-template."""
        config = read_tokenizer_config(checkpoint, chat_template, eos_token, default_template)
        if chat_template is not None:
            origin = "--chat-template: the chat template"
        else:
            origin = f"{checkpoint / TOKENIZER_CONFIG_FILE}: chat_template"
        return cls(_read_tokenizer(checkpoint), config, origin)

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        try:
            return self.template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens
            )
        except jinja2.TemplateError as err:  # raise_exception() in the template, or an undefined name
            raise ValueError(f"the chat template refused a conversation: {err}") from None

    def encode_prompt(self, messages: list[dict]) -> list[int]:
        """Tokens of a conversation followed by the prompt for the assistant's next turn."""
        return self._encode(self.render(messages, add_generation_prompt=True))

    def encode(self, messages: list[dict]) -> tuple[list[int], list[bool]]:
        """Tokens of a conversation, and for each whether it belongs to an assistant turn."""
        full = self.render(messages)
        # Character offsets where the text switches between prompt and assistant: [0, a1, b1, a2, ...].
        cuts = [0]
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = self.render(messages[:k], add_generation_prompt=True)
            end = self.render(messages[: k + 1])
            if not (full.startswith(end) and end.startswith(start) and len(start) >= cuts[-1]):
                raise ValueError(
                    "the chat template does not render a conversation as a growing prefix (turn "
                    f"{k}), so the assistant's tokens cannot be told apart; use another --chat-template"
                )
            cuts += [len(start), len(end)]
        if len(cuts) == 1:
            raise ValueError("a conversation has no assistant message: nothing to learn from it")
        cuts.append(len(full))
        ids: list[int] = []
        is_response: list[bool] = []
        for i, (a, b) in enumerate(itertools.pairwise(cuts)):
            piece = self._encode(full[a:b])
            ids += piece
            is_response += [i % 2 == 1] * len(piece)
        return ids, is_response

    def _encode(self, text: str) -> list[int]:
        # The template writes every special token itself (bos included): no post-processor additions.
        return self.tokenizer.encode(text, add_special_tokens=False).ids if text else []
