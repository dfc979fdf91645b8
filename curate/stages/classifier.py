"""`classifier`: a fastText quality model scores each document; keep by threshold or Pareto sampling.

`quality_score` is P(`label`) under the model (train one with `curate train-classifier`). In
`threshold` mode a document is kept when its score reaches `threshold`. In `pareto` mode the rule is
NeMo Curator's `FastTextQualityFilter`: keep when a Pareto (Lomax) draw with shape `alpha` exceeds
`1 - score`, so high scores are nearly always kept and low ones sometimes, for diversity. NeMo draws
from numpy's global generator, which makes the kept set depend on batch and worker layout; here the
draw comes from a hash of the document id and `seed` through the inverse CDF, `u ** (-1 / alpha) - 1`
(u uniform in (0, 1)), the same distribution, identical for any batching. The draw is stored as
`quality_pareto_draw` so the decision can be audited.

The model is checked when the config is validated (`curate validate`, and `curate run` before any
work): the file must exist, be a complete fastText model (its header, dictionary and matrices add up
to the file's size; fastText itself crashes on some truncated files), load, and have `label`.
Damage inside the weights keeps the layout intact: `model_sha256` catches that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xxhash
from pydantic import Field, ValidationInfo, field_validator

from curate.fasttext_model import checked_model, load_model, model_sha256_matches
from curate.quality_model import hq_probability
from curate.registry import register
from curate.stage import FilterStage, StageConfig

DROP_REASON = "classifier:low_quality"


class ClassifierConfig(StageConfig):
    model_path: str = Field(
        description="fastText quality model (.bin / .ftz), e.g. from `curate train-classifier`."
    )
    model_sha256: str | None = Field(None, description="Expected sha256 of model_path; unset: not checked.")
    label: str = Field("hq", description="The model's label for good documents (without `__label__`).")
    mode: Literal["threshold", "pareto"] = Field(
        "threshold", description="threshold: keep score >= threshold; pareto: NeMo's Pareto sampling."
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Lowest kept quality_score in threshold mode.")
    alpha: float = Field(3.0, gt=0, description="Pareto shape in pareto mode (NeMo's default 3).")
    seed: int = Field(42, description="Seed of the per-document Pareto draws.")
    id_column: str = Field("id", description="Column whose value seeds each document's Pareto draw.")

    # Field validators (not one model validator) so that a config error names its key; each reads
    # only fields declared above it.
    @field_validator("model_path")
    @classmethod
    def _model_loads(cls, value: str) -> str:
        if not Path(value).is_file():
            raise ValueError(
                f"model file {value!r} does not exist (train one with `curate train-classifier`)"
            )
        checked_model(value, "retrain it with `curate train-classifier` or copy it again")
        return value

    _model_hash_matches = field_validator("model_sha256")(model_sha256_matches)

    @field_validator("label")
    @classmethod
    def _model_has_label(cls, value: str, info: ValidationInfo) -> str:
        path = info.data.get("model_path")
        if path is not None:
            labels = load_model(path, None).get_labels()
            if f"__label__{value}" not in labels:
                raise ValueError(f"{path} has no label {value!r}; its labels: {', '.join(labels)}")
        return value


def pareto_draws(ids: pd.Series, seed: int, alpha: float) -> np.ndarray:
    """One Lomax(alpha) draw per id, a pure function of (id, seed)."""
    # The top 53 bits of the hash, centred in their interval: u is never 0 or 1.
    bits = np.array(
        [xxhash.xxh64_intdigest(str(i).encode("utf-8"), seed=seed) >> 11 for i in ids], dtype=np.float64
    )
    u = (bits + 0.5) / 2.0**53
    return u ** (-1.0 / alpha) - 1.0


@register
class Classifier(FilterStage):
    """fastText quality classifier: `quality_score` = P(hq); keeps by threshold or NeMo's Pareto rule."""

    name = "classifier"
    Config = ClassifierConfig

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        model = load_model(c.model_path, c.model_sha256)
        texts = [t if isinstance(t, str) else "" for t in batch["text"]]
        scores = pd.DataFrame({"quality_score": hq_probability(model, texts, c.label)}, index=batch.index)
        if c.mode == "pareto":
            if c.id_column not in batch:
                raise KeyError(
                    f"pareto mode seeds each draw with column {c.id_column!r}, which the batch lacks"
                )
            scores["quality_pareto_draw"] = pareto_draws(batch[c.id_column], c.seed, c.alpha)
        return scores

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        c = self.config
        if c.mode == "pareto":
            low = scores["quality_pareto_draw"] <= 1.0 - scores["quality_score"]
        else:
            low = scores["quality_score"] < c.threshold
        return pd.Series(np.where(low, DROP_REASON, None), index=scores.index, dtype=object)
