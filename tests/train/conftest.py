"""Shard directories for the train tests, written with curate's own tokenizer, writer and metadata."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from curate.shards.bpe import load_tokenizer, token_id, train_byte_level_bpe
from curate.shards.encoders import HFEncoder, encode_documents
from curate.shards.format import token_dtype
from curate.shards.metadata import PrefixInfo, ShardMetadata, TokenizerInfo
from curate.shards.writer import IndexedShardWriter
from curate.stages.langid import file_sha256

SPECIALS = ["<|endoftext|>", "<|pad|>"]
SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the teacher", "a small bird"]
VERBS = ["sees", "likes", "finds", "follows", "paints", "remembers"]
OBJECTS = ["the red house", "a long river", "the green hill", "an open door", "the quiet town"]


def documents(count: int, seed: int) -> list[str]:
    """Documents of simple, regular sentences: a tiny model learns them within a few dozen steps."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        sentences = [
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
            for _ in range(rng.randint(1, 8))
        ]
        docs.append(" ".join(sentences).capitalize())
    return docs


def write_tokenizer(path: Path, vocab_size: int = 320, seed: int = 0) -> Path:
    """A byte-level BPE trained on the test documents (`seed` varies it, for mismatch tests)."""
    tokenizer = train_byte_level_bpe(documents(200, seed), vocab_size, 2, SPECIALS)
    tokenizer.save(str(path))
    return path


def write_shards(directory: Path, tokenizer_file: Path, texts: list[str], files: int = 2) -> Path:
    """A shard directory as curate's tokenize stage leaves it: `files` .bin/.idx pairs, tokenizer.json,
    metadata.json."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_file, directory / "tokenizer.json")
    tokenizer = load_tokenizer(directory / "tokenizer.json")
    eod_id = token_id(tokenizer, SPECIALS[0], tokenizer_file)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab)
    prefixes = []
    for i, chunk in enumerate(np.array_split(np.arange(len(texts)), files)):
        tokens, lengths = encode_documents(HFEncoder(tokenizer), [texts[j] for j in chunk], eod_id)
        prefix = f"corpus_{i:05d}_text_document"
        with IndexedShardWriter(directory / prefix, dtype) as writer:
            writer.add(tokens, lengths)
        prefixes.append(PrefixInfo(prefix=prefix, documents=writer.documents, tokens=writer.tokens))
    ShardMetadata(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tokenizer=TokenizerInfo(
            file="tokenizer.json",
            sha256=file_sha256(directory / "tokenizer.json"),
            vocab_size=vocab,
            eod_token=SPECIALS[0],
            eod_id=eod_id,
            pad_token=SPECIALS[1],
            pad_id=token_id(tokenizer, SPECIALS[1], tokenizer_file),
        ),
        dtype=dtype.name,
        documents=sum(p.documents for p in prefixes),
        tokens=sum(p.tokens for p in prefixes),
        prefixes=prefixes,
    ).write(directory)
    return directory


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer.json")


@pytest.fixture(scope="session")
def shards(tmp_path_factory, tokenizer_file) -> Path:
    """300 small documents (about 25k tokens) in two .bin/.idx pairs."""
    return write_shards(tmp_path_factory.mktemp("shards") / "web", tokenizer_file, documents(300, seed=1))


@pytest.fixture(scope="session")
def other_shards(tmp_path_factory, tokenizer_file) -> Path:
    """A second directory with the same tokenizer, for blending."""
    return write_shards(
        tmp_path_factory.mktemp("shards") / "books", tokenizer_file, documents(120, seed=2), 1
    )
