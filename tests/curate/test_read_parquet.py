"""read_parquet: `columns` without text is a config error; a listed column a file lacks is named; a row
without a text is dropped as no_text."""

from __future__ import annotations

import pandas as pd
import pytest

from curate.stage import ShardContext
from curate.stages.read_parquet import ReadParquet


def results(path, **config):
    stage = ReadParquet(ReadParquet.Config(**config))
    ctx = ShardContext(shard_id="s", source_path=str(path), output_dir=path.parent)
    return list(stage.read(str(path), ctx))


def read(path, **config) -> list[pd.DataFrame]:
    return [result.kept for result in results(path, **config)]


@pytest.mark.parametrize("columns", [[], ["id"]])
def test_columns_without_text_are_a_config_error(columns):
    # Every task failed at run time on "no 'text' column" instead.
    with pytest.raises(ValueError, match=r"lacks 'text', which every stage reads; add it"):
        ReadParquet.Config(columns=columns)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_a_listed_column_the_file_lacks_is_named(tmp_path, suffix):
    # pyarrow silently left it out of the Parquet batches.
    frame = pd.DataFrame({"id": ["a"], "text": ["one"]})
    path = tmp_path / f"docs{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_json(path, orient="records", lines=True)
    with pytest.raises(ValueError, match=rf"{path}: no column 'url' \(listed in columns; it has id, text\)"):
        read(path, columns=["text", "url"])
    assert read(path, columns=["text"])[0].columns.tolist() == ["text"]


def test_a_row_without_a_text_is_dropped_as_no_text(tmp_path):
    # JSON nulls and numbers went on as documents, and dedup_exact took the nulls for copies of "".
    path = tmp_path / "docs.jsonl"
    path.write_text(
        '{"id": "a", "text": "one"}\n{"id": "b", "text": null}\n{"id": "c", "text": 5}\n'
        '{"id": "d", "text": ""}\n'
    )
    [result] = results(path)
    assert result.kept["id"].tolist() == ["a", "d"]
    assert result.dropped["id"].tolist() == ["b", "c"]
    assert set(result.dropped["drop_reason"]) == {"no_text"}
