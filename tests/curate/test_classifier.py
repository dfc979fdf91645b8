"""classifier and `curate train-classifier`: a model trained on a synthetic labeled set, threshold and
Pareto keeping that do not depend on batching, NeMo's keep rate, a missing or corrupt model caught by
`curate validate`, and the training command's outputs (on synthetic data and on the sample's run)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from rich.console import Console

from curate import cli, cli_train_classifier
from curate.config import PipelineConfigError, load_pipeline
from curate.file_hash import file_sha256
from curate.quality_model import TrainConfig, load_examples, train
from curate.registry import lookup
from curate.stages.classifier import DROP_REASON, Classifier, pareto_draws
from tests.conftest import SAMPLES

SUBJECTS = ["The council", "Our research team", "The museum", "A local farmer", "The new study", "The author"]
VERBS = ["explained", "described", "examined", "documented", "compared", "summarised"]
OBJECTS = [
    "how the river shaped the history of the valley",
    "the effects of the drought on the spring harvest",
    "why the old railway line closed after the war",
    "the changes in bird migration over two decades",
    "the results of the survey carried out last autumn",
    "the careful restoration of the medieval chapel",
]
SPAM = [
    "click here",
    "buy now",
    "free shipping",
    "best price",
    "login",
    "register",
    "cart",
    "win",
    "casino",
    "deal",
]


def synthetic(n: int, seed: int) -> list[dict]:
    """Half prose paragraphs (hq), half keyword spam and menu text (lq)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            sentences = [
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(4)
            ]
            rows.append({"text": " ".join(sentences), "label": "hq"})
        else:
            rows.append({"text": " | ".join(rng.choice(SPAM) for _ in range(12)), "label": "lq"})
    return rows


def write_jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    data = write_jsonl(tmp / "train.jsonl", synthetic(300, seed=1))
    config = TrainConfig(dim=8, epoch=10, lr=0.5, bucket=10_000)
    train(load_examples([str(data)], [], []), tmp / "quality.bin", config)
    return str(tmp / "quality.bin")


@pytest.fixture(scope="module")
def docs() -> pd.DataFrame:
    rows = synthetic(90, seed=2)
    # Borderline documents make the Pareto draws matter: half prose, half spam.
    for i in range(30):
        rows.append({"text": rows[2 * i]["text"] + " " + rows[2 * i + 1]["text"], "label": "mixed"})
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", [f"doc-{i:03d}" for i in range(len(rows))])
    return frame


def run_in_batches(stage: Classifier, docs: pd.DataFrame, sizes: list[int]):
    kept, dropped, start = [], [], 0
    for size in sizes:
        result = stage.process(docs.iloc[start : start + size].reset_index(drop=True))
        kept.append(result.kept)
        dropped.append(result.dropped)
        start += size
    assert start == len(docs)
    return pd.concat(kept, ignore_index=True), pd.concat(dropped, ignore_index=True)


@pytest.mark.parametrize("mode", ["threshold", "pareto"])
def test_decisions_do_not_depend_on_batching(model_path, docs, mode):
    stage = lookup("classifier")(Classifier.Config(model_path=model_path, mode=mode))
    whole_kept, whole_dropped = run_in_batches(stage, docs, [len(docs)])
    split_kept, split_dropped = run_in_batches(stage, docs.sample(frac=1, random_state=0), [7, 50, 1, 62])
    assert sorted(whole_kept["id"]) == sorted(split_kept["id"])
    assert sorted(whole_dropped["id"]) == sorted(split_dropped["id"])
    assert set(whole_dropped["drop_reason"]) == {DROP_REASON}
    scores = pd.concat([whole_kept, whole_dropped]).set_index("id")["quality_score"]
    assert scores.between(0, 1).all()
    by_label = docs.set_index("id")["label"]
    assert scores[by_label == "hq"].min() > 0.9 and scores[by_label == "lq"].max() < 0.1
    kept_labels = whole_kept["id"].map(by_label)
    if mode == "threshold":
        assert (kept_labels == "hq").sum() == 45 and (kept_labels == "lq").sum() == 0
        assert (whole_kept["quality_score"] >= 0.5).all() and (whole_dropped["quality_score"] < 0.5).all()
    else:
        # Pareto sampling keeps nearly all good documents and some bad ones (P(keep | score 0) = 1/8).
        assert (kept_labels == "hq").sum() >= 43 and 0 < (kept_labels == "lq").sum() < 20
        assert (whole_kept["quality_pareto_draw"] > 1 - whole_kept["quality_score"]).all()
        assert (whole_dropped["quality_pareto_draw"] <= 1 - whole_dropped["quality_score"]).all()


