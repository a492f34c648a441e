"""Benchmark `acdkit ingest --seal` against a bare DuckDB JSON-to-Parquet conversion.

Both measurements run on the same Zeek conn JSON log (made by ``gen_zeek_conn.generate`` or
reused from the work directory), each in a fresh subprocess, alternating, ``--repeats`` times.
For every run the wall-clock time and the child's peak resident set size (``ru_maxrss`` from
``os.wait4``) are recorded; the report keeps the best (minimum) time and the largest peak RSS
of each command.  The acdkit store of every repeat is checked with ``acdkit verify --json``,
which must exit 0; its time is reported as extra information.

The rates are records / wall seconds, process start-up included for both sides.  The target
is ``acdkit_rate / duckdb_rate >= 0.25``.

Usage::

    .venv/bin/python bench/run_bench.py [--records N] [--repeats R] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_zeek_conn import generate

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORKDIR = BENCH_DIR / "data"
DEFAULT_RECORDS = 1_000_000
DEFAULT_REPEATS = 3
SEED = 2026
TARGET_RATIO = 0.25

DUCKDB_CHILD = """\
import sys
import duckdb
con = duckdb.connect(":memory:")
# DuckDB draws a progress bar on stdout for queries that run longer than 2 s
con.execute("SET enable_progress_bar = false")
rows = con.execute(sys.argv[1]).fetchone()[0]
print(rows)
"""


@dataclass
class Run:
    """One child process: its wall time, peak RSS, exit code and captured output."""

    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    phases: dict[str, float] = field(default_factory=dict)  # acdkit's own timings


@dataclass
class Summary:
    """Best time and peak memory of one command over all repeats."""

    best_seconds: float
    all_seconds: list[float]
    max_rss_mib: float
    rate: float


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The current environment without ACDKIT_* settings, so only the command line counts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ACDKIT_")}


def run_measured(cmd: list[str]) -> Run:
    """Run ``cmd`` to completion; return its wall time and its own peak RSS via os.wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=child_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Run(
            seconds,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def check(run: Run, what: str) -> None:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {run.returncode}:\n{run.stderr[-2000:]}")


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
    return lines


def prepare_input(workdir: Path, records: int) -> Path:
    """Reuse ``conn-<N>.json`` if it holds N lines, else generate it."""
    path = workdir / f"conn-{records}.json"
    if path.is_file() and count_lines(path) == records:
        log(f"reusing {path} ({records:,} records)")
        return path
    log(f"generating {path} ({records:,} records, seed {SEED}) ...")
    start = time.perf_counter()
    tmp = path.with_suffix(".json.tmp")
    generate(tmp, records, SEED)
    tmp.replace(path)
    log(f"generated in {time.perf_counter() - start:.1f}s")
    return path


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_once(src: Path, runs_dir: Path, records: int) -> Run:
    out = runs_dir / "duckdb.parquet"
    out.unlink(missing_ok=True)
    sql = (
        f"COPY (SELECT * FROM read_json({sql_string(str(src))}, "
        f"format='newline_delimited')) TO {sql_string(str(out))} (FORMAT parquet)"
    )
    run = run_measured([sys.executable, "-c", DUCKDB_CHILD, sql])
    check(run, "duckdb COPY")
    copied = int(run.stdout.split()[-1])
    if copied != records:
        raise SystemExit(f"duckdb COPY wrote {copied:,} rows, expected {records:,}")
    out.unlink()
    return run


def acdkit_once(
    acdkit: str, src: Path, runs_dir: Path, records: int, keep: bool
) -> tuple[Run, Run]:
    """Init a fresh store, time ``ingest --seal``, then time ``verify``."""
    store = runs_dir / "store"
    key = runs_dir / "sealer.key"
    shutil.rmtree(store, ignore_errors=True)
    key.unlink(missing_ok=True)
    init = run_measured([acdkit, "init", str(store), "--key", str(key), "--json"])
    check(init, "acdkit init")

    ingest = run_measured(
        [acdkit, "ingest", str(store), str(src), "--seal", "--key", str(key), "--json"]
    )
    check(ingest, "acdkit ingest --seal")
    doc = json.loads(ingest.stdout)
    ingest.phases = {"ingest": doc["seconds"], "seal": doc["seal"]["seconds"] if doc["seal"] else 0}
    sealed = doc["seal"]["records"] if doc.get("seal") else 0
    if doc["records"] != records or sealed != records:
        raise SystemExit(
            f"acdkit ingested {doc['records']:,} and sealed {sealed:,} records, "
            f"expected {records:,}"
        )

    verify = run_measured([acdkit, "verify", str(store), "--json"])
    check(verify, "acdkit verify")
    verdict = json.loads(verify.stdout).get("verdict")
    if verdict != "VERIFIED":
        raise SystemExit(f"acdkit verify exited 0 but reported {verdict!r}")

    if not keep:
        shutil.rmtree(store)
        key.unlink()
    return ingest, verify


def summarize(runs: list[Run], records: int) -> Summary:
    best = min(r.seconds for r in runs)
    return Summary(
        best_seconds=round(best, 3),
        all_seconds=[round(r.seconds, 3) for r in runs],
        max_rss_mib=round(max(r.max_rss_kib for r in runs) / 1024, 1),
        rate=round(records / best, 1),
    )


def acdkit_source() -> dict[str, Any]:
    """Where the measured acdkit code came from: its directory, git state and a content hash."""
    import acdkit  # imported here only to locate the package, not to run it

    pkg = Path(acdkit.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(pkg.rglob("*.py")):
        digest.update(str(path.relative_to(pkg)).encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        git = subprocess.run(
            ["git", "-C", str(pkg), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        git = None
    return {"path": str(pkg), "git": git, "sha256": digest.hexdigest()}


def machine() -> dict[str, Any]:
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "mem_total_gib": round(mem_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": metadata.version("duckdb"),
        "pyarrow": metadata.version("pyarrow"),
        "acdkit": metadata.version("acdkit"),
    }


def find_acdkit() -> str:
    beside = Path(sys.executable).parent / "acdkit"
    if beside.is_file():
        return str(beside)
    found = shutil.which("acdkit")
    if found is None:
        raise SystemExit("acdkit executable not found; run with the project's .venv/bin/python")
    return found


def print_report(doc: dict[str, Any]) -> None:
    duck, acd, ver = doc["duckdb"], doc["acdkit"], doc["acdkit_verify"]
    print(f"records            {doc['records']:,} (input {doc['input_mib']:,.1f} MiB)")
    print(f"repeats            {doc['repeats']} (best time of each)")
    print(f"{'command':<30} {'best s':>8} {'records/s':>12} {'peak RSS MiB':>13}")
    for name, s in (
        ("duckdb COPY json->parquet", duck),
        ("acdkit ingest --seal", acd),
        ("acdkit verify", ver),
    ):
        print(
            f"{name:<30} {s['best_seconds']:>8.2f} {s['rate']:>12,.0f} {s['max_rss_mib']:>13,.1f}"
        )
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in doc["acdkit_phases_of_best_run"].items())
    print(f"acdkit phases      {phases} (as reported by acdkit --json, best run)")
    src = doc["acdkit_source"]
    changed = " (CHANGED during the run)" if doc["acdkit_source_changed_during_run"] else ""
    print(f"acdkit source      {src['git']} sha256 {src['sha256'][:12]}{changed}")
    met = "met" if doc["target_met"] else "NOT met"
    print(f"ratio acdkit/duckdb {doc['ratio']:.3f} (target >= {TARGET_RATIO}: {met})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records",
        type=int,
        default=DEFAULT_RECORDS,
        help="records in the generated conn log (default %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help="alternating repeats of each measurement (default %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="input, stores and outputs go here (default bench/data)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the acdkit store and key of every repeat"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.records < 1 or args.repeats < 1:
        parser.error("--records and --repeats must be positive")

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    src = prepare_input(workdir, args.records)
    acdkit = find_acdkit()
    source_before = acdkit_source()

    duck_runs: list[Run] = []
    ingest_runs: list[Run] = []
    verify_runs: list[Run] = []
    for i in range(args.repeats):
        runs_dir = workdir / f"run-{i}"
        runs_dir.mkdir(exist_ok=True)
        duck = duckdb_once(src, runs_dir, args.records)
        duck_runs.append(duck)
        log(
            f"[{i + 1}/{args.repeats}] duckdb  {duck.seconds:7.2f}s "
            f"{duck.max_rss_kib / 1024:8.1f} MiB"
        )
        ingest, verify = acdkit_once(acdkit, src, runs_dir, args.records, args.keep)
        ingest_runs.append(ingest)
        verify_runs.append(verify)
        log(
            f"[{i + 1}/{args.repeats}] acdkit  {ingest.seconds:7.2f}s "
            f"{ingest.max_rss_kib / 1024:8.1f} MiB; verify {verify.seconds:.2f}s "
            f"{verify.max_rss_kib / 1024:.1f} MiB"
        )
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)

    source_after = acdkit_source()
    source_changed = source_after["sha256"] != source_before["sha256"]
    if source_changed:
        log("warning: the acdkit source changed during the run; the numbers mix versions")

    duck_s = summarize(duck_runs, args.records)
    acd_s = summarize(ingest_runs, args.records)
    ver_s = summarize(verify_runs, args.records)
    ratio = acd_s.rate / duck_s.rate
    doc: dict[str, Any] = {
        "records": args.records,
        "input": str(src),
        "input_mib": round(src.stat().st_size / (1 << 20), 1),
        "repeats": args.repeats,
        "duckdb": asdict(duck_s),
        "acdkit": asdict(acd_s),
        "acdkit_phases_of_best_run": min(ingest_runs, key=lambda r: r.seconds).phases,
        "acdkit_verify": asdict(ver_s),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "machine": machine(),
        "acdkit_source": source_before,
        "acdkit_source_changed_during_run": source_changed,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
