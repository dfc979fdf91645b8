"""The tokenize stage: shards that decode to the curated text, identical for any worker count, and a fast
encoder that is used only where it gives HF's ids."""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import tiktoken
import yaml
from rich.console import Console
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from curate import cli_inspect, cli_tokenize
from curate.config import PipelineConfigError, load_pipeline
from curate.engine import run_pipeline, shard_id
from curate.part_files import PartWriter
from curate.shards.bpe import load_tokenizer, train_byte_level_bpe
from curate.shards.encoders import (
    FastPathUnavailable,
    HFEncoder,
    TiktokenEncoder,
    choose_encoder,
    tiktoken_encoding,
)
from curate.shards.shard_set import ShardSet
from curate.stage import ShardContext
from curate.stages.read_parquet import ReadParquet
from curate.stages.tokenize import sample_part
from tests.conftest import write_warc

PASSAGES = [
    "The history of the old harbour town is long and full of surprises. It's 2026; we've had 3,000 visitors!",
    "Die Geschichte der alten Hafenstadt ist lang und voller Überraschungen: Straße, Größe, Äpfel.",
    "La historia del antiguo pueblo portuario es larga y llena de sorpresas, ¿verdad? ¡Sí!",
    "Старый портовый город имеет долгую и удивительную историю. Ёлка, щука, объём.",
    "古い港町の歴史は長く、驚きに満ちています。カタカナとひらがな、そして漢字。",
    "这个古老港口城镇的历史悠久，充满了惊喜。我们明天见！",
    "Emoji: 😀🎉👍🏽 👩‍👩‍👧 and flags 🇫🇷🇯🇵; math ∑∫√ and symbols ©®™.",
    "Whitespace   runs\n\n\tand tabs \u00a0non-breaking\u2028line separator  \n trailing   ",
]
# Text the tokenizer never saw: other words, scripts and odd spacing.
UNSEEN = [
    "Unseen words: quixotic zephyrs jump; I'll we'd they're o'clock 1234567890.",
    "Ελληνικά κείμενα και עברית ו-العربية مع أرقام ١٢٣ и ещё кириллица.",
    "한국어 문장도 있습니다. ไทยภาษา. हिन्दी पाठ। Combining: e\u0301 a\u0308 n\u0303.",
    "Zero\u200bwidth\u200djoiner, soft\u00adhyphen, BOM\ufeff, tabs\t\t\tand CRLF\r\nlines \r\n",
    "A page that writes <|endoftext|> and <|pad|> as plain text.",
    "",
    " leading space",
    "\n\n\n",
]


