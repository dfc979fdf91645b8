"""`metadata.json`: what `train` needs to know about a shard directory before it reads a token."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.part_files import atomic_write_text
from curate.shards.format import ShardFormatError

FORMAT_NAME = "megatron-mmidx"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenizerInfo(_Record):
    file: str = Field(description="The HF tokenizers file, relative to the shard directory.")
    sha256: str = Field(description="sha256 of that file; train refuses shards whose hash differs.")
    vocab_size: int = Field(description="Entries in the vocabulary, special tokens included.")
    eod_token: str = Field(description="The end-of-document token appended to every document.")
    eod_id: int = Field(description="Its id.")
    pad_token: str | None = Field(description="The padding token (None: the tokenizer has none).")
    pad_id: int | None = Field(description="Its id.")


class PrefixInfo(_Record):
    prefix: str = Field(description="Path prefix of a .bin/.idx pair, relative to the shard directory.")
    documents: int = Field(description="Documents (= sequences) in it.")
    tokens: int = Field(description="Tokens in it, one EOD per document included.")


class ShardMetadata(_Record):
    """The contents of `metadata.json` (DESIGN.md §4)."""

    format: str = Field(FORMAT_NAME, description="Shard format name: Megatron-LM MMapIndexedDataset files.")
    format_version: int = Field(FORMAT_VERSION, description="Version of this metadata and the .idx layout.")
    created: str = Field(description="UTC creation time, ISO 8601.")
    pipeline_sha256: str | None = Field(None, description="sha256 of the pipeline file that made the shards.")
    tokenizer: TokenizerInfo
    dtype: str = Field(description="Token dtype in .bin: uint16 or int32.")
    documents: int = Field(description="Documents over all prefixes.")
    tokens: int = Field(description="Tokens over all prefixes.")
    prefixes: list[PrefixInfo] = Field(description="Every .bin/.idx pair, in document order.")

    def write(self, directory: Path) -> Path:
        path = directory / METADATA_FILE
        atomic_write_text(path, json.dumps(self.model_dump(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> ShardMetadata:
        """Load and check `directory/metadata.json`; raise ShardFormatError naming what is wrong."""
        path = directory / METADATA_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ShardFormatError(f"{path}: missing; is {directory} a shard directory?") from None
        except NotADirectoryError:
            raise ShardFormatError(f"{directory}: not a directory; give a shard directory") from None
        except OSError as err:  # a directory named metadata.json, no permission
            raise ShardFormatError(f"{path}: cannot be read ({err.strerror})") from None
        except ValueError as err:
            raise ShardFormatError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(raw, dict) or (raw.get("format"), raw.get("format_version")) != (
            FORMAT_NAME,
            FORMAT_VERSION,
        ):
            got = (raw.get("format"), raw.get("format_version")) if isinstance(raw, dict) else raw
            raise ShardFormatError(
                f"{path}: format {got!r}; this reader understands {FORMAT_NAME!r} version {FORMAT_VERSION}"
            )
        try:
            return cls(**raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ShardFormatError(f"{path}: key '{where}': {first['msg']}") from None
