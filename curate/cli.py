"""`curate` command line: run and validate pipeline files."""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.console import Console
from rich.markup import escape

from curate.config import PipelineConfigError, load_pipeline
from curate.stats import FunnelError

# Modules that add one subcommand each: `add_command(subparsers)` registers a parser whose
# `func(args, console) -> int` runs it.
COMMAND_MODULES: list[str] = [
    "curate.cli_tokenize",
    "curate.cli_inspect",
    "curate.cli_train_classifier",
    "curate.cli_dedup",
]


def _load(args: argparse.Namespace, console: Console):
    flags = {"address": getattr(args, "address", None), "workers": getattr(args, "workers", None)}
    pipeline = load_pipeline(args.pipeline, {k: v for k, v in flags.items() if v is not None})
    for folder in pipeline.skipped_input_dirs:
        console.print(
            f"note: input.paths matched the directory {escape(repr(folder))}; not read (only files are)"
        )
    if pipeline.unused_executor_keys:
        keys = ", ".join(f"executor.{key}" for key in pipeline.unused_executor_keys)
        console.print(
            f"note: {keys} not used: --address runs the tasks on that scheduler's workers", highlight=False
        )
    return pipeline


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    pipeline = _load(args, console)
    console.print(
        f"{args.pipeline}: ok · {len(pipeline.stages)} stages "
        f"({' → '.join(s.id for s in pipeline.stages)}) · {len(pipeline.input_files)} input files"
    )
    return 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from curate.engine import run_pipeline  # imports dask; keep `validate` fast

    run_pipeline(_load(args, console), console=console)
    return 0


def cmd_stages(args: argparse.Namespace, console: Console) -> int:
    from curate import registry

    for name in registry.available():
        cls = registry.lookup(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        console.print(f"[bold]{name}[/bold] ({cls.kind}): {doc}")
    return 0


def print_error(console: Console, err: Exception | str) -> None:
    """One red `error:` line; the message is printed as is (no Rich markup read from it)."""
    console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description="Declarative web-crawl curation on Dask.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline file (resumes finished shards)")
    run.add_argument("pipeline", help="pipeline YAML, e.g. pipelines/web.yaml")
    run.add_argument("--address", help="existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    run.add_argument("--workers", type=int, help="LocalCluster worker processes (overrides executor.workers)")
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="check a pipeline file without running it")
    validate.add_argument("pipeline")
    validate.set_defaults(func=cmd_validate)
    stages = sub.add_parser("stages", help="list the available stages")
    stages.set_defaults(func=cmd_stages)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs and CI have no terminal width; a funnel table squeezed into 80 columns is unreadable.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    try:
        return args.func(args, console)
    except PipelineConfigError as err:
        print_error(console, err)
        return 2
    except FunnelError as err:
        print_error(console, err)
        return 3
    except RuntimeError as err:
        # Every command that runs a pipeline (run, dedup, tokenize) ends the same way when it fails.
        from curate.dask_tasks import SchedulerUnreachable, TaskFailed  # imports dask: only now

        if not isinstance(err, (SchedulerUnreachable, TaskFailed)):
            raise
        print_error(console, err)
        return 4 if isinstance(err, SchedulerUnreachable) else 1


if __name__ == "__main__":
    sys.exit(main())
