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


def test_a_file_or_an_unreadable_metadata_is_one_error_line(tmp_path, capsys):
    (tmp_path / "shards.txt").write_text("not a directory")
    (tmp_path / "odd" / "metadata.json").mkdir(parents=True)
    for given, message in [
        (tmp_path / "shards.txt", f"{tmp_path / 'shards.txt'}: not a directory; give a shard directory"),
        (tmp_path / "odd", f"{tmp_path / 'odd' / 'metadata.json'}: cannot be read (Is a directory)"),
    ]:
        assert cli.main(["inspect", str(given)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"error: {message}" in err


def test_negative_samples_or_chars_are_refused(tmp_path, capsys):
    for flags, message in [(["--chars", "-5"], "--chars -5: give a number of at least 1"),
                           (["--samples", "-1"], "--samples -1: give a number of at least 0")]:  # fmt: skip
        assert cli.main(["inspect", str(tmp_path), *flags]) == 2
        assert f"error: {message}" in capsys.readouterr().err
