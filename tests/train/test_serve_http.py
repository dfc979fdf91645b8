"""The OpenAI-compatible server: the official `openai` client against uvicorn on a free port (CPU)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from tests.train.serve_checkpoint import greedy_reference, write_checkpoint
from train.serve.config import EngineConfig
from train.serve.engine import LLMEngine, load_model
from train.serve.server import build_app

API_KEY = "test-key"
MODEL = "tiny-test"


@contextlib.contextmanager
def running_server(engine: LLMEngine, api_key: str | None = API_KEY):
    """uvicorn serving `engine` on 127.0.0.1 in a thread; yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(build_app(engine, MODEL, api_key), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer_file):
    return write_checkpoint(tmp_path_factory.mktemp("run"), tokenizer_file, max_seq_len=1024)


@pytest.fixture(scope="module")
def server(checkpoint):
    engine = LLMEngine.from_checkpoint(checkpoint, EngineConfig(max_num_seqs=64))
    with running_server(engine) as url:
        yield url, engine


@pytest.fixture(scope="module")
def reference(checkpoint, server):
    """Greedy text of a prompt by the model's plain forward pass, as the server should answer it."""
    model, tokenizer = load_model(checkpoint).eval(), server[1].tokenizer
    cache: dict[tuple[str, int], str] = {}

    def text(prompt: str, max_tokens: int) -> str:
        if (prompt, max_tokens) not in cache:
            ids = greedy_reference(model, tokenizer.encode(prompt), max_tokens, tokenizer.eos_token_id)
            cache[prompt, max_tokens] = tokenizer.decode(ids)
        return cache[prompt, max_tokens]

    return text


def client(url: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{url}/v1", api_key=kwargs.pop("api_key", API_KEY), max_retries=0, **kwargs
    )


def test_openai_client_completions_streaming_and_not(server, reference):
    url, _ = server
    c = client(url)
    expected = reference("The cat sees", 12)
    response = c.completions.create(model=MODEL, prompt="The cat sees", max_tokens=12, temperature=0)
    assert response.choices[0].text == expected
    assert response.usage.completion_tokens == 12 or response.choices[0].finish_reason == "stop"
    chunks = list(
        c.completions.create(model=MODEL, prompt="The cat sees", max_tokens=12, temperature=0, stream=True)
    )
    assert "".join(ch.choices[0].text for ch in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    batched = c.completions.create(
        model=MODEL, prompt=["The cat sees", "A dog"], max_tokens=5, temperature=0, logprobs=2
    )
    assert [ch.text for ch in batched.choices] == [reference("The cat sees", 5), reference("A dog", 5)]
    assert len(batched.choices[1].logprobs.token_logprobs) == len(batched.choices[1].logprobs.tokens) > 0


def test_openai_client_chat_streaming_and_not(server, reference):
    url, engine = server
    c = client(url)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who paints the house?"},
    ]
    prompt = engine.tokenizer.apply_chat_template(messages)
    expected = reference(prompt, 10)
    response = c.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    assert response.choices[0].message.role == "assistant" and response.choices[0].message.content == expected
    assert response.usage.prompt_tokens == len(engine.tokenizer.encode(prompt))
    stream = c.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == expected
    assert chunks[-1].usage.completion_tokens == response.usage.completion_tokens
    seeded = [
        c.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, seed=7)
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_64_concurrent_streaming_clients_get_their_own_greedy_text(server, reference):
    url, _ = server
    prompts = [f"the teacher finds {n} small birds near the quiet town" * (1 + n % 3) for n in range(64)]

    async def one(c: openai.AsyncOpenAI, prompt: str) -> str:
        stream = await c.completions.create(
            model=MODEL, prompt=prompt, max_tokens=12, temperature=0, stream=True
        )
        return "".join([chunk.choices[0].text async for chunk in stream])

    async def all_of_them() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0) as c:
            return await asyncio.gather(*(one(c, p) for p in prompts))

    texts = asyncio.run(all_of_them())
    assert texts == [reference(p, 12) for p in prompts]


