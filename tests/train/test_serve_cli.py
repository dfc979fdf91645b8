"""`train serve` and `train generate` flags: a bad one is one line naming it, before the model loads."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from tests.train.test_cli import one_line_error


@pytest.fixture
def junk_checkpoint(tmp_path):
    """A checkpoint directory whose weights cannot load: an error about them means the model was read."""
    (tmp_path / "state.json").write_text('{"model": {}}')
    (tmp_path / "model.safetensors").write_text("junk")
    return tmp_path


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(capsys, junk_checkpoint, port):
    err = one_line_error(capsys, ["serve", "--checkpoint", str(junk_checkpoint), "--port", port])
    assert "argument --port:" in err and "is not a port number (0 to 65535)" in err


def test_serve_refuses_a_taken_port_before_loading_the_model(capsys, junk_checkpoint):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        err = one_line_error(capsys, ["serve", "--checkpoint", str(junk_checkpoint), "--port", port])
    assert f"--port {port}: cannot bind (Address already in use); pick another --port" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"\n  \n", "holds no prompts (one a line)"),
        (b"The cat\n\xff\n", "is not UTF-8 text (byte 8)"),
    ],
)
def test_generate_names_the_prompts_file_that_cannot_be_read(
    capsys, junk_checkpoint, tmp_path, content, message
):
    prompts = tmp_path / "prompts.txt"
    if content is not None:
        prompts.write_bytes(content)
    err = one_line_error(
        capsys, ["generate", "--checkpoint", str(junk_checkpoint), "--prompts-file", str(prompts)]
    )
    assert f"--prompts-file: {prompts} {message}" in err


def test_generate_refuses_a_directory_as_prompts_file(capsys, junk_checkpoint, tmp_path):
    err = one_line_error(
        capsys, ["generate", "--checkpoint", str(junk_checkpoint), "--prompts-file", str(tmp_path)]
    )
    assert f"--prompts-file: {tmp_path} is a directory, not a file" in err


def test_generate_refuses_an_infinite_temperature(capsys, junk_checkpoint):
    argv = ["generate", "--checkpoint", str(junk_checkpoint), "--prompt", "The cat", "--temperature", "inf"]
    assert "--temperature: Input should be a finite number" in one_line_error(capsys, argv)


@pytest.mark.parametrize("command", ["serve", "generate"])
def test_a_broken_chat_template_is_one_line_naming_its_file_before_the_model_loads(
    capsys, junk_checkpoint, tokenizer_file, command
):
    shutil.copyfile(tokenizer_file, junk_checkpoint / "tokenizer.json")
    config = junk_checkpoint / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}"}))
    argv = [command, "--checkpoint", str(junk_checkpoint), "--port" if command == "serve" else "--prompt"]
    err = one_line_error(capsys, [*argv, "0" if command == "serve" else "The cat"])
    assert f"{config}: chat_template is not valid Jinja (line 1: " in err


def test_generate_names_an_empty_stop_string_flag(capsys, junk_checkpoint):
    argv = ["generate", "--checkpoint", str(junk_checkpoint), "--prompt", "The cat", "--stop", ""]
    assert "error: --stop: stop strings must not be empty" in one_line_error(capsys, argv)
