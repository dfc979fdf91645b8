"""The Dask client: a scheduler that does not answer ends the run with one line naming it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_scheduler_is_one_line_naming_the_address_and_the_timeout(write_pipeline, tmp_path):
    warc = tmp_path / "in.warc.gz"
    warc.write_bytes(b"")
    address = f"tcp://127.0.0.1:{free_port()}"
    config = {
        "input": {"paths": [str(warc)]},
        "output": {"dir": str(tmp_path / "out")},
        "stages": [{"stage": "warc_ingest"}, {"stage": "write_parquet"}],
    }
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(write_pipeline(config)), "--address", address],
        capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"no Dask scheduler answers at {address} (waited 2s" in lines[0]