def corpus(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(PASSAGES, size=rng.integers(1, 6))) for _ in range(count)]
    return texts + UNSEEN


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three Parquet files of multilingual documents, an empty one and special-token text included."""
    root = tmp_path_factory.mktemp("dataset")
    for n in range(3):
        texts = corpus(n, 60)
        pd.DataFrame({"id": [f"{n}-{i}" for i in range(len(texts))], "text": texts}).to_parquet(
            root / f"part{n}.parquet"
        )
    return root


def run_tokenize(root, out, workers: int, **stage):
    """read_parquet → tokenize on `root/*.parquet`, through the engine."""
    config = {
        "input": {"paths": [str(root / "*.parquet")]},
        "output": {"dir": str(out)},
        "executor": {"workers": workers, "dashboard_address": ":0"},
        "stages": [{"stage": "read_parquet"}, {"stage": "tokenize", **stage}],
    }
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_pipeline(load_pipeline(path))


TRAINED = {"prefix": "web", "train": {"vocab_size": 600, "sample_bytes": 40_000}, "shard_size": "8KB"}


@pytest.fixture(scope="module")
def shards(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "w2"
    run_tokenize(dataset, out, workers=2, **TRAINED)
    return out


def input_texts(root) -> list[str]:
    return [t for f in sorted(root.glob("*.parquet")) for t in pd.read_parquet(f)["text"]]


def decoded(shard_set: ShardSet) -> list[np.ndarray]:
    return [s.document(j) for s in shard_set.shards.values() for j in range(s.documents)]


def test_shards_decode_to_the_input_text_exactly(dataset, shards):
    shard_set = ShardSet(shards / "shards")
    meta = shard_set.metadata
    assert (meta.tokenizer.eod_id, meta.tokenizer.pad_id, meta.tokenizer.vocab_size) == (0, 1, 600)
    assert meta.dtype == "uint16"
    assert meta.pipeline_sha256 == hashlib.sha256(shards.with_suffix(".yaml").read_bytes()).hexdigest()
    texts = input_texts(dataset)
    docs = decoded(shard_set)
    assert len(docs) == len(texts) == meta.documents
    tokenizer = shard_set.tokenizer()
    for text, doc in zip(texts, docs, strict=True):
        # Exactly one EOD, at the end; "<|endoftext|>" written in a page stays text.
        assert doc[-1] == 0 and 0 not in doc[:-1]
        assert tokenizer.decode(doc[:-1].tolist(), skip_special_tokens=False) == text
    assert [d.size for d, t in zip(docs, texts, strict=True) if t == ""] == [1, 1, 1], (
        "empty text: a lone EOD"
    )
    assert meta.tokens == sum(d.size for d in docs)


def test_output_files_follow_shard_size_and_megatron_reads_them(shards):
    shard_set = ShardSet(shards / "shards")
    names = list(shard_set.shards)
    assert len(names) > 1 and names == [f"web_{i:05d}_text_document" for i in range(len(names))]
    for shard in shard_set.shards.values():
        assert shard.bin_path.stat().st_size <= 8000 or shard.documents == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    for name, shard in shard_set.shards.items():
        theirs = IndexedDataset(str(shards / "shards" / name))
        assert [theirs[i].tolist() for i in range(len(theirs))] == [
            shard[i].tolist() for i in range(len(shard))
        ]
    stats = json.loads((shards / "stats.json").read_text())
    assert stats["global_stages"]["tokenize"]["encoders"] == {"tiktoken": 3}


def shard_bytes(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir()) if p.name != "metadata.json"}


def test_shards_identical_across_worker_counts_and_reruns(dataset, shards, tmp_path):
    run_tokenize(dataset, tmp_path / "w1", workers=1, **TRAINED)
    run_tokenize(dataset, tmp_path / "again", workers=2, **TRAINED)
    reference = shard_bytes(shards)
    assert "tokenizer.json" in reference and len(reference) > 3
    assert shard_bytes(tmp_path / "w1") == reference
    assert shard_bytes(tmp_path / "again") == reference


def test_web_pipeline_shards_decode_to_the_curated_dataset(write_pipeline, shards, tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for n in range(2):
        pages = [(f"http://site{n}.example/{i}", p) for i, p in enumerate(PASSAGES[n * 4 : n * 4 + 4])]
        write_warc(crawl / f"part{n}.warc.gz", pages)
    out = tmp_path / "out"
    config = {
        "input": {"paths": [f"{crawl}/*.warc.gz"]},
        "output": {"dir": str(out)},
        "executor": {"workers": 2, "dashboard_address": ":0"},
        "stages": [
            {"stage": "warc_ingest"},
            {"stage": "extract"},
            {"stage": "write_parquet"},
            {
                "stage": "tokenize",
                "tokenizer": str(shards / "shards" / "tokenizer.json"),
                "encoder": "tiktoken",
            },
            {"stage": "write_jsonl"},
        ],
    }
    pipeline = load_pipeline(write_pipeline(config))
    summary = run_pipeline(pipeline)
    assert [c.kept for c in summary.counters][-2:] == [8, 8], "tokenize keeps and passes on every document"
    curated = [
        t
        for f in pipeline.input_files
        for t in pd.read_parquet(out / "dataset" / f"part-{shard_id(f)}.parquet")["text"]
    ]
    shard_set = ShardSet(out / "shards")
    tokenizer = shard_set.tokenizer()
    texts = [tokenizer.decode(d[:-1].tolist(), skip_special_tokens=False) for d in decoded(shard_set)]
    assert texts == curated and any("Straße" in t for t in texts) and any("щука" in t for t in texts)
    passed_on = pd.concat(
        pd.read_json(p, lines=True) for p in sorted((out / "dataset_jsonl").glob("*.jsonl.gz"))
    )
    assert sorted(passed_on["text"]) == sorted(curated)


def test_cli_tokenize_and_inspect(dataset, shards, tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_tokenize.add_command(sub)
    cli_inspect.add_command(sub)
    console = Console(record=True, width=200)
    tokenizer = shards / "shards" / "tokenizer.json"
    args = parser.parse_args(
        [
            "tokenize",
            str(dataset / "part*.parquet"),
            "--out",
            str(tmp_path / "cli"),
            "--tokenizer",
            str(tokenizer),
        ]
        + ["--workers", "1", "--prefix", "cli"]
    )
    assert args.func(args, console) == 0
    assert (tmp_path / "cli" / "tokenize.yaml").is_file(), "the run can be repeated with curate run"
    shard_set = ShardSet(tmp_path / "cli" / "shards")
    assert list(shard_set.shards) == ["cli_text_document"]
    assert shard_set.metadata.documents == len(input_texts(dataset))

    console = Console(record=True, width=200)
    args = parser.parse_args(["inspect", str(tmp_path / "cli" / "shards"), "--samples", "2"])
    assert args.func(args, console) == 0
    shown = console.export_text()
    assert shard_set.metadata.tokenizer.sha256 in shown
    assert f"{shard_set.metadata.documents:,}" in shown and "Tokens per document" in shown
    assert "cli_text_document document 0" in shown

    (tmp_path / "cli" / "shards" / "cli_text_document.bin").write_bytes(b"\0\0")
    console = Console(record=True, width=200)
    assert args.func(args, console) == 2
    assert "cli_text_document.bin: 2 bytes" in console.export_text()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_byte_level_bpe(corpus(7, 300), 1000, 2, ["<|endoftext|>", "<|pad|>"]).save(str(path))
    return load_tokenizer(path)


def test_tiktoken_gives_hf_ids_on_multilingual_text(tokenizer):
    fast = tiktoken_encoding(tokenizer)
    texts = corpus(8, 40) + [" ".join(UNSEEN) * 3]
    reference = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert [ids.tolist() for ids in TiktokenEncoder(fast).encode(texts)] == reference
    encoder, reason = choose_encoder("auto", HFEncoder(tokenizer), fast, texts)
    assert encoder.name == "tiktoken" and "identical" in reason


def merge_order_tokenizer() -> Tokenizer:
    """A byte-level BPE whose merges (b c), (a b), (ab c) make "abc" a token that HF never produces:
    HF merges "b c" first and is left with [a, bc]; tiktoken looks "abc" up whole."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|endoftext|>": 0, "<|pad|>": 1} | {c: i + 2 for i, c in enumerate(alphabet)}
    vocab |= {"bc": len(vocab), "ab": len(vocab) + 1, "abc": len(vocab) + 2}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("b", "c"), ("a", "b"), ("ab", "c")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|pad|>"])
    return tok