def test_pareto_seed_changes_the_sample_and_ids_fix_it(model_path, docs):
    def kept_ids(seed: int) -> list[str]:
        stage = Classifier(Classifier.Config(model_path=model_path, mode="pareto", seed=seed))
        return sorted(stage.process(docs).kept["id"])

    assert kept_ids(1) == kept_ids(1)
    assert kept_ids(1) != kept_ids(2)


def test_pareto_keep_rate_matches_nemo_rule():
    # NeMo keeps when np.random.pareto(alpha) > 1 - score; ours draws the same Lomax distribution per id.
    ids = pd.Series([f"doc-{i}" for i in range(40_000)])
    draws = pareto_draws(ids, seed=42, alpha=3.0)
    nemo = np.random.default_rng(0).pareto(3.0, size=len(ids))
    for score in (0.0, 0.3, 0.6, 0.9):
        expected = (2 - score) ** -3.0  # P(Lomax(3) > 1 - score)
        assert (draws > 1 - score).mean() == pytest.approx(expected, abs=0.01)
        assert (draws > 1 - score).mean() == pytest.approx((nemo > 1 - score).mean(), abs=0.01)


def test_missing_model_or_id_column_is_an_error(model_path, docs):
    with pytest.raises(ValidationError, match="does not exist"):
        Classifier.Config(model_path="models/none.bin")
    with pytest.raises(ValidationError, match="model_path"):
        Classifier.Config()
    stage = Classifier(Classifier.Config(model_path=model_path, mode="pareto"))
    with pytest.raises(KeyError, match="'id'"):
        stage.process(docs.drop(columns="id"))


def classifier_pipeline(write_pipeline, **classifier) -> Path:
    return write_pipeline(
        {
            "input": {"paths": [str(SAMPLES / "crawl-00.warc.gz")]},
            "output": {"dir": "out"},
            "stages": [{"stage": "warc_ingest"}, {"stage": "classifier", **classifier}],
        }
    )


def damaged(model_path: str, tmp_path, how: str) -> str:
    data = Path(model_path).read_bytes()
    path = tmp_path / f"{how}.bin"
    # A model cut in half can crash fastText's loader (a segfault, seen with .ftz files): the layout check comes first.
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "cut_short": data[:-40], "not_fasttext": b"<html>"}[how]
    )
    return str(path)


@pytest.mark.parametrize(
    "how, error",
    [
        ("missing", "does not exist"),
        ("truncated", "not a usable fastText model .truncated"),
        ("cut_short", "not a usable fastText model .truncated"),
        ("not_fasttext", "not a usable fastText model .not a fastText model"),
    ],
)
def test_missing_or_corrupt_model_is_a_one_line_config_error(
    model_path, tmp_path, write_pipeline, capsys, how, error
):
    path = str(tmp_path / "none.bin") if how == "missing" else damaged(model_path, tmp_path, how)
    pipeline = classifier_pipeline(write_pipeline, model_path=path)
    with pytest.raises(
        PipelineConfigError, match=rf"stages\[1\] \(classifier\): key 'model_path': .*{error}"
    ) as err:
        load_pipeline(pipeline)
    assert "\n" not in str(err.value)
    # `curate validate` reports it and exits 2, before any work.
    assert cli.main(["validate", str(pipeline)]) == 2
    assert "key 'model_path'" in capsys.readouterr().err


def test_model_without_the_label_or_with_another_hash_is_a_config_error(model_path, write_pipeline):
    with pytest.raises(
        PipelineConfigError, match=r"key 'label': .*has no label 'good'; its labels: __label__"
    ):
        load_pipeline(classifier_pipeline(write_pipeline, model_path=model_path, label="good"))
    with pytest.raises(PipelineConfigError, match=r"key 'model_sha256': .*a different or damaged model"):
        load_pipeline(classifier_pipeline(write_pipeline, model_path=model_path, model_sha256="0" * 64))
    sha = file_sha256(Path(model_path))
    pipeline = load_pipeline(classifier_pipeline(write_pipeline, model_path=model_path, model_sha256=sha))
    assert pipeline.stages[1].config.model_sha256 == sha


def train_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_train_classifier.add_command(parser.add_subparsers())
    args = parser.parse_args(["train-classifier", *argv])
    return args.func(args, Console(width=120))


