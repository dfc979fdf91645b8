"""Megatron `.bin/.idx` shards: megatron-core reads ours, we read its, and damage is a clear error."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest

from curate.shards.bpe import train_byte_level_bpe
from curate.shards.format import ShardFormatError, bin_path, idx_path, token_dtype
from curate.shards.merge import plan_outputs, write_output
from curate.shards.metadata import PrefixInfo, ShardMetadata, TokenizerInfo
from curate.shards.reader import IndexedShard
from curate.shards.shard_set import ShardSet, TokenizerMismatchError
from curate.shards.writer import IndexedShardWriter
from curate.stages.langid import file_sha256

with warnings.catch_warnings():
    # megatron-core warns at import that Transformer Engine and Apex are absent: irrelevant on CPU.
    warnings.simplefilter("ignore")
    indexed_dataset = pytest.importorskip(
        "megatron.core.datasets.indexed_dataset",
        reason="megatron-core is not installed; it comes with the dev extra: pip install -e '.[dev]'",
    )


def documents(seed: int, count: int, vocab: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=int(rng.integers(1, 40))) for _ in range(count)]


def write_shard(prefix, docs, dtype) -> None:
    """Write `docs` in two batches, as the tokenize stage does."""
    with IndexedShardWriter(prefix, dtype) as writer:
        for batch in (docs[: len(docs) // 2], docs[len(docs) // 2 :]):
            lengths = np.array([d.size for d in batch])
            writer.add(np.concatenate(batch) if batch else np.zeros(0, np.int64), lengths)


@pytest.mark.parametrize("vocab", [50_000, 100_000], ids=["uint16", "int32"])
def test_megatron_core_reads_our_shards(tmp_path, vocab):
    docs = documents(0, 50, vocab)
    prefix = tmp_path / "web_text_document"
    write_shard(prefix, docs, token_dtype(vocab))
    theirs = indexed_dataset.IndexedDataset(str(prefix))
    assert len(theirs) == len(docs)
    assert theirs.index.dtype == token_dtype(vocab)
    assert theirs.document_indices.tolist() == list(range(len(docs) + 1))
    for i, doc in enumerate(docs):
        assert theirs[i].tolist() == doc.tolist()
    assert theirs.get(3, offset=1, length=2).tolist() == docs[3][1:3].tolist()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # megatron-core's numpy 2 copy= warning
def test_we_read_shards_written_by_megatron_core(tmp_path):
    import torch

    docs = documents(1, 20, 1000)
    prefix = tmp_path / "theirs"
    builder = indexed_dataset.IndexedDatasetBuilder(str(bin_path(prefix)), dtype=np.uint16)
    for doc in docs:
        builder.add_document(torch.tensor(doc), [doc.size])
    # A document of two sequences, which preprocess_data.py writes when it splits sentences.
    builder.add_item(torch.tensor([7, 8, 9]))
    builder.add_item(torch.tensor([10]))
    builder.end_document()
    builder.finalize(str(idx_path(prefix)))

    ours = IndexedShard(prefix)
    assert (len(ours), ours.documents, ours.dtype) == (22, 21, np.dtype("<u2"))
    assert [ours[i].tolist() for i in range(20)] == [d.tolist() for d in docs]
    assert ours.document(20).tolist() == [7, 8, 9, 10]
    assert ours.doc_lengths.tolist() == [d.size for d in docs] + [4]
    assert ours[-1].tolist() == [10]


def test_token_dtype_follows_megatron(tmp_path):
    for vocab in (258, 50_257, 65_499, 65_500, 128_256):
        assert token_dtype(vocab) == indexed_dataset.DType.optimal_dtype(vocab), vocab


def test_vocabulary_overflow_is_an_error_and_leaves_no_files(tmp_path):
    prefix = tmp_path / "big"
    with pytest.raises(ShardFormatError, match=r"token id 70000 does not fit uint16"):
        write_shard(prefix, [np.array([1, 2, 70_000])], token_dtype(50_000))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def shard(tmp_path):
    prefix = tmp_path / "s_text_document"
    write_shard(prefix, documents(2, 10, 1000), np.uint16)
    return prefix


def patch(path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def test_truncated_bin_is_named(shard):
    raw = bin_path(shard).read_bytes()
    bin_path(shard).write_bytes(raw[:-2])
    with pytest.raises(ShardFormatError, match=r"s_text_document\.bin: .* bytes: truncated"):
        IndexedShard(shard)


@pytest.mark.parametrize(
    ("offset", "data", "message"),
    [
        (0, b"NOTANIDX!", r"not a Megatron index"),
        (9, struct.pack("<Q", 2), r"index version 2; only version 1"),
        (17, struct.pack("<B", 42), r"unknown dtype code 42"),
        (18, struct.pack("<Q", 11), r"242 bytes, but its header promises 254 .*: truncated or corrupt"),
    ],
    ids=["magic", "version", "dtype", "count"],
)
def test_corrupt_idx_header_is_named(shard, offset, data, message):
    patch(idx_path(shard), offset, data)
    with pytest.raises(ShardFormatError, match=rf"s_text_document\.idx: {message}"):
        IndexedShard(shard)


def test_truncated_idx_and_inconsistent_index(shard, tmp_path):
    idx = idx_path(shard)
    good = idx.read_bytes()
    idx.write_bytes(good[:20])
    with pytest.raises(ShardFormatError, match=r"shorter than the 34-byte header"):
        IndexedShard(shard)
    idx.write_bytes(good[:-8])
    with pytest.raises(ShardFormatError, match=r"truncated or corrupt"):
        IndexedShard(shard)
    # Sequence 1's pointer (the second int64 after 10 int32 lengths) moved by one token.
    idx.write_bytes(good)
    patch(idx, 34 + 10 * 4 + 8, struct.pack("<q", 4))
    with pytest.raises(ShardFormatError, match=r"sequence 1 points at byte 4, .* corrupt pointers"):
        IndexedShard(shard)
    idx.write_bytes(good)
    patch(idx, 34 + 10 * 12 + 3 * 8, struct.pack("<q", 1))
    with pytest.raises(ShardFormatError, match=r"document index 3 goes backwards \(2 → 1\)"):
        IndexedShard(shard)
    bin_path(shard).unlink()
    with pytest.raises(ShardFormatError, match=r"s_text_document\.bin: missing"):
        IndexedShard(shard)


def test_merge_never_splits_a_document_and_respects_shard_size(tmp_path):
    parts = []
    for n, sizes in enumerate([[3, 3, 3], [10], [2, 2]]):
        parts.append(tmp_path / f"part-{n}")
        write_shard(parts[-1], [np.full(s, n + 1) for s in sizes], np.uint16)
    # 14 bytes = 7 uint16 tokens per file: [3, 3] | [3] | [10] alone (too big) | [2, 2].
    outputs = plan_outputs(parts, tmp_path / "out", "web", "uint16", shard_size=14)
    written = [write_output(o) for o in outputs]
    assert [w["prefix"] for w in written] == [f"web_{i:05d}_text_document" for i in range(4)]
    shards = [IndexedShard(tmp_path / "out" / w["prefix"]) for w in written]
    assert [s.doc_lengths.tolist() for s in shards] == [[3, 3], [3], [10], [2, 2]]
    assert np.concatenate([s[i] for s in shards for i in range(len(s))]).tolist() == (
        [1] * 9 + [2] * 10 + [3] * 4
    )
    single = plan_outputs(parts, tmp_path / "one", "web", "uint16", shard_size=1000)
    assert [o.prefix.name for o in single] == ["web_text_document"]


@pytest.fixture
def shard_dir(tmp_path):
    """A shard directory as the tokenize stage leaves it."""
    out = tmp_path / "shards"
    docs = documents(3, 12, 300)
    write_shard(out / "web_text_document", docs, np.uint16)
    tokenizer = train_byte_level_bpe(
        ["a tiny corpus, a tiny tokenizer"], 300, 1, ["<|endoftext|>", "<|pad|>"]
    )
    tokenizer.save(str(out / "tokenizer.json"))
    ShardMetadata(
        created="2026-01-01T00:00:00+00:00",
        tokenizer=TokenizerInfo(
            file="tokenizer.json",
            sha256=file_sha256(out / "tokenizer.json"),
            vocab_size=tokenizer.get_vocab_size(),
            eod_token="<|endoftext|>",
            eod_id=0,
            pad_token="<|pad|>",
            pad_id=1,
        ),
        dtype="uint16",
        documents=12,
        tokens=sum(d.size for d in docs),
        prefixes=[PrefixInfo(prefix="web_text_document", documents=12, tokens=sum(d.size for d in docs))],
    ).write(out)
    return out


def test_shard_set_opens_a_directory(shard_dir):
    shards = ShardSet(shard_dir)
    assert shards.documents == 12 and list(shards.shards) == ["web_text_document"]
    assert shards.tokenizer().token_to_id("<|pad|>") == 1


def test_tokenizer_that_does_not_match_the_metadata_is_refused(shard_dir):
    expected = json.loads((shard_dir / "metadata.json").read_text())["tokenizer"]["sha256"]
    with pytest.raises(TokenizerMismatchError, match=r"tokenized with tokenizer .*, expected 000000000000"):
        ShardSet(shard_dir, expected_tokenizer_sha256="0" * 64)
    (shard_dir / "tokenizer.json").write_text(
        (shard_dir / "tokenizer.json").read_text().replace("tiny", "tinY")
    )
    with pytest.raises(TokenizerMismatchError, match=rf"tokenizer\.json: sha256 .* records {expected[:12]}"):
        ShardSet(shard_dir)


def test_metadata_that_does_not_match_the_shards_is_refused(shard_dir):
    meta = json.loads((shard_dir / "metadata.json").read_text())
    meta["prefixes"][0]["documents"] = 13
    (shard_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ShardFormatError, match=r"holds 12 documents, .*metadata\.json says 13 documents"):
        ShardSet(shard_dir)
    (shard_dir / "metadata.json").write_text(json.dumps(meta | {"format_version": 9}))
    with pytest.raises(ShardFormatError, match=r"format .*9.*understands 'megatron-mmidx' version 1"):
        ShardSet(shard_dir)
    (shard_dir / "metadata.json").unlink()
    with pytest.raises(ShardFormatError, match=r"metadata\.json: missing; is .* a shard directory"):
        ShardSet(shard_dir)