def test_tiktoken_is_refused_when_it_cannot_reproduce_the_tokenizer():
    tok = merge_order_tokenizer()
    with pytest.raises(FastPathUnavailable, match=r"'abc' .* as \[\d+, \d+\]; tiktoken would emit it whole"):
        tiktoken_encoding(tok)
    with pytest.raises(FastPathUnavailable, match="cannot reproduce this tokenizer"):
        choose_encoder("tiktoken", HFEncoder(tok), FastPathUnavailable("x"), ["abc"])
    encoder, reason = choose_encoder("auto", HFEncoder(tok), FastPathUnavailable("why"), ["abc"])
    assert (encoder.name, reason) == ("hf", "tiktoken unavailable: why")


def test_auto_falls_back_to_hf_when_verification_fails(tokenizer):
    # A tiktoken encoding from the same vocabulary but a whitespace-only split: it passes every structural
    # check by construction, and only the comparison on the sample can tell it apart.
    good = tiktoken_encoding(tokenizer)
    wrong = tiktoken.Encoding(
        "wrong-split", pat_str=r"\S+|\s+", mergeable_ranks=good._mergeable_ranks, special_tokens={}
    )
    sample = ["It's a test, isn't it?"]
    encoder, reason = choose_encoder("auto", HFEncoder(tokenizer), wrong, sample)
    assert encoder.name == "hf" and reason.startswith("tiktoken disagreed with hf on the verification sample")
    with pytest.raises(FastPathUnavailable, match="disagrees with the tokenizer file: document 0 differs"):
        choose_encoder("tiktoken", HFEncoder(tokenizer), wrong, sample)


