"""The serving tokenizer's cheap bound on a text's length in tokens."""

from __future__ import annotations

import time

from train.serve.tokenizer import ServingTokenizer


def test_fewest_tokens_never_exceeds_the_encoding_and_costs_no_tokenizing(tokenizer_file):
    serving = ServingTokenizer.from_checkpoint(tokenizer_file.parent)
    for text in (
        "",
        "a",
        "the cat sat on the mat",
        "<|endoftext|>" * 3,
        "naïve café 日本語 🙂" * 5,
        " " * 40,
    ):
        assert serving.fewest_tokens(text) <= len(serving.encode(text)), text
    huge = "the cat sat " * 1_000_000  # tokenizing it held the GIL for seconds
    start = time.monotonic()
    assert serving.fewest_tokens(huge) > 100_000
    assert time.monotonic() - start < 1
