"""Crash safety: `ingest --seal` and `seal`, killed with SIGKILL at random moments.

Each trial starts the real command as a subprocess on a fresh store (six distinct ~1 MB Zeek
JSON files built from a real sample, 18,000 records, sealed as six segments), kills its
whole process group at a seeded random time within the command's run, and then asserts:
`verify` says VERIFIED or INCOMPLETE, never TAMPERED or MALFORMED; the same command run
again completes and the store verifies; every input record is in the store exactly once
(as many per source file as a clean run gives, no (src_ledger_id, src_line) twice).

ACDKIT_CRASH_KILLS sets the number of kills (default 20) and ACDKIT_CRASH_SEED the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from _evidence import DATA
from acdkit import ingest, schema, verify
from acdkit.errors import ExitCode
from acdkit.ingest import sha256_file
from acdkit.store import Store, init_store

KILLS = int(os.environ.get("ACDKIT_CRASH_KILLS", "20"))
SEED = int(os.environ.get("ACDKIT_CRASH_SEED", "20260401"))
FILES, COPIES = 6, 60  # 6 files of 60 x 50 records each
PER_SEGMENT = 3_000  # one file per segment
ACDKIT = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "acdkit"


def distinct_conn_logs(base: Path) -> list[Path]:
    """Distinct files (a ledger skips repeats), each the OTRF-free zat conn log many times
    over with its connection ids made unique."""
    lines = (DATA / "zeek-json/zat/conn.log").read_text().splitlines()
    out = []
    for f in range(FILES):
        rows = [
            line.replace('"uid":"C', f'"uid":"K{f}{c:03d}', 1)
            for c in range(COPIES)
            for line in lines
        ]
        path = base / f"conn-{f}.log"
        path.write_text("\n".join(rows) + "\n")
        out.append(path)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return distinct_conn_logs(tmp_path_factory.mktemp("inputs"))


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ACDKIT_KEY_DIR": str(tmp / "user-keys"),
        "ACDKIT_SEAL_MAX_RECORDS": str(PER_SEGMENT),
    }


def _fresh(tmp: Path, name: str) -> tuple[Store, Path]:
    key = tmp / f"{name}.key"
    store, _ = init_store(tmp / name, key, "crash-test")
    return store, key


def _command(kind: str, store: Store, key: Path, inputs: list[Path]) -> list[str]:
    if kind == "ingest --seal":
        return [
            str(ACDKIT),
            "ingest",
            str(store.root),
            *map(str, inputs),
            "--seal",
            "--key",
            str(key),
        ]
    return [str(ACDKIT), "seal", str(store.root), "--key", str(key)]


def _run(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def _run_and_kill(cmd: list[str], env: dict[str, str], after: float) -> int | None:
    """Start the command in a process group of its own, SIGKILL the group after ``after``
    seconds; its exit code if it finished first."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        proc.wait(timeout=after)
        return proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None
    finally:
        if proc.stderr is not None:
            proc.stderr.close()


