"""Language-aware splitting of text into words, lines and paragraphs, shared by the quality filters.

Space-delimited scripts split on whitespace. Scripts written without spaces would otherwise make a
whole paragraph one "word", so their runs are cut into small units, whatever `lang` says: each Han,
Hiragana or Katakana character is one unit (a Chinese word is 1-2 characters and finding word
boundaries needs a dictionary segmenter such as jieba; one character per unit is the usual
dictionary-free fallback, as in BERT's CJK handling, and keeps word counts in the same range as
English ones), and Thai, Lao, Khmer and Myanmar runs are cut into grapheme-like clusters (a base
character with its combining marks and stacked consonants). Only `re` is used, with precompiled
classes built from `unicodedata`, so no per-character Python loop runs over a text.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections.abc import Callable
from itertools import repeat

import pandas as pd
from pydantic import ValidationInfo

# Han (with radicals, iteration marks and all extension blocks), Bopomofo, Hiragana, Katakana.
_CJK_RANGES = [
    (0x2E80, 0x2FDF),
    (0x3005, 0x3007),
    (0x3021, 0x3029),
    (0x3038, 0x303B),
    (0x3041, 0x309F),
    (0x30A1, 0x30FA),
    (0x30FC, 0x30FF),
    (0x3105, 0x312F),
    (0x31A0, 0x31BF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
    (0x1B000, 0x1B16F),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
]
# Thai, Lao, Myanmar (with extensions), Khmer (with symbols).
_CLUSTER_RANGES = [
    (0x0E00, 0x0E7F),
    (0x0E80, 0x0EFF),
    (0x1000, 0x109F),
    (0xA9E0, 0xA9FF),
    (0xAA60, 0xAA7F),
    (0x1780, 0x17FF),
    (0x19E0, 0x19FF),
]
# Khmer coeng and Myanmar virama stack the next consonant onto the cluster.
_STACKERS = "\u17d2\u1039"

# Languages whose text is (mostly) written without spaces between words: ISO 639-1/-3 codes and the
# Chinese varieties fastText lid.176 reports.
_CHINESE_CODES = {"zh", "zho", "chi", "cmn", "yue", "wuu", "gan", "hak", "nan", "lzh"}
NO_SPACE_LANGUAGES = frozenset(
    {*_CHINESE_CODES, "ja", "jpn", "th", "tha", "lo", "lao", "km", "khm", "my", "mya"}
)

# Characters stripped from both ends of a token: ASCII punctuation, typographic quotes and dashes,
# CJK and full-width punctuation.
PUNCTUATION = (
    string.punctuation
    + "¡¿«»‹›“”‘’‚„‐‑‒–—―…·•‧′″§¶†‡※"
    + "、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟・"
    + "！＂＃＄％＆＇（）＊＋，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～｟｠｡｢｣､･"
)


def _char_class(ranges: list[tuple[int, int]]) -> str:
    def esc(cp: int) -> str:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


def _marks_in(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The combining marks (general category M*) inside `ranges`, as merged code-point ranges."""
    marks: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for cp in range(lo, min(hi, sys.maxunicode) + 1):
            if unicodedata.category(chr(cp)).startswith("M"):
                if marks and marks[-1][1] == cp - 1:
                    marks[-1] = (marks[-1][0], cp)
                else:
                    marks.append((cp, cp))
    return marks


