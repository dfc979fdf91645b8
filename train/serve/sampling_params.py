"""What a request asks of the sampler and of the stopping rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SamplingParams(BaseModel):
    """Sampling and stopping for one request. The filters apply in the order repetition penalty,
    temperature, top-k, top-p, min-p; temperature 0 is greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_tokens: int | None = Field(
        16, ge=1, description="Tokens to generate at most (None: up to the context)."
    )
    temperature: float = Field(1.0, ge=0, description="Softmax temperature; 0 picks the most likely token.")
    top_p: float = Field(1.0, gt=0, le=1, description="Sample from the smallest set of tokens this likely.")
    top_k: int = Field(0, ge=0, description="Sample from the k most likely tokens (0: all).")
    min_p: float = Field(
        0.0, ge=0, le=1, description="Drop tokens less likely than min_p times the most likely one."
    )
    repetition_penalty: float = Field(
        1.0, gt=0, description="Divide positive (multiply negative) logits of tokens already seen by this."
    )
    seed: int | None = Field(
        None,
        ge=-(2**63),
        le=2**64 - 1,
        description="Seed of this request's own generator: same seed, same output (64 bits, as torch takes).",
    )
    stop: list[str] = Field(default_factory=list, description="Strings that end the output, left out of it.")
    ignore_eos: bool = Field(False, description="Keep generating past the end-of-text token.")
    logprobs: int | None = Field(
        None, ge=0, le=20, description="Return each token's log-probability and this many top alternatives."
    )
    detokenize: bool = Field(
        True, description="Build the output text (off: token ids only, no stop strings)."
    )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @field_validator("stop")
    @classmethod
    def _stops_not_empty(cls, value: list[str]) -> list[str]:
        # A field's own check, so that the error names the field (the --stop flag).
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @model_validator(mode="after")
    def _stops_need_text(self) -> SamplingParams:
        if self.stop and not self.detokenize:
            raise ValueError("stop strings are matched on the text: they need detokenize=True")
        return self
