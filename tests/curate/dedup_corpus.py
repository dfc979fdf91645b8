"""Test corpora with planted duplicates of known Jaccard similarity, and a Dask-free GlobalContext.

Texts are lowercase letter-only words joined by single spaces, which the fuzzy normalization leaves
unchanged, so the true Jaccard similarity of two texts is that of their word 5-gram sets, computed here
in plain Python, independently of the code under test.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LETTERS = np.array(list(string.ascii_lowercase))
DOC_WORDS = 200
NGRAM = 5


def random_words(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(3, 10, size=n)
    return ["".join(rng.choice(LETTERS, size=k)) for k in lengths]


def shingle_set(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def true_jaccard(left: str, right: str) -> float:
    a, b = shingle_set(left), shingle_set(right)
    return len(a & b) / len(a | b)


def edit(rng: np.random.Generator, words: list[str], target: float) -> list[str]:
    """Replace words, at least NGRAM apart, so the 5-gram Jaccard similarity lands near `target`.

    Each replaced word changes the NGRAM shingles that cover it: J = (N - 5k) / (N + 5k), N shingles.
    """
    shingles = len(words) - NGRAM + 1
    edits = round(shingles * (1 - target) / (NGRAM * (1 + target)))
    slots = np.arange(0, len(words), NGRAM + 1)
    out = list(words)
    for position, word in zip(
        rng.choice(slots, size=edits, replace=False), random_words(rng, edits), strict=True
    ):
        out[position] = word
    return out


@dataclass
class PlantedCorpus:
    """Documents (id, text, group) where each group is an original and its edited variants."""

    docs: pd.DataFrame

    def pairs(self) -> pd.DataFrame:
        """Every pair of documents within a group, with its true Jaccard similarity."""
        rows = []
        for _, group in self.docs.groupby("group"):
            for (id_a, text_a), (id_b, text_b) in itertools.combinations(
                zip(group["id"], group["text"], strict=True), 2
            ):
                rows.append((id_a, id_b, true_jaccard(text_a, text_b)))
        return pd.DataFrame(rows, columns=["a", "b", "jaccard"])


def planted_corpus(seed: int, groups: dict[tuple[float, ...], int], singles: int) -> PlantedCorpus:
    """`groups` maps variant similarities (to the original) to how many such groups to plant."""
    rng = np.random.default_rng(seed)
    docs = []
    group = 0
    for targets, count in groups.items():
        for _ in range(count):
            original = random_words(rng, DOC_WORDS)
            docs.append((group, " ".join(original)))
            docs.extend((group, " ".join(edit(rng, original, t))) for t in targets)
            group += 1
    for _ in range(singles):
        docs.append((group, " ".join(random_words(rng, DOC_WORDS))))
        group += 1
    # Random ids: which document of a group is the original says nothing about which id is smallest.
    ids = [f"doc-{i:08x}" for i in rng.choice(1 << 32, size=len(docs), replace=False)]
    frame = pd.DataFrame({"id": ids, "text": [t for _, t in docs], "group": [g for g, _ in docs]})
    return PlantedCorpus(frame.sample(frac=1, random_state=seed).reset_index(drop=True))


def write_shards(docs: pd.DataFrame, folder: Path, shards: int) -> list[tuple[str, Path]]:
    """Round-robin the documents into `shards` Parquet files; (shard id, path) in shard order."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for s in range(shards):
        path = folder / f"shard-{s:02d}.parquet"
        docs.iloc[s::shards].reset_index(drop=True).to_parquet(path, index=False)
        parts.append((f"shard-{s:02d}", path))
    return parts


@dataclass
class InlineContext:
    """A GlobalContext that runs each phase's tasks in this process, in order (no Dask)."""

    parts: list[tuple[str, Path]]
    work_dir: Path
    stage_id: str = "dedup"
    write_output: bool = True
    rejects_dir: Path | None = None
    output_dir: Path = field(default=Path("."))
    backend: str = "pandas"
    phases: list[str] = field(default_factory=list)

    def output_part(self, shard_id: str) -> Path:
        return self.work_dir / f"part-{shard_id}.parquet"

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], phase: str, keys: Sequence[str]
    ) -> list[Any]:
        self.phases.append(phase)
        return [fn(item) for item in items]


def read_parts(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
