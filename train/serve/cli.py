"""`train serve` and `train generate`: the HTTP server and the offline API from the command line.

Engine settings (EngineConfig) and sampling settings (SamplingParams) become flags of the same names;
their values go to pydantic as strings, and a bad one ends the command with one line naming the flag.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import get_origin

from pydantic import BaseModel, ValidationError

from train.serve.config import EngineConfig
from train.serve.sampling_params import SamplingParams
from train.user_files import read_text

API_KEY_ENV = "TRAIN_SERVE_API_KEY"


def _add_model_flags(
    parser: argparse.ArgumentParser, title: str, model: type[BaseModel], skip: set[str]
) -> None:
    group = parser.add_argument_group(title)
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "").replace(
            "%", "%%"
        ) + f" (default: {field.get_default(call_default_factory=True)})"
        if field.annotation is bool:
            group.add_argument(
                flag, dest=name, action="store_true", default=argparse.SUPPRESS, help=help_text
            )
        elif get_origin(field.annotation) is list:
            group.add_argument(
                flag, dest=name, action="append", default=argparse.SUPPRESS, help=help_text + "; repeat"
            )
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text)


def _build(model: type[BaseModel], args: argparse.Namespace) -> BaseModel:
    values = {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
    try:
        return model(**values)
    except ValidationError as err:
        first = err.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else model.__name__
        raise ValueError(f"{flag}: {first['msg'].removeprefix('Value error, ')}") from None


def _add_engine_args(parser: argparse.ArgumentParser, skip: set[str]) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a checkpoint directory, or a run directory (its newest)",
    )
    parser.add_argument(
        "--eos-token", help="end-of-text token, if not the tokenizer config's or <|endoftext|>"
    )
    _add_model_flags(parser, "engine", EngineConfig, skip)


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a checkpoint over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions)",
    )
    _add_engine_args(parser, skip=set())
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to bind, 0 for any free one (default: 8000)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"require `Authorization: Bearer KEY` on /v1 (or ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--served-model-name", help="the model's name in the API (default: the checkpoint's directory name)"
    )
    parser.set_defaults(func=cmd_serve)


def _port(text: str) -> int:
    """A TCP port number for argparse: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, made before the model loads, so a bad address fails at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ValueError(f"--host {host}: not an address of this machine ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ValueError(
            f"--host {host} --port {port}: cannot bind ({err.strerror}); pick another --port"
        ) from None
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from train.serve.engine import LLMEngine
    from train.serve.server import build_app

    config = _build(EngineConfig, args)
    sock = _bind(args.host, args.port)
    engine = LLMEngine.from_checkpoint(args.checkpoint, config, args.eos_token)
    name = args.served_model_name or args.checkpoint.resolve().name
    app = build_app(engine, name, args.api_key)
    host, port = sock.getsockname()[:2]
    print(
        f"serving {name} ({engine.runner.num_blocks} KV blocks of {config.block_size} tokens, {engine.device}) "
        f"on http://{host}:{port}/v1",
        file=sys.stderr,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    return 0


def add_generate_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("generate", help="complete prompts with a checkpoint, in batches (no server)")
    # --seed is the sampling seed of every prompt: the engine's own seed serves only unseeded requests.
    _add_engine_args(parser, skip={"seed"})
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for several)")
    parser.add_argument("--prompts-file", type=Path, help="a text file of prompts, one per line")
    parser.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    _add_model_flags(parser, "sampling", SamplingParams, skip={"detokenize", "logprobs"})
    parser.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from train.serve.llm import LLM

    prompts = list(args.prompt)
    if args.prompts_file is not None:
        lines = [line for line in read_text(args.prompts_file, "--prompts-file").splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"--prompts-file: {args.prompts_file} holds no prompts (one a line)")
        prompts += lines
    if not prompts:
        raise ValueError("no prompts: give --prompt TEXT or --prompts-file FILE")
    params = _build(SamplingParams, args)
    config = _build(EngineConfig, args)
    llm = LLM(args.checkpoint, eos_token=args.eos_token, **config.model_dump())
    for prompt, out in zip(prompts, llm.generate(prompts, params), strict=True):
        if args.json:
            print(
                json.dumps(
                    {
                        "prompt": prompt,
                        "text": out.text,
                        "finish_reason": out.finish_reason,
                        "tokens": len(out.token_ids),
                    }
                )
            )
        else:
            print(prompt + out.text)
    return 0
