"""Backends: `auto` falls back to pandas without cuDF, `cudf` where it cannot run is a config error,
candidate pairs as the anchors rule says, and on a GPU with cuDF the dedup stages' results equal
pandas' (those tests run on the device machine; CI has no GPU)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.backend import PANDAS, cudf_problem, resolve_backend
from curate.config import PipelineConfigError, load_pipeline
from curate.dedup.lsh import candidate_pairs
from curate.stages.dedup_exact import DedupExact, DedupExactConfig
from curate.stages.dedup_fuzzy import DedupFuzzy, DedupFuzzyConfig
from tests.conftest import SAMPLES
from tests.curate.dedup_corpus import InlineContext, planted_corpus, read_parts, write_shards

CUDF_PROBLEM = cudf_problem()
needs_cudf = pytest.mark.skipif(CUDF_PROBLEM is not None, reason=f"cuDF backend: {CUDF_PROBLEM}")


def bucket_frame(groups: dict[tuple[int, int], list[str]]) -> pd.DataFrame:
    rows = [(band, bucket, key) for (band, bucket), keys in groups.items() for key in keys]
    frame = pd.DataFrame(rows, columns=["band", "bucket", "key"])
    return frame.astype({"band": "uint16", "bucket": "uint64", "key": "str"})


def test_candidate_pairs_link_members_to_the_smallest_keys_of_their_bucket():
    rows = bucket_frame(
        {
            (0, 7): ["d", "b", "a", "c", "a"],  # a repeated row counts once
            (1, 7): ["e", "f"],  # the same bucket value in another band is another group
            (0, 9): ["z"],  # alone in its bucket: no pair
        }
    )
    pairs = candidate_pairs(rows, anchors=2)
    expected = [("b", "a"), ("c", "a"), ("c", "b"), ("d", "a"), ("d", "b"), ("f", "e")]
    assert list(pairs.itertuples(index=False, name=None)) == expected
    one_anchor = candidate_pairs(rows, anchors=1)
    assert list(one_anchor.itertuples(index=False, name=None)) == [
        ("b", "a"),
        ("c", "a"),
        ("d", "a"),
        ("f", "e"),
    ]


def test_auto_falls_back_to_pandas_and_cudf_needs_a_gpu(write_pipeline):
    assert resolve_backend("pandas") is PANDAS
    pipeline = {
        "input": {"paths": [str(SAMPLES / "crawl-00.warc.gz")]},
        "output": {"dir": "out"},
        "backend": "cudf",
        "stages": [{"stage": "warc_ingest"}],
    }
    if CUDF_PROBLEM is None:
        assert resolve_backend("auto").name == resolve_backend("cudf").name == "cudf"
        assert load_pipeline(write_pipeline(pipeline)).backend == "cudf"
        return
    assert resolve_backend("auto") is PANDAS
    with pytest.raises(RuntimeError, match="backend 'cudf': .*use backend 'auto' or 'pandas'"):
        resolve_backend("cudf")
    with pytest.raises(PipelineConfigError, match=r"key 'backend': 'cudf' cannot run here: .*'auto'") as err:
        load_pipeline(write_pipeline(pipeline))
    assert "\n" not in str(err.value)


@needs_cudf
def test_cudf_candidate_pairs_equal_pandas():
    rng = np.random.default_rng(3)
    n = 20_000
    rows = pd.DataFrame(
        {
            "band": rng.integers(0, 14, n).astype("uint16"),
            "bucket": rng.integers(0, 2_000, n).astype("uint64"),
            "key": pd.array([f"doc-{i:06d}\0" for i in rng.integers(0, 8_000, n)], dtype="str"),
        }
    )
    cudf = resolve_backend("cudf")
    expected = candidate_pairs(rows, 2)
    got = candidate_pairs(cudf.from_pandas(rows), 2, cudf)
    assert len(expected) > 1000
    pd.testing.assert_frame_equal(got, expected)


def run_dedup(stage, corpus, tmp_path, backend: str) -> tuple[pd.DataFrame, dict]:
    ctx = InlineContext(
        parts=write_shards(corpus.docs, tmp_path / backend / "in", shards=3),
        work_dir=tmp_path / backend / "work",
        backend=backend,
    )
    result = stage.run(ctx)
    return read_parts(ctx.work_dir), result.details


@needs_cudf
@pytest.mark.parametrize(
    "stage",
    [
        DedupExact(DedupExactConfig()),
        DedupFuzzy(DedupFuzzyConfig()),
        DedupFuzzy(DedupFuzzyConfig(verify=True)),
    ],
    ids=["exact", "fuzzy", "fuzzy-verified"],
)
def test_cudf_dedup_keeps_what_pandas_keeps(stage, tmp_path):
    corpus = planted_corpus(seed=11, groups={(0.95, 0.9, 0.85): 40, (1.0,): 20, (0.45,): 20}, singles=200)
    on_gpu, gpu_details = run_dedup(stage, corpus, tmp_path, "cudf")
    on_cpu, cpu_details = run_dedup(stage, corpus, tmp_path, "pandas")
    assert gpu_details == {**cpu_details, "seconds": gpu_details["seconds"]}, "same pairs, components, ..."
    assert len(on_gpu) < len(corpus.docs)
    pd.testing.assert_frame_equal(on_gpu, on_cpu)
