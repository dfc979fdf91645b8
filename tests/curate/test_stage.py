"""Every stage config: inf and nan are refused (null is how a limit is switched off)."""

from __future__ import annotations

import pytest

from curate.stages.classifier import ClassifierConfig
from curate.stages.fineweb import FineWeb
from tests.conftest import REPO

MODEL = str(REPO / "data" / "models" / "quality-sample.ftz")


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_inf_and_nan_are_refused(value):
    with pytest.raises(ValueError, match="finite number"):
        FineWeb.Config(new_line_ratio=value)
    # alpha: inf kept only documents scored exactly 1, silently.
    with pytest.raises(ValueError, match="finite number"):
        ClassifierConfig(model_path=MODEL, mode="pareto", alpha=value)
    assert FineWeb.Config(new_line_ratio=None).new_line_ratio is None
