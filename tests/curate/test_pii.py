"""pii: recall on a labeled snippet set, nothing left behind, the four modes, language routing, long
documents in chunks, NER only where a name can be, and no network use (a missing model is an error,
never a download; a process with no network runs the stage and tries nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
from pydantic import ValidationError

from curate.config import PipelineConfigError, load_pipeline
from curate.registry import lookup
from curate.stages.pii import Pii, _linewise_phone_recognizer, name_segments, resolve_overlaps, split_chunks
from tests.conftest import REPO

SNIPPETS = [json.loads(line) for line in (REPO / "tests" / "data" / "pii_snippets.jsonl").open()]
# Recall floors per entity with the default NER pipeline (gold spans fully covered by a same-type span).
RECALL_FLOORS = {
    "EMAIL_ADDRESS": 0.99,
    "IP_ADDRESS": 0.99,
    "PHONE_NUMBER": 0.95,
    "CREDIT_CARD": 0.95,
    "PERSON": 0.90,
}
# A stage that flagged every span would pass the recall floors; this keeps it honest (measured: ≥ 0.99).
PRECISION_FLOOR = 0.95
REPORT = REPO / "runs" / "pii_recall.json"


@pytest.fixture(scope="module")
def ner_stage() -> Pii:
    return Pii(Pii.Config())


@pytest.fixture(scope="module")
def regex_stage() -> Pii:
    return Pii(Pii.Config(regex_only=True))


def redact(stage: Pii, texts: list[str], langs: list[str] | None = None) -> pd.DataFrame:
    batch = pd.DataFrame({"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    if langs is not None:
        batch["lang"] = langs
    result = stage.process(batch)
    assert result.dropped.empty and len(result.kept) == len(batch), "pii keeps every document"
    return result.kept


def test_recall_and_precision_on_labeled_snippets(ner_stage):
    found = ner_stage.analyzer.analyze([s["text"] for s in SNIPPETS], [True] * len(SNIPPETS))
    gold, recalled, predicted, correct = Counter(), Counter(), Counter(), Counter()
    for snippet, spans in zip(SNIPPETS, found, strict=True):
        text = snippet["text"]
        for g in snippet["spans"]:
            covered = {i for s in spans if s.entity_type == g["entity"] for i in range(s.start, s.end)}
            gold[g["entity"]] += 1
            recalled[g["entity"]] += {
                i for i in range(g["start"], g["end"]) if not text[i].isspace()
            } <= covered
        for s in spans:
            predicted[s.entity_type] += 1
            correct[s.entity_type] += any(
                g["entity"] == s.entity_type and g["start"] < s.end and s.start < g["end"]
                for g in snippet["spans"]
            )
    report = {
        entity: {
            "gold": gold[entity],
            "recall": recalled[entity] / gold[entity] if gold[entity] else None,
            "predicted": predicted[entity],
            "precision": correct[entity] / predicted[entity] if predicted[entity] else None,
        }
        for entity in sorted(gold | predicted)
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"snippets": len(SNIPPETS), "entities": report}, indent=1) + "\n")
    for entity, row in report.items():
        print(
            f"{entity:16} recall {row['recall']} of {row['gold']:3}  precision {row['precision']} of {row['predicted']:3}"
        )
    assert len(SNIPPETS) >= 300
    for entity, floor in RECALL_FLOORS.items():
        recall, precision = report[entity]["recall"], report[entity]["precision"]
        assert recall >= floor, f"{entity} recall {recall:.3f} < {floor}"
        assert precision is not None and precision >= PRECISION_FLOOR, f"{entity} precision {precision}"


def test_no_email_or_ip_of_the_input_survives(ner_stage):
    kept = redact(ner_stage, [s["text"] for s in SNIPPETS], ["en"] * len(SNIPPETS))
    leaks = [
        (g["value"], out)
        for snippet, out in zip(SNIPPETS, kept["text"], strict=True)
        for g in snippet["spans"]
        if g["entity"] in ("EMAIL_ADDRESS", "IP_ADDRESS") and g["value"] in out
    ]
    assert leaks == []
    # Every placeholder in the output is counted in its entity's column, and nothing else is.
    for entity in ("EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "PERSON"):
        column = f"pii_{entity.lower()}_count"
        assert kept[column].dtype == "int64"
        assert kept[column].tolist() == [out.count(f"<{entity}>") for out in kept["text"]]


def test_modes_replace_mask_hash_redact():
    text = "Write to ana.lima@example.com or call +44 20 7946 0958 today."
    email, phone = "ana.lima@example.com", "+44 20 7946 0958"
    salt = "a secret of 16+ chars"

    def run(**params) -> str:
        return redact(Pii(Pii.Config(regex_only=True, **params)), [text])["text"][0]

    assert run(mode="replace") == "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today."
    assert run(mode="mask", mask_char="#") == f"Write to {'#' * len(email)} or call {'#' * len(phone)} today."
    digest = hashlib.sha256((email + salt).encode()).hexdigest()
    hashed = run(mode="hash", salt=salt)
    assert hashed.startswith(f"Write to {digest} or call ") and phone not in hashed
    assert run(mode="hash", salt=salt) == hashed, "a fixed salt hashes the same value the same way"
    assert run(mode="redact") == "Write to  or call  today."
    with pytest.raises(ValidationError, match="needs a secret salt"):
        Pii.Config(regex_only=True, mode="hash")


def test_overlapping_detections_become_one_redaction(regex_stage):
    text = "Blocked 203.0.113.7; backup to ftp://admin:s3cret@files.example.org/x; card 4111 1111 1111 1111."
    kept = redact(regex_stage, [text])
    # The IP also parses as a phone number, the password@host part as an e-mail, a card group as a phone.
    assert kept["text"][0] == "Blocked <IP_ADDRESS>; backup to <URL_CREDENTIALS>/x; card <CREDIT_CARD>."
    counts = {
        c.removeprefix("pii_").removesuffix("_count"): v
        for c, v in kept.iloc[0].items()
        if c.startswith("pii_")
    }
    assert {k: v for k, v in counts.items() if v} == {"ip_address": 1, "url_credentials": 1, "credit_card": 1}


def test_resolve_overlaps_takes_the_union_typed_by_the_surest():
    from presidio_analyzer import RecognizerResult

    spans = resolve_overlaps(
        [
            RecognizerResult("PERSON", 0, 20, 0.85),
            RecognizerResult("PHONE_NUMBER", 2, 5, 0.4),
            RecognizerResult("EMAIL_ADDRESS", 10, 24, 1.0),  # overlaps the first, not the second
            RecognizerResult("IP_ADDRESS", 30, 40, 0.6),
        ]
    )
    assert [(s.entity_type, s.start, s.end) for s in spans] == [
        ("EMAIL_ADDRESS", 0, 24),
        ("IP_ADDRESS", 30, 40),
    ]


def test_ner_runs_only_on_languages_the_model_covers(ner_stage):
    text = "Yesterday Angela Merkel met Emmanuel Macron in Paris; write to press@example.org for details."
    kept = redact(ner_stage, [text, text, text], ["en", "de", None])
    assert kept["pii_person_count"].tolist() == [2, 0, 0]
    assert kept["pii_email_address_count"].tolist() == [1, 1, 1]
    assert "Angela Merkel" not in kept["text"][0] and "Angela Merkel" in kept["text"][1]
    # Without a `lang` column no language id ran: the configured model is used for every document.
    assert redact(ner_stage, [text])["pii_person_count"].tolist() == [2]


def test_long_documents_are_analysed_in_chunks(regex_stage):
    stage = Pii(Pii.Config(regex_only=True, chunk_chars=1_000))
    filler = "The committee met again to discuss the budget for the coming year and the new library. "
    emails = [f"member{i}@example.com" for i in range(12)]
    paragraphs = [filler * 9 + f"Questions go to {e}." for e in emails]
    text = "\n\n".join(paragraphs)
    one_line = " ".join(paragraphs)  # no line breaks: cut at spaces
    kept = redact(stage, [text, one_line, "short doc, mail x@example.com"])
    assert len(text) > 9 * 1_000
    expected = text
    for e in emails:
        expected = expected.replace(e, "<EMAIL_ADDRESS>")
    assert kept["text"][0] == expected
    assert kept["text"][1] == expected.replace("\n\n", " ")
    assert kept["pii_email_address_count"].tolist() == [12, 12, 1]
    # Same result as the whole document at once (chunk size only bounds memory).
    assert redact(regex_stage, [text])["text"][0] == expected


def test_split_chunks_cuts_at_paragraph_then_line_then_word_breaks():
    text = "a" * 300 + "\n\n" + "b" * 300 + "\n" + "c" * 300 + " " + "d" * 1_500
    pieces = list(split_chunks(text, 1_000))
    assert [p for _, p in pieces] == [
        "a" * 300 + "\n\n",
        "b" * 300 + "\n",
        "c" * 300 + " ",
        "d" * 1_000,
        "d" * 500,
    ]
    assert [off for off, _ in pieces] == [0, 302, 603, 904, 1_904]


def test_ner_reads_only_sentences_that_may_hold_a_name(ner_stage):
    text = (
        "The weather was fine. Yesterday Maria Lopez called.\nIt rained, and we stayed in. "
        "Dr. Chen agreed! 東京で田中さんに会った。"
    )
    # Sentences whose only capitals open them ("The", "It") are skipped; caseless scripts are kept.
    assert [text[s:e] for s, e in name_segments(text)] == [
        "Yesterday Maria Lopez called.",
        "Dr. Chen agreed! 東京で田中さんに会った。",
    ]
    # A name that opens a sentence is still found, with or without the sentence filter.
    text = "Maria Lopez called on Monday. The rest of the day was quiet."
    for stage in (ner_stage, Pii(Pii.Config(ner_sentences="all"))):
        assert (
            redact(stage, [text], ["en"])["text"][0]
            == "<PERSON> called on Monday. The rest of the day was quiet."
        )


def test_phone_numbers_found_line_by_line_as_in_the_whole_text():
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    regions = tuple(Pii.Config().phone_regions)
    linewise, whole = _linewise_phone_recognizer(regions), PhoneRecognizer(supported_regions=regions)
    texts = ["\n".join(s["text"] for s in SNIPPETS[i : i + 6]) for i in range(0, len(SNIPPETS), 6)]
    texts.append("Call 020\n7946 0958, or +49 30 1234567 ext. 12\n(415) 555-0132 in 2024.")
    found = 0
    for text in texts:
        spans = [
            {(r.start, r.end, r.score) for r in rec.analyze(text, ["PHONE_NUMBER"])}
            for rec in (linewise, whole)
        ]
        assert spans[0] == spans[1], text
        found += len(spans[0])
    assert found >= 80


def test_empty_batch_has_the_count_columns(regex_stage):
    kept = regex_stage.process(pd.DataFrame({"id": pd.Series(dtype=str), "text": pd.Series(dtype=str)})).kept
    assert kept.empty and kept["pii_email_address_count"].dtype == "int64"


def test_works_with_the_network_blocked(monkeypatch, tmp_path):
    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    stage = Pii(Pii.Config())  # construction under the block: model load, recognizers, tldextract
    kept = redact(stage, ["Mail jane.doe@example.co.uk or admin@test.example.org, server 192.0.2.7."], ["en"])
    assert kept["text"][0] == "Mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, server <IP_ADDRESS>."
    assert attempts == []
    # The block does catch tldextract's default behaviour: fetching the Public Suffix List.
    import tldextract

    tldextract.TLDExtract(cache_dir=str(tmp_path))("jane.doe@example.co.uk")
    assert attempts


def test_missing_model_is_a_config_error_not_a_download(monkeypatch, write_pipeline):
    import spacy.cli

    monkeypatch.setattr(spacy.cli, "download", lambda *a, **k: pytest.fail("tried to download a model"))
    path = write_pipeline(
        {
            "input": {"paths": [str(REPO / "data" / "samples" / "crawl-00.warc.gz")]},
            "output": {"dir": "out"},
            "stages": [{"stage": "warc_ingest"}, {"stage": "pii", "model": "en_core_web_nonexistent"}],
        }
    )
    with pytest.raises(PipelineConfigError, match=r"stages\[1\] \(pii\): key 'model': .*not installed"):
        load_pipeline(path)
    with pytest.raises(ValidationError, match="PERSON needs NER"):
        Pii.Config(regex_only=True, entities=["EMAIL_ADDRESS", "PERSON"])
    assert lookup("pii") is Pii


# Installed through PYTHONPATH into the child interpreter: no name resolves, no socket connects, and
# every attempt is logged to stderr.
SITECUSTOMIZE = """
import socket
import sys