def test_training_sample_is_bounded_and_seeded(dataset, tmp_path):
    part = dataset / "part0.parquet"
    first = sample_part((0, "s", part), budget=2000, seed=1, sample_dir=str(tmp_path / "a"))
    again = sample_part((0, "s", part), budget=2000, seed=1, sample_dir=str(tmp_path / "b"))
    other = sample_part((0, "s", part), budget=2000, seed=2, sample_dir=str(tmp_path / "c"))
    assert first["bytes"] <= 2000 and first["bytes"] > 1500, "the budget is used, not exceeded"
    texts = [pd.read_parquet(s["path"])["text"].tolist() for s in (first, again, other)]
    assert texts[0] == texts[1] and texts[0] != texts[2]


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"train": {"vocab_size": 500}, "tokenizer": "TOKENIZER"}, "set exactly one of 'tokenizer'"),
        ({}, "set exactly one of 'tokenizer'"),
        ({"tokenizer": "missing.json"}, "tokenizer file 'missing.json' does not exist"),
        ({"tokenizer": "TOKENIZER", "eod_token": "</s>"}, "has no token '</s>'"),
        ({"train": {"vocab_size": 500}, "shard_size": "lots"}, "key 'shard_size'"),
        ({"train": {"vocab_size": 500}, "prefix": "a/b"}, "key 'prefix'"),
        ({"train": {"vocab_size": 100}}, "key 'train.vocab_size'"),
        # The trainer allocated for it and the worker died (KilledWorker after three retries).
        ({"train": {"vocab_size": 10**11}}, "key 'train.vocab_size': Input should be less than or equal"),
        ({"train": {"vocab_size": 500}, "eod_token": ""}, "key 'eod_token': String should have at least 1"),
        ({"train": {"vocab_size": 500}, "pad_token": ""}, "key 'pad_token': String should have at least 1"),
    ],
    ids=["both", "neither", "missing-file", "no-eod", "size", "prefix", "vocab", "huge-vocab", "eod", "pad"],
)
def test_bad_config_is_one_clear_line(write_pipeline, dataset, shards, stage, message):
    tokenizer = str(shards / "shards" / "tokenizer.json")
    stage = {k: (tokenizer if v == "TOKENIZER" else v) for k, v in stage.items()}
    config = {
        "input": {"paths": [str(dataset / "*.parquet")]},
        "output": {"dir": "unused"},
        "stages": [{"stage": "read_parquet"}, {"stage": "tokenize", **stage}],
    }
    with pytest.raises(PipelineConfigError, match="stages\\[1\\] \\(tokenize\\)") as info:
        load_pipeline(write_pipeline(config))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_sizes_parse_as_bytes(write_pipeline, dataset):
    config = {
        "input": {"paths": [str(dataset / "*.parquet")]},
        "output": {"dir": "unused"},
        "stages": [
            {"stage": "read_parquet"},
            {"stage": "tokenize", "train": {"sample_bytes": "5MB"}, "shard_size": "500MB"},
        ],
    }
    stage = load_pipeline(write_pipeline(config)).stages[1].config
    assert (stage.shard_size, stage.train.sample_bytes) == (500_000_000, 5_000_000)


def test_read_parquet_reads_parquet_and_jsonl_alike(tmp_path):
    frame = pd.DataFrame({"id": ["007", "8"], "text": ["line one\nline two", "Straße 😀"], "n": [1, 2]})
    stage = ReadParquet(ReadParquet.Config(batch_size=1))
    ctx = ShardContext(shard_id="s", source_path="", output_dir=tmp_path)
    for name in ("d.parquet", "d.jsonl.gz", "d.jsonl"):
        writer = PartWriter(tmp_path / name)
        writer.write(frame)
        writer.commit()
        batches = list(stage.read(str(tmp_path / name), ctx))
        assert [len(b.kept) for b in batches] == [1, 1], name
        assert pd.concat(b.kept for b in batches).to_dict("records") == frame.to_dict("records"), name
    frame.drop(columns="text").to_parquet(tmp_path / "no_text.parquet")
    with pytest.raises(ValueError, match=r"no_text\.parquet: no 'text' column \(columns: id, n\)"):
        list(stage.read(str(tmp_path / "no_text.parquet"), ctx))
