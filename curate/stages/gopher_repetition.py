"""`gopher_repetition`: the repetition rules of Gopher (Rae et al. 2021, table A1).

Definitions follow DataTrove's `GopherRepetitionFilter`; every fraction of characters is over
`len(text)`:

- duplicate paragraphs (split at blank lines) and duplicate lines (blank lines ignored): the share
  of elements that repeat an earlier one (max 0.3 each) and their characters (max 0.2 each);
- top n-gram (n = 2, 3, 4): count x length (words joined by one space) of the most frequent word
  n-gram, at most 0.20 / 0.18 / 0.16;
- duplicated n-grams (n = 5..10): characters (words without separators) of n-grams that repeat an
  earlier one, scanning left to right and jumping past each repeat so overlapping repeats are not
  counted twice; at most 0.15 / 0.14 / 0.13 / 0.12 / 0.11 / 0.10.

Words come from `curate.text_words.split_words` (punctuation stripped, CJK split per character). An
empty or missing text has NaN scores and drops as `gopher_repetition:empty_text`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from operator import itemgetter

import pandas as pd
from pydantic import Field, field_validator

from curate.registry import register
from curate.stage import FilterStage, StageConfig, first_failing
from curate.text_words import split_lines, split_paragraphs, split_words, texts_and_langs

LINE_METRICS = ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")


def find_duplicates(items: Sequence[str]) -> tuple[int, int]:
    """How many items repeat an earlier item, and how many characters those repeats hold."""
    counts = Counter(items)
    return len(items) - len(counts), sum(len(item) * (n - 1) for item, n in counts.items() if n > 1)


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    # Shifted copies of unequal length: zip stops at the shortest, which gives len(words) - n + 1 n-grams.
    return list(zip(*(words[i:] for i in range(n)), strict=False))


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram: count x its length with single spaces."""
    grams = _ngrams(words, n)
    if not grams:
        return 0
    # max() returns the first maximum in insertion order, as Counter.most_common(1) does.
    gram, count = max(Counter(grams).items(), key=itemgetter(1))
    return count * (sum(map(len, gram)) + n - 1)


def duplicated_ngram_chars(words: list[str], n: int, prefix_chars: list[int]) -> int:
    """Characters of n-grams that repeat an earlier n-gram, jumping n words past each repeat.

    `prefix_chars[i]` is the length of words[:i]. Only positions whose n-gram occurs twice or more can
    be a repeat, so the sequential scan visits just those (none in a page without repetition).
    """
    grams = _ngrams(words, n)
    counts = Counter(grams)
    if len(counts) == len(grams):
        return 0
    seen: set[tuple[str, ...]] = set()
    repeated = next_free = 0
    for pos in [i for i, gram in enumerate(grams) if counts[gram] > 1]:
        if pos < next_free:
            continue
        gram = grams[pos]
        if gram in seen:
            repeated += prefix_chars[pos + n] - prefix_chars[pos]
            next_free = pos + n
        else:
            seen.add(gram)
            next_free = pos + 1
    return repeated


class GopherRepetitionConfig(StageConfig):
    dup_para_frac: float | None = Field(0.3, ge=0, le=1, description="Most paragraphs that may repeat.")
    dup_para_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="Most characters in repeated paragraphs."
    )
    dup_line_frac: float | None = Field(0.3, ge=0, le=1, description="Most lines that may repeat.")
    dup_line_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="Most characters in repeated lines."
    )
    top_n_grams: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16}, description="n -> most characters the most frequent n-gram may cover."
    )
    dup_n_grams: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> most characters that repeated n-grams may cover.",
    )

    @field_validator("top_n_grams", "dup_n_grams")
    @classmethod
    def _positive_n(cls, value: dict[int, float]) -> dict[int, float]:
        if any(n < 1 for n in value):
            raise ValueError(f"n-gram sizes must be >= 1, got {sorted(value)}")
        # A negative bound dropped every page; one above 1 could never be reached.
        for n, frac in value.items():
            if not 0 <= frac <= 1:
                raise ValueError(f"{n}: {frac} is no share of characters; use a value from 0 to 1, e.g. 0.2")
        return dict(sorted(value.items()))


@register
class GopherRepetition(FilterStage):
    """Gopher's repetition heuristics: repeated lines, paragraphs and word n-grams."""

    name = "gopher_repetition"
    Config = GopherRepetitionConfig

    def __init__(self, config: GopherRepetitionConfig) -> None:
        super().__init__(config)
        self.metrics = (
            *LINE_METRICS,
            *(f"top_{n}_gram_char_frac" for n in config.top_n_grams),
            *(f"dup_{n}_gram_char_frac" for n in config.dup_n_grams),
        )

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = [self._score_one(text, lang) for text, lang in texts_and_langs(batch)]
        columns = [f"score_{self.name}_{m}" for m in self.metrics]
        return pd.DataFrame(rows, columns=columns, index=batch.index, dtype=float)

    def _score_one(self, text: str, lang: str | None) -> tuple[float, ...]:
        if not text.strip():
            return (math.nan,) * len(self.metrics)
        n_chars = len(text)
        paragraphs = split_paragraphs(text)
        para_dups, para_dup_chars = find_duplicates(paragraphs)
        lines = [line for line in split_lines(text) if line.strip()]
        line_dups, line_dup_chars = find_duplicates(lines)
        words = split_words(text, lang)
        top = [top_ngram_chars(words, n) / n_chars for n in self.config.top_n_grams]
        dup = []
        prefix_chars = list(accumulate(map(len, words), initial=0))
        for n in self.config.dup_n_grams:
            # A page without a repeated n-gram has no repeated longer n-gram either.
            chars = duplicated_ngram_chars(words, n, prefix_chars) if not dup or dup[-1] > 0 else 0
            dup.append(chars / n_chars)
        return (
            para_dups / len(paragraphs),
            para_dup_chars / n_chars,
            line_dups / len(lines),
            line_dup_chars / n_chars,
            *top,
            *dup,
        )

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        c = self.config

        def col(metric: str) -> pd.Series:
            return scores[f"score_{self.name}_{metric}"]

        rules: list[tuple[str, pd.Series]] = [("empty_text", col("dup_para_frac").isna())]
        for metric in LINE_METRICS:
            limit = getattr(c, metric)
            if limit is not None:
                rules.append((metric, col(metric) > limit))
        rules += [(f"top_{n}_gram", col(f"top_{n}_gram_char_frac") > t) for n, t in c.top_n_grams.items()]
        rules += [(f"dup_{n}_gram", col(f"dup_{n}_gram_char_frac") > t) for n, t in c.dup_n_grams.items()]
        return first_failing([(f"{self.name}:{rule}", failed) for rule, failed in rules], scores.index)
