"""`fineweb`: the FineWeb quality rules (Penedo et al. 2024; DataTrove's `FineWebQualityFilter`).

As in DataTrove 0.10, over the page's non-blank lines:

- share of lines ending (trailing spaces ignored) in terminal punctuation (`. ' " ! ?` as FineWeb, plus
  the full stops of other scripts): dropped below `line_punct_thr` (0.12);
- share of lines of at most `short_line_length` (30) characters: dropped above `short_line_thr` (0.67);
- characters of lines that repeat an earlier line, over the characters of the text without newlines:
  dropped above `char_duplicates_ratio` (0.01);
- newlines per word (tokens from `curate.text_words`): dropped above `new_line_ratio` (0.3).

An empty or missing text has NaN scores and drops as `fineweb:empty_text`.
"""

from __future__ import annotations

import math

import pandas as pd
from pydantic import Field, field_validator

from curate.registry import register
from curate.stage import FilterStage, StageConfig, first_failing
from curate.stages.gopher_repetition import find_duplicates
from curate.text_words import line_endings_while, split_lines, split_tokens, texts_and_langs

METRICS = ("line_punct_ratio", "short_line_ratio", "char_dup_ratio", "newline_ratio")
# FineWeb's stop characters, then sentence-final marks of CJK, Devanagari, Arabic/Urdu, Armenian,
# Myanmar, Ethiopic and Khmer text (DataTrove 0.10 uses the whole Unicode Sentence_Terminal set).
LINE_END_PUNCTUATION = tuple(".'\"!?。．！？।॥؟۔։။።។៕")


class FineWebConfig(StageConfig):
    line_punct_thr: float | None = Field(
        0.12, ge=0, le=1, description="Drop below this share of lines ending in terminal punctuation."
    )
    line_punct_exclude_zero: bool = Field(
        False, description="Keep pages where no line ends in punctuation (DataTrove's option)."
    )
    line_end_punctuation: tuple[str, ...] = Field(
        LINE_END_PUNCTUATION, description="Line endings counted as terminal punctuation."
    )
    short_line_thr: float | None = Field(
        0.67, ge=0, le=1, description="Drop above this share of short lines."
    )
    short_line_length: int = Field(30, ge=0, description="Lines of at most this many characters are short.")
    char_duplicates_ratio: float | None = Field(
        0.01, ge=0, le=1, description="Drop above this share of characters in repeated lines."
    )
    new_line_ratio: float | None = Field(0.3, ge=0, description="Drop above this many newlines per word.")

    # None listed dropped every page at line_punct_ratio; '' made the rule keep every page.
    _endings = field_validator("line_end_punctuation")(line_endings_while("line_punct_thr"))


@register
class FineWeb(FilterStage):
    """FineWeb's rules: line-ending punctuation, short lines, repeated-line characters, newlines per word."""

    name = "fineweb"
    Config = FineWebConfig

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = [self._score_one(text, lang) for text, lang in texts_and_langs(batch)]
        return pd.DataFrame(
            rows, columns=[f"score_{self.name}_{m}" for m in METRICS], index=batch.index, dtype=float
        )

    def _score_one(self, text: str, lang: str | None) -> tuple[float, ...]:
        if not text.strip():
            return (math.nan,) * len(METRICS)
        c = self.config
        lines = [line for line in split_lines(text) if line.strip()]
        punct_lines = sum(1 for line in lines if line.rstrip().endswith(c.line_end_punctuation))
        short_lines = sum(1 for line in lines if len(line) <= c.short_line_length)
        dup_chars = find_duplicates(lines)[1]
        newlines = text.count("\n")
        return (
            punct_lines / len(lines),
            short_lines / len(lines),
            dup_chars / (len(text) - newlines),
            newlines / len(split_tokens(text, lang)),
        )

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        c = self.config

        def col(metric: str) -> pd.Series:
            return scores[f"score_{self.name}_{metric}"]

        rules: list[tuple[str, pd.Series]] = [("empty_text", col("line_punct_ratio").isna())]
        if c.line_punct_thr is not None:
            low = col("line_punct_ratio") < c.line_punct_thr
            if c.line_punct_exclude_zero:
                low &= col("line_punct_ratio") != 0
            rules.append(("line_punct_ratio", low))
        if c.short_line_thr is not None:
            rules.append(("short_line_ratio", col("short_line_ratio") > c.short_line_thr))
        if c.char_duplicates_ratio is not None:
            rules.append(("char_dup_ratio", col("char_dup_ratio") > c.char_duplicates_ratio))
        if c.new_line_ratio is not None:
            rules.append(("newline_ratio", col("newline_ratio") > c.new_line_ratio))
        return first_failing([(f"{self.name}:{rule}", failed) for rule, failed in rules], scores.index)
