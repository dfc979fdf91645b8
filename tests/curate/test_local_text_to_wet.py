"""scripts/local_text_to_wet.py: man pages and Python docstrings become WET files that warc_ingest reads."""

from __future__ import annotations

import gzip
import importlib
import shutil
from pathlib import Path

import pytest

from tests.curate.test_warc_ingest import read_all

REPO = Path(__file__).resolve().parents[2]

PAGE = r""".TH FROB 1 "2026-01-01" "frob 1.0" "User Commands"
.SH NAME
frob \- frobnicate files
.SH DESCRIPTION
.B frob
reads every file that it is given and frobnicates it in place, which is a long sentence that a
terminal-width rendering would wrap over several lines.
.PP
A second paragraph.
"""

MODULE = '''"""Frobnication helpers.

This module frobnicates files, which is a long sentence that the
author wrapped over two lines.
"""


def frob(path):
    """Frobnicate one file.

    Parameters
    ----------
    path : str
        The file.

    >>> frob("a")
    """


class Frobber:
    """Keeps state between frobnications."""
'''


@pytest.fixture
def script(monkeypatch):
    # Imported by name (not from a file spec) so that its process pool can pickle the readers.
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("local_text_to_wet")


def run_twice(script, tmp_path, *args) -> list[Path]:
    """The script's output files, after checking that a second run writes the same bytes."""
    for out in ("a", "b"):
        assert script.main([*args, "--out", str(tmp_path / out), "--workers", "1"]) == 0
    files = sorted((tmp_path / "a").iterdir())
    for path in files:
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), "a rerun is byte-identical"
    return files


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
def test_man_pages_become_records_of_unwrapped_paragraphs(tmp_path, script):
    man = tmp_path / "man"
    for section in ("man1", "de/man1"):
        (man / section).mkdir(parents=True)
    (man / "man1" / "frob.1.gz").write_bytes(gzip.compress(PAGE.encode(), mtime=0))
    (man / "man1" / "unfrob.1").write_text(".so man1/frob.1\n")  # one page under another name
    (man / "man1" / "frobnicate.1.gz").symlink_to("frob.1.gz")
    (man / "de" / "man1" / "frob.1").write_text(PAGE)  # a translation: not an English section
    files = run_twice(script, tmp_path, "man", "--man-dir", str(man))
    assert [f.name for f in files] == ["man-00000.warc.wet.gz"]
    kept, _ = read_all(files[0])
    page = (man / "man1" / "frob.1.gz").resolve().as_uri()
    assert kept["url"].tolist() == [page], "the stub, the link and the translation are left out"
    text = kept["text"].iloc[0]
    assert text.startswith("NAME\nfrob - frobnicate files"), "the running header is gone"
    assert "frobnicates it in place, which is a long sentence that a terminal-width rendering" in text
    assert text.endswith("A second paragraph."), "the footer is gone"


def test_docstrings_become_one_record_per_file_in_source_order(tmp_path, script):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "frob.py").write_text(MODULE)
    (package / "empty.py").write_text("x = 1\n")
    (package / "broken.py").write_text("def (:\n")
    files = run_twice(script, tmp_path, "docstrings", str(package), "--per-file", "1")
    assert [f.name for f in files] == ["docstrings-00000.warc.wet.gz"], "files without docstrings left out"
    kept, _ = read_all(files[0])
    assert kept["url"].tolist() == [(package / "frob.py").resolve().as_uri()]
    assert kept["text"].iloc[0] == (
        "Frobnication helpers.\n\n"
        "This module frobnicates files, which is a long sentence that the author wrapped over two lines.\n\n"
        "Frobnicate one file.\n\n"
        "Parameters\n----------\npath : str\n    The file.\n\n"
        '>>> frob("a")\n\n'
        "Keeps state between frobnications."
    )


def test_a_bad_source_argument_fails_before_any_work(tmp_path, script):
    with pytest.raises(SystemExit):
        script.main(["docstrings", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
