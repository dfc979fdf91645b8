"""Shared fixtures: the bundled sample, and a helper that writes pipeline files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"


@pytest.fixture
def write_pipeline(tmp_path):
    """Write a pipeline dict (or raw YAML text) to a file in tmp_path and return its path."""

    def write(content, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write
