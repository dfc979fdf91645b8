"""gopher_repetition: repeated paragraphs, lines and n-grams drop with their own reason."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from curate.registry import lookup
from curate.stages.gopher_repetition import (
    GopherRepetition,
    duplicated_ngram_chars,
    find_duplicates,
    top_ngram_chars,
)
from tests.curate.test_text_words import CHINESE, GOOD_ENGLISH, JAPANESE


def run(texts, langs=None, **params) -> list[str | None]:
    stage = GopherRepetition(GopherRepetition.Config(**params))
    batch = pd.DataFrame({"text": texts})
    if langs is not None:
        batch["lang"] = langs
    return stage.keep(stage.score(batch)).tolist()


def unique_words(start: int, count: int) -> list[str]:
    """Distinct made-up words, so no n-gram of them repeats."""
    return [f"w{i:05d}" for i in range(start, start + count)]


def sentence(start: int, count: int = 12) -> str:
    return " ".join(unique_words(start, count)) + "."


def reference_duplicated_ngram_chars(words: list[str], n: int) -> int:
    """DataTrove's definition, written the direct way: scan, and jump n words past each repeat."""
    seen, repeated, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = tuple(words[idx : idx + n])
        if gram in seen:
            repeated += sum(map(len, gram))
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return repeated


def test_registered_under_its_yaml_name():
    assert lookup("gopher_repetition") is GopherRepetition


@pytest.mark.parametrize(("text", "lang"), [(GOOD_ENGLISH, "en"), (CHINESE, "zh"), (JAPANESE, None)])
def test_good_pages_pass(text, lang):
    assert run([text], [lang]) == [None]


def test_each_rule_drops_with_its_reason():
    # Paragraphs: half of them the same short notice.
    dup_paras = "\n\n".join(part for i in range(6) for part in (sentence(100 * i), "Read more."))
    # One long paragraph repeated once among five: 1/5 of paragraphs, but most of the characters.
    long_para = sentence(9000, 60)
    dup_para_chars = "\n\n".join([long_para, sentence(100), sentence(200), sentence(300), long_para])
    # Lines: every paragraph ends with the same short line; paragraphs stay distinct.
    dup_lines = "\n\n".join(f"{sentence(100 * i)}\nShare this." for i in range(6))
    # One long line repeated once among twelve lines, each pair in a distinct paragraph.
    long_line = sentence(9000, 60)
    parts = [f"{sentence(100 * i)}\n{long_line if i in (0, 5) else sentence(100 * i + 50)}" for i in range(6)]
    dup_line_chars = "\n\n".join(parts)
    cases = {
        "dup_para_frac": dup_paras,
        "dup_para_char_frac": dup_para_chars,
        "dup_line_frac": dup_lines,
        "dup_line_char_frac": dup_line_chars,
        "top_2_gram": " ".join(["buy now"] * 40) + " " + sentence(0),
    }
    for reason, text in cases.items():
        assert run([text]) == [f"gopher_repetition:{reason}"], reason


def with_repeats(gram: list[str], times: int, filler: int) -> str:
    """`gram` `times` times, each between distinct filler words, on one line."""
    words = []
    for i in range(times):
        words += unique_words(10 * filler * i, filler) + gram
    return " ".join(words + unique_words(999_000, filler))


def test_top_3_and_4_gram_rules():
    # "aaaa bbbb cccc" 15 times in ~1000 characters: 3-gram covers > 0.18, its 2-grams < 0.20.
    text = with_repeats(["aaaa", "bbbb", "cccc"], 15, 6)
    assert run([text]) == ["gopher_repetition:top_3_gram"]
    text = with_repeats(["aaaa", "bbbb", "cccc", "dddd"], 20, 11)
    assert run([text]) == ["gopher_repetition:top_4_gram"]


def test_duplicated_ngram_rules():
    # Distinct 5-word blocks, each twice, separated by distinct words: 5-grams repeat, 6-grams do not.
    words = []
    for b in range(20):
        block = unique_words(100 * b, 5)
        words += block + unique_words(100 * b + 50, 1) + block + unique_words(100 * b + 60, 1)
    text = " ".join(words)
    assert run([text]) == ["gopher_repetition:dup_5_gram"]
    assert run([text], dup_n_grams={6: 0.14, 7: 0.13}) == [None]
    assert run([text], dup_n_grams={5: 0.5}) == [None]
    # 10-word blocks trip every n up to 10; with only n=10 configured the reason names it.
    words = []
    for b in range(10):
        block = unique_words(100 * b, 10)
        words += block + unique_words(100 * b + 50, 1) + block + unique_words(100 * b + 60, 1)
    assert run([" ".join(words)]) == ["gopher_repetition:dup_5_gram"]
    assert run([" ".join(words)], dup_n_grams={10: 0.1}) == ["gopher_repetition:dup_10_gram"]