def _refuse(name):
    def refuse(*args, **kwargs):
        print(f"NETWORK ATTEMPT {name} {args!r}", file=sys.stderr, flush=True)
        raise OSError(f"network disabled by the test ({name})")

    return refuse


socket.getaddrinfo = _refuse("getaddrinfo")
socket.socket.connect = _refuse("connect")
socket.socket.connect_ex = _refuse("connect_ex")
"""
RUN_STAGE = """
import json, logging, sys, urllib.request
import pandas as pd
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from curate.stages.pii import Pii

stage = Pii(Pii.Config())
text = "Ask Maria Lopez at maria.lopez@example.co.uk; the gateway is 198.51.100.23 or 2001:db8::17."
print(json.dumps(stage.process(pd.DataFrame({"id": ["a"], "text": [text], "lang": ["en"]})).kept["text"][0]))
print("=== control: a download must be blocked and logged ===", file=sys.stderr, flush=True)
try:
    urllib.request.urlopen("https://publicsuffix.org/list/public_suffix_list.dat", timeout=5)
except OSError as err:
    print(f"control download failed: {type(err).__name__}", file=sys.stderr)
"""


def test_runs_offline_with_no_download_attempt(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        **{name: closed for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN_STAGE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        json.loads(proc.stdout)
        == "Ask <PERSON> at <EMAIL_ADDRESS>; the gateway is <IP_ADDRESS> or <IP_ADDRESS>."
    )
    stage_log, control_log = proc.stderr.split("=== control", 1)
    assert "NETWORK ATTEMPT" not in stage_log and "download" not in stage_log.lower(), stage_log[-3000:]
    # The harness does catch a download: the same process's control request is refused and logged.
    assert "NETWORK ATTEMPT" in control_log and "control download failed" in control_log
