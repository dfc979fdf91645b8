"""Training samples from curate's shards, with Megatron-style document, sample and shuffle indices.

A shard directory (opened by curate's `ShardSet`) is a list of documents. Its documents are split once,
by a seeded draw, into train and valid. Each epoch of a split then gets three indices, built with numpy and
cached on disk as `.npy`, keyed by a hash of everything they depend on:

- document index: the split's document ids in a seeded order (a new order every epoch);
- sample index: where each sample starts in that stream of documents, as (position in the document index,
  token offset). Sample k is tokens [k·T, k·T + T + 1) of the stream, so consecutive samples share one
  token and every token is a target exactly once per epoch; the tail shorter than a sample is dropped;
- shuffle index: a seeded permutation of the epoch's samples.

Sample i of a `SampleDataset` is sample `shuffle[i mod S]` of epoch `i div S`: the first S positions visit
every sample of epoch 0 exactly once, the next S those of epoch 1, and so on. Several directories are
blended by weight into one sequence of samples (`BlendedDataset`); each keeps its own position, so each is
read exactly once per epoch too. Training consumes positions 0, 1, 2, … in global batches, so resuming
needs only the count of consumed samples. Rank r of w takes the r-th contiguous slice of each global batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from curate.shards.shard_set import ShardSet, TokenizerMismatchError

# Bump when the way the indices are built changes: old cache files then stop matching.
INDEX_VERSION = 1
# Independent seeded streams for the split and the per-epoch shuffles.
_SPLIT_STREAM, _EPOCH_STREAM = 1, 2


@dataclass(frozen=True)
class DataSource:
    """A shard directory and its weight in the blend."""

    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """`DIR` or `DIR:WEIGHT` (the weight is a positive number; the last colon separates it)."""
        path, sep, weight = spec.rpartition(":")
        if not sep:
            return cls(Path(spec))
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(
                f"data {spec!r}: weight {weight!r} is not a number (use DIR or DIR:WEIGHT)"
            ) from None
        return cls(Path(path), value)

    def __post_init__(self) -> None:
        # Checked here, not in parse: a YAML `{path, weight}` mapping builds the dataclass directly.
        if not self.weight > 0 or not np.isfinite(self.weight):
            raise ValueError(f"data {self.path}: weight must be a positive number, got {self.weight}")


class Documents:
    """Every document of a shard directory, its prefixes in metadata order, as one indexable sequence."""

    def __init__(self, shards: ShardSet) -> None:
        self.shards = list(shards.shards.values())
        counts = [s.documents for s in self.shards]
        self._first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.doc_lengths = (
            np.concatenate([s.doc_lengths for s in self.shards]) if self.shards else np.zeros(0, np.int64)
        )

    def __len__(self) -> int:
        return int(self._first[-1])

    def __getitem__(self, i: int) -> np.ndarray:
        shard = int(np.searchsorted(self._first, i, side="right")) - 1
        return self.shards[shard].document(int(i - self._first[shard]))


def open_sources(
    sources: Sequence[DataSource], expected_tokenizer_sha256: str | None = None
) -> list[ShardSet]:
    """Open every shard directory; all must share one tokenizer (and match `expected_tokenizer_sha256`)."""
    opened = []
    for source in sources:
        if not source.path.is_dir():
            raise FileNotFoundError(f"data directory {source.path} does not exist")
        opened.append(ShardSet(source.path, expected_tokenizer_sha256))
    first = opened[0]
    for other in opened[1:]:
        if other.metadata.tokenizer.sha256 != first.metadata.tokenizer.sha256:
            raise TokenizerMismatchError(
                f"{other.directory} was tokenized with tokenizer {other.metadata.tokenizer.sha256[:12]}…, "
                f"{first.directory} with {first.metadata.tokenizer.sha256[:12]}…; blended shards need one tokenizer"
            )
    return opened


def split_documents(count: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Document ids of the train and valid splits: a seeded draw of round(count · fraction) docs for valid
    (at least one when the fraction is positive), the rest for train, each sorted."""
    valid = 0 if valid_fraction == 0 else max(1, round(count * valid_fraction))
    if count - valid < 1:
        raise ValueError(f"{count} document(s) leave none for training with valid_fraction {valid_fraction}")
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(count)
    return np.sort(order[valid:]), np.sort(order[:valid])


class EpochIndex(NamedTuple):
    documents: np.ndarray  # document ids in stream order
    samples: np.ndarray  # [S, 2]: (position in `documents`, token offset) where each sample starts
    shuffle: np.ndarray  # [S]: the order in which samples are read


