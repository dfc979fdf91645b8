"""`curate train-classifier`: bad input is one error line that names it, printed literally."""

from __future__ import annotations

from curate import cli


def test_error_prints_brackets_in_the_path_literally(tmp_path, capsys):
    # Rich would read `[hq]` as markup and drop it, naming a path that is not the one given.
    missing = str(tmp_path / "[hq]" / "docs.jsonl")
    assert cli.main(["train-classifier", "--data", missing, "--out", str(tmp_path / "m.bin")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"error: {missing!r} matches no Parquet or JSONL file" in err
