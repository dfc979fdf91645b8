"""`c4`: the C4 cleaning rules (Raffel et al. 2020; tfds `c4_utils`, DataTrove's `C4QualityFilter`).

Each line is stripped, then, in this order:

- removed if a token is longer than `max_word_length` (1000);
- Wikipedia-style citations (`[1]`, `[edit]`, `[citation needed]`) are cut out of it;
- removed if it does not end in terminal punctuation or ends in "..." (`filter_no_terminal_punct`,
  off by default as in FineWeb);
- removed if it has fewer than `min_words_per_line` (3) tokens (tokens from `curate.text_words`, so a
  Chinese line counts characters);
- the page is dropped if the line holds "lorem ipsum";
- removed if it holds "javascript";
- the page is dropped if the line holds "{";
- removed if it holds a policy phrase ("terms of use", "privacy policy", "cookie policy", ...).

Blank lines are removed without being counted. The page is dropped if no line is left, or if the kept
lines hold fewer than `min_num_sentences` (5) sentences. Kept pages get the kept lines, joined by "\\n",
as their new `text`; dropped pages keep their original text. Sentences are counted with a regex
(terminal punctuation followed by a space, with initials and common abbreviations skipped) rather than
NLTK's punkt, which this project does not ship. An empty or missing text drops as `c4:empty_text`.
"""

from __future__ import annotations

import math
import re

import pandas as pd
from pydantic import Field, field_validator

from curate.registry import register
from curate.stage import FilterStage, StageConfig, StageResult, first_failing
from curate.text_words import line_endings_while, split_lines, split_tokens, texts_and_langs

POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
LINE_RULES = ("too_long_word", "no_terminal_punct", "too_few_words", "javascript", "policy")
METRICS = (
    "lines_kept",
    "lines_removed",
    *(f"lines_removed_{rule}" for rule in LINE_RULES),
    "sentences",
    "lorem_ipsum",
    "curly_bracket",
)
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
# A sentence ends at terminal punctuation (and closing quotes/brackets) before whitespace or the end of
# the line, but not after an initial ("J. Smith", "U.S.") or a common abbreviation; CJK full stops end a
# sentence wherever they are.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "vs", "etc", "e.g", "i.e", "Inc")
_SENTENCE_END = re.compile(
    # The lookahead comes first so the lookbehinds only run at punctuation, not at every character.
    r"(?=[.!?])(?<!\b[A-Z])"
    + "".join(rf"(?<!\b{re.escape(a)})" for a in _ABBREVIATIONS)
    + r"[.!?]+[\"'”’)\]]*(?=\s|$)"
    r"|[。！？]+[”’」』）)]*"
)
_ALNUM = re.compile(r"\w")


def count_sentences(line: str) -> int:
    """Sentences in one line: terminal-punctuation ends, plus a trailing unpunctuated fragment."""
    ends = list(_SENTENCE_END.finditer(line))
    tail = line[ends[-1].end() :] if ends else line
    return len(ends) + (1 if _ALNUM.search(tail) else 0)


class C4Config(StageConfig):
    remove_citations: bool = Field(True, description="Cut [1], [edit] and [citation needed] out of lines.")
    filter_no_terminal_punct: bool = Field(
        False, description="Remove lines not ending in terminal punctuation (C4: on; FineWeb: off)."
    )
    terminal_punctuation: tuple[str, ...] = Field(
        (".", "?", "!", '"', "'"), description="Line endings that count as terminal punctuation."
    )
    min_num_sentences: int | None = Field(
        5, description="Fewest sentences the kept lines must hold (None or <= 0: no minimum)."
    )
    min_words_per_line: int | None = Field(
        3, description="Remove lines with fewer tokens (None or <= 0: keep short lines)."
    )
    max_word_length: int | None = Field(
        1000, description="Remove lines with a longer token (None or <= 0: no limit)."
    )
    filter_lorem_ipsum: bool = Field(True, description="Drop pages with a kept line holding 'lorem ipsum'.")
    filter_javascript: bool = Field(True, description="Remove lines mentioning 'javascript'.")
    filter_curly_bracket: bool = Field(True, description="Drop pages with a kept line holding '{'.")
    filter_policy: bool = Field(True, description="Remove lines holding a policy phrase.")
    policy_substrings: tuple[str, ...] = Field(
        POLICY_SUBSTRINGS, description="Policy phrases, matched in lower-cased lines."
    )

    # None listed removed every line, so every page; '' made the rule remove none.
    _endings = field_validator("terminal_punctuation")(line_endings_while("filter_no_terminal_punct"))