def build_epoch_index(
    doc_ids: np.ndarray, doc_lengths: np.ndarray, seq_len: int, seed: int, epoch: int, shuffle: bool
) -> EpochIndex:
    """The three indices of one epoch (pure numpy; see the module docstring)."""
    rng = np.random.default_rng([seed, _EPOCH_STREAM, epoch])
    documents = rng.permutation(doc_ids) if shuffle else np.asarray(doc_ids)
    ends = np.cumsum(doc_lengths[documents], dtype=np.int64)
    count = max(int(ends[-1]) - 1, 0) // seq_len if ends.size else 0
    starts = np.arange(count, dtype=np.int64) * seq_len
    # The document holding token `start`: the first whose end lies beyond it (empty documents are skipped).
    position = np.searchsorted(ends, starts, side="right")
    offset = starts - (ends[position] - doc_lengths[documents[position]])
    samples = np.stack([position, offset], axis=1)
    order = rng.permutation(count) if shuffle else np.arange(count)
    return EpochIndex(documents, samples, order)


class SampleDataset:
    """Samples of `seq_len + 1` tokens cut from the documents `doc_ids`, epoch after epoch, without end.

    `dataset[i]` is a sample; positions i in [e·S, (e+1)·S) are exactly the S samples of epoch e.
    """

    def __init__(
        self,
        documents: Documents,
        doc_ids: np.ndarray,
        seq_len: int,
        seed: int,
        shuffle: bool = True,
        cache_dir: Path | None = None,
        identity: str = "",
    ) -> None:
        self.documents, self.doc_ids, self.seq_len = documents, np.asarray(doc_ids, np.int64), seq_len
        self.seed, self.shuffle, self.cache_dir = seed, shuffle, cache_dir
        # What the indices depend on; `identity` names the shards' content (their metadata.json).
        self._key = {
            "index_version": INDEX_VERSION,
            "shards": identity,
            "doc_ids": hashlib.sha256(self.doc_ids.tobytes()).hexdigest(),
            "seq_len": seq_len,
            "seed": seed,
            "shuffle": shuffle,
        }
        self._epochs: dict[int, EpochIndex] = {}
        self.samples_per_epoch = len(self._epoch(0).shuffle)
        if self.samples_per_epoch == 0:
            tokens = int(documents.doc_lengths[self.doc_ids].sum())
            raise ValueError(
                f"{tokens} tokens in {len(self.doc_ids)} document(s) do not fill one sample of "
                f"seq_len + 1 = {seq_len + 1} tokens; use more data or a shorter seq_len"
            )

    def _epoch(self, epoch: int) -> EpochIndex:
        if epoch not in self._epochs:
            key = _hash({**self._key, "epoch": epoch})

            def build() -> EpochIndex:
                return build_epoch_index(
                    self.doc_ids, self.documents.doc_lengths, self.seq_len, self.seed, epoch, self.shuffle
                )

            self._epochs = {epoch: _cached_arrays(self.cache_dir, key, EpochIndex, build)}
        return self._epochs[epoch]

    def locate(self, i: int) -> tuple[int, int]:
        """(epoch, sample index within the epoch) of position i."""
        epoch, k = divmod(int(i), self.samples_per_epoch)
        return epoch, int(self._epoch(epoch).shuffle[k])

    def __getitem__(self, i: int) -> np.ndarray:
        epoch, sample = self.locate(i)
        index = self._epoch(epoch)
        position, offset = (int(v) for v in index.samples[sample])
        need, pieces = self.seq_len + 1, []
        while need:
            piece = self.documents[int(index.documents[position])][offset : offset + need]
            pieces.append(piece)
            need -= len(piece)
            position, offset = position + 1, 0
        return np.concatenate(pieces)