_CJK = _char_class(_CJK_RANGES)
_CLUSTER = _char_class(_CLUSTER_RANGES)
# Thai and Lao SARA AM are letters (Lo) by category but spacing marks for grapheme clustering.
_CLUSTER_MARKS = _char_class(_marks_in(_CLUSTER_RANGES) + [(0x0E33, 0x0E33), (0x0EB3, 0x0EB3)])
_NO_SPACE_CHAR = re.compile(f"[{_CJK}{_CLUSTER}]")
# One token: a CJK character; a cluster (a character, then marks or stacker + consonant); or a run of
# anything else up to whitespace, a zero-width space (a word separator in Thai, Khmer and Myanmar
# text) or a no-space-script character. Punctuation next to a unit stays on it, as "word," stays one
# whitespace token, so "，" and "。" are not tokens of their own.
_PUNCT = "[^\\s\\w\u200b]*"
_TOKEN = re.compile(
    f"{_PUNCT}[{_CJK}]{_PUNCT}"
    f"|{_PUNCT}[{_CLUSTER}](?:[{_STACKERS}][{_CLUSTER}]|[{_CLUSTER_MARKS}])*{_PUNCT}"
    f"|[^\\s\u200b{_CJK}{_CLUSTER}]+"
)
_PARAGRAPH_BREAK = re.compile(r"\n(?:[^\S\n]*\n)+")


def normalize_lang(lang: object) -> str | None:
    """The primary language subtag in lower case ("zh-Hans" -> "zh"); None for a missing value."""
    if not isinstance(lang, str) or not lang.strip():
        return None
    return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]


def has_no_space_script(text: str) -> bool:
    """Whether `text` holds any character of a script written without spaces between words."""
    return _NO_SPACE_CHAR.search(text) is not None


def is_no_space_unit(token: str) -> bool:
    """Whether `token` is a unit cut from a no-space script run (a CJK character or a cluster)."""
    return _NO_SPACE_CHAR.match(token) is not None


def split_tokens(text: str, lang: str | None = None) -> list[str]:
    """Whitespace tokens as written (punctuation kept), with no-space-script runs cut into units.

    `lang` is a hint: a no-space language skips the script check. The script of each character decides
    the unit either way, so mixed or mislabeled pages are cut correctly.
    """
    if normalize_lang(lang) in NO_SPACE_LANGUAGES or has_no_space_script(text):
        return _TOKEN.findall(text)
    return text.split()


def strip_punctuation(tokens: list[str]) -> list[str]:
    """Tokens with leading and trailing punctuation removed; tokens made only of punctuation dropped."""
    return list(filter(None, map(str.strip, tokens, repeat(PUNCTUATION))))


def split_words(text: str, lang: str | None = None) -> list[str]:
    """The words of `text`: `split_tokens` without surrounding punctuation, punctuation-only tokens dropped.

    These are the "non-symbol words" DataTrove's filters count ("word." is the word "word"; "--" is none).
    """
    return strip_punctuation(split_tokens(text, lang))


def split_lines(text: str) -> list[str]:
    """Lines as `str.splitlines` cuts them (\\r\\n is one break; a trailing newline adds no line)."""
    return text.splitlines()


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: the stripped text cut at blank lines (lines holding only whitespace count as blank)."""
    return _PARAGRAPH_BREAK.split(text.strip())


def texts_and_langs(batch: pd.DataFrame) -> list[tuple[str, str | None]]:
    """Each row's text ("" when missing) and normalized `lang` (None without a `lang` column or value)."""
    if "text" not in batch.columns:
        raise ValueError(f"the quality filters need a 'text' column; the batch has {list(batch.columns)}")
    texts = [t if isinstance(t, str) else "" for t in batch["text"].tolist()]
    if "lang" not in batch.columns:
        return [(t, None) for t in texts]
    return list(zip(texts, map(normalize_lang, batch["lang"].tolist()), strict=True))


def line_endings_while(rule: str) -> Callable[[tuple[str, ...], ValidationInfo], tuple[str, ...]]:
    """A validator of the line endings a punctuation rule matches, while `rule` (a key above it) is on.

    None listed makes no line end in punctuation, and '' ends every line: either way the rule drops or
    removes everything, or nothing.
    """

    def check(endings: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not info.data.get(rule):
            return endings
        if not endings:
            raise ValueError(
                f"none listed, so no line ends in punctuation for {rule}; list some, e.g. ['.', '!', '?']"
            )
        if "" in endings:
            raise ValueError(f"'' ends every line, so {rule} would match every line; remove it")
        return endings

    return check