def _positive(limit: int | None) -> int | None:
    return limit if limit is not None and limit > 0 else None


@register
class C4(FilterStage):
    """C4's line cleaning and page rules; rewrites `text` with the kept lines."""

    name = "c4"
    Config = C4Config

    def __init__(self, config: C4Config) -> None:
        super().__init__(config)
        self.min_sentences = _positive(config.min_num_sentences)
        self.min_words = _positive(config.min_words_per_line)
        self.max_word_length = _positive(config.max_word_length)
        self.policy = tuple(p.lower() for p in config.policy_substrings)
        self.columns = [f"score_{self.name}_{m}" for m in METRICS]

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self._clean(batch)[0]

    def process(self, batch: pd.DataFrame) -> StageResult:
        if batch.empty:
            return StageResult.keep_all(batch)
        scores, cleaned = self._clean(batch)
        reasons = self.keep(scores)
        # Kept pages carry the cleaned text; dropped ones keep the original for the rejects sink.
        text = batch["text"].where(reasons.notna(), pd.Series(cleaned, index=batch.index, dtype=object))
        batch = pd.concat([batch.assign(text=text), scores], axis=1)
        return StageResult.split(batch, reasons)

    def _clean(self, batch: pd.DataFrame) -> tuple[pd.DataFrame, list[str | None]]:
        rows, cleaned = [], []
        for text, lang in texts_and_langs(batch):
            row, kept = self._clean_one(text, lang)
            rows.append(row)
            cleaned.append(kept)
        return pd.DataFrame(rows, columns=self.columns, index=batch.index, dtype=float), cleaned

    def _clean_one(self, text: str, lang: str | None) -> tuple[tuple[float, ...], str | None]:
        if not text.strip():
            return (math.nan,) * len(METRICS), None
        c = self.config
        removed = dict.fromkeys(LINE_RULES, 0)
        kept: list[str] = []
        sentences = lorem = curly = 0
        for raw in split_lines(text):
            line = raw.strip()
            if not line:
                continue
            tokens = split_tokens(line, lang)
            # A token can only exceed the limit in a line that does.
            if (
                self.max_word_length
                and len(line) > self.max_word_length
                and max(map(len, tokens), default=0) > self.max_word_length
            ):
                removed["too_long_word"] += 1
                continue
            if c.remove_citations and "[" in line:
                line = _CITATION.sub("", line)
            if c.filter_no_terminal_punct and (
                not line.endswith(c.terminal_punctuation) or line.endswith("...")
            ):
                removed["no_terminal_punct"] += 1
                continue
            if self.min_words and len(tokens) < self.min_words:
                removed["too_few_words"] += 1
                continue
            lower = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in lower:
                lorem = 1
                continue
            if c.filter_javascript and "javascript" in lower:
                removed["javascript"] += 1
                continue
            if c.filter_curly_bracket and "{" in line:
                curly = 1
                continue
            if c.filter_policy and any(p in lower for p in self.policy):
                removed["policy"] += 1
                continue
            sentences += count_sentences(line)
            kept.append(line)
        counts = tuple(removed.values())
        row = (len(kept), sum(counts), *counts, sentences, lorem, curly)
        return row, "\n".join(kept).strip()

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        def col(metric: str) -> pd.Series:
            return scores[f"score_{self.name}_{metric}"]

        rules: list[tuple[str, pd.Series]] = [
            ("empty_text", col("lines_kept").isna()),
            ("lorem_ipsum", col("lorem_ipsum") > 0),
            ("curly_bracket", col("curly_bracket") > 0),
            ("empty_after_line_filter", col("lines_kept") == 0),
        ]
        if self.min_sentences:
            rules.append(("too_few_sentences", col("sentences") < self.min_sentences))
        return first_failing([(f"{self.name}:{rule}", failed) for rule, failed in rules], scores.index)
