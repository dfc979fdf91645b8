"""Word splitting: whitespace words for spaced scripts, small units for scripts written without spaces.

The sample pages defined here are shared by the filter tests.
"""

from __future__ import annotations

import pandas as pd
import pytest

from curate.text_words import (
    has_no_space_script,
    normalize_lang,
    split_lines,
    split_paragraphs,
    split_tokens,
    split_words,
    strip_punctuation,
    texts_and_langs,
)

GOOD_ENGLISH = """\
The old harbour town sits at the mouth of a wide river, and its history goes back more than eight hundred years. Fishermen built the first stone houses near the water, and merchants soon followed them with warehouses, inns and a small market square.
During the eighteenth century the port grew quickly because ships carrying wool, timber and salt stopped there on their way south. Many of the narrow streets that visitors walk through today were laid out in that period, and several buildings still carry the names of the families who owned them.
In the summer months the market is full of fresh fruit, vegetables and cheese from nearby farms. Cafes put their tables out on the pavement, musicians play near the fountain, and the evening light turns the painted walls a warm shade of gold.
Anyone who wants to learn more should visit the local museum, which is open every day except Monday. Its collection includes maps, ship models and letters written by sailors to their families, and the staff are happy to answer questions about the town and its people.
"""

CHINESE = """\
长江是中国最长的河流，全长约六千三百公里，发源于青藏高原的唐古拉山脉，自西向东流经青海、西藏、四川、云南、重庆、湖北、湖南、江西、安徽、江苏和上海，最后注入东海。
长江流域面积广阔，气候温和，雨量充沛，自古以来就是中国重要的农业区。这里出产稻米、茶叶、棉花和油菜，养育了数以亿计的人口，也孕育了灿烂的文化。
沿江的城市众多，其中上海、武汉、南京和重庆都是重要的经济中心。三峡工程建成以后，长江的航运条件得到了明显改善，发电量也大大增加。
近年来，人们越来越重视长江的生态保护。政府采取了禁渔、退耕还林和治理污染等措施，希望让这条母亲河重新焕发生机。
"""

JAPANESE = """\
京都は日本の古い都で、千年以上にわたって天皇が住んでいた場所です。町の中にはたくさんの寺や神社があり、毎年世界中から多くの観光客が訪れます。
春になると、鴨川沿いの桜が一斉に咲き、夜にはライトアップされた花を見に来る人でにぎわいます。秋には嵐山や東福寺の紅葉がとても美しく、写真を撮る人の姿が目立ちます。
京都の料理は薄味で、季節の野菜や豆腐を使ったものが多いです。湯豆腐や漬物、抹茶を使ったお菓子は、お土産としても人気があります。
町を歩くときは、バスや電車を上手に使うと便利です。ただし、有名な観光地は朝早く行かないと混雑するので、計画を立ててから出かけるのがおすすめです。
"""


def test_space_delimited_words_are_whitespace_tokens_without_surrounding_punctuation():
    assert split_words('Hello, "world" -- it\'s 3.5% (really)!') == [
        "Hello",
        "world",
        "it's",
        "3.5",
        "really",
    ]
    # Tokens keep their punctuation; punctuation-only tokens are tokens but not words.
    assert split_tokens("Hello, world -- yes.") == ["Hello,", "world", "--", "yes."]
    assert strip_punctuation(["--", "...", "«ok»"]) == ["ok"]


def test_chinese_runs_split_into_characters_not_one_giant_word():
    words = split_words(CHINESE)
    first_line = CHINESE.splitlines()[0]
    assert len(split_words(first_line, "zh")) > 60
    assert all(len(w) == 1 for w in words)
    assert "长" in words and "，" not in words and "。" not in words
    # Punctuation stays on the unit before it, as "word," is one whitespace token.
    assert split_tokens("青海、西藏。") == ["青", "海、", "西", "藏。"]
    # A page without spaces is one whitespace token, which the filters must never see.
    assert len(first_line.split()) == 1


def test_mixed_scripts_split_by_character_script_whatever_the_lang_hint():
    text = "我买了2023年的iPhone手机。"
    expected = ["我", "买", "了", "2023", "年", "的", "iPhone", "手", "机"]
    assert split_words(text) == expected
    assert split_words(text, "en") == expected
    assert split_words(text, "zh-Hans") == expected


def test_japanese_kana_and_kanji_are_single_character_units():
    assert split_words("日本語のテキスト・カタカナ", "ja") == list("日本語のテキスト") + list("カタカナ")
    assert len(split_words(JAPANESE)) > 250


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("ทำงาน", ["ทำ", "ง", "า", "น"]),  # Thai: SARA AM stays with its consonant
        ("ภาษาไทยที่", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย", "ที่"]),  # marks above stay with the base
        ("ខ្មែរ", ["ខ្មែ", "រ"]),  # Khmer: coeng stacks the next consonant into the cluster
        ("မြန်မာ", ["မြ", "န်", "မာ"]),  # Myanmar medials and asat attach
        ("ພາສາລາວ", ["ພ", "າ", "ສ", "າ", "ລ", "າ", "ວ"]),
    ],
)
def test_southeast_asian_scripts_split_into_grapheme_clusters(text, units):
    assert split_words(text) == units
    assert "".join(split_words(text)) == text


def test_zero_width_space_separates_words_in_no_space_scripts():
    assert split_tokens("ภาษา\u200bไทย abc\u200bdef") == ["ภ", "า", "ษ", "า", "ไ", "ท", "ย", "abc", "def"]


def test_korean_and_cyrillic_use_spaces():
    assert split_words("한국어는 띄어쓰기를 합니다.") == ["한국어는", "띄어쓰기를", "합니다"]
    assert split_words("Привет, мир!") == ["Привет", "мир"]
    assert not has_no_space_script("한국어 Привет hello")
    assert has_no_space_script("hello 世界")


def test_lines_and_paragraphs():
    assert split_lines("a\r\nb\n\nc\n") == ["a", "b", "", "c"]
    assert split_paragraphs("\n\none\ntwo\n\n\nthree\n \t\nfour\n") == ["one\ntwo", "three", "four"]


def test_normalize_lang_and_batch_columns():
    assert normalize_lang("zh-Hans") == "zh"
    assert normalize_lang("EN_us") == "en"
    assert normalize_lang(float("nan")) is None
    batch = pd.DataFrame({"text": ["a", None], "lang": ["ja", None]})
    assert texts_and_langs(batch) == [("a", "ja"), ("", None)]
    assert texts_and_langs(batch[["text"]]) == [("a", None), ("", None)]
    with pytest.raises(ValueError, match="'text' column"):
        texts_and_langs(batch[["lang"]])


def test_long_text_splits_fast():
    import time

    text = ("The quick brown fox jumps over the lazy dog. " * 2000) + ("中文文本测试。" * 2000)
    start = time.perf_counter()
    words = split_words(text)
    assert len(words) == 9 * 2000 + 6 * 2000
    assert time.perf_counter() - start < 0.5
