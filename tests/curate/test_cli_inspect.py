"""`curate inspect`: a directory that is no shard directory is one error line, printed literally."""

from __future__ import annotations

from curate import cli


def test_error_prints_brackets_in_the_path_literally(tmp_path, capsys):
    # Rich would read `[run-1]` as markup and drop it, naming a directory that is not the one given.
    missing = tmp_path / "[run-1]" / "shards"
    assert cli.main(["inspect", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"error: {missing / 'metadata.json'}: missing; is {missing} a shard directory?" in err
