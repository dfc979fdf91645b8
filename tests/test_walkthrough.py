"""The project's walk-through, end to end on CPU: crawl → curated shards → tiny model → served completion.

The README shows the same commands. Each step is the real command line, as a user runs it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import openai
import yaml
from tokenizers import Tokenizer

from curate.file_hash import file_sha256
from tests.conftest import REPO
from train.serve.llm import LLM
from train.serve.sampling_params import SamplingParams

PROMPT = "The history of the town"


def command(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_crawl_to_served_completion(tmp_path):
    web = yaml.safe_load((REPO / "pipelines" / "web.yaml").read_text())
    web["input"]["paths"] = [str(REPO / p) for p in web["input"]["paths"]]
    web["output"]["dir"] = str(tmp_path / "web")
    web["executor"]["dashboard_address"] = ":0"
    pipeline = tmp_path / "web.yaml"
    pipeline.write_text(yaml.safe_dump(web, sort_keys=False))
    shards = tmp_path / "web" / "shards"
    run = tmp_path / "run"

    command("curate.cli", "run", str(pipeline))
    command(
        "train.cli", "pretrain", "--data", str(shards), "--preset", "tiny", "--max-steps", "6",
        "--warmup-steps", "2", "--out", str(run),
    )  # fmt: skip

    checkpoint = sorted((run / "checkpoints").glob("step_*"))[-1]
    metadata = json.loads((shards / "metadata.json").read_text())
    assert file_sha256(checkpoint / "tokenizer.json") == metadata["tokenizer"]["sha256"]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "train.cli", "serve", "--checkpoint", str(run), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        model = client.models.list().data[0].id
        answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=0)
    finally:
        server.terminate()
        server.wait(timeout=30)

    # The served text is the model's greedy continuation, decoded with the shards' own tokenizer.
    offline = LLM(checkpoint).generate([PROMPT], SamplingParams(max_tokens=8, temperature=0))[0]
    tokenizer = Tokenizer.from_file(str(shards / "tokenizer.json"))
    assert offline.prompt_token_ids == tokenizer.encode(PROMPT).ids
    assert answer.usage.completion_tokens == len(offline.token_ids) > 0
    assert answer.choices[0].text == offline.text == tokenizer.decode(offline.token_ids)
