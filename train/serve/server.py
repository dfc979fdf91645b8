"""The OpenAI-compatible HTTP API: /v1/completions, /v1/chat/completions (SSE streaming or not),
/v1/models, /health and Prometheus /metrics.

Errors use OpenAI's format and status codes: 400 for a request that cannot be served as written, 401 for a
missing or wrong API key, 404 for another model's name, 429 when the waiting queue is full (at once, with
Retry-After), 500 when the engine failed. Streams send `data: {chunk}` events and end with `data: [DONE]`;
text that could be the start of a stop string is held back, so a stop string never reaches the client.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from train.serve.async_engine import AsyncEngine, EngineFailed, GenerationStream
from train.serve.engine import LLMEngine, RequestError, StepOutput
from train.serve.protocol import ApiError, ChatCompletionRequest, CompletionRequest, parse_request
from train.serve.scheduler import QueueFull
from train.serve.sequence import TokenLogprob
from train.serve.tokenizer import ServingTokenizer


class _EventStream(StreamingResponse):
    """Server-sent events whose generator is closed however the response ends: on a disconnect Starlette
    cancels the send, and the generator's `finally` (which aborts the request) must still run now."""

    def __init__(self, events: AsyncIterator[str]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def stream_response(self, send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await self.body_iterator.aclose()


def _event(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def build_app(engine: LLMEngine, model_name: str, api_key: str | None = None) -> FastAPI:
    """The app serving `engine` as model `model_name`; `api_key` set, /v1 wants `Authorization: Bearer`."""
    if engine.tokenizer is None:
        raise ValueError("the server needs an engine with a tokenizer")
    tokenizer: ServingTokenizer = engine.tokenizer
    async_engine = AsyncEngine(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async_engine.start()
        yield
        async_engine.stop()

    app = FastAPI(title="webcrawl-lm", lifespan=lifespan)
    app.state.engine = async_engine

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if err.status == 429 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, err: RequestError) -> JSONResponse:
        return await _api_error(request, ApiError(400, str(err), param=err.param))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # Routing's own errors (an unknown path, a GET where POST is wanted), in the same format.
        body = ApiError(err.status_code, f"{err.detail}: {request.method} {request.url.path}").body()
        return JSONResponse(body, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, err: Exception) -> JSONResponse:
        # A bug, not the client's fault; Starlette logs the traceback after this answer.
        body = ApiError(
            500, f"The server failed on this request: {type(err).__name__}", "server_error"
        ).body()
        return JSONResponse(body, status_code=500)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    @app.get("/health")
    async def health() -> JSONResponse:
        if not async_engine.alive:
            return JSONResponse({"status": "engine stopped"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(async_engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models() -> dict:
        return {"object": "list", "data": [_model_card(model_name, engine.max_model_len)]}

    @app.get("/v1/models/{name:path}", dependencies=[Depends(authorize)])
    async def model(name: str) -> dict:
        check_model(name)
        return _model_card(model_name, engine.max_model_len)

    def check_model(name: str) -> None:
        if name != model_name:
            raise ApiError(
                404,
                f"The model `{name}` does not exist; this server has `{model_name}`.",
                param="model",
                code="model_not_found",
            )

    def submit(requests: list) -> GenerationStream:
        try:
            return async_engine.submit(requests)
        except QueueFull as err:
            raise ApiError(
                429, f"The server is busy: {err}. Retry shortly.", "server_overloaded", code="queue_full"
            ) from None

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(request: Request) -> Response:
        req = parse_request(CompletionRequest, await request.body())
        check_model(req.model)
        # Before tokenizing: a list of many strings can take seconds to encode, only to be refused.
        many = isinstance(req.prompt, list) and req.prompt and not isinstance(req.prompt[0], int)
        async_engine.check_size((len(req.prompt) if many else 1) * req.n)
        prompts = _prompt_token_ids(req.prompt, tokenizer, engine.max_model_len)
        stream = submit(
            [(p, req.sampling_params(req.max_tokens, req.logprobs, c)) for p in prompts for c in range(req.n)]
        )
        reply = _Reply("cmpl", "text_completion", model_name, stream, [len(p) for p in prompts])

        def choice(i: int, out: StepOutput | None, finish: str | None, text_offset: int) -> dict:
            logprobs = None
            if out is not None and out.logprob is not None:
                logprobs = _completion_logprobs([out.logprob], tokenizer, text_offset)
            return {
                "index": i,
                "text": out.text if out else "",
                "logprobs": logprobs,
                "finish_reason": finish,
            }

        if req.stream:
            include_usage = req.stream_options is not None and req.stream_options.include_usage
            return _EventStream(reply.events(choice, include_usage))
        results = await _unless_disconnected(request, reply.collect())
        return JSONResponse(
            reply.body(
                [
                    {
                        "index": i,
                        "text": r.text,
                        "logprobs": _completion_logprobs(r.logprobs, tokenizer, 0)
                        if req.logprobs is not None
                        else None,
                        "finish_reason": r.finish_reason,
                    }
                    for i, r in enumerate(results)
                ]
            )
        )

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(request: Request) -> Response:
        req = parse_request(ChatCompletionRequest, await request.body())
        check_model(req.model)
        try:
            text = tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.text()} for m in req.messages]
            )
        except Exception as err:  # a template may raise on messages it does not take (raise_exception)
            raise ApiError(
                400, f"The chat template does not accept these messages: {err}", param="messages"
            ) from None
        prompt = _encode(text, tokenizer, engine.max_model_len, "messages")
        top = req.top_logprobs or 0
        logprobs = top if req.logprobs else None
        max_tokens = req.max_completion_tokens or req.max_tokens
        stream = submit([(prompt, req.sampling_params(max_tokens, logprobs, c)) for c in range(req.n)])
        reply = _Reply("chatcmpl", "chat.completion", model_name, stream, [len(prompt)])

        def choice(i: int, out: StepOutput | None, finish: str | None, text_offset: int) -> dict:
            if out is None:  # the opening chunk names the role
                delta = {"role": "assistant", "content": ""}
            else:
                delta = {"content": out.text} if out.text else {}
            lp = None
            if out is not None and out.logprob is not None:
                lp = {"content": _chat_logprobs([out.logprob], tokenizer)}
            return {"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}

        if req.stream:
            include_usage = req.stream_options is not None and req.stream_options.include_usage
            return _EventStream(reply.events(choice, include_usage, opening=True))
        results = await _unless_disconnected(request, reply.collect())
        return JSONResponse(
            reply.body(
                [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": r.text},
                        "logprobs": {"content": _chat_logprobs(r.logprobs, tokenizer)}
                        if req.logprobs
                        else None,
                        "finish_reason": r.finish_reason,
                    }
                    for i, r in enumerate(results)
                ]
            )
        )

    return app


_T = TypeVar("_T")


async def _unless_disconnected(request: Request, work: Coroutine[None, None, _T]) -> _T:
    """`work`'s result; a client that leaves first cancels it, so its request stops and frees its KV
    blocks now rather than when its last token is made (a stream's generator is closed the same way)."""

    async def disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(disconnect())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its `finally` runs: the request is aborted
    if task.cancelled():
        # No one reads the answer; 499 is the status servers log for a client that closed the request.
        raise ApiError(499, "The client closed the request.")
    return task.result()


class _Result:
    def __init__(self) -> None:
        self.text = ""
        self.logprobs: list[TokenLogprob] = []
        self.finish_reason: str | None = None
        self.tokens = 0


class _Reply:
    """One API request's response: its choices (prompt-major, n per prompt), as events or one body."""

    def __init__(
        self, prefix: str, obj: str, model: str, stream: GenerationStream, prompt_lens: list[int]
    ) -> None:
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.object = obj
        self.model = model
        self.created = int(time.time())
        self.stream = stream
        self.index = {rid: i for i, rid in enumerate(stream.request_ids)}
        self.prompt_tokens = sum(prompt_lens)
        self.completion_tokens = 0

    def _envelope(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    async def collect(self) -> list[_Result]:
        results = [_Result() for _ in self.index]
        try:
            async for out in self.stream:
                r = results[self.index[out.seq.request_id]]
                r.text += out.text
                r.tokens += 1
                if out.finished:
                    r.finish_reason = out.seq.finish_reason
                    r.logprobs = out.seq.logprobs
        except EngineFailed as err:
            raise ApiError(500, str(err), "server_error") from None
        finally:
            self.stream.close()
        self.completion_tokens = sum(r.tokens for r in results)
        return results

    def body(self, choices: list[dict]) -> dict:
        return {**self._envelope(self.object), "choices": choices, "usage": self._usage()}

    async def events(
        self,
        choice: Callable[[int, StepOutput | None, str | None, int], dict],
        include_usage: bool,
        opening: bool = False,
    ) -> AsyncIterator[str]:
        """SSE events: a chunk per step that adds text (or logprobs), one with each choice's finish reason,
        the usage if asked, then [DONE]."""
        chunk = self.object + ".chunk" if self.object == "chat.completion" else self.object
        offsets = [0] * len(self.index)
        try:
            if opening:
                for i in range(len(self.index)):
                    yield _event({**self._envelope(chunk), "choices": [choice(i, None, None, 0)]})
            async for out in self.stream:
                i = self.index[out.seq.request_id]
                self.completion_tokens += 1
                finish = out.seq.finish_reason if out.finished else None
                body = choice(i, out, finish, offsets[i])
                offsets[i] += len(out.text)
                if out.text or finish or body.get("logprobs"):
                    yield _event({**self._envelope(chunk), "choices": [body]})
            if include_usage:
                yield _event({**self._envelope(chunk), "choices": [], "usage": self._usage()})
            yield _event("[DONE]")
        except EngineFailed as err:
            yield _event(ApiError(500, str(err), "server_error").body())
        finally:
            self.stream.close()


def _model_card(name: str, max_model_len: int) -> dict:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "webcrawl-lm",
        "max_model_len": max_model_len,
    }


def _encode(text: str, tokenizer: ServingTokenizer, max_model_len: int, param: str) -> list[int]:
    """`text`'s tokens; a text that cannot fit the context is refused before it is tokenized."""
    fewest = tokenizer.fewest_tokens(text)
    if fewest > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt has at "
            f"least {fewest} tokens ({len(text)} characters). Please reduce the length of the prompt.",
            param=param,
        )
    return tokenizer.encode(text)


def _prompt_token_ids(prompt: str | list, tokenizer: ServingTokenizer, max_model_len: int) -> list[list[int]]:
    """OpenAI's prompt forms: a string, strings, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        prompts = [_encode(prompt, tokenizer, max_model_len, "prompt")]
    elif not prompt:
        raise ApiError(400, "The prompt list is empty.", param="prompt")
    elif isinstance(prompt[0], str):
        prompts = [_encode(p, tokenizer, max_model_len, "prompt") for p in prompt]
    elif isinstance(prompt[0], int):
        prompts = [list(prompt)]
    else:
        prompts = [list(p) for p in prompt]
    for ids in prompts:
        bad = [t for t in ids if not 0 <= t < tokenizer.vocab_size]
        if bad:
            raise ApiError(
                400,
                f"Token id {bad[0]} is outside the vocabulary (0..{tokenizer.vocab_size - 1}).",
                param="prompt",
            )
    return prompts


def _completion_logprobs(logprobs: list[TokenLogprob], tokenizer: ServingTokenizer, text_offset: int) -> dict:
    """The completions API's logprobs: parallel lists, and each token's offset in the text."""
    tokens, offsets = [], []
    for lp in logprobs:
        piece = tokenizer.decode([lp.token_id])
        tokens.append(piece)
        offsets.append(text_offset)
        text_offset += len(piece)
    return {
        "tokens": tokens,
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": [{tokenizer.decode([t]): v for t, v in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }


def _chat_logprobs(logprobs: list[TokenLogprob], tokenizer: ServingTokenizer) -> list[dict]:
    def entry(token_id: int, logprob: float) -> dict:
        piece = tokenizer.decode([token_id])
        return {"token": piece, "logprob": logprob, "bytes": list(piece.encode())}

    return [
        {**entry(lp.token_id, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]}
        for lp in logprobs
    ]
