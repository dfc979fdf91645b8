"""A real Dask cluster: `dask scheduler` + two `dask worker` processes, one killed in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from curate.config import load_pipeline
from curate.engine import run_pipeline
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def cluster():
    """A scheduler and two single-threaded workers on 127.0.0.1; yields (address, workers)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of this interpreter
    scheduler = start(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"]
    )
    workers = [
        start([*dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"])
        for i in range(2)
    ]
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
            break
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield address, workers
    for proc in [*workers, scheduler]:
        stop(proc)


def web_config(tmp_path: Path, name: str, **executor) -> Path:
    config = yaml.safe_load((REPO / "pipelines" / "web.yaml").read_text())
    config["input"]["paths"] = [str(REPO / p) for p in config["input"]["paths"]]
    config["output"]["dir"] = str(tmp_path / name)
    config["executor"] = {**executor, "dashboard_address": ":0"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def outputs(root: Path) -> dict[str, bytes]:
    keep = ("dataset", "dataset_jsonl", "shards", "rejects")
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parts[len(root.parts)] in keep and p.name != "metadata.json"
    }


def test_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, tmp_path):
    address, workers = cluster
    pipeline = web_config(tmp_path, "cluster")
    run = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", "run", str(pipeline), "--address", address],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    markers = tmp_path / "cluster" / "segment-00"
    deadline = time.monotonic() + 120
    while not list(markers.glob("*.done")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    done_before = len(list(markers.glob("*.done")))
    assert run.poll() is None and workers[1].poll() is None, "the worker must die while the run is going"
    stop(workers[1])
    log, _ = run.communicate(timeout=600)
    assert run.returncode == 0, log
    assert 1 <= done_before < len(list(markers.glob("*.done"))), "the worker must be killed half-way"

    local = run_pipeline(load_pipeline(web_config(tmp_path, "local", workers=2)))
    cluster_stats = json.loads((tmp_path / "cluster" / "stats.json").read_text())
    for stage in cluster_stats["stages"]:
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values()), stage["name"]
    assert [(s["name"], s["in"], s["kept"]) for s in cluster_stats["stages"]] == [
        (c.id, c.docs_in, c.kept) for c in local.counters
    ]
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local")
