"""fineweb: FineWeb's line rules drop with their own reason; good pages pass the whole Gopher/C4/FineWeb chain."""

from __future__ import annotations

import pandas as pd
import pytest

from curate.registry import lookup
from curate.stages.c4 import C4
from curate.stages.fineweb import FineWeb
from curate.stages.gopher_quality import GopherQuality
from curate.stages.gopher_repetition import GopherRepetition
from tests.curate.test_text_words import CHINESE, GOOD_ENGLISH

LONG_LINES = [
    "The river flows slowly past the old mill and the church",
    "Farmers bring their goods to the market every Saturday morning",
    "A narrow bridge connects the two halves of the village",
    "Children play football in the field behind the school building",
    "In winter the hills are often covered with a thin layer of snow",
    "The bakery on the corner sells bread, cakes and warm pastries",
    "Tourists come in summer to walk along the coastal paths",
    "The library holds records of the town going back three centuries",
]


def run(texts, langs=None, **params) -> list[str | None]:
    stage = FineWeb(FineWeb.Config(**params))
    batch = pd.DataFrame({"text": texts})
    if langs is not None:
        batch["lang"] = langs
    return stage.keep(stage.score(batch)).tolist()


def scores_of(text: str, **params) -> dict[str, float]:
    stage = FineWeb(FineWeb.Config(**params))
    row = stage.score(pd.DataFrame({"text": [text]})).iloc[0]
    return {k.removeprefix("score_fineweb_"): v for k, v in row.items()}


def test_registered_under_its_yaml_name():
    assert lookup("fineweb") is FineWeb


def test_each_rule_drops_with_its_reason():
    no_punct = "\n".join(LONG_LINES)  # no line ends in punctuation
    short = "\n".join(["Fresh bread.", "Open daily.", "Call us now!", LONG_LINES[0] + "."])
    duplicated = GOOD_ENGLISH + "Subscribe to our newsletter for weekly updates.\n" * 2
    # Two long words a line: 8 newlines per 18 words.
    listy = "\n".join(f"Internationalization representatives{i}." for i in range(9))
    assert run([no_punct, short, duplicated, listy, GOOD_ENGLISH]) == [
        "fineweb:line_punct_ratio",
        "fineweb:short_line_ratio",
        "fineweb:char_dup_ratio",
        "fineweb:newline_ratio",
        None,
    ]


def test_line_punctuation_boundary_is_strict_as_in_datatrove():
    # 3 of 25 lines end in punctuation: exactly 0.12 is kept; 2 of 25 is dropped.
    lines = [f"{LONG_LINES[i % 8]} number {i}" + ("." if i < 3 else "") for i in range(25)]
    assert scores_of("\n".join(lines))["line_punct_ratio"] == pytest.approx(0.12)
    assert run(["\n".join(lines)]) == [None]
    lines[2] = lines[2].rstrip(".")
    assert run(["\n".join(lines)]) == ["fineweb:line_punct_ratio"]


def test_blank_lines_do_not_count_as_lines():
    spaced = "\n\n\n".join(LONG_LINES[:4]) + "."
    assert scores_of(spaced)["line_punct_ratio"] == 0.25
    assert scores_of(spaced)["short_line_ratio"] == 0.0


def test_hand_computed_scores():
    text = "Hello there.\nshort\n\nThis line is long enough to not be short!"
    # 3 non-blank lines: 2 end in punctuation; 2 are <= 30 characters; 3 newlines / 12 words.
    assert scores_of(text) == pytest.approx(
        {"line_punct_ratio": 2 / 3, "short_line_ratio": 2 / 3, "char_dup_ratio": 0.0, "newline_ratio": 0.25}
    )
    # The repeated line's 8 characters over the 19 non-newline characters.
    assert scores_of("abc def.\nabc def.\nxyz")["char_dup_ratio"] == pytest.approx(8 / 19)


def test_trailing_spaces_do_not_hide_line_punctuation():
    assert scores_of("First line ends here.   \nSecond line too!\t")["line_punct_ratio"] == 1.0


@pytest.mark.parametrize("text", [None, "", "\n\n  "])
def test_empty_or_missing_text_is_dropped_not_crashed(text):
    assert run([text, GOOD_ENGLISH]) == ["fineweb:empty_text", None]


def test_thresholds_in_config_change_outcomes():
    no_punct = "\n".join(LONG_LINES)
    assert run([no_punct], line_punct_thr=None) == [None]
    assert run([no_punct], line_punct_exclude_zero=True) == [None]
    duplicated = GOOD_ENGLISH + "Subscribe to our newsletter for weekly updates.\n" * 2
    assert run([duplicated], char_duplicates_ratio=0.1) == [None]
    assert run([GOOD_ENGLISH], short_line_length=400) == ["fineweb:short_line_ratio"]
    assert run([GOOD_ENGLISH], new_line_ratio=0.01) == ["fineweb:newline_ratio"]


def test_chinese_lines_end_in_chinese_full_stops_and_count_characters_as_words():
    assert run([CHINESE], ["zh"]) == [None]
    assert scores_of(CHINESE)["newline_ratio"] < 0.05


def test_good_pages_pass_the_fineweb_chain_in_order():
    """Gopher repetition -> Gopher quality -> C4 -> FineWeb, as FineWeb ran them."""
    messy = (
        GOOD_ENGLISH
        + "Home\nPlease enable JavaScript to use this site.\nAccept our cookie policy to continue."
    )
    batch = pd.DataFrame({"id": [1, 2, 3], "text": [GOOD_ENGLISH, messy, "Too short."], "lang": "en"})
    dropped = []
    for cls in (GopherRepetition, GopherQuality, C4, FineWeb):
        result = cls(cls.Config()).process(batch)
        dropped += result.dropped["drop_reason"].tolist()
        batch = result.kept
    assert batch["id"].tolist() == [1, 2]
    assert batch["text"].tolist() == [GOOD_ENGLISH.strip(), GOOD_ENGLISH.strip()]
    # A two-word page is all one 2-gram, so the repetition rules already catch it (as in DataTrove).
    assert dropped == ["gopher_repetition:top_2_gram"]
    score_prefixes = {c.split("_")[1] for c in batch.columns if c.startswith("score_")}
    assert score_prefixes == {"gopher", "c4", "fineweb"}


@pytest.mark.parametrize(("endings", "message"), [((), "none listed"), ((".", ""), "'' ends every line")])
def test_line_endings_that_drop_every_page_or_none_are_a_config_error(endings, message):
    with pytest.raises(ValueError, match=message):
        FineWeb.Config(line_end_punctuation=endings)
    assert FineWeb.Config(line_punct_thr=None, line_end_punctuation=endings).line_end_punctuation == endings
