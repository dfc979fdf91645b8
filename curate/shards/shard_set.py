"""A whole shard directory, opened the way `train` needs it: metadata, tokenizer and every prefix, checked."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from curate.file_hash import file_sha256
from curate.shards.bpe import load_tokenizer
from curate.shards.format import ShardFormatError
from curate.shards.metadata import ShardMetadata
from curate.shards.reader import IndexedShard


class TokenizerMismatchError(ShardFormatError):
    """The shards were tokenized with a different tokenizer than the one offered with them or expected."""


class ShardSet:
    """`metadata.json`, `tokenizer.json` (hash checked) and every `.bin/.idx` pair listed, validated.

    `expected_tokenizer_sha256` (a model's tokenizer) makes shards tokenized with another one an error.
    """

    def __init__(self, directory: str | Path, expected_tokenizer_sha256: str | None = None) -> None:
        self.directory = Path(directory)
        self.metadata = ShardMetadata.read(self.directory)
        self.tokenizer_path = self.directory / self.metadata.tokenizer.file
        self._check_tokenizer(expected_tokenizer_sha256)
        self.shards = {p.prefix: self._open(p.prefix, p.documents, p.tokens) for p in self.metadata.prefixes}

    def _check_tokenizer(self, expected: str | None) -> None:
        recorded = self.metadata.tokenizer.sha256
        if not self.tokenizer_path.is_file():
            raise ShardFormatError(f"{self.tokenizer_path}: missing; metadata.json names it as the tokenizer")
        actual = file_sha256(self.tokenizer_path)
        if actual != recorded:
            raise TokenizerMismatchError(
                f"{self.tokenizer_path}: sha256 {actual[:12]}… but metadata.json records {recorded[:12]}…; "
                "the tokenizer is not the one these shards were written with"
            )
        if expected is not None and expected != recorded:
            raise TokenizerMismatchError(
                f"{self.directory}: shards tokenized with tokenizer {recorded[:12]}…, "
                f"expected {expected[:12]}…; retokenize them or use the matching model"
            )

    def _open(self, prefix: str, documents: int, tokens: int) -> IndexedShard:
        shard = IndexedShard(self.directory / prefix)
        found = (shard.dtype.name, shard.documents, shard.tokens)
        if found != (self.metadata.dtype, documents, tokens):
            raise ShardFormatError(
                f"{shard.idx_path}: holds {found[1]} documents, {found[2]} {found[0]} tokens; metadata.json "
                f"says {documents} documents, {tokens} {self.metadata.dtype} tokens"
            )
        return shard

    @property
    def documents(self) -> int:
        return sum(s.documents for s in self.shards.values())

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.shards.values())

    def tokenizer(self) -> Tokenizer:
        """The HF tokenizer the shards were written with."""
        return load_tokenizer(self.tokenizer_path)
