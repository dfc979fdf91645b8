"""gopher_quality: each Gopher quality rule drops with its own reason; CJK pages are not mistaken for junk."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from curate.registry import lookup
from curate.stages.gopher_quality import GopherQuality
from tests.curate.test_text_words import CHINESE, GOOD_ENGLISH, JAPANESE

NO_STOP_WORDS = (
    "Quick brown foxes jump over lazy dogs while cheerful birds sing in tall green trees. "
    "Bright summer mornings bring warm light across quiet valleys where farmers gather ripe apples. "
    "Children run along sandy beaches, laughing loudly as waves crash against smooth rocks. "
    "Old sailors repair their nets near busy harbours, telling stories about distant islands. "
)


def run(texts, langs=None, **params) -> list[str | None]:
    """Drop reason per text (None when kept), in input order."""
    stage = GopherQuality(GopherQuality.Config(**params))
    batch = pd.DataFrame({"text": texts})
    if langs is not None:
        batch["lang"] = langs
    scores = stage.score(batch)
    return stage.keep(scores).tolist()


def scores_of(text, lang=None, **params) -> dict[str, float]:
    stage = GopherQuality(GopherQuality.Config(**params))
    row = stage.score(pd.DataFrame({"text": [text], "lang": [lang]})).iloc[0]
    return {k.removeprefix("score_gopher_quality_"): v for k, v in row.items()}


def with_lines(text: str, transform) -> str:
    return "\n".join(transform(i, line) for i, line in enumerate(text.splitlines()))


def test_registered_under_its_yaml_name():
    assert lookup("gopher_quality") is GopherQuality


def test_good_english_page_passes():
    assert run([GOOD_ENGLISH], ["en"]) == [None]
    assert run([GOOD_ENGLISH]) == [None]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The cat sat with the dog and the bird.", "word_count"),
        ("it is to be or so we go up at the end of it " * 5, "mean_word_length"),
        (
            "the counterrevolutionaries misunderstanding internationalization telecommunications " * 12,
            "mean_word_length",
        ),
        (GOOD_ENGLISH + " ".join(["#travel"] * 30), "hash_ratio"),
        ("and… " * 25 + GOOD_ENGLISH, "ellipsis_ratio"),
        ("\n".join(["• Item with some useful words about the garden and its flowers"] * 10), "bullet_lines"),
        ("\n".join(["- another item that we have in the shop for the summer"] * 10), "bullet_lines"),
        (with_lines(GOOD_ENGLISH, lambda i, line: line + ".." if i < 2 else line), "ellipsis_lines"),
        (GOOD_ENGLISH + " ".join(str(100 + i) for i in range(60)), "alpha_words"),
        (NO_STOP_WORDS, "stop_words"),
    ],
)
def test_each_rule_drops_with_its_reason(text, reason):
    assert run([text], ["en"]) == [f"gopher_quality:{reason}"]


def test_too_many_words_is_a_word_count_drop():
    assert run([GOOD_ENGLISH], max_doc_words=100) == ["gopher_quality:word_count"]


@pytest.mark.parametrize("text", [None, "", "  \n\t ", float("nan")])
def test_empty_or_missing_text_is_dropped_not_crashed(text):
    assert run([text, GOOD_ENGLISH]) == ["gopher_quality:empty_text", None]


@pytest.mark.parametrize(
    ("text", "lang"), [(CHINESE, "zh"), (CHINESE, None), (JAPANESE, "ja"), (JAPANESE, None)]
)
def test_chinese_and_japanese_pages_pass(text, lang):
    assert run([text], [lang]) == [None]
    scores = scores_of(text, lang)
    assert scores["word_count"] > 200  # characters, not one giant "word"
    assert math.isnan(scores["mean_word_length"])  # the rule is meaningless without spaces
    assert math.isnan(scores["stop_words"])  # English stop words are not asked of CJK pages
    assert scores["alpha_words_ratio"] > 0.95


def test_english_words_in_a_chinese_page_do_not_set_its_word_length():
    page = CHINESE + "\nhttps://example.com/a/very/long/path/to/an/article/about/the/river.html"
    assert run([page], ["zh"]) == [None]


def test_hand_computed_scores():
    text = "# The cat...\n• sat on the mat…\nHello 123 world"
    # tokens: # The cat... • sat on the mat… Hello 123 world (11); words: the 9 without "#" and "•".
    assert scores_of(text, "en") == pytest.approx(
        {
            "word_count": 9,
            "mean_word_length": 30 / 9,
            "hash_ratio": 1 / 11,
            "ellipsis_ratio": 2 / 11,
            "bullet_lines_ratio": 1 / 3,
            "ellipsis_lines_ratio": 2 / 3,
            "alpha_words_ratio": 8 / 11,
            "stop_words": 1,  # "The" and "the": one stop word, matched case-insensitively
        }
    )


def test_stop_words_must_be_different_words():
    only_the = NO_STOP_WORDS.replace("in tall", "in the tall").replace("across quiet", "across the quiet")
    assert scores_of(only_the, "en")["stop_words"] == 1
    assert run([only_the], ["en"]) == ["gopher_quality:stop_words"]
    assert run([only_the.replace("near busy", "with busy")], ["en"]) == [None]


def test_thresholds_in_config_change_outcomes():
    short = "The cat sat with the dog and the bird."
    assert run([short], min_doc_words=5) == [None]
    assert run([NO_STOP_WORDS], min_stop_words=0) == [None]
    assert run([NO_STOP_WORDS], stop_words=["quick", "brown"]) == [None]
    hashes = GOOD_ENGLISH + " ".join(["#travel"] * 30)
    assert run([hashes], max_symbol_word_ratio=0.2) == [None]
    assert run([hashes], max_symbol_word_ratio=None) == [None]
    assert run([GOOD_ENGLISH], min_avg_word_length=5) == ["gopher_quality:mean_word_length"]
    assert run([GOOD_ENGLISH], min_alpha_words_ratio=1.0) == [None]
    assert run([GOOD_ENGLISH + " 1999"], min_alpha_words_ratio=1.0) == ["gopher_quality:alpha_words"]


def test_stop_word_rule_only_for_listed_languages():
    french = (
        "Le vieux port de la ville est connu pour ses maisons colorées et ses petites rues. "
        "Chaque matin, les pêcheurs rentrent avec leurs bateaux pleins de poissons frais. "
        "Les visiteurs aiment marcher le long des quais et boire un café en regardant la mer. "
        "Le soir, les restaurants servent des plats simples préparés avec des produits de la région. "
    )
    assert run([french], ["fr"]) == [None]
    assert run([french], ["fr"], stop_words_langs=None) == ["gopher_quality:stop_words"]
    assert run([french], ["fr"], stop_words=["le", "la", "les"], stop_words_langs=["fr"]) == [None]
    # Without a language the (English) rule applies to space-delimited pages.
    assert run([french], [None]) == ["gopher_quality:stop_words"]


def test_process_splits_and_stores_scores():
    stage = GopherQuality(GopherQuality.Config())
    batch = pd.DataFrame({"id": [1, 2], "text": [GOOD_ENGLISH, NO_STOP_WORDS], "lang": ["en", "en"]})
    result = stage.process(batch)
    assert result.kept["id"].tolist() == [1]
    assert result.dropped["drop_reason"].tolist() == ["gopher_quality:stop_words"]
    assert result.kept["score_gopher_quality_word_count"].dtype == float
    assert result.dropped["score_gopher_quality_stop_words"].tolist() == [0.0]


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError):
        GopherQuality.Config(min_words=3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"min_doc_words": 500, "max_doc_words": 100}, "100 is below min_doc_words (500)"),
        ({"min_avg_word_length": 8, "max_avg_word_length": 4}, "4.0 is below min_avg_word_length (8.0)"),
        ({"stop_words": ()}, "0 different stop words, fewer than min_stop_words (2)"),
        ({"stop_words": ("The", "the"), "min_stop_words": 2}, "1 different stop words"),
    ],
)
def test_settings_that_drop_every_page_are_config_errors(config, message):
    with pytest.raises(ValueError, match=re.escape(message) + ".*every page would be dropped"):
        GopherQuality.Config(**config)
    assert GopherQuality.Config(stop_words=(), min_stop_words=None).stop_words == ()
