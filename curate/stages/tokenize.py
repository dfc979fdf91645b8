"""`tokenize`: the curated text as Megatron-LM `.bin/.idx` shards, with tokenizer.json and metadata.json.

A global stage, because training a tokenizer needs text from every shard. Its phases run as Dask tasks:

1. `sample` (only with `train`): each shard writes a seeded sample of its documents, at most
   `sample_bytes / shards` bytes; `train`: one task trains a byte-level BPE on all samples.
2. `encode`: each shard encodes its documents `batch_size` at a time, appends EOD to each and writes a
   part `.bin/.idx`. It verifies the tiktoken fast path on its first documents before using it.
3. `plan` and `merge`: the parts, in shard order, become `<output>/<prefix>[_NNNNN]_text_document.*` of at
   most `shard_size` bytes each; the plan depends only on the parts, so the files are byte-identical
   for any number of workers.

Every document is kept, an empty one too (it becomes a lone EOD): document i of the shards is then row i
of the dataset that reached this stage, in shard order, and the funnel stays in = kept.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tiktoken
from pydantic import ByteSize, Field, ValidationInfo, field_validator

from curate.file_hash import file_sha256
from curate.global_run import GlobalContext, GlobalResult
from curate.registry import register
from curate.shards.bpe import load_tokenizer, token_id, train_byte_level_bpe
from curate.shards.encoders import (
    FastPathUnavailable,
    HFEncoder,
    choose_encoder,
    encode_documents,
    tiktoken_encoding,
)
from curate.shards.format import token_dtype
from curate.shards.merge import plan_outputs, remove_outputs, write_output
from curate.shards.metadata import PrefixInfo, ShardMetadata, TokenizerInfo
from curate.shards.writer import IndexedShardWriter
from curate.stage import GlobalStage, StageConfig
from curate.stats import StageCounter

TOKENIZER_FILE = "tokenizer.json"


class TrainTokenizerConfig(StageConfig):
    """How to train the byte-level BPE when no tokenizer file is given."""

    # HF tokenizers' trainer allocates for vocab_size up front: 10^8 aborted a worker on 4 GiB, so a bound
    # far above any LM's vocabulary (Gemma's 262k) makes that a config error instead.
    vocab_size: int = Field(
        32_000, ge=258, le=2**24, description="Vocabulary size: 256 bytes, special tokens, merges."
    )
    min_frequency: int = Field(2, ge=1, description="A pair seen fewer times than this is never merged.")
    sample_bytes: ByteSize = Field(
        100_000_000, gt=0, description="Text to train on (e.g. 100MB), split evenly over the shards."
    )
    seed: int = Field(0, description="Seed of the per-shard document samples.")


class TokenizeConfig(StageConfig):
    tokenizer: str | None = Field(None, description="An HF tokenizer.json to use (or set `train`).")
    train: TrainTokenizerConfig | None = Field(
        None, validate_default=True, description="Train a byte-level BPE on the text (or set `tokenizer`)."
    )
    output: str = Field("shards", description="Directory under the run output for the shards and metadata.")
    prefix: str = Field(
        "corpus",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="File names: <prefix>[_NNNNN]_text_document.bin/.idx.",
    )
    shard_size: ByteSize = Field(
        1_000_000_000, gt=0, description="Most .bin bytes per output file (500MB, 1GB); documents stay whole."
    )
    # Not empty: a token with no text decodes to nothing, so documents would run together in decoded text.
    eod_token: str = Field(
        "<|endoftext|>", min_length=1, validate_default=True, description="Token appended to every document."
    )
    pad_token: str | None = Field(
        "<|pad|>",
        min_length=1,
        validate_default=True,
        description="Padding token for train; null if the tokenizer has none.",
    )
    encoder: Literal["auto", "hf", "tiktoken"] = Field(
        "auto", description="auto: tiktoken where verified identical to HF, else HF; or force one."
    )
    batch_size: int = Field(1000, gt=0, description="Documents encoded at a time (bounds a task's memory).")
    verify_bytes: ByteSize = Field(
        1_000_000, gt=0, description="Text per shard encoded by both HF and tiktoken before tiktoken is used."
    )

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_loads(cls, value: str | None) -> str | None:
        if value is not None:
            if not Path(value).is_file():
                raise ValueError(f"tokenizer file {value!r} does not exist")
            try:
                load_tokenizer(value)
            except Exception as err:  # tokenizers raises a bare Exception on a malformed file
                raise ValueError(f"{value} is not an HF tokenizer.json ({err})") from None
        return value

    @field_validator("train")
    @classmethod
    def _exactly_one_source(cls, value: TrainTokenizerConfig | None, info: ValidationInfo):
        has_file = info.data.get("tokenizer") is not None
        if has_file == (value is not None):
            raise ValueError(
                "set exactly one of 'tokenizer' (a tokenizer.json path) "
                "and 'train' (e.g. {vocab_size: 32000})"
            )
        return value

    @field_validator("eod_token", "pad_token")
    @classmethod
    def _in_tokenizer(cls, value: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("tokenizer")
        if value is not None and path is not None:
            token_id(load_tokenizer(path), value, path)
        return value


@dataclass(frozen=True)
class EncodeSettings:
    """What every encode task needs (plain data, shipped to the workers)."""

    tokenizer: str
    tokenizer_sha256: str
    encoder: str
    eod_id: int
    dtype: str
    batch_size: int
    verify_bytes: int
    parts_dir: str


@register
class Tokenize(GlobalStage):
    """Tokenize with a byte-level BPE (given or trained) into Megatron .bin/.idx shards + metadata.json."""

    name = "tokenize"
    Config = TokenizeConfig
    output_key = "output"

    def run(self, ctx: GlobalContext) -> GlobalResult:
        cfg = self.config
        started = time.perf_counter()
        shard_ids = [sid for sid, _ in ctx.parts]
        tokenizer_file = ctx.work_dir / TOKENIZER_FILE
        if cfg.train is not None:
            self._train(ctx, shard_ids, tokenizer_file)
        else:
            shutil.copyfile(cfg.tokenizer, tokenizer_file)
        tokenizer = load_tokenizer(tokenizer_file)
        info = TokenizerInfo(
            file=TOKENIZER_FILE,
            sha256=file_sha256(tokenizer_file),
            vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
            eod_token=cfg.eod_token,
            eod_id=token_id(tokenizer, cfg.eod_token, tokenizer_file),
            pad_token=cfg.pad_token,
            pad_id=None if cfg.pad_token is None else token_id(tokenizer, cfg.pad_token, tokenizer_file),
        )
        dtype = token_dtype(info.vocab_size).name
        settings = EncodeSettings(
            tokenizer=str(tokenizer_file),
            tokenizer_sha256=info.sha256,
            encoder=cfg.encoder,
            eod_id=info.eod_id,
            dtype=dtype,
            batch_size=cfg.batch_size,
            verify_bytes=cfg.verify_bytes,
            parts_dir=str(ctx.work_dir / "parts"),
        )
        jobs = [(sid, path, ctx.output_part(sid) if ctx.write_output else None) for sid, path in ctx.parts]
        encoded = ctx.map(functools.partial(encode_part, settings), jobs, "encode", shard_ids)
        self._report_encoders(ctx, encoded)

        out_dir = ctx.output_dir / cfg.output
        parts = [Path(e["part"]) for e in encoded]
        plan = functools.partial(
            plan_outputs, out_dir=out_dir, prefix=cfg.prefix, dtype=dtype, shard_size=cfg.shard_size
        )
        outputs = ctx.map(plan, [parts], "plan", ["outputs"])[0]
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_outputs(out_dir, cfg.prefix)
        written = ctx.map(write_output, outputs, "merge", [o.prefix.name for o in outputs])
        # The parts hold a copy of every token; once merged they only take disk space.
        if Path(settings.parts_dir).exists():
            shutil.rmtree(settings.parts_dir)

        shutil.copyfile(tokenizer_file, out_dir / TOKENIZER_FILE)
        documents, tokens = sum(w["documents"] for w in written), sum(w["tokens"] for w in written)
        ShardMetadata(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            tokenizer=info,
            dtype=dtype,
            documents=documents,
            tokens=tokens,
            prefixes=[PrefixInfo(**w) for w in written],
            pipeline_sha256=ctx.pipeline_sha256,
        ).write(out_dir)

        text_bytes = sum(e["bytes"] for e in encoded)
        counter = StageCounter(
            id=ctx.stage_id,
            stage=self.name,
            docs_in=documents,
            kept=documents,
            bytes_in=text_bytes,
            bytes_out=text_bytes,
            seconds=time.perf_counter() - started,
        )
        details = {
            "output": str(out_dir),
            "files": [w["prefix"] for w in written],
            "documents": documents,
            "tokens": tokens,
            "tokenizer_sha256": info.sha256,
            "vocab_size": info.vocab_size,
            "dtype": dtype,
            "encoders": dict(Counter(e["encoder"] for e in encoded)),
        }
        ctx.console.print(
            f"{ctx.stage_id}: {documents:,} documents, {tokens:,} tokens "
            f"in {len(written)} file(s) under {out_dir}"
        )
        return GlobalResult(counter=counter, details=details)

    def _train(self, ctx: GlobalContext, shard_ids: list[str], tokenizer_file: Path) -> None:
        train = self.config.train
        sample = functools.partial(
            sample_part,
            budget=train.sample_bytes // max(len(ctx.parts), 1),
            seed=train.seed,
            sample_dir=str(ctx.work_dir / "sample"),
        )
        items = [(i, sid, path) for i, (sid, path) in enumerate(ctx.parts)]
        samples = ctx.map(sample, items, "sample", shard_ids)
        specials = [t for t in (self.config.eod_token, self.config.pad_token) if t is not None]
        fit = functools.partial(
            train_tokenizer,
            vocab_size=train.vocab_size,
            min_frequency=train.min_frequency,
            special_tokens=specials,
            out=str(tokenizer_file),
        )
        ctx.map(fit, [[s["path"] for s in samples]], "train", ["tokenizer"])

    def _report_encoders(self, ctx: GlobalContext, encoded: list[dict]) -> None:
        """Say which encoder each shard used: tiktoken with how much text verified it, else HF and why."""
        fast = [e for e in encoded if e["encoder"] == "tiktoken"]
        if fast:
            docs, size = sum(e["verified_docs"] for e in fast), sum(e["verified_bytes"] for e in fast)
            ctx.console.print(
                f"{ctx.stage_id}: encoder tiktoken on {len(fast)} of {len(encoded)} shards "
                f"(ids identical to hf on each shard's first documents: {docs:,} documents, {size:,} bytes)",
                highlight=False,
            )
        others = Counter((e["encoder"], e["reason"]) for e in encoded if e["encoder"] != "tiktoken")
        for (name, reason), count in others.items():
            ctx.console.print(
                f"{ctx.stage_id}: encoder {name} on {count} of {len(encoded)} shards ({reason})",
                highlight=False,
            )


def _text_batches(path: Path, batch_size: int) -> Iterator[pa.Array]:
    """The `text` column of a part, `batch_size` rows at a time (an empty part may have no columns)."""
    part = pq.ParquetFile(path)
    if "text" not in part.schema_arrow.names:
        if part.metadata.num_rows:
            raise ValueError(f"{path}: no 'text' column to tokenize (columns: {part.schema_arrow.names})")
        return
    for batch in part.iter_batches(batch_size=batch_size, columns=["text"]):
        yield batch.column(0)


def _texts(column: pa.Array) -> list[str]:
    # A missing text tokenizes like an empty one: a lone EOD, so row i stays document i.
    return ["" if t is None else t for t in column.to_pylist()]


def sample_part(item: tuple[int, str, Path], budget: int, seed: int, sample_dir: str) -> dict:
    """Write a seeded sample of one part's documents, at most `budget` UTF-8 bytes, for tokenizer training.

    Documents are taken in a random order (seeded by `seed` and the shard's position) until the budget
    is met; the one that would overflow it contributes its beginning. Two passes keep memory at the
    sample size: byte lengths first, then the chosen texts.
    """
    index, shard_id, path = item
    lengths = [pc.binary_length(col).fill_null(0) for col in _text_batches(path, 10_000)]
    sizes = np.concatenate([c.to_numpy(zero_copy_only=False) for c in lengths]) if lengths else np.zeros(0)
    order = np.random.default_rng([seed, index]).permutation(sizes.size)
    ends = np.cumsum(sizes[order])
    whole = int(np.searchsorted(ends, budget, side="right"))
    chosen = {int(i): None for i in order[:whole]}
    if whole < sizes.size:
        used = int(ends[whole - 1]) if whole else 0
        chosen[int(order[whole])] = budget - used  # bytes of this document's head that still fit
    texts, row = [], 0
    for column in _text_batches(path, 10_000):
        for text in _texts(column):
            if row in chosen:
                head = chosen[row]
                texts.append(text if head is None else text.encode()[:head].decode(errors="ignore"))
            row += 1
    out = Path(sample_dir) / f"sample-{shard_id}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex}")
    pq.write_table(pa.table({"text": pa.array(texts, type=pa.string())}), tmp)
    os.replace(tmp, out)
    return {"path": str(out), "documents": len(texts), "bytes": sum(len(t.encode()) for t in texts)}


def train_tokenizer(
    sample_paths: list[str], vocab_size: int, min_frequency: int, special_tokens: list[str], out: str
) -> int:
    """Train the BPE on the samples, in shard order, and save it as `out`; returns the vocabulary size."""

    def texts() -> Iterator[str]:
        for path in sample_paths:
            for column in _text_batches(Path(path), 10_000):
                yield from _texts(column)

    tokenizer = train_byte_level_bpe(texts(), vocab_size, min_frequency, special_tokens)
    tmp = f"{out}.tmp-{uuid.uuid4().hex}"
    tokenizer.save(tmp)
    os.replace(tmp, out)
    return tokenizer.get_vocab_size(with_added_tokens=True)


@functools.cache
def _encoders(path: str, sha256: str) -> tuple[HFEncoder, tiktoken.Encoding | FastPathUnavailable]:
    """The HF encoder and the tiktoken encoding (or why there is none), built once per worker process."""
    del sha256  # part of the cache key: a different tokenizer under the same path is loaded afresh
    tokenizer = load_tokenizer(path)
    try:
        fast = tiktoken_encoding(tokenizer)
    except FastPathUnavailable as why:
        fast = why
    return HFEncoder(tokenizer), fast


def encode_into(
    writer: IndexedShardWriter,
    batches: Iterable[list[str]],
    mode: str,
    reference: HFEncoder,
    fast: tiktoken.Encoding | FastPathUnavailable,
    eod_id: int,
    verify_bytes: int,
) -> dict:
    """Encode batches of documents into `writer`, EOD after each; the first batch decides the encoder.

    The first documents of the first batch, up to `verify_bytes` of text, are the verification sample:
    tiktoken is used (mode auto or tiktoken) only if it gives HF's ids on all of them.
    """
    encoder, reason, verified = None, "no documents", []
    for texts in batches:
        if encoder is None:
            verified = _verification_sample(texts, verify_bytes)
            encoder, reason = choose_encoder(mode, reference, fast, verified)
        tokens, lengths = encode_documents(encoder, texts, eod_id)
        writer.add(tokens, lengths)
    return {
        "encoder": "none" if encoder is None else encoder.name,
        "reason": reason,
        "verified_docs": len(verified),
        "verified_bytes": sum(len(t.encode()) for t in verified),
    }


def _verification_sample(texts: list[str], budget: int) -> list[str]:
    total = 0
    for n, text in enumerate(texts, start=1):
        total += len(text.encode())
        if total >= budget:
            return texts[:n]
    return texts


def encode_part(settings: EncodeSettings, item: tuple[str, Path, Path | None]) -> dict:
    """Encode one part into `parts_dir/part-<shard>.bin/.idx`; pass the documents on if asked."""
    shard_id, path, pass_through = item
    reference, fast = _encoders(settings.tokenizer, settings.tokenizer_sha256)
    prefix = Path(settings.parts_dir) / f"part-{shard_id}"
    text_bytes = 0

    def batches() -> Iterator[list[str]]:
        nonlocal text_bytes
        for column in _text_batches(path, settings.batch_size):
            text_bytes += int(pc.sum(pc.binary_length(column)).as_py() or 0)
            yield _texts(column)

    with IndexedShardWriter(prefix, np.dtype(settings.dtype)) as writer:
        outcome = encode_into(
            writer, batches(), settings.encoder, reference, fast, settings.eod_id, settings.verify_bytes
        )
    if pass_through is not None:
        tmp = pass_through.with_name(f"{pass_through.name}.tmp-{uuid.uuid4().hex}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, pass_through)
    return {
        "part": str(prefix),
        "documents": writer.documents,
        "tokens": writer.tokens,
        "bytes": text_bytes,
        **outcome,
    }
