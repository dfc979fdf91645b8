"""The cuDF backend against pandas on a GPU machine, in one run: the same kept set, and dedup phase times.

1. `pipelines/web.yaml` on the bundled sample twice: `backend: pandas` with dedup_fuzzy's MinHash on the
   CPU, and `backend: cudf` with it on the GPU. The datasets (every row and column) and the token shards
   must be equal.
2. The pipeline of `curate dedup` (read_parquet → dedup_exact → dedup_fuzzy → write_parquet) over
   `--docs` documents of `bench/dedup_scale.py`'s generated corpus, the same two ways: the same kept
   set, and each dedup phase's wall seconds side by side (CPU = pandas + the numba MinHash on the
   worker processes; GPU = cuDF + the Triton MinHash, the workers sharing one GPU).

    python bench/dedup_gpu.py --docs 400000 --workers 8 --json runs/bench/dedup_gpu.json

Needs cuDF (the GPU machine has none: scripts/gpu_cudf_bringup.sh installs it from carried wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from dedup_scale import generate  # noqa: E402

from curate.cli_dedup import pipeline_for  # noqa: E402
from curate.config import load_pipeline  # noqa: E402
from curate.engine import run_pipeline  # noqa: E402

SIDES = {"cpu": ("pandas", "cpu"), "gpu": ("cudf", "cuda")}  # side: (backend, dedup_fuzzy device)


def run(config: dict, out: Path, side: str) -> tuple[dict, float]:
    backend, device = SIDES[side]
    config = {**config, "backend": backend, "output": {**config["output"], "dir": str(out)}}
    for stage in config["stages"]:
        if stage["stage"] == "dedup_fuzzy":
            stage["device"] = device
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    run_pipeline(load_pipeline(path))
    return json.loads((out / "stats.json").read_text()), time.perf_counter() - started


def dataset(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


def phase_seconds(stats: dict) -> dict:
    return {name: stats["global_stages"][name]["seconds"] for name in ("dedup_exact", "dedup_fuzzy")}


def web_check(work: Path, workers: int) -> dict:
    config = yaml.safe_load((REPO / "pipelines" / "web.yaml").read_text())
    config["input"]["paths"] = [str(REPO / p) for p in config["input"]["paths"]]
    config["output"]["rejects"] = False
    config["executor"]["workers"] = workers
    for stage in config["stages"]:
        if "model_path" in stage:
            stage["model_path"] = str(REPO / stage["model_path"])
    result = {}
    for side in SIDES:
        stats, wall = run(config, work / f"web-{side}", side)
        result[side] = {"wall_s": round(wall, 1), "phases": phase_seconds(stats)}
    cpu, gpu = (dataset(work / f"web-{side}" / "dataset") for side in SIDES)
    pd.testing.assert_frame_equal(gpu, cpu)
    shards = [(work / f"web-{side}" / "shards" / "web_text_document.bin").read_bytes() for side in SIDES]
    assert shards[0] == shards[1], "token shards differ"
    result["kept"] = len(cpu)
    result["equal"] = True
    return result


def corpus_check(work: Path, docs: int, per_shard: int, workers: int) -> dict:
    planted = generate(work / "corpus", docs, per_shard, seed=0)
    args = argparse.Namespace(
        input=str(work / "corpus" / "*.parquet"),
        out="",
        exact=True,
        fuzzy=True,
        verify=False,
        workers=workers,
    )
    config = pipeline_for(args)
    result = {"docs": docs, "planted": planted}
    for side in SIDES:
        stats, wall = run(config, work / f"dedup-{side}", side)
        result[side] = {"wall_s": round(wall, 1), "phases": phase_seconds(stats)}
    cpu, gpu = (dataset(work / f"dedup-{side}" / "dataset")["id"] for side in SIDES)
    assert gpu.equals(cpu), "kept sets differ"
    result["kept"] = len(cpu)
    result["equal"] = True
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=400_000, help="generated documents for the dedup run")
    parser.add_argument("--per-shard", type=int, default=25_000)
    parser.add_argument("--workers", type=int, default=8, help="LocalCluster worker processes, both sides")
    parser.add_argument("--skip-web", action="store_true", help="only the generated-corpus run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dedup-gpu-"))
    import cudf
    import torch

    results = {
        "machine": f"{torch.cuda.get_device_name()}, {os.cpu_count()} cores, {platform.python_version()}",
        "cudf": cudf.__version__,
        "workers": args.workers,
    }
    if not args.skip_web:
        results["web"] = web_check(work, args.workers)
        print(json.dumps(results["web"], indent=1), flush=True)
    results["corpus"] = corpus_check(work, args.docs, args.per_shard, args.workers)
    for name in ("dedup_exact", "dedup_fuzzy"):
        cpu, gpu = (results["corpus"][side]["phases"][name] for side in SIDES)
        print(f"{name:12s} {'phase':14s} {'CPU s':>8s} {'GPU s':>8s} {'CPU/GPU':>8s}")
        for phase in cpu:
            ratio = cpu[phase] / gpu[phase] if gpu.get(phase) else float("nan")
            print(f"{'':12s} {phase:14s} {cpu[phase]:8.2f} {gpu.get(phase, 0):8.2f} {ratio:8.2f}")
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
