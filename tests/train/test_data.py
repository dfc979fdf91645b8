"""Data: shard directories read in order, deterministic indices, exact-once epochs, blending, rank slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.shards.reader import IndexedShard
from curate.shards.shard_set import ShardSet, TokenizerMismatchError
from tests.train.conftest import documents, write_shards, write_tokenizer
from train.data import (
    BlendedDataset,
    DataSource,
    Documents,
    SampleDataset,
    blend_index,
    build_pretrain_data,
    load_batch,
    open_sources,
    rank_positions,
    split_documents,
)


def test_data_spec_parses_dir_and_weight():
    assert DataSource.parse("out/shards") == DataSource(Path("out/shards"), 1.0)
    assert DataSource.parse("out/shards:2.5").weight == 2.5
    with pytest.raises(ValueError, match="weight 'abc' is not a number"):
        DataSource.parse("out/shards:abc")
    with pytest.raises(ValueError, match="positive"):
        DataSource.parse("out/shards:-1")


def test_documents_follow_metadata_order_across_files(shards):
    docs = Documents(ShardSet(shards))
    files = [IndexedShard(shards / f"corpus_{i:05d}_text_document") for i in range(2)]
    expected = [f.document(j) for f in files for j in range(f.documents)]
    assert len(docs) == len(expected) == 300
    assert all(np.array_equal(docs[i], expected[i]) for i in range(len(docs)))
    assert docs.doc_lengths.tolist() == [len(d) for d in expected]


def test_split_is_deterministic_disjoint_and_complete():
    train, valid = split_documents(1000, 0.05, seed=7)
    assert len(valid) == 50 and len(train) == 950
    assert not set(train) & set(valid) and set(train) | set(valid) == set(range(1000))
    again = split_documents(1000, 0.05, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(valid, again[1])
    assert not np.array_equal(valid, split_documents(1000, 0.05, seed=8)[1])
    assert len(split_documents(10, 0.001, seed=0)[1]) == 1  # a positive fraction holds out at least one
    with pytest.raises(ValueError, match="none for training"):
        split_documents(1, 0.5, seed=0)


def stream(docs: Documents, order: np.ndarray) -> np.ndarray:
    return np.concatenate([docs[int(i)] for i in order])


def test_every_sample_of_an_epoch_is_read_exactly_once(shards, tmp_path):
    docs = Documents(ShardSet(shards))
    ids = np.arange(len(docs))
    ds = SampleDataset(docs, ids, seq_len=32, seed=3, cache_dir=tmp_path)
    count = ds.samples_per_epoch
    for epoch in (0, 1):
        located = [ds.locate(i) for i in range(epoch * count, (epoch + 1) * count)]
        assert {e for e, _ in located} == {epoch}
        assert sorted(k for _, k in located) == list(range(count))
        # Sample k is tokens [32k, 32k + 33) of this epoch's document stream: every token a target once.
        tokens = stream(docs, ds._epoch(epoch).documents)
        assert count == (len(tokens) - 1) // 32
        for i in range(epoch * count, (epoch + 1) * count, 7):
            _, k = ds.locate(i)
            assert np.array_equal(ds[i], tokens[32 * k : 32 * k + 33])
    assert not np.array_equal(ds._epoch(0).documents, ds._epoch(1).documents)  # reshuffled per epoch


def test_indices_depend_only_on_their_inputs_and_are_cached(shards, tmp_path):
    docs = Documents(ShardSet(shards))
    ids = np.arange(len(docs))
    first = SampleDataset(docs, ids, seq_len=32, seed=3, cache_dir=tmp_path / "a")
    cached = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(cached) == 3 and all(p.endswith(".npy") for p in cached)
    again = SampleDataset(docs, ids, seq_len=32, seed=3, cache_dir=tmp_path / "a")
    assert isinstance(again._epoch(0).shuffle, np.memmap)  # loaded from the cache, not rebuilt
    fresh = SampleDataset(docs, ids, seq_len=32, seed=3, cache_dir=None)
    assert all(np.array_equal(first[i], fresh[i]) and np.array_equal(first[i], again[i]) for i in range(50))
    other = SampleDataset(docs, ids, seq_len=32, seed=4, cache_dir=tmp_path / "a")
    assert len(list((tmp_path / "a").iterdir())) == 6  # another seed, another key
    assert not all(np.array_equal(first[i], other[i]) for i in range(10))


def test_blend_follows_weights_at_every_prefix_and_extends_stably():
    source, position = blend_index([3.0, 1.0], 1000)
    counts = np.stack([np.cumsum(source == d) for d in range(2)], axis=1)
    ideal = np.arange(1, 1001)[:, None] * np.array([0.75, 0.25])
    assert np.abs(counts - ideal).max() <= 1
    for d in range(2):  # each dataset is read in order, from its own position 0
        assert position[source == d].tolist() == list(range(int((source == d).sum())))
    shorter = blend_index([3.0, 1.0], 400)
    assert np.array_equal(shorter[0], source[:400]) and np.array_equal(shorter[1], position[:400])


def test_two_ranks_split_each_global_batch_and_never_share_a_sample():
    seen = []
    for consumed in range(0, 64, 16):
        r0, r1 = (rank_positions(consumed, 16, rank, 2) for rank in (0, 1))
        assert not set(r0) & set(r1)
        assert sorted([*r0, *r1]) == list(range(consumed, consumed + 16))
        seen += [*r0, *r1]
    assert sorted(seen) == list(range(64))


def test_blended_train_and_capped_valid(shards, other_shards, tmp_path):
    data = build_pretrain_data(
        [DataSource(shards, 2.0), DataSource(other_shards, 1.0)],
        seq_len=32,
        seed=0,
        valid_fraction=0.1,
        train_samples=500,
        valid_samples=10_000,
        cache_dir=tmp_path,
    )
    assert len(data.train) == 500 and data.vocab_size == 320
    assert abs(data.train.counts(500)[0] - 333) <= 1
    # Valid stops before any source's held-out documents would be read twice.
    valid_counts = data.valid.counts(len(data.valid))
    per_epoch = [d.samples_per_epoch for d in data.valid.datasets]
    assert all(c <= s for c, s in zip(valid_counts, per_epoch, strict=True))
    assert any(c == s for c, s in zip(valid_counts, per_epoch, strict=True))
    batch = load_batch(data.train, np.arange(4), data.vocab_size)
    assert batch.shape == (4, 33) and batch.dtype.is_floating_point is False
    with pytest.raises(ValueError, match="outside the tokenizer's vocabulary"):
        load_batch(data.train, np.arange(4), vocab_size=10)
    with pytest.raises(IndexError, match="beyond the 500 samples"):
        data.train[500]


def test_blending_refuses_a_different_tokenizer(shards, tmp_path):
    other_tokenizer = write_tokenizer(tmp_path / "tok.json", seed=9)
    foreign = write_shards(tmp_path / "foreign", other_tokenizer, documents(20, seed=5), 1)
    with pytest.raises(TokenizerMismatchError, match="blended shards need one tokenizer"):
        open_sources([DataSource(shards), DataSource(foreign)])
    with pytest.raises(TokenizerMismatchError, match="expected"):
        open_sources([DataSource(shards)], expected_tokenizer_sha256="0" * 64)


def test_too_little_data_for_one_sample_is_an_error(tmp_path, tokenizer_file):
    small = write_shards(tmp_path / "small", tokenizer_file, ["A cat."], 1)
    with pytest.raises(ValueError, match="do not fill one sample"):
        build_pretrain_data([DataSource(small)], 64, 0, 0.0, 10, 10, None)


def test_blended_dataset_reads_its_sources_in_their_own_order(shards, other_shards):
    a = SampleDataset(Documents(ShardSet(shards)), np.arange(300), 16, seed=1)
    b = SampleDataset(Documents(ShardSet(other_shards)), np.arange(120), 16, seed=1)
    blend = BlendedDataset([a, b], [1.0, 1.0], 40)
    source, position = blend.source, blend.position
    for d in (0, 1):  # each source read from its own first sample on, none skipped or repeated
        assert np.array_equal(position[source == d], np.arange(20)), d  # equal weights: 20 each
    for i in range(40):
        expected = (a, b)[source[i]][position[i]]
        assert np.array_equal(blend[i], expected)
