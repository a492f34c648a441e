"""Benchmark `acdkit ingest --seal` and `acdkit verify` against a bare DuckDB conversion.

All measurements run on the same Zeek conn JSON log (made by ``gen_zeek_conn.generate`` or
reused from the work directory), each in a fresh subprocess, taking turns, ``--repeats``
times.  For every run the wall-clock time and two peak memory figures are recorded: the
largest ``ru_maxrss`` of the child and its reaped descendants (``os.wait4``), and the largest
sum of the resident sets of the child's whole process tree, sampled from /proc every 10 ms
(worker processes count there too).  The report keeps the best (minimum) time and the
largest peaks of each command.

The acdkit store of every repeat is checked with a full ``acdkit verify --json``, which must
exit 0 and report VERIFIED.  Its time is compared with the DuckDB conversion of the same run:
``verify_ratio = duckdb_seconds / verify_seconds`` (above 1: verify is faster), target
``>= 1.0``.  A second, smaller store (``--small-records``, the first lines of the same input)
is verified in every repeat too, so that verify's memory can be compared across store sizes.
The ingest rates are records / wall seconds, process start-up included for both sides; that
target is ``acdkit_rate / duckdb_rate >= 0.25``.

``--verify-only`` builds each store once (not timed) and then times only DuckDB and verify,
for quicker measurements of verify alone.  ``--pure-sha256`` makes acdkit hash through
hashlib even where its batch SHA-256 library is built (the report names the engine).

``--case aws-vpc`` measures a flow log instead: an AWS VPC flow log in the default format
(made by ``gen_aws_vpc.generate``), ``acdkit ingest --seal`` of it against DuckDB
``read_csv`` of the same file to Parquet, the natural baseline for space-separated records.
Verify does not depend on the input format, so this case does not time it.

``--case evtx`` runs the EVTX case (``evtx_case.py``): ``acdkit ingest`` of the Windows
EVTX samples, repeated to ``--evtx-events`` events in distinct files, against iterating the
same files with the ``evtx`` package alone.

Usage::

    .venv/bin/python bench/run_bench.py [--records N] [--repeats R] [--workdir DIR] [--json]
        [--small-records N] [--verify-only] [--pure-sha256] [--case zeek-conn|aws-vpc]
    .venv/bin/python bench/run_bench.py --case evtx [--samples DIR] [--evtx-events N]
        [--evtx-layout copies|assembled|both] [--evtx-files N] [--repeats R] [--json]
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
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evtx_case
from gen_aws_vpc import generate as generate_aws_vpc
from gen_zeek_conn import generate

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORKDIR = BENCH_DIR / "data"
DEFAULT_RECORDS = 1_000_000
DEFAULT_REPEATS = 3
DEFAULT_SMALL_RECORDS = 250_000
SEED = 2026
TARGET_RATIO = 0.25
TARGET_VERIFY_RATIO = 1.0
SAMPLE_SECONDS = 0.01

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
    tree_rss_kib: int = 0  # largest sampled sum of RSS over the child's process tree


@dataclass
class Summary:
    """Best time and peak memory of one command over all repeats."""

    best_seconds: float
    all_seconds: list[float]
    max_rss_mib: float
    rate: float
    max_tree_rss_mib: float = 0.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --pure-sha256: acdkit hashes through hashlib even where its batch library is built
PURE_SHA256 = {"on": False}


def child_env() -> dict[str, str]:
    """The current environment without ACDKIT_* settings, so only the command line counts
    (and --pure-sha256); and without PYTHONDONTWRITEBYTECODE, so acdkit runs from compiled
    bytecode as an installed program does (pip compiles DuckDB's at install; `compile_acdkit`
    does acdkit's before the first timed run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACDKIT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if PURE_SHA256["on"]:
        env["ACDKIT_PURE_SHA256"] = "1"
    return env


def sha256_engine() -> str:
    """What hashes batches in the acdkit children: ``openssl-batch`` or ``hashlib``."""
    code = "from acdkit import _batchsha; print(_batchsha.engine())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), check=True)  # fmt: skip
    return done.stdout.strip()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue  # the thread or the process ended meanwhile
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    """Sum of the resident sets of ``root`` and all its descendants, now (0 without /proc)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        todo += _children(pid)
    return total


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped; keeps the largest value.

    Forked workers share pages with their parent, so the sum counts shared pages more than
    once: it is an upper bound of the memory the tree really holds.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, tree_rss_kib(self.pid))


def run_measured(cmd: list[str]) -> Run:
    """Run ``cmd`` to completion; return its wall time and peak memory (see module doc)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=child_env()
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        # the sampler stops before the child is reaped, so its pid is never reused meanwhile
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        sampler.done.set()
        sampler.join()
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
            tree_rss_kib=max(sampler.peak, usage.ru_maxrss),
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


def prepare_input(workdir: Path, records: int, case: str = "zeek-conn") -> Path:
    """Reuse ``conn-<N>.json`` (``vpcflow-<N>.log``) if it holds N lines, else generate it."""
    name = f"conn-{records}.json" if case == "zeek-conn" else f"vpcflow-{records}.log"
    path = workdir / name
    if path.is_file() and count_lines(path) == records:
        log(f"reusing {path} ({records:,} records)")
        return path
    log(f"generating {path} ({records:,} records, seed {SEED}) ...")
    start = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    (generate if case == "zeek-conn" else generate_aws_vpc)(tmp, records, SEED)
    tmp.replace(path)
    log(f"generated in {time.perf_counter() - start:.1f}s")
    return path


def prepare_head(src: Path, workdir: Path, records: int) -> Path:
    """The first ``records`` lines of ``src`` as ``conn-<N>-head.json`` (reused if present)."""
    path = workdir / f"conn-{records}-head.json"
    if path.is_file() and count_lines(path) == records:
        return path
    tmp = path.with_suffix(".json.tmp")
    with src.open("rb") as fh, tmp.open("wb") as out:
        for _, line in zip(range(records), fh, strict=False):
            out.write(line)
    tmp.replace(path)
    return path


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_once(src: Path, runs_dir: Path, records: int, case: str = "zeek-conn") -> Run:
    out = runs_dir / "duckdb.parquet"
    out.unlink(missing_ok=True)
    if case == "zeek-conn":
        reader = f"read_json({sql_string(str(src))}, format='newline_delimited')"
    else:  # space-separated records without a header, types detected by DuckDB
        reader = f"read_csv({sql_string(str(src))}, delim=' ', header=false)"
    sql = f"COPY (SELECT * FROM {reader}) TO {sql_string(str(out))} (FORMAT parquet)"
    run = run_measured([sys.executable, "-c", DUCKDB_CHILD, sql])
    check(run, "duckdb COPY")
    copied = int(run.stdout.split()[-1])
    if copied != records:
        raise SystemExit(f"duckdb COPY wrote {copied:,} rows, expected {records:,}")
    out.unlink()
    return run


def build_store(acdkit: str, src: Path, store: Path, key: Path, records: int) -> Run:
    """Init a fresh store and time ``ingest --seal`` of ``src`` into it."""
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
    return ingest


def verify_once(acdkit: str, store: Path, records: int) -> Run:
    """Time a full ``verify`` of a store, which must report VERIFIED for every record.

    The benchmark knows how many records it sealed: ``--expect-min-size`` passes that as
    the outside knowledge a store's verdict needs (a rollback below it would be TAMPERED).
    """
    cmd = [acdkit, "verify", str(store), "--json", "--expect-min-size", str(records)]
    verify = run_measured(cmd)
    check(verify, "acdkit verify")
    doc = json.loads(verify.stdout)
    if doc.get("verdict") != "VERIFIED":
        raise SystemExit(f"acdkit verify exited 0 but reported {doc.get('verdict')!r}")
    if doc["facts"]["tree_size"] < records:
        raise SystemExit(f"acdkit verify covered {doc['facts']['tree_size']:,} leaves only")
    return verify


def summarize(runs: list[Run], records: int) -> Summary:
    best = min(r.seconds for r in runs)
    return Summary(
        best_seconds=round(best, 3),
        all_seconds=[round(r.seconds, 3) for r in runs],
        max_rss_mib=round(max(r.max_rss_kib for r in runs) / 1024, 1),
        rate=round(records / best, 1),
        max_tree_rss_mib=round(max(r.tree_rss_kib for r in runs) / 1024, 1),
    )


def compile_acdkit(pkg: str) -> None:
    """Write the bytecode of acdkit's modules, as `pip install` does for a wheel; an
    editable install would otherwise compile every module on each run when the environment
    sets PYTHONDONTWRITEBYTECODE."""
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", pkg], capture_output=True,
                          text=True, env=child_env())  # fmt: skip
    if done.returncode != 0:
        log(f"could not compile acdkit's bytecode in {pkg}; its start-up includes compiling")


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
        "sha256_engine": sha256_engine(),
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
    print(f"case               {doc['case']}")
    print(f"records            {doc['records']:,} (input {doc['input_mib']:,.1f} MiB)")
    print(f"repeats            {doc['repeats']} (best time of each)")
    print(f"{'command':<34} {'best s':>7} {'records/s':>11} {'peak RSS':>9} {'tree RSS':>9}  (MiB)")
    baseline = "json" if doc["case"] == "zeek-conn" else "csv"
    rows = [(f"duckdb COPY {baseline}->parquet", doc["duckdb"])]
    if doc.get("acdkit"):
        rows.append(("acdkit ingest --seal", doc["acdkit"]))
    if doc.get("acdkit_verify"):
        rows.append((f"acdkit verify ({doc['records']:,})", doc["acdkit_verify"]))
    if doc.get("acdkit_verify_small"):
        rows.append((f"acdkit verify ({doc['small_records']:,})", doc["acdkit_verify_small"]))
    for name, s in rows:
        print(
            f"{name:<34} {s['best_seconds']:>7.2f} {s['rate']:>11,.0f} "
            f"{s['max_rss_mib']:>9,.1f} {s['max_tree_rss_mib']:>9,.1f}"
        )
    for name, s in rows:
        print(f"  all times {name}: {' / '.join(f'{t:.2f}' for t in s['all_seconds'])}")
    if doc.get("verify_ratio_per_repeat"):
        print(
            "  per-repeat verify ratio (duckdb s / verify s): "
            + " / ".join(f"{r:.2f}" for r in doc["verify_ratio_per_repeat"])
        )
    if doc.get("acdkit_phases_of_best_run"):
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in doc["acdkit_phases_of_best_run"].items())
        print(f"acdkit phases      {phases} (as reported by acdkit --json, best run)")
    src = doc["acdkit_source"]
    changed = " (CHANGED during the run)" if doc["acdkit_source_changed_during_run"] else ""
    print(f"acdkit source      {src['git']} sha256 {src['sha256'][:12]}{changed}")
    print(f"acdkit SHA-256     {doc['machine']['sha256_engine']} (batches of leaves and nodes)")
    if doc.get("ratio") is not None:
        met = "met" if doc["target_met"] else "NOT met"
        print(f"ratio acdkit/duckdb {doc['ratio']:.3f} (target >= {TARGET_RATIO}: {met})")
    if doc.get("verify_ratio") is not None:
        met = "met" if doc["verify_target_met"] else "NOT met"
        print(
            f"ratio duckdb/verify {doc['verify_ratio']:.3f} (best times; > 1: verify is faster; "
            f"target >= {TARGET_VERIFY_RATIO}: {met})"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
        "--small-records",
        type=int,
        default=DEFAULT_SMALL_RECORDS,
        help="records in the smaller store also verified in each repeat, 0 for none "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="build the stores once, untimed, and time only DuckDB and verify",
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
    parser.add_argument(
        "--pure-sha256",
        action="store_true",
        help="make acdkit hash through hashlib even where its batch SHA-256 library is built",
    )
    parser.add_argument(
        "--case",
        choices=("zeek-conn", "aws-vpc", "evtx"),
        default="zeek-conn",
        help="input: Zeek conn JSON (default), an AWS VPC flow log (no verify timed) "
        "or the EVTX samples (see evtx_case.py)",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        default=Path(os.environ.get("ACDKIT_SAMPLES", BENCH_DIR.parents[1] / "shared" / "samples")),
        help="the shared sample folder, for --case evtx (default $ACDKIT_SAMPLES or "
        "../shared/samples)",
    )
    parser.add_argument(
        "--evtx-events",
        type=int,
        default=200_000,
        help="at least this many events for --case evtx (default %(default)s)",
    )
    parser.add_argument(
        "--evtx-layout",
        choices=("copies", "assembled", "both"),
        default="both",
        help="distinct copies of the sample files, or their chunks assembled into "
        "--evtx-files larger files, or both (default %(default)s)",
    )
    parser.add_argument(
        "--evtx-files",
        type=int,
        default=8,
        help="files of the assembled layout (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.case == "aws-vpc":
        if args.verify_only:
            parser.error("--case aws-vpc times ingest only")
        args.small_records = 0
    if args.records < 1 or args.repeats < 1 or args.small_records < 0:
        parser.error("--records and --repeats must be positive, --small-records not negative")
    if args.small_records and args.small_records >= args.records:
        parser.error("--small-records must be below --records")
    return args


def log_run(i: int, repeats: int, name: str, run: Run) -> None:
    log(
        f"[{i + 1}/{repeats}] {name:<14} {run.seconds:7.2f}s {run.max_rss_kib / 1024:8.1f} MiB "
        f"(tree {run.tree_rss_kib / 1024:.1f} MiB)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    PURE_SHA256["on"] = args.pure_sha256
    if args.case == "evtx":
        return evtx_case.evtx_main(sys.modules[__name__], args)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    src = prepare_input(workdir, args.records, args.case)
    timed_verify = args.case == "zeek-conn"
    small_src = prepare_head(src, workdir, args.small_records) if args.small_records else None
    acdkit = find_acdkit()
    source_before = acdkit_source()
    compile_acdkit(source_before["path"])

    small_store = workdir / "store-small"
    if small_src is not None:
        log(f"building the {args.small_records:,}-record store (not timed) ...")
        build_store(acdkit, small_src, small_store, workdir / "small.key", args.small_records)
    fixed_store = workdir / "store-verify"
    if args.verify_only:
        log(f"building the {args.records:,}-record store (not timed) ...")
        build_store(acdkit, src, fixed_store, workdir / "verify.key", args.records)

    duck_runs: list[Run] = []
    ingest_runs: list[Run] = []
    verify_runs: list[Run] = []
    small_runs: list[Run] = []
    for i in range(args.repeats):
        runs_dir = workdir / f"run-{i}"
        runs_dir.mkdir(exist_ok=True)
        duck = duckdb_once(src, runs_dir, args.records, args.case)
        duck_runs.append(duck)
        log_run(i, args.repeats, "duckdb", duck)
        store = fixed_store
        if not args.verify_only:
            store = runs_dir / "store"
            ingest = build_store(acdkit, src, store, runs_dir / "sealer.key", args.records)
            ingest_runs.append(ingest)
            log_run(i, args.repeats, "ingest --seal", ingest)
        if timed_verify:
            verify = verify_once(acdkit, store, args.records)
            verify_runs.append(verify)
            log_run(i, args.repeats, "verify", verify)
        if small_src is not None:
            small = verify_once(acdkit, small_store, args.small_records)
            small_runs.append(small)
            log_run(i, args.repeats, "verify small", small)
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(small_store, ignore_errors=True)
        shutil.rmtree(fixed_store, ignore_errors=True)

    source_after = acdkit_source()
    source_changed = source_after["sha256"] != source_before["sha256"]
    if source_changed:
        log("warning: the acdkit source changed during the run; the numbers mix versions")

    duck_s = summarize(duck_runs, args.records)
    ver_s = summarize(verify_runs, args.records) if verify_runs else None
    verify_ratio = duck_s.best_seconds / ver_s.best_seconds if ver_s else None
    doc: dict[str, Any] = {
        "case": args.case,
        "records": args.records,
        "small_records": args.small_records,
        "input": str(src),
        "input_mib": round(src.stat().st_size / (1 << 20), 1),
        "repeats": args.repeats,
        "verify_only": args.verify_only,
        "duckdb": asdict(duck_s),
        "acdkit": None,
        "acdkit_phases_of_best_run": None,
        "acdkit_verify": asdict(ver_s) if ver_s else None,
        "acdkit_verify_small": asdict(summarize(small_runs, args.small_records))
        if small_runs
        else None,
        "ratio": None,
        "target_ratio": TARGET_RATIO,
        "target_met": None,
        "verify_ratio": round(verify_ratio, 3) if verify_ratio else None,
        "verify_ratio_per_repeat": [
            round(d.seconds / v.seconds, 3)
            for d, v in zip(duck_runs, verify_runs, strict=bool(verify_runs))
        ],
        "target_verify_ratio": TARGET_VERIFY_RATIO,
        "verify_target_met": verify_ratio >= TARGET_VERIFY_RATIO if verify_ratio else None,
        "machine": machine(),
        "load_average": os.getloadavg(),
        "acdkit_source": source_before,
        "acdkit_source_changed_during_run": source_changed,
    }
    if ingest_runs:
        acd_s = summarize(ingest_runs, args.records)
        ratio = acd_s.rate / duck_s.rate
        doc["acdkit"] = asdict(acd_s)
        doc["acdkit_phases_of_best_run"] = min(ingest_runs, key=lambda r: r.seconds).phases
        doc["ratio"] = round(ratio, 3)
        doc["target_met"] = ratio >= TARGET_RATIO
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