def blend_index(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `size` positions: which dataset it reads and that dataset's own sample position.

    Dataset d's k-th sample is placed at ideal time (k + ½)/w_d and positions follow the merged times, so
    after any n positions every dataset has had round(w_d · n) samples, give or take one. The order of the
    first n positions does not depend on `size`: a longer run extends a shorter one's data order.
    """
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.ceil(w * size).astype(np.int64) + 1
    within = np.concatenate([np.arange(c) for c in counts])
    source = np.repeat(np.arange(len(w)), counts)
    times = (within + 0.5) / w[source]
    order = np.lexsort((source, times))[:size]
    return source[order].astype(np.int16), within[order]


class BlendedDataset:
    """`size` samples drawn from several `SampleDataset`s in proportion to `weights`."""

    def __init__(
        self,
        datasets: Sequence[SampleDataset],
        weights: Sequence[float],
        size: int,
        cache_dir: Path | None = None,
    ) -> None:
        self.datasets, self.size = list(datasets), size
        self.seq_len = datasets[0].seq_len
        self.source = self.position = None  # one dataset: position i is its sample i, no index needed
        if len(datasets) > 1:
            key = _hash({"index_version": INDEX_VERSION, "weights": list(map(float, weights)), "size": size})
            self.source, self.position = _cached_arrays(
                cache_dir, "blend-" + key, _BlendArrays, lambda: _BlendArrays(*blend_index(weights, size))
            )

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self.size:
            raise IndexError(f"sample {i} beyond the {self.size} samples this run was built for")
        if self.source is None:
            return self.datasets[0][i]
        return self.datasets[int(self.source[i])][int(self.position[i])]

    def counts(self, upto: int) -> np.ndarray:
        """Samples each dataset has given in positions [0, upto)."""
        if self.source is None:
            return np.array([upto])
        return np.bincount(self.source[:upto], minlength=len(self.datasets))


class _BlendArrays(NamedTuple):
    source: np.ndarray
    position: np.ndarray


@dataclass
class PretrainData:
    """The blended train and valid samples of a run, and what the model needs from the shards."""

    train: BlendedDataset
    valid: BlendedDataset | None  # None when valid_fraction is 0
    vocab_size: int
    tokenizer_sha256: str
    tokenizer_path: Path


def build_pretrain_data(
    sources: Sequence[DataSource],
    seq_len: int,
    seed: int,
    valid_fraction: float,
    train_samples: int,
    valid_samples: int,
    cache_dir: Path | None,
    expected_tokenizer_sha256: str | None = None,
) -> PretrainData:
    """Open, split and index every source, then blend train (`train_samples` long) and valid.

    Valid holds at most `valid_samples`, fewer when a source's valid split would have to repeat samples.
    """
    shard_sets = open_sources(sources, expected_tokenizer_sha256)
    train_sets, valid_sets = [], []
    for source, shards in zip(sources, shard_sets, strict=True):
        documents = Documents(shards)
        identity = hashlib.sha256((shards.directory / "metadata.json").read_bytes()).hexdigest()
        train_ids, valid_ids = split_documents(len(documents), valid_fraction, seed)
        try:
            train_sets.append(SampleDataset(documents, train_ids, seq_len, seed, True, cache_dir, identity))
        except ValueError as err:
            raise ValueError(f"{source.path}: {err}") from None
        if valid_fraction > 0:
            try:
                valid_sets.append(
                    SampleDataset(documents, valid_ids, seq_len, seed, False, cache_dir, identity)
                )
            except ValueError as err:
                raise ValueError(f"{source.path}: valid split: {err}, or a larger valid_fraction") from None
    weights = [s.weight for s in sources]
    valid = None
    if valid_sets:
        # Stop before any source's valid split would be read a second time.
        source, _ = blend_index(weights, valid_samples)
        size = valid_samples
        for d, dataset in enumerate(valid_sets):
            seen = np.flatnonzero(source == d)
            if len(seen) > dataset.samples_per_epoch:
                size = min(size, int(seen[dataset.samples_per_epoch]))
        valid = BlendedDataset(valid_sets, weights, size, cache_dir)
    info = shard_sets[0].metadata.tokenizer
    return PretrainData(
        train=BlendedDataset(train_sets, weights, train_samples, cache_dir),
        valid=valid,
        vocab_size=info.vocab_size,
        tokenizer_sha256=info.sha256,
        tokenizer_path=shard_sets[0].tokenizer_path,
    )


def rank_positions(consumed: int, global_batch: int, rank: int, world: int) -> np.ndarray:
    """The sample positions rank `rank` of `world` reads for the global batch starting at `consumed`."""
    per_rank = global_batch // world
    start = consumed + rank * per_rank
    return np.arange(start, start + per_rank, dtype=np.int64)


def load_batch(
    dataset: SampleDataset | BlendedDataset, positions: np.ndarray, vocab_size: int
) -> torch.Tensor:
    """Samples at `positions` as an int64 tensor [n, seq_len + 1] (inputs are [:, :-1], targets [:, 1:])."""
    batch = np.stack([dataset[int(p)] for p in positions]).astype(np.int64)
    # An id beyond the embedding is a device-side assert on GPU; say what is wrong instead.
    if batch.max() >= vocab_size:
        raise ValueError(f"token id {int(batch.max())} is outside the tokenizer's vocabulary of {vocab_size}")
    return torch.from_numpy(batch)


def _hash(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _cached_arrays(cache_dir: Path | None, key: str, kind: type, build: Callable):
    """A NamedTuple of arrays from `cache_dir/<key>-<field>.npy`, built and saved when any is missing."""
    if cache_dir is None:
        return build()
    paths = [cache_dir / f"{key}-{name}.npy" for name in kind._fields]
    if all(p.is_file() for p in paths):
        return kind(*(np.load(p, mmap_mode="r") for p in paths))
    arrays = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for path, array in zip(paths, arrays, strict=True):
        # Every rank may build the same index at once: each writes its own temp file and renames it,
        # and the contents are identical, so whichever rename lands last is correct.
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))
        os.replace(tmp, path)
    return arrays
