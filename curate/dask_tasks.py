"""Dask plumbing: the client (embedded LocalCluster or an existing scheduler) and tasks with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.config import ExecutorConfig


class TaskFailed(RuntimeError):
    """A task failed after its retries; the message names the task and the error."""


class SchedulerUnreachable(RuntimeError):
    """No Dask scheduler answered at `executor.address`; the message names it and the timeout."""


@contextmanager
def dask_client(executor: ExecutorConfig):
    """A client for the configured scheduler, or for an embedded LocalCluster."""
    if executor.address:
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            client = Client(executor.address, timeout=timeout)
        except OSError as err:  # refused, unresolvable host, timed out
            raise SchedulerUnreachable(
                f"no Dask scheduler answers at {executor.address} (waited {timeout}, "
                f"distributed.comm.timeouts.connect): {err}; start one (`dask scheduler`) or fix the address"
            ) from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=executor.workers,
            threads_per_worker=executor.threads_per_worker,
            processes=executor.processes,
            memory_limit=executor.memory_limit,
            dashboard_address=executor.dashboard_address,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_tasks(
    client: Client,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    keys: Sequence[str],
    label: str,
    console: Console,
    retries: int,
    describe: Callable[[Any], str] | None = None,
) -> list[Any]:
    """Run `fn(item)` for every item as Dask tasks; show progress; return results in item order.

    `describe(result)` may update the bar's label as results arrive (e.g. docs kept so far).
    """
    if not items:
        return []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    results: list[Any] = [None] * len(items)
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(label, total=len(items))
        futures = {
            client.submit(fn, item, key=key, pure=False, retries=retries): i
            for i, (item, key) in enumerate(zip(items, keys, strict=True))
        }
        for future in as_completed(futures):
            i = futures[future]
            if future.status != "finished":
                error = future.exception()
                client.cancel(list(futures))
                raise TaskFailed(f"{label}: task {keys[i]} failed: {error!r}") from error
            results[i] = future.result()
            description = f"{label} · {describe(results[i])}" if describe else label
            progress.update(bar, advance=1, description=description)
    return results