def test_hand_computed_scores():
    text = "alpha beta\n\nalpha beta\n\ngamma"  # 29 characters
    stage = GopherRepetition(GopherRepetition.Config())
    row = stage.score(pd.DataFrame({"text": [text]})).iloc[0]
    got = {k.removeprefix("score_gopher_repetition_"): v for k, v in row.items()}
    assert got == pytest.approx(
        {
            "dup_para_frac": 1 / 3,
            "dup_para_char_frac": 10 / 29,
            "dup_line_frac": 1 / 3,
            "dup_line_char_frac": 10 / 29,
            "top_2_gram_char_frac": 2 * len("alpha beta") / 29,
            "top_3_gram_char_frac": len("alpha beta alpha") / 29,  # all count 1: the first one
            "top_4_gram_char_frac": len("alpha beta alpha beta") / 29,
            **{f"dup_{n}_gram_char_frac": 0.0 for n in range(5, 11)},
        }
    )
    # "a b c d e" three times: the 5-gram repeats at word 5 and, after the jump, at word 10.
    text = "a b c d e a b c d e a b c d e"
    row = stage.score(pd.DataFrame({"text": [text]})).iloc[0]
    assert row["score_gopher_repetition_dup_5_gram_char_frac"] == pytest.approx(10 / 29)
    assert row["score_gopher_repetition_top_2_gram_char_frac"] == pytest.approx(3 * 3 / 29)


def test_helpers_match_the_direct_definitions():
    assert find_duplicates(["a", "bb", "a", "bb", "bb", "c"]) == (3, 1 + 2 + 2)
    assert top_ngram_chars(["x", "y", "x", "y", "x"], 2) == 2 * 3
    assert top_ngram_chars(["x"], 2) == 0
    rng = random.Random(0)
    for _ in range(300):
        words = [rng.choice(["a", "bb", "ccc", "d"]) for _ in range(rng.randint(0, 60))]
        prefix = [0]
        for w in words:
            prefix.append(prefix[-1] + len(w))
        for n in (2, 5, 7, 10):
            assert duplicated_ngram_chars(words, n, prefix) == reference_duplicated_ngram_chars(words, n)


@pytest.mark.parametrize("text", [None, "", " \n\n "])
def test_empty_or_missing_text_is_dropped_not_crashed(text):
    assert run([text, GOOD_ENGLISH]) == ["gopher_repetition:empty_text", None]


def test_thresholds_in_config_change_outcomes():
    text = "\n\n".join(part for i in range(6) for part in (sentence(100 * i), "Read more."))
    assert run([text]) == ["gopher_repetition:dup_para_frac"]
    assert run([text], dup_para_frac=0.6) == ["gopher_repetition:dup_line_frac"]
    assert run([text], dup_para_frac=None, dup_line_frac=None) == [None]
    spam = " ".join(["buy now"] * 40) + " " + sentence(0)
    assert run([spam], top_n_grams={}, dup_n_grams={}) == [None]


def test_process_keeps_score_columns_for_configured_ngrams():
    stage = GopherRepetition(GopherRepetition.Config(top_n_grams={2: 0.2}, dup_n_grams={5: 0.15}))
    result = stage.process(pd.DataFrame({"text": [GOOD_ENGLISH]}))
    scores = [c for c in result.kept.columns if c.startswith("score_")]
    assert scores == [
        "score_gopher_repetition_dup_para_frac",
        "score_gopher_repetition_dup_para_char_frac",
        "score_gopher_repetition_dup_line_frac",
        "score_gopher_repetition_dup_line_char_frac",
        "score_gopher_repetition_top_2_gram_char_frac",
        "score_gopher_repetition_dup_5_gram_char_frac",
    ]


def test_config_validates_ngram_sizes():
    with pytest.raises(ValueError, match="n-gram sizes"):
        GopherRepetition.Config(top_n_grams={0: 0.2})
    # YAML/JSON round trip: keys come back as strings and are read as ints.
    config = GopherRepetition.Config.model_validate({"dup_n_grams": {"5": 0.15}})
    assert config.dup_n_grams == {5: 0.15}


@pytest.mark.parametrize("frac", [-0.1, 1.5])
def test_ngram_bounds_must_be_shares_of_characters(frac):
    # A negative bound dropped every page; one above 1 was never reached, silently.
    with pytest.raises(ValueError, match=rf"{frac} is no share of characters; use a value from 0 to 1"):
        GopherRepetition.Config(dup_n_grams={5: frac})
    with pytest.raises(ValueError, match="no share of characters"):
        GopherRepetition.Config(top_n_grams={2: frac})
