"""`gopher_quality`: the document quality rules of Gopher (Rae et al. 2021, appendix A.1.1).

Rules and defaults as in DataTrove's `GopherQualityFilter`, with words from `curate.text_words` (so
Chinese, Japanese or Thai pages are counted in characters/clusters, not as one giant word):

- word count in [50, 100,000] (words = tokens that are not only punctuation);
- mean word length in [3, 10] characters, over words of space-delimited scripts; not applied to a
  page whose words are mostly no-space-script units (the rule means nothing there);
- `#` per token and ellipsis (`...`/`…`) per token each at most 0.1;
- at most 90% of lines starting with a bullet (`•` or `-`), at most 30% ending with an ellipsis;
- at least 80% of tokens holding an alphabetic character;
- at least 2 different words of "the be to of and that have with" (case-insensitive), only for pages
  in `stop_words_langs`, or of unknown language and not mostly no-space script.

An empty or missing text has NaN scores and drops as `gopher_quality:empty_text`.
"""

from __future__ import annotations

import math
import re

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from curate.registry import register
from curate.stage import FilterStage, StageConfig, first_failing
from curate.text_words import (
    has_no_space_script,
    is_no_space_unit,
    normalize_lang,
    split_lines,
    split_tokens,
    strip_punctuation,
    texts_and_langs,
)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
METRICS = (
    "word_count",
    "mean_word_length",
    "hash_ratio",
    "ellipsis_ratio",
    "bullet_lines_ratio",
    "ellipsis_lines_ratio",
    "alpha_words_ratio",
    "stop_words",
)
# A token without a letter, on its own line of the tokens joined by newlines (one C-level scan).
_NO_LETTER_TOKEN = re.compile(r"^(?:[^\w\n]|[\d_])*$", re.MULTILINE)
_NAN_ROW = (math.nan,) * len(METRICS)


