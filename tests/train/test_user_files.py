"""Paths from flags: a file that cannot be read, or a directory that cannot be written, is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.user_files import check_output_dir, output_path, read_text


def test_read_text_names_the_flag_and_what_is_wrong(tmp_path):
    good = tmp_path / "prompts.txt"
    good.write_text("héllo\n", encoding="utf-8")
    assert read_text(good, "--prompts-file") == "héllo\n"
    binary = tmp_path / "binary"
    binary.write_bytes(b"ok\xff\xfe")
    for path, message in [
        (tmp_path / "missing", "does not exist"),
        (tmp_path, "is a directory, not a file"),
        (binary, "is not UTF-8 text (byte 2)"),
    ]:
        with pytest.raises(ValueError, match=f"^--prompts-file: {path}") as err:
            read_text(path, "--prompts-file")
        assert message in str(err.value)


def test_an_output_directory_may_exist_or_be_new_but_not_be_a_file(tmp_path):
    assert check_output_dir(tmp_path) == tmp_path
    assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="^--out: .*/file is a file; name a directory"):
        check_output_dir(tmp_path / "file", "--out")
    with pytest.raises(ValueError, match="file/run is under .*/file, which is a file"):
        check_output_dir(tmp_path / "file" / "run")


def test_an_empty_output_path_is_refused_not_taken_as_the_current_directory():
    assert output_path(".", "--out") == Path(".")
    for empty in ("", "  "):
        with pytest.raises(
            ValueError, match=r"^--out: the path is empty; name a directory \(\. for the current"
        ):
            output_path(empty, "--out")
