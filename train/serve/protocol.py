"""The request bodies of the OpenAI-compatible API, validated strictly: unknown fields and wrong types are
400s, as OpenAI answers them. Fields past OpenAI's (top_k, min_p, repetition_penalty, ignore_eos) follow
vLLM's names, for clients that pass them through `extra_body`."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from train.serve.sampling_params import SamplingParams

MAX_STOP_STRINGS = 16


class ApiError(Exception):
    """An error answered in OpenAI's format: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    # JSON's NaN and Infinity tokens parse as floats; no field means anything by them.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class StreamOptions(_Strict):
    include_usage: bool = False


class _GenerationRequest(_Strict):
    model: str
    n: int = Field(1, ge=1, le=16, description="Choices per prompt; choice i uses seed + i.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(
        None, ge=-(2**63), le=2**63 - 1, description="A 64-bit integer, as torch.Generator takes."
    )
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    user: str | None = Field(None, description="Accepted and not used.")
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    ignore_eos: bool = False

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("only 0 is supported; use repetition_penalty")
        return value

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(
        cls, value: StreamOptions | None, info: ValidationInfo
    ) -> StreamOptions | None:
        # As OpenAI and vLLM answer it: include_usage without a stream would be dropped unsaid.
        if value is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and "" in ([value] if isinstance(value, str) else value):
            raise ValueError("stop strings must not be empty")
        # Each token checks each stop string on the engine's thread: 1000 of them slowed every request
        # 8-fold. OpenAI takes 4.
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are taken, not {len(value)}")
        return value

    def sampling_params(self, max_tokens: int | None, logprobs: int | None, choice: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            seed=None if self.seed is None else self.seed + choice,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop or [],
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
        )


class CompletionRequest(_GenerationRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1, description="OpenAI's default for completions is 16.")
    logprobs: int | None = Field(None, ge=0, le=5)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: object) -> object:
        # Checked first, so an image part is one plain reason and not every union alternative's.
        if isinstance(value, list):
            for i, part in enumerate(value):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind != "text":
                    raise ValueError(f"part {i} has type {kind!r}: this model takes only 'text' parts")
        return value

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI for max_completion_tokens.")
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # OpenAI's fields that do not change what is generated, so an OpenAI client's request is served as is.
    store: bool | None = Field(None, description="Accepted and not used: nothing is stored.")
    metadata: dict[str, str] | None = Field(None, description="Accepted and not used (goes with store).")
    parallel_tool_calls: bool | None = Field(None, description="Accepted and not used: there are no tools.")

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        # As OpenAI and vLLM answer it: the alternatives would be dropped unsaid.
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("logprobs must be true when top_logprobs is given")
        return value


_Request = TypeVar("_Request", bound=BaseModel)


def parse_request(model: type[_Request], body: bytes) -> _Request:
    """The validated request, or a 400 ApiError naming the first bad field (`messages[0].role`)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        errors = err.errors()
        first = errors[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"The body of the request is not valid JSON: {first['msg']}") from None
        if not first["loc"]:
            raise ApiError(400, "The body of the request must be a JSON object.") from None
        # A union (prompt, stop, content) reports one error per alternative it tried, each under a loc
        # that goes on with the alternative's name: the field is what their locs share.
        same = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
        loc = first["loc"]
        for e in same[1:]:
            shared = [a == b for a, b in zip(loc, e["loc"], strict=False)]
            loc = loc[: shared.index(False) if False in shared else len(shared)]
        param = _path(loc)
        if first["type"] == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}"
        elif first["type"] == "missing":
            message = f"Missing required parameter: '{param}'"
        else:
            reasons = sorted({e["msg"].removeprefix("Value error, ") for e in same})
            message = f"Invalid value for '{param}': {'; or '.join(reasons)}"
        raise ApiError(400, message, param=param) from None


def _path(loc: tuple) -> str:
    """A field's place in the body as a client writes it: messages[0].content."""
    path = str(loc[0])
    for key in loc[1:]:
        path += f"[{key}]" if isinstance(key, int) else f".{key}"
    return path