class GopherQualityConfig(StageConfig):
    min_doc_words: int | None = Field(
        50, ge=0, description="Fewest words a page may have (None: no minimum)."
    )
    max_doc_words: int | None = Field(
        100_000, ge=0, description="Most words a page may have (None: no maximum)."
    )
    min_avg_word_length: float | None = Field(3, ge=0, description="Lowest mean word length in characters.")
    max_avg_word_length: float | None = Field(10, ge=0, description="Highest mean word length in characters.")
    max_symbol_word_ratio: float | None = Field(
        0.1, ge=0, description="Most '#' per token, and most ellipses per token (each on its own)."
    )
    max_bullet_lines_ratio: float | None = Field(
        0.9, ge=0, le=1, description="Largest share of lines that may start with a bullet."
    )
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, ge=0, le=1, description="Largest share of lines that may end with an ellipsis."
    )
    min_alpha_words_ratio: float | None = Field(
        0.8,
        ge=0,
        le=1,
        description="Smallest share of tokens holding a letter (DataTrove: max_non_alpha_words_ratio).",
    )
    min_stop_words: int | None = Field(2, ge=0, description="Fewest different stop words a page must hold.")
    stop_words: tuple[str, ...] = Field(STOP_WORDS, description="Stop words, matched case-insensitively.")
    stop_words_langs: tuple[str, ...] | None = Field(
        ("en",), description="Languages the stop-word rule applies to (None: every page)."
    )
    bullets: tuple[str, ...] = Field(("•", "-"), description="Line starts that count as a bullet point.")

    # A minimum above its maximum drops every page; each validator reads only fields declared above it.
    @field_validator("max_doc_words", "max_avg_word_length")
    @classmethod
    def _not_below_its_minimum(cls, value: float | None, info: ValidationInfo) -> float | None:
        low_key = info.field_name.replace("max_", "min_", 1)
        low = info.data.get(low_key)
        if value is not None and low is not None and value < low:
            raise ValueError(f"{value} is below {low_key} ({low}): every page would be dropped")
        return value

    @field_validator("stop_words")
    @classmethod
    def _enough_stop_words(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        needed = info.data.get("min_stop_words")
        if needed and len({w.lower() for w in value}) < needed:
            raise ValueError(
                f"{len({w.lower() for w in value})} different stop words, fewer than min_stop_words "
                f"({needed}): every page would be dropped; list more or lower min_stop_words"
            )
        return value


@register
class GopherQuality(FilterStage):
    """Gopher's quality heuristics: word count and length, symbols, bullets, alphabetic words, stop words."""

    name = "gopher_quality"
    Config = GopherQualityConfig

    def __init__(self, config: GopherQualityConfig) -> None:
        super().__init__(config)
        self.stop_words = frozenset(w.lower() for w in config.stop_words)
        langs = config.stop_words_langs
        self.stop_langs = None if langs is None else frozenset(map(normalize_lang, langs))

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = [self._score_one(text, lang) for text, lang in texts_and_langs(batch)]
        return pd.DataFrame(
            rows, columns=[f"score_{self.name}_{m}" for m in METRICS], index=batch.index, dtype=float
        )

    def _score_one(self, text: str, lang: str | None) -> tuple[float, ...]:
        tokens = split_tokens(text, lang)
        if not tokens:
            return _NAN_ROW
        n_tokens = len(tokens)
        words = strip_punctuation(tokens)
        space_words = words
        if has_no_space_script(text):
            space_words = [w for w in words if not is_no_space_unit(w)]
        mostly_no_space = len(space_words) * 2 < len(words)
        mean_length = (
            sum(map(len, space_words)) / len(space_words) if space_words and not mostly_no_space else math.nan
        )
        lines = split_lines(text)
        bullets = self.config.bullets
        bullet_lines = sum(1 for line in lines if line.lstrip().startswith(bullets))
        ellipsis_lines = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
        alpha_tokens = n_tokens - len(_NO_LETTER_TOKEN.findall("\n".join(tokens)))
        if self.stop_langs is None or lang in self.stop_langs or (lang is None and not mostly_no_space):
            # Distinct stop words ("at least two of the following words"). Words hold no whitespace,
            # so one join/lower/split lowercases them all in C.
            stop_words = len(self.stop_words.intersection(" ".join(words).lower().split()))
        else:
            stop_words = math.nan
        return (
            len(words),
            mean_length,
            text.count("#") / n_tokens,
            (text.count("...") + text.count("…")) / n_tokens,
            bullet_lines / len(lines),
            ellipsis_lines / len(lines),
            alpha_tokens / n_tokens,
            stop_words,
        )

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        c = self.config

        def col(metric: str) -> pd.Series:
            return scores[f"score_{self.name}_{metric}"]

        rules: list[tuple[str, pd.Series]] = [("empty_text", col("word_count").isna())]
        if c.min_doc_words is not None:
            rules.append(("word_count", col("word_count") < c.min_doc_words))
        if c.max_doc_words is not None:
            rules.append(("word_count", col("word_count") > c.max_doc_words))
        if c.min_avg_word_length is not None:
            rules.append(("mean_word_length", col("mean_word_length") < c.min_avg_word_length))
        if c.max_avg_word_length is not None:
            rules.append(("mean_word_length", col("mean_word_length") > c.max_avg_word_length))
        if c.max_symbol_word_ratio is not None:
            rules.append(("hash_ratio", col("hash_ratio") > c.max_symbol_word_ratio))
            rules.append(("ellipsis_ratio", col("ellipsis_ratio") > c.max_symbol_word_ratio))
        if c.max_bullet_lines_ratio is not None:
            rules.append(("bullet_lines", col("bullet_lines_ratio") > c.max_bullet_lines_ratio))
        if c.max_ellipsis_lines_ratio is not None:
            rules.append(("ellipsis_lines", col("ellipsis_lines_ratio") > c.max_ellipsis_lines_ratio))
        if c.min_alpha_words_ratio is not None:
            rules.append(("alpha_words", col("alpha_words_ratio") < c.min_alpha_words_ratio))
        if c.min_stop_words is not None:
            rules.append(("stop_words", col("stop_words") < c.min_stop_words))
        return first_failing([(f"{self.name}:{rule}", failed) for rule, failed in rules], scores.index)
