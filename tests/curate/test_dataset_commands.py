"""`curate dedup` and `curate tokenize`: a bad flag or a failing task ends with one error line, no traceback."""

from __future__ import annotations

import pandas as pd

from curate import cli


def test_workers_zero_is_refused_naming_the_flag(tmp_path, capsys):
    # It was dropped from the written pipeline, so the run used every core instead.
    data = tmp_path / "ds.parquet"
    pd.DataFrame({"id": ["a"], "text": ["one document"]}).to_parquet(data)
    for command in (["dedup"], ["tokenize", "--vocab-size", "300"]):
        argv = [*command, str(data), "--out", str(tmp_path / "out"), "--workers", "0"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert "key 'executor.workers'" in err and "(set on the command line)" in err
    assert not (tmp_path / "out" / "segment-00").exists()


def test_a_failing_task_is_one_error_line_and_exit_code_1(tmp_path, capsys):
    data = tmp_path / "notext.parquet"
    pd.DataFrame({"id": ["a"], "body": ["no text column"]}).to_parquet(data)
    assert cli.main(["dedup", str(data), "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: read_parquet · shards: task segment-00-notext")
    assert "no 'text' column (columns: id, body)" in err


def test_an_out_that_cannot_be_a_directory_is_one_error_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    data = tmp_path / "ds.parquet"
    pd.DataFrame({"id": ["a"], "text": ["one document"]}).to_parquet(data)
    for command, out in [(["dedup"], "taken"), (["tokenize", "--vocab-size", "300"], "taken/sub")]:
        out = str(tmp_path / out)
        assert cli.main([*command, str(data), "--out", out]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"error: --out {out}: " in err
        assert "choose another output dir" in err