def test_a_client_that_disconnects_mid_stream_frees_its_kv_blocks(server):
    url, engine = server
    manager = engine.block_manager
    body = {"model": MODEL, "prompt": "the old man", "max_tokens": 900, "stream": True, "ignore_eos": True}
    with httpx.stream(
        "POST", f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as r:
        events = r.iter_lines()
        assert next(e for e in events if e.startswith("data:"))
        assert manager.num_free_blocks < manager.num_blocks  # the request holds blocks while it streams
    deadline = time.monotonic() + 10
    while manager.num_free_blocks != manager.num_blocks:
        assert time.monotonic() < deadline, "the aborted request kept its KV blocks"
        time.sleep(0.02)
    assert not engine.scheduler.running


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": MODEL, "prompt": "hi", "bogus": 1}, "bogus"),  # unknown field
        ({"model": MODEL, "prompt": "hi", "temperature": "hot"}, "temperature"),  # wrong type
        ({"model": MODEL, "prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "prompt": "hi", "max_tokens": -3}, "max_tokens"),
        ({"model": MODEL, "prompt": "word " * 1100}, "prompt"),  # longer than the context
        ({"model": MODEL, "prompt": "hi", "max_tokens": 5000}, "max_tokens"),
        ({"model": MODEL, "prompt": [1, 2, 99999]}, "prompt"),  # not a token id
        ({"model": MODEL}, "prompt"),  # missing
        ({"model": MODEL, "prompt": "hi", "stop": [""]}, "stop"),
    ],
)
def test_bad_completion_requests_are_400_in_openai_format(server, body, param):
    url, _ = server
    r = httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_bad_chat_requests_and_bodies_are_400(server):
    url, _ = server
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for body in (
        {"model": MODEL, "messages": []},
        {"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]},
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0},
    ):
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        param = r.json()["error"]["param"]
        assert r.status_code == 400 and param in ("messages", "messages[0].role", "max_completion_tokens"), (
            r.text
        )
    r = httpx.post(
        f"{url}/v1/completions", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client(url).completions.create(model=MODEL, prompt="hi", max_tokens=0)
    with pytest.raises(openai.NotFoundError):
        client(url).completions.create(model="gpt-4", prompt="hi")


def test_wrong_or_missing_api_key_is_401(server):
    url, _ = server
    with pytest.raises(openai.AuthenticationError) as err:
        client(url, api_key="wrong").models.list()
    assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert [m.id for m in client(url).models.list()] == [MODEL]
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}  # health needs no key


def test_stop_sequences_never_reach_the_stream(server, reference):
    url, _ = server
    c = client(url)
    full = reference("A small bird follows", 40)
    stop = next(full[i : i + 4] for i in range(8, len(full)) if "\ufffd" not in full[i : i + 4])
    expected = full[: full.index(stop)]
    pieces = [
        ch.choices[0].text
        for ch in c.completions.create(
            model=MODEL, prompt="A small bird follows", max_tokens=40, temperature=0, stop=stop, stream=True
        )
    ]
    assert "".join(pieces) == expected
    assert all(stop not in "".join(pieces[: i + 1]) for i in range(len(pieces)))
    done = c.completions.create(
        model=MODEL, prompt="A small bird follows", max_tokens=40, temperature=0, stop=[stop]
    )
    assert done.choices[0].text == expected and done.choices[0].finish_reason == "stop"


def test_metrics_report_queue_tokens_and_latencies(server):
    url, _ = server
    client(url).completions.create(model=MODEL, prompt="hi", max_tokens=3, temperature=0)
    text = httpx.get(f"{url}/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    # The request has finished: nothing waits or runs, and its tokens fall in the rate's window.
    assert values["serve_requests_waiting"] == values["serve_requests_running"] == 0
    assert values["serve_generation_tokens_per_second"] > 0
    assert values["serve_generation_tokens_total"] >= 3
    assert values["serve_time_to_first_token_seconds_count"] >= 1
    assert values["serve_inter_token_latency_seconds_count"] >= 2


def test_a_full_queue_answers_429_at_once(checkpoint):
    engine = LLMEngine.from_checkpoint(checkpoint, EngineConfig(max_num_seqs=1, max_waiting=1))
    step = engine.step
    engine.step = lambda: time.sleep(0.02) or step()  # a slow model: the long request outlasts the test
    headers = {"Authorization": f"Bearer {API_KEY}"}
    long = {"model": MODEL, "prompt": "the cat", "max_tokens": 1000, "stream": True, "ignore_eos": True}
    with (
        running_server(engine) as url,
        httpx.Client(headers=headers, timeout=30) as http,
        http.stream("POST", f"{url}/v1/completions", json=long) as running,
    ):
        # Held for the whole test: a collected line iterator closes the connection (httpx), and the
        # server aborts a request whose client has gone.
        lines = running.iter_lines()
        assert next(e for e in lines if e.startswith("data:"))  # it runs: the batch is full
        with http.stream("POST", f"{url}/v1/completions", json=long) as waiting:
            assert waiting.status_code == 200  # it waits: the queue is full
            start = time.monotonic()
            r = http.post(f"{url}/v1/completions", json={**long, "stream": False})
            assert r.status_code == 429 and time.monotonic() - start < 5
            assert r.json()["error"]["code"] == "queue_full" and r.headers["retry-after"]
            with pytest.raises(openai.RateLimitError):  # what the openai client makes of it
                client(url).completions.create(model=MODEL, prompt="x", max_tokens=2)


def test_a_client_that_gives_up_on_a_whole_answer_frees_its_kv_blocks(checkpoint):
    engine = LLMEngine.from_checkpoint(checkpoint, EngineConfig(max_num_seqs=4))
    step = engine.step
    engine.step = lambda: time.sleep(0.02) or step()  # a slow model: 900 tokens take 18 s
    manager = engine.block_manager
    body = {"model": MODEL, "prompt": "the old man", "max_tokens": 900, "ignore_eos": True, "n": 4}
    with running_server(engine) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=1
            )
        # Not streamed, the request went on to its last token while nobody waited for it.
        deadline = time.monotonic() + 5
        while manager.num_free_blocks != manager.num_blocks or engine.scheduler.running:
            assert time.monotonic() < deadline, "the abandoned request kept its KV blocks"
            time.sleep(0.02)
        ok = client(url).completions.create(model=MODEL, prompt="hi", max_tokens=2, temperature=0)
        assert ok.choices[0].finish_reason in ("length", "stop")  # served: the engine goes on


def test_unknown_routes_methods_and_server_faults_answer_in_openai_format(server, monkeypatch):
    url, engine = server
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for method, path, status in (("GET", "/v1/completions", 405), ("POST", "/v1/embeddings", 404)):
        r = httpx.request(method, f"{url}{path}", headers=headers, json={})
        assert r.status_code == status and path in r.json()["error"]["message"], r.text  # was {"detail"}
    assert client(url).models.retrieve(MODEL).id == MODEL  # OpenAI's GET /v1/models/{model}
    with pytest.raises(openai.NotFoundError):
        client(url).models.retrieve("gpt-4")

    def broken(text: str) -> list[int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine.tokenizer, "encode", broken)
    r = httpx.post(f"{url}/v1/completions", headers=headers, json={"model": MODEL, "prompt": "hi"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"  # was plain text
    monkeypatch.undo()
    assert client(url).completions.create(model=MODEL, prompt="hi", max_tokens=2).choices[0].text is not None


def test_a_prompt_of_megabytes_is_refused_without_holding_up_the_server(server):
    url, _ = server
    headers = {"Authorization": f"Bearer {API_KEY}"}
    huge = "the cat sat " * 500_000  # tokenizing it froze every request, /health too, for seconds
    for path, body, param in (
        ("/v1/completions", {"model": MODEL, "prompt": huge}, "prompt"),
        (
            "/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": huge}]},
            "messages",
        ),
    ):
        start = time.monotonic()
        r = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        assert "maximum context length" in r.json()["error"]["message"]
        assert time.monotonic() - start < 2


def test_too_many_prompts_are_refused_before_they_are_tokenized(server, monkeypatch):
    url, engine = server
    encoded = []
    monkeypatch.setattr(engine.tokenizer, "encode", lambda text: encoded.append(text) or [1])
    prompts = ["a short prompt"] * (engine.config.max_waiting + 1)
    r = httpx.post(
        f"{url}/v1/completions",
        json={"model": MODEL, "prompt": prompts},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "n", r.text
    assert not encoded  # 100,000 strings took seconds to encode before the refusal
