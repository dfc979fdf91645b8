"""c4: line cleaning rewrites the text; page rules drop with their own reason."""

from __future__ import annotations

import pandas as pd
import pytest

from curate.registry import lookup
from curate.stages.c4 import C4, count_sentences
from tests.curate.test_text_words import CHINESE, GOOD_ENGLISH, JAPANESE

KEPT = [
    "The museum opened its new wing last spring after three years of work.",
    "Visitors can now see the full collection of maps and ship models.",
    "Guided tours start every hour from the main hall.",
]


def run(texts, langs=None, **params):
    stage = C4(C4.Config(**params))
    batch = pd.DataFrame({"id": range(len(texts)), "text": texts})
    if langs is not None:
        batch["lang"] = langs
    return stage.process(batch)


def reasons(texts, langs=None, **params) -> list[str | None]:
    result = run(texts, langs, **params)
    by_id = dict(zip(result.dropped["id"], result.dropped["drop_reason"], strict=True))
    return [by_id.get(i) for i in range(len(texts))]


def test_registered_under_its_yaml_name():
    assert lookup("c4") is C4


@pytest.mark.parametrize(
    ("text", "lang"), [(GOOD_ENGLISH, "en"), (CHINESE, "zh"), (JAPANESE, "ja"), (CHINESE, None)]
)
def test_good_pages_pass_unchanged(text, lang):
    result = run([text], [lang])
    assert result.kept["text"].tolist() == [text.strip()]


def test_line_rules_remove_lines_and_count_them():
    page = "\n".join(
        [
            KEPT[0],
            "Home",  # too few words
            "Please enable JavaScript to view the comments.",
            "By using this site you agree to our Privacy Policy and terms.",
            "x" * 1001 + " is a very long token",
            "",  # blank lines are not counted
            KEPT[1] + "[1]",  # the citation is cut out
            "  " + KEPT[2] + "  ",
        ]
    )
    result = run([page], min_num_sentences=3)
    assert result.dropped.empty
    row = result.kept.iloc[0]
    assert row["text"] == "\n".join(KEPT)
    assert row["score_c4_lines_kept"] == 3
    assert row["score_c4_lines_removed"] == 4
    for rule in ("too_long_word", "too_few_words", "javascript", "policy"):
        assert row[f"score_c4_lines_removed_{rule}"] == 1, rule
    assert row["score_c4_lines_removed_no_terminal_punct"] == 0
    assert row["score_c4_sentences"] == 3


def test_terminal_punctuation_rule_is_off_by_default_and_can_be_turned_on():
    page = "\n".join([*KEPT, "A line without a final mark", "A line that trails off..."])
    assert run([page], min_num_sentences=1).kept["text"].tolist() == [page]
    result = run([page], min_num_sentences=1, filter_no_terminal_punct=True)
    assert result.kept["text"].tolist() == ["\n".join(KEPT)]
    assert result.kept["score_c4_lines_removed_no_terminal_punct"].tolist() == [2]


def test_page_rules_drop_with_their_reason():
    lorem = GOOD_ENGLISH + "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
    curly = GOOD_ENGLISH + "function show() { return the value of the field; }"
    few = "\n".join(KEPT)
    nothing_left = "Home\nAbout us\nContact\n\nPrivacy policy and terms of use apply here."
    assert reasons([lorem, curly, few, nothing_left, GOOD_ENGLISH]) == [
        "c4:lorem_ipsum",
        "c4:curly_bracket",
        "c4:too_few_sentences",
        "c4:empty_after_line_filter",
        None,
    ]


def test_curly_bracket_only_counts_on_lines_that_survive_line_rules():
    # As in C4: a "{" on a line already removed (too short, or javascript) does not drop the page.
    page = GOOD_ENGLISH + "}\nEnable javascript { here } to continue."
    result = run([page])
    assert result.dropped.empty
    assert result.kept["text"].tolist() == [GOOD_ENGLISH.strip()]


@pytest.mark.parametrize("text", [None, "", " \n "])
def test_empty_or_missing_text_is_dropped_not_crashed(text):
    assert reasons([text, GOOD_ENGLISH]) == ["c4:empty_text", None]


def test_dropped_pages_keep_their_original_text():
    page = "\n".join(KEPT) + "\nHome"
    result = run([page])
    assert result.dropped["drop_reason"].tolist() == ["c4:too_few_sentences"]
    assert result.dropped["text"].tolist() == [page]


def test_thresholds_in_config_change_outcomes():
    few = "\n".join(KEPT)
    assert reasons([few], min_num_sentences=3) == [None]
    assert reasons([few], min_num_sentences=None) == [None]
    curly = GOOD_ENGLISH + "function show() { return the value of the field; }"
    assert reasons([curly], filter_curly_bracket=False) == [None]
    lorem = GOOD_ENGLISH + "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
    assert reasons([lorem], filter_lorem_ipsum=False) == [None]
    policy = GOOD_ENGLISH + "We use cookies to improve the site."
    assert run([policy]).kept["score_c4_lines_removed_policy"].tolist() == [1]
    assert run([policy], filter_policy=False).kept["text"].tolist() == [policy.strip()]
    short_lines = "\n".join(f"Short line {i}." for i in range(6))
    assert reasons([short_lines]) == [None]
    assert reasons([short_lines], min_words_per_line=4) == ["c4:empty_after_line_filter"]
    long_token = GOOD_ENGLISH + "see " + "y" * 50 + " for more details here."
    assert run([long_token], max_word_length=40).kept["score_c4_lines_removed_too_long_word"].tolist() == [1]


def test_chinese_lines_count_characters_as_words():
    # Whitespace splitting would see one "word" per line and remove every line.
    result = run(["今天天气很好。\n我们去公园散步吧。\n好的。"], ["zh"], min_num_sentences=2)
    assert result.kept["text"].tolist() == ["今天天气很好。\n我们去公园散步吧。"]
    assert result.kept["score_c4_lines_removed_too_few_words"].tolist() == [1]


@pytest.mark.parametrize(
    ("line", "count"),
    [
        ("One sentence only.", 1),
        ("No final mark here", 1),
        ("First one. Second one! Third one? Fourth", 4),
        ("Mr. Smith met Dr. Jones in the U.S. last year.", 1),
        ('He said "stop." Then he left.', 2),
        ("Pi is 3.14 or so.", 1),
        ("今天天气很好。我们去公园吧！", 2),
    ],
)
def test_sentence_count(line, count):
    assert count_sentences(line) == count


@pytest.mark.parametrize(("endings", "message"), [((), "none listed"), ((".", ""), "'' ends every line")])
def test_terminal_punctuation_that_removes_every_line_or_none_is_a_config_error(endings, message):
    with pytest.raises(ValueError, match=message):
        C4.Config(filter_no_terminal_punct=True, terminal_punctuation=endings)
    assert C4.Config(terminal_punctuation=endings).terminal_punctuation == endings  # the rule is off
