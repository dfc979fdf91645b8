"""`train` command line. Subcommands arrive with the training issues; `train env` reports the device."""

from __future__ import annotations

import argparse
import platform
import sys


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train", description="Train and serve models on curate's shards.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="show torch and the available devices").set_defaults(func=cmd_env)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
