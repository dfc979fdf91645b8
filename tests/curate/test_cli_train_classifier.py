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


def labeled(tmp_path):
    path = tmp_path / "labeled.jsonl"
    path.write_text('{"text": "a fine page", "label": "hq"}\n{"text": "spam spam", "label": "lq"}\n')
    return str(path)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_an_out_that_cannot_be_the_model_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "taken").write_text("a file")
    for out, message in [
        (tmp_path / "models", "is a directory; name the model file"),
        (tmp_path / "taken" / "m.bin", f"{tmp_path / 'taken'} is a file, not a directory"),
    ]:
        assert cli.main(["train-classifier", "--data", labeled(tmp_path), "--out", str(out)]) == 2
        assert f"error: --out {out}: {message}" in error_line(capsys)


def test_a_file_that_does_not_parse_is_one_error_line_naming_it(tmp_path, capsys):
    for name, content, kind in [
        ("bad.jsonl", b"not json\n", "JSON lines"),
        ("bad.jsonl.gz", b"not gzip", "JSON lines"),
        ("bad.parquet", b"not parquet", "Parquet"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        out = str(tmp_path / "m.bin")
        assert (
            cli.main(["train-classifier", "--positive", str(path), "--negative", str(path), "--out", out])
            == 2
        )
        assert f"error: {path}: not readable as {kind} (" in error_line(capsys)


def test_an_infinite_learning_rate_is_refused(tmp_path, capsys):
    # fastText trained to "Encountered NaN" and a RuntimeError traceback.
    assert (
        cli.main(
            ["train-classifier", "--data", labeled(tmp_path), "--out", str(tmp_path / "m.bin"), "--lr", "inf"]
        )
        == 2
    )
    assert "error: --lr: Input should be a finite number" in error_line(capsys)