def _records(store: Store) -> tuple[Counter[str], int]:
    """Sealed records per source file, and how many (source, line) pairs occur twice."""
    per_file: Counter[str] = Counter()
    pairs: Counter[tuple[str, int]] = Counter()
    for seg in store.segment_dirs():
        for table in schema.TABLES:
            path = seg / f"{table}.parquet"
            if path.is_file():
                t = pq.read_table(path, columns=["src_ledger_id", "src_line"])
                for item in pc.value_counts(t.column(0)).to_pylist():
                    per_file[item["values"]] += item["counts"]
                pairs.update(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
    return per_file, sum(1 for n in pairs.values() if n > 1)


@pytest.fixture(scope="module")
def clean(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A clean run of each command: how long it takes and what it leaves."""
    tmp = tmp_path_factory.mktemp("clean")
    env = _env(tmp)
    store, key = _fresh(tmp, "ingest")
    seconds = {"ingest --seal": _run(_command("ingest --seal", store, key, inputs), env)}
    counts, doubles = _records(store)
    assert doubles == 0 and len(store.segment_dirs()) == FILES
    assert sorted(counts) == sorted(sha256_file(p)[0] for p in inputs)
    assert set(counts.values()) == {COPIES * 50}
    other, key2 = _fresh(tmp, "seal")
    ingest.ingest(other, inputs)
    seconds["seal"] = _run(_command("seal", other, key2, inputs), env)
    started = time.monotonic()
    subprocess.run([str(ACDKIT), "--version"], env=env, capture_output=True, check=True)
    return {"seconds": seconds, "startup": time.monotonic() - started, "counts": counts}


def test_killed_ingest_and_seal_leave_a_store_that_verifies_and_recovers(
    inputs: list[Path], clean: dict[str, object], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    env = _env(tmp_path)
    seconds: dict[str, float] = clean["seconds"]  # type: ignore[assignment]
    startup: float = clean["startup"]  # type: ignore[assignment]
    outcomes: Counter[str] = Counter()
    for trial in range(KILLS):
        kind = ("ingest --seal", "seal")[trial % 2]
        store, key = _fresh(tmp_path, f"t{trial}")
        if kind == "seal":
            ingest.ingest(store, inputs)
        cmd = _command(kind, store, key, inputs)
        # mostly inside the work, past the interpreter's start-up; now and then sooner
        after = rng.uniform(0.6 * startup if rng.random() < 0.8 else 0.0, seconds[kind] * 1.1)
        if trial == 0:
            # whatever the host's timing: a kill of a rerun with nothing left to do must
            # leave a sealed store as it was, VERIFIED
            _run(cmd, env)
            kind = "rerun of ingest --seal"
        code = _run_and_kill(cmd, env, after)
        where = f"trial {trial}: {kind} killed after {after:.2f}s"
        report = verify.verify_store(store, require_outside=False)
        allowed = (ExitCode.OK,) if trial == 0 else (ExitCode.OK, ExitCode.INCOMPLETE)
        assert report.verdict in allowed, (where, report.to_json())
        outcomes[report.verdict_name if code is None else "finished"] += 1
        _run(cmd, env)  # the same command again completes the work
        report = verify.verify_store(store, require_outside=False)
        assert report.verdict == ExitCode.OK, (where, report.to_json())
        counts, doubles = _records(store)
        assert counts == clean["counts"] and doubles == 0, where
        assert not store.staged_dirs() and len(list(store.ledger_dir.glob("*.json"))) == FILES
    # (trial 0 is checked VERIFIED above) the random kills must land where work is unsealed
    assert outcomes["INCOMPLETE"], outcomes


def test_kill_inside_the_removal_of_a_sealed_input_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a moment too short for the random kills to hit reliably: seal has written the ledger
    # entry of a sealed input and is deleting its staging directory; the process dies with
    # part of it deleted (here: ledger.json first, as directory order may have it)
    from acdkit import keys, seal

    store, key = _fresh(tmp_path, "store")
    signer = keys.load_signer(key)
    ingest.ingest(store, [DATA / "zeek-json/zat/conn.log"])

    def dies_half_way(path: Path, *args: object, **kwargs: object) -> None:
        (Path(path) / "ledger.json").unlink(missing_ok=True)
        raise SystemExit("killed")

    monkeypatch.setattr(seal.shutil, "rmtree", dies_half_way)
    with pytest.raises(SystemExit):
        seal.seal(store, signer)
    monkeypatch.undo()

    assert verify.verify_store(store, require_outside=False).verdict in (
        ExitCode.OK,
        ExitCode.INCOMPLETE,
    )
    seal.seal(store, signer)  # the next run finishes the removal
    ingest.ingest(store, [DATA / "zeek-json/zat/dns.log"])
    seal.seal(store, signer)
    assert verify.verify_store(store, require_outside=False).verdict == ExitCode.OK
    counts, doubles = _records(store)
    assert sorted(counts.values()) == [50, 50] and doubles == 0
    assert not store.staged_dirs() and len(list(store.ledger_dir.glob("*.json"))) == 2
