"""The tokenizer of a shard directory: a byte-level BPE in HF `tokenizers`, trained here or given.

Byte-level means every string has an encoding (no unknown token) and decode(encode(x)) == x exactly: the
ByteLevel pre-tokenizer maps bytes to printable characters and its decoder maps them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int, min_frequency: int, special_tokens: list[str]
) -> Tokenizer:
    """Train a GPT-2-style byte-level BPE; the special tokens take the first ids, in the order given."""
    tokenizer = Tokenizer(models.BPE())
    # No prefix space: it would add a space in front of every document that decode keeps.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        # All 256 bytes from the start, so text unseen in training still encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a `tokenizer.json` set up for documents: special-token text in them is encoded as plain text.

    A page that happens to contain "<|endoftext|>" must not put a document boundary in the middle of it.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return tokenizer


def token_id(tokenizer: Tokenizer, token: str, path: str | Path) -> int:
    """The id of `token`, or a ValueError that names the tokenizer file."""
    found = tokenizer.token_to_id(token)
    if found is None:
        raise ValueError(f"tokenizer {path} has no token {token!r}")
    return found