def test_train_classifier_writes_model_and_metrics(tmp_path):
    data = write_jsonl(tmp_path / "labeled.jsonl", synthetic(400, seed=3))
    flags = ["--dim", "8", "--epoch", "10", "--lr", "0.5", "--bucket", "10000", "--valid-fraction", "0.25"]
    assert train_command(["--data", str(data), "--out", str(tmp_path / "a" / "quality.bin"), *flags]) == 0
    assert train_command(["--data", str(data), "--out", str(tmp_path / "b" / "quality.bin"), *flags]) == 0
    model_bytes = (tmp_path / "a" / "quality.bin").read_bytes()
    assert model_bytes == (tmp_path / "b" / "quality.bin").read_bytes(), "training is deterministic"

    metrics = json.loads((tmp_path / "a" / "quality.metrics.json").read_text())
    valid = metrics["valid"]
    assert valid["documents"] == valid["hq"]["support"] + valid["lq"]["support"]
    assert 60 <= valid["documents"] <= 140  # about a quarter held out
    assert metrics["train"]["documents"] + valid["documents"] == 400
    for label in ("hq", "lq"):
        assert set(valid[label]) == {"precision", "recall", "f1", "support"}
        assert valid[label]["f1"] >= 0.95
    assert metrics["config"]["valid_fraction"] == 0.25


def test_train_classifier_from_positive_and_negative_datasets(tmp_path):
    rows = synthetic(200, seed=4)
    good, bad = tmp_path / "dataset", tmp_path / "rejects" / "fineweb"
    good.mkdir()
    bad.mkdir(parents=True)
    pd.DataFrame([r for r in rows if r["label"] == "hq"]).to_parquet(good / "part-0.parquet")
    pd.DataFrame([r for r in rows if r["label"] == "lq"]).to_json(
        bad / "part-0.jsonl.gz", orient="records", lines=True
    )
    # A rejects part without text (e.g. from ingest) is skipped, not an error.
    (tmp_path / "rejects" / "warc_ingest").mkdir()
    pd.DataFrame({"html": ["<p>x</p>"]}).to_parquet(tmp_path / "rejects" / "warc_ingest" / "part-0.parquet")
    out = tmp_path / "quality.ftz"
    argv = ["--positive", str(good), "--negative", str(tmp_path / "rejects"), "--out", str(out)]
    assert train_command([*argv, "--dim", "8", "--bucket", "10000", "--quantize"]) == 0
    metrics = json.loads((tmp_path / "quality.metrics.json").read_text())
    assert metrics["skipped"] == {"files_without_text": 1}
    assert metrics["train"]["hq"] + metrics["valid"]["hq"]["support"] == 100
    assert out.stat().st_size < 200_000
    # Only one class: a clear error, exit code 2.
    assert (
        train_command(
            [
                "--positive",
                str(good),
                "--negative",
                str(tmp_path / "rejects" / "warc_ingest"),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def test_train_classifier_on_the_sample_run(web_run, tmp_path):
    """scripts/train_sample_classifier.sh's recipe on web.yaml's output: kept docs hq, filter rejects lq."""
    out = web_run.output_dir
    negatives = [
        flag
        for stage in ("gopher_repetition", "gopher_quality", "c4", "fineweb")
        if (out / "rejects" / stage).is_dir()
        for flag in ("--negative", str(out / "rejects" / stage))
    ]
    assert negatives, "the sample has pages the heuristic filters drop"
    flags = ["--positive", str(out / "dataset"), *negatives, "--valid-fraction", "0.2", "--dim", "8"]
    flags += ["--bucket", "10000", "--quantize"]
    for name in ("a", "b"):
        assert train_command([*flags, "--out", str(tmp_path / name / "quality.ftz")]) == 0
    model = tmp_path / "a" / "quality.ftz"
    assert model.read_bytes() == (tmp_path / "b" / "quality.ftz").read_bytes(), "same inputs, same model"
    report = json.loads((tmp_path / "a" / "quality.metrics.json").read_text())
    kept = sum(len(pd.read_parquet(p)) for p in (out / "dataset").glob("*.parquet"))
    assert report["train"]["hq"] + report["valid"]["hq"]["support"] == kept
    assert report["train"]["lq"] >= 1 and report["valid"]["documents"] >= 1
    assert report["model_sha256"] == file_sha256(model)
    # The stage accepts it: it validates (layout, load, label) and scores every kept document.
    stage = Classifier(Classifier.Config(model_path=str(model), model_sha256=report["model_sha256"]))
    dataset = pd.concat(pd.read_parquet(p) for p in sorted((out / "dataset").glob("*.parquet")))
    scores = stage.score(dataset.reset_index(drop=True))["quality_score"]
    assert len(scores) == kept and scores.between(0, 1).all()
