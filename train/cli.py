"""`train` command line: `env` (torch and the devices), `pretrain` (or under torchrun), `eval`.

Every bad argument ends the command with one line, `train <command>: error: ...`, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from train.config import MODEL_OVERRIDE_KEYS, PretrainConfig
from train.model import ModelConfig
from train.user_files import output_path


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints its usage before an error; a bad argument here is one line."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    print(f"python {platform.python_version()} · torch {torch.__version__}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            print(
                f"cuda:{i} {props.name} · {props.total_memory / 2**30:.0f} GiB · bf16 {torch.cuda.is_bf16_supported()}"
            )
    else:
        print(f"no CUDA device · CPU threads {torch.get_num_threads()}")
    return 0


def _add_field_flag(group: argparse._ArgumentGroup, name: str, field: FieldInfo) -> None:
    """A flag for a config field; values stay strings for pydantic to check, as YAML values are."""
    flag = "--" + name.replace("_", "-")
    help_text = (field.description or "").replace("%", "%%")
    if field.annotation in (bool, bool | None):
        group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
    else:
        group.add_argument(flag, dest=name, metavar=_metavar(field), help=help_text)


def _metavar(field: FieldInfo) -> str:
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "{" + ",".join(get_args(annotation)) + "}"
    if annotation in (int, int | None):
        return "N"
    if annotation in (float, float | None):
        return "X"
    return "DIR" if annotation is Path else "NAME"


def add_pretrain_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="pretrain a GPT/Llama-style model on shard directories (torchrun for several GPUs)",
        description="Flags override --config FILE.yaml, which overrides the defaults.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", type=Path, help="YAML file of settings (keys as the flags, with _)")
    run = parser.add_argument_group("run")
    for name, field in PretrainConfig.model_fields.items():
        if name == "data":
            run.add_argument(
                "--data", nargs="+", action="extend", metavar="DIR[:WEIGHT]", help=field.description
            )
        elif name != "model":
            _add_field_flag(run, name, field)
    model = parser.add_argument_group("model (override the preset's shape)")
    for name, field in ModelConfig.model_fields.items():
        if name in MODEL_OVERRIDE_KEYS:
            _add_field_flag(model, name, field)
    parser.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from train.config import load_pretrain_config
    from train.pretrain import pretrain

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func", "config")}
    overrides = {k: v for k, v in given.items() if k not in ModelConfig.model_fields}
    model = {k: v for k, v in given.items() if k in ModelConfig.model_fields}
    if model:
        overrides["model"] = model
    config = load_pretrain_config(getattr(args, "config", None), overrides)
    pretrain(config)
    return 0


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="loss and perplexity of a checkpoint on shard directories")
    parser.add_argument(
        "checkpoint", type=Path, help="a checkpoint directory, or a run directory (its newest)"
    )
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR", help="shard directories")
    parser.add_argument(
        "--split",
        choices=["all", "valid"],
        default="all",
        help="all documents, or those the checkpoint's run held out for validation",
    )
    parser.add_argument("--max-samples", type=int, help="evaluate at most this many samples per directory")
    parser.add_argument("--micro-batch-size", type=int, default=8, help="samples per forward pass")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object per directory")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from train.data import DataSource
    from train.evaluate import evaluate_checkpoint

    for name in ("max_samples", "micro_batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
    sources = [DataSource(Path(d)) for d in args.data]
    results = evaluate_checkpoint(
        args.checkpoint, sources, args.split, args.max_samples, args.micro_batch_size, args.device
    )
    for r in results:
        if args.json:
            print(json.dumps({**r.__dict__, "perplexity": r.perplexity}))
        else:
            print(
                f"{r.data} ({r.split}, {r.samples:,} samples, {r.tokens:,} tokens): "
                f"loss {r.loss:.4f} · perplexity {r.perplexity:.2f}"
            )
    return 0


# --- finetune, export, import: train/finetune/ and train/export.py ----------------------------------------
# Flags that belong to one finetuning method only.
_FINETUNE_METHOD_ONLY = {"pack": "sft", "beta": "dpo"}


def add_finetune_commands(sub: argparse._SubParsersAction) -> None:
    from train.export import DTYPES
    from train.finetune.config import FinetuneConfig

    parser = sub.add_parser(
        "finetune", help="finetune a checkpoint (SFT or DPO, full or LoRA); merge an adapter"
    )
    methods = parser.add_subparsers(dest="method", required=True, parser_class=_OneLineParser)
    for method, help_text in (
        ("sft", "supervised finetuning on chat or prompt/response JSONL; the loss on the responses"),
        ("dpo", "direct preference optimization on prompt/chosen/rejected JSONL"),
    ):
        command = methods.add_parser(method, help=help_text, argument_default=argparse.SUPPRESS)
        for name, field in FinetuneConfig.model_fields.items():
            if name != "method" and _FINETUNE_METHOD_ONLY.get(name, method) == method:
                _add_field_flag(command, name, field)
        command.set_defaults(func=cmd_finetune)
    merge = methods.add_parser("merge", help="fold a saved LoRA adapter into its base: a normal checkpoint")
    merge.add_argument("adapter", type=Path, help="the adapter directory of a LoRA run (RUN/adapter)")
    merge.add_argument("--out", required=True, help="run directory for the merged checkpoint")
    merge.set_defaults(func=cmd_finetune_merge)

    export = sub.add_parser("export", help="write a checkpoint as a Hugging Face Llama directory")
    export.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a checkpoint directory, or a run directory (its newest)",
    )
    export.add_argument("--hf", required=True, help="the directory to write")
    export.add_argument("--dtype", choices=list(DTYPES), help="tensor dtype (default: the checkpoint's)")
    export.add_argument(
        "--eos-token", help="end token of a checkpoint without tokenizer_config.json (default <|endoftext|>)"
    )
    export.set_defaults(func=cmd_export)

    imported = sub.add_parser("import", help="a Hugging Face Llama directory as a checkpoint")
    imported.add_argument("--hf", type=Path, required=True, help="the model directory (config.json, ...)")
    imported.add_argument("--out", required=True, help="run directory for the checkpoint")
    imported.set_defaults(func=cmd_import)


def cmd_finetune(args: argparse.Namespace) -> int:
    from train.finetune.config import load_finetune_config
    from train.finetune.loop import finetune

    finetune(load_finetune_config({k: v for k, v in vars(args).items() if k not in ("command", "func")}))
    return 0


def cmd_finetune_merge(args: argparse.Namespace) -> int:
    from train.finetune.lora import merge_adapter

    print(f"checkpoint {merge_adapter(args.adapter, output_path(args.out, '--out'))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from train.export import export_checkpoint

    out = output_path(args.hf, "--hf")
    print(f"wrote {export_checkpoint(args.checkpoint, out, args.dtype, args.eos_token)}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from train.export import import_checkpoint

    print(f"checkpoint {import_checkpoint(args.hf, output_path(args.out, '--out'))}")
    return 0


# --- end of finetune, export, import ----------------------------------------------------------------------


# --- serve, generate: train/serve/ ---------------------------------------------------------------------------


def add_serve_commands(sub: argparse._SubParsersAction) -> None:
    # Imported here: the server's dependencies load only for these commands.
    from train.serve.cli import add_generate_command, add_serve_command

    add_serve_command(sub)
    add_generate_command(sub)


# --- end of serve, generate ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(prog="train", description="Train and serve models on curate's shards.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    sub.add_parser("env", help="show torch and the available devices").set_defaults(func=cmd_env)
    add_pretrain_command(sub)
    add_eval_command(sub)
    add_finetune_commands(sub)  # finetune, export, import
    add_serve_commands(sub)  # serve, generate
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        # ConfigError, ShardFormatError (a tokenizer mismatch too) and data errors: all say what to change.
        print(f"train {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
