"""Ingest: every line of a real file is accounted for, bad lines become rejects with their
line number, and re-running, compressing or forcing the format behaves as documented."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acdkit import ingest
from acdkit.errors import UsageError
from acdkit.sources import _lines
from acdkit.store import Store, init_store

# path under samples/, detected format, documented net and dns record counts (SOURCES.md)
REAL = [
    ("zeek-tsv/zat/conn.log", "zeek-tsv", 360, 0),
    ("zeek-tsv/zat/dns.log", "zeek-tsv", 0, 54),
    ("zeek-tsv/zat/ssl.log", "zeek-tsv", 37, 0),
    ("zeek-tsv/zat/http.log", "zeek-tsv", 150, 0),
    ("zeek-tsv/zat/conn_date_issue.log", "zeek-tsv", 3, 0),
    ("zeek-tsv/zat/http_empty.log", "zeek-tsv", 0, 0),
    ("zeek-tsv/slips-test10/conn.log", "zeek-tsv", 141, 0),
    ("zeek-tsv/slips-test10/dns.log", "zeek-tsv", 0, 93),
    ("zeek-tsv/slips-test10/ssl.log", "zeek-tsv", 13, 0),
    ("zeek-json/zat/conn.log", "zeek-json", 50, 0),
    ("zeek-json/zat/dns.log", "zeek-json", 0, 50),
    ("zeek-json/zat/ssl.log", "zeek-json", 50, 0),
    ("zeek-json/zat/http.log", "zeek-json", 28, 0),
    ("zeek-json/otrf-apt29/SCRANTON_ssl.log", "zeek-json", 2, 0),
    ("zeek-json/otrf-apt29/SCRANTON_http.log", "zeek-json", 62, 0),
    ("zeek-json/otrf-apt29/UTICA-C_conn.log", "zeek-json", 31, 0),
    ("zeek-json/otrf-apt29/UTICA-C_dns.log", "zeek-json", 0, 1),
    ("zeek-json/slips-test9/ssl.log", "zeek-json", 205, 0),
    ("suricata-eve/beats-eve-small.log", "suricata-eve", 3, 1),
    ("suricata-eve/beats-eve-dns-4.1.4.log", "suricata-eve", 0, 24),
    ("suricata-eve/magnc/eve.json", "suricata-eve", 227, 0),
]


# -- helpers ----------------------------------------------------------------------------------


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def staged_dir(store: Store, result: ingest.FileResult) -> Path:
    (d,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    return d


def staged(store: Store, result: ingest.FileResult) -> dict[str, pa.Table]:
    """net, dns, edr and lines tables of one ingested file (empty where none was written)."""
    d = staged_dir(store, result)
    out = {}
    for name in ("net", "dns", "edr"):
        t = ingest.read_staged(d, name)
        out[name] = t if t.num_rows else pa.table({})
    f = d / "lines.parquet"
    out["lines"] = pq.read_table(f) if f.is_file() else pa.table({})
    return out


def records(store: Store, result: ingest.FileResult, table: str) -> list[dict[str, Any]]:
    """Staged rows without the ledger id, so the same lines from two files compare equal."""
    t = staged(store, result)[table]
    if t.num_rows == 0:
        return []
    t = t.drop_columns(["src_ledger_id"])
    t = t.set_column(
        t.schema.get_field_index("ts_utc"), "ts_utc", t.column("ts_utc").cast(pa.int64())
    )
    return t.to_pylist()


def line_log(store: Store, result: ingest.FileResult) -> dict[int, tuple[str, str]]:
    """{line: (skip|reject, reason)} from the staged lines.parquet."""
    t = staged(store, result)["lines"]
    return {r["line"]: (r["kind"], r["reason"]) for r in t.to_pylist()}


def ingest_one(store: Store, path: Path, **kw: Any) -> ingest.FileResult:
    (result,) = ingest.ingest(store, [path], **kw).files
    return result


def other_store(tmp_path: Path, name: str) -> Store:
    st, _ = init_store(tmp_path / name, tmp_path / f"{name}-keys" / "sealer.key", "test-org")
    return st


# -- every real file --------------------------------------------------------------------------


def test_real_list_covers_every_zeek_and_suricata_sample(samples: Path) -> None:
    found = {
        p.relative_to(samples).as_posix()
        for folder in ("zeek-tsv", "zeek-json", "suricata-eve")
        for p in (samples / folder).rglob("*")
        if p.is_file() and p.suffix != ".md"
    }
    assert found == {rel for rel, *_ in REAL}


@pytest.mark.parametrize(("rel", "fmt", "net", "dns"), REAL)
def test_real_file_every_line_accounted(
    store: Store, real: Callable[[str], Path], rel: str, fmt: str, net: int, dns: int
) -> None:
    path = real(rel)
    raw = path.read_bytes()
    n_lines = count_lines(raw)

    result = ingest_one(store, path)
    assert (result.status, result.format, result.exit_code) == ("ingested", fmt, 0)
    assert result.lines == n_lines
    assert result.record_count + result.skipped + result.rejected == n_lines
    assert result.records == {"net": net, "dns": dns, "edr": 0}
    assert result.rejected == 0

    tables = staged(store, result)
    assert tables["net"].num_rows == net and tables["dns"].num_rows == dns
    logged = line_log(store, result)
    assert len(logged) == result.skipped + result.rejected
    seen = [*logged]
    for t in ("net", "dns"):
        if tables[t].num_rows:
            seen += tables[t].column("src_line").to_pylist()
    assert sorted(seen) == list(range(1, n_lines + 1))  # each line exactly once

    if fmt == "zeek-tsv":  # the only skips in a clean TSV file are its header lines
        headers = [i for i, t in enumerate(raw.splitlines(), 1) if t.lstrip(b"\t").startswith(b"#")]
        assert logged == {i: ("skip", "Zeek header line") for i in headers}


def test_ledger_entry_describes_the_file(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-json/otrf-apt29/UTICA-C_conn.log")
    result = ingest_one(store, path, sensor="collector-1")
    entry = json.loads((staged_dir(store, result) / "ledger.json").read_text())

    raw = path.read_bytes()
    assert entry["sha256"] == hashlib.sha256(raw).hexdigest() == result.sha256
    assert (entry["size"], entry["name"], entry["format"]) == (len(raw), path.name, "zeek-json")
    assert (entry["lines"], entry["records"]["net"], entry["sensor"]) == (31, 31, "collector-1")
    ts = staged(store, result)["net"].column("ts_utc").cast(pa.int64()).to_pylist()
    assert (entry["ts_min_ns"], entry["ts_max_ns"]) == (min(ts), max(ts))
    assert store.ledger_entry(result.sha256) == entry


def test_skips_name_the_event_type(store: Store, real: Callable[[str], Path]) -> None:
    small = ingest_one(store, real("suricata-eve/beats-eve-small.log"))
    assert line_log(store, small) == {
        1: ("skip", "event_type 'ssh' is not ingested"),
        2: ("skip", "event_type 'alert' is not ingested"),
        4: ("skip", "event_type 'fileinfo' is not ingested"),
        6: ("skip", "event_type 'stats' is not ingested"),
    }
    magnc = ingest_one(store, real("suricata-eve/magnc/eve.json"))
    assert magnc.skip_reasons == {
        "event_type 'ssh' is not ingested": 13,
        "event_type 'stats' is not ingested": 13,
    }


# -- re-ingest, gzip, --format, unknown content -----------------------------------------------


def test_reingest_is_a_no_op(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/zat/dns.log")
    first = ingest_one(store, path)
    before = sorted(p.name for p in store.staging.iterdir())

    again = ingest_one(store, path)
    assert (again.status, again.sha256, again.record_count) == ("already ingested", first.sha256, 0)
    assert sorted(p.name for p in store.staging.iterdir()) == before
    assert len(store.ledger()) == 1


@pytest.mark.parametrize(
    "rel", ["zeek-json/zat/dns.log", "zeek-tsv/zat/http.log", "suricata-eve/beats-eve-small.log"]
)
def test_gzip_gives_the_same_records(
    store: Store, real: Callable[[str], Path], tmp_path: Path, rel: str
) -> None:
    path = real(rel)
    packed = tmp_path / (path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))

    plain, gz = ingest_one(store, path), ingest_one(store, packed)
    assert gz.status == "ingested" and gz.sha256 != plain.sha256
    assert (gz.format, gz.lines, gz.records, gz.skipped) == (
        plain.format,
        plain.lines,
        plain.records,
        plain.skipped,
    )
    for table in ("net", "dns"):
        assert records(store, gz, table) == records(store, plain, table)
    assert line_log(store, gz) == line_log(store, plain)


def test_forced_format_matches_detection(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    path = real("zeek-json/zat/conn.log")
    detected = ingest_one(store, path)
    forced = ingest_one(other_store(tmp_path, "forced"), path, fmt="zeek-json")
    assert (forced.format, forced.records) == (detected.format, detected.records)


@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        ("suricata-eve/beats-eve-small.log", "zeek-json"),
        ("zeek-json/zat/conn.log", "suricata-eve"),
        ("zeek-json/zat/conn.log", "zeek-tsv"),
        ("zeek-tsv/zat/conn.log", "zeek-json"),
        ("zeek-tsv/zat/conn.log", "suricata-eve"),
    ],
)
def test_wrong_forced_format_rejects_lines(
    store: Store, real: Callable[[str], Path], rel: str, fmt: str
) -> None:
    path = real(rel)
    result = ingest_one(store, path, fmt=fmt)
    assert (result.status, result.format, result.record_count) == ("ingested", fmt, 0)
    assert result.skipped + result.rejected == count_lines(path.read_bytes())
    assert len(line_log(store, result)) == result.lines


def test_unknown_format_name_fails_before_reading(
    store: Store, real: Callable[[str], Path]
) -> None:
    with pytest.raises(UsageError):
        ingest.ingest(store, [real("zeek-json/zat/conn.log")], fmt="netflow-v9")
    assert store.staged_dirs() == []


def test_unidentifiable_file_fails_alone(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("incident call notes\nnothing machine-readable here\n")
    good = real("zeek-json/zat/conn.log")

    failed, ok = ingest.ingest(store, [text, good]).files
    assert (failed.status, failed.exit_code) == ("failed", 4)
    assert "could not identify the input format" in failed.error
    for name in ("suricata-eve", "zeek-json", "zeek-tsv"):
        assert name in failed.error
    assert (ok.status, ok.records["net"]) == ("ingested", 50)
    assert len(store.staged_dirs()) == 1


def test_missing_input_is_a_usage_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        ingest.ingest(store, [tmp_path / "nope.log"])


def test_an_input_that_is_no_regular_file_is_named_for_what_it_is(
    store: Store, tmp_path: Path
) -> None:
    # each was "does not exist or is not a file", though the directory and the pipe exist
    (tmp_path / "logs").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for name, problem, hint in (
        ("logs", "is a directory", "give the log files in it (DIR/*.log)"),
        ("pipe", "is a named pipe (FIFO)", "save the stream to a file first"),
        ("loop-a", "is a symbolic link loop", None),
        ("dangling", "is a broken symbolic link", None),
    ):
        with pytest.raises(UsageError) as caught:
            ingest.ingest(store, [tmp_path / name])
        assert caught.value.message == f"input {tmp_path / name} {problem}"
        assert (caught.value.hint or "").endswith(hint or "")
        assert bool(caught.value.hint) == bool(hint)
    assert store.ledger() == []


def test_a_compressed_stream_no_reader_expected_to_break_fails_that_file(
    store: Store, real: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an EOFError that escaped a reader reached Typer, which printed "Aborted." and exited
    # 1, the code of TAMPERED; it is a MALFORMED file now, and the other files still go in
    lines = real("zeek-json/zat/conn.log").read_bytes().splitlines(keepends=True)
    good = tmp_path / "good.log"
    good.write_bytes(b"".join(lines[:3]))
    broken = tmp_path / "broken.log"
    broken.write_bytes(b"".join(lines[3:6]))
    real_read = ingest.read_raw

    def read(fh: Any) -> Any:
        if getattr(fh, "name", "").endswith("broken.log"):
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        return real_read(fh)

    monkeypatch.setattr(ingest, "read_raw", read)
    first, second = ingest.ingest(store, [broken, good]).files
    assert (first.status, first.exit_code) == ("failed", 4)
    assert first.error == f"{broken}: compressed input is truncated or corrupt"
    assert (second.status, second.record_count) == ("ingested", 3)


# -- bad lines --------------------------------------------------------------------------------

LEAKS = ("CANARY", "70000", "999.", "1e20", "fe80", "2018-07-05", "\xff")


def _set(line: bytes, **fields: Any) -> bytes:
    obj = json.loads(line)
    for key, value in fields.items():
        obj[key.replace("__", ".")] = value
    return json.dumps(obj).encode() + b"\n"


def test_bad_json_lines_are_rejected_with_line_numbers(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    good = real("zeek-json/zat/conn.log").read_bytes().splitlines(keepends=True)
    lines = [
        good[0],  # 1
        b'{"ts":1575413122.7,"uid":"CANARY-bad-json-7f3a"\n',  # 2 cut-off object
        good[1],  # 3
        b'["CANARY-array-7f3a", 1]\n',  # 4 not an object
        b"\xff\xfe CANARY-utf8-7f3a\n",  # 5 not UTF-8
        b"\n",  # 6 blank
        good[2],  # 7
        b" \t \r\n",  # 8 blank with CRLF
        _set(good[3], id__orig_p=70000),  # 9
        _set(good[4], id__resp_h="999.1.2.3"),  # 10
        _set(good[5], id__orig_h="fe80::1%CANARY-zone-7f3a"),  # 11 zone IDs are free text
        _set(good[6], ts=1e20),  # 12 would overflow int64 ns
        _set(good[7], ts="2018-07-05T15:01:09"),  # 13 local time without a zone
        _set(good[8], duration="CANARY-duration-7f3a"),  # 14
        good[9].rstrip(b"\n"),  # 15 last line without a newline
    ]
    path = tmp_path / "conn.log"
    path.write_bytes(b"".join(lines))

    result = ingest_one(store, path)
    assert (result.lines, result.records["net"], result.skipped, result.rejected) == (15, 4, 2, 9)
    assert line_log(store, result) == {
        2: ("reject", "invalid JSON"),
        4: ("reject", "JSON value is not an object"),
        5: ("reject", "invalid UTF-8 at byte 0 of the line"),
        6: ("skip", "blank line"),
        8: ("skip", "blank line"),
        9: ("reject", "invalid source port"),
        10: ("reject", "invalid address in dst_ip"),
        11: ("reject", "invalid address in src_ip"),
        12: ("reject", "missing or invalid timestamp"),
        13: ("reject", "missing or invalid timestamp"),
        14: ("reject", "invalid duration"),
    }
    net = records(store, result, "net")
    uids = [json.loads(good[i])["uid"] for i in (0, 1, 2, 9)]
    assert [(r["src_line"], r["session_id"]) for r in net] == list(
        zip([1, 3, 7, 15], uids, strict=True)
    )
    for reason in (*result.reject_reasons, *result.skip_reasons):
        assert not any(leak in reason for leak in LEAKS), reason


def test_json_lines_are_parsed_without_try_until_a_line_needs_it(
    real: Callable[[str], Path],
) -> None:
    # TRY(from_json) on every line cost 10-25 %: it is kept to lines that do not start with
    # "{"; a chunk where one that does is not JSON runs again under TRY, with the same rows
    import duckdb

    from acdkit import sources
    from acdkit.sources._lines import LineChunk

    lines = real("zeek-json/zat/conn.log").read_text().splitlines(keepends=True)[:6]
    hostile = [*lines[:2], '{"ts": 1, "uid": "C1", "bad\n', "  " + lines[2], "\n", *lines[3:]]
    con = duckdb.connect()
    parser = sources.get("zeek-json").make_parser(sources.Context(con))

    def outcome(text: list[str]) -> tuple[list[Any], list[Any]]:
        parsed = parser.parse(LineChunk(1, pa.array(text, pa.large_string())))
        rows = parsed.tables["net"].select(["src_line", "session_id", "ts_utc"]).to_pylist()
        lines_ = [r for t in parsed.rejects + parsed.skips for r in t.to_pylist()]
        return rows, sorted(lines_, key=lambda r: r["line"])

    clean = outcome(lines)
    assert parser.json.careful is False  # type: ignore[attr-defined]
    fast = outcome(hostile)
    assert parser.json.careful is True  # type: ignore[attr-defined]
    assert fast[1] == [
        {"line": 3, "reason": "invalid JSON"},
        {"line": 5, "reason": "blank line"},
    ]
    assert [r["src_line"] for r in fast[0]] == [1, 2, 4, 6, 7, 8]
    assert [r["session_id"] for r in fast[0]] == [r["session_id"] for r in clean[0]]
    # the careful parser gives the same for the clean lines as the fast one did
    assert outcome(lines) == clean


def test_bad_tsv_lines_are_rejected_with_line_numbers(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    raw = real("zeek-tsv/zat/conn.log").read_bytes().splitlines(keepends=True)
    header, rows = raw[:8], raw[8:]
    fields = [f.split(b"\t") for f in rows[:8]]

    def row(i: int, **change: bytes) -> bytes:
        values = list(fields[i])
        for pos, value in change.items():
            values[int(pos[1:])] = value
        return b"\t".join(values)

    lines = [
        *header,  # 1-8
        rows[0],  # 9
        b"\t".join(fields[1][:-1]) + b"\n",  # 10 a field short
        rows[2],  # 11
        rows[3].rstrip(b"\n") + b"\textra\n",  # 12 a field too many
        row(4, f5=b"70000"),  # 13 id.resp_p
        row(5, f2=b"10.0.0.999"),  # 14 id.orig_h
        b"\xc3\x28" + rows[6],  # 15 not UTF-8
        b"\n",  # 16
        rows[7],  # 17
        b"#close\t2014-04-03-10-08-27\n",  # 18
    ]
    path = tmp_path / "conn.log"
    path.write_bytes(b"".join(lines))

    result = ingest_one(store, path)
    assert (result.lines, result.records["net"], result.rejected) == (18, 3, 5)
    logged = line_log(store, result)
    assert {i: v for i, v in logged.items() if v != ("skip", "Zeek header line")} == {
        10: ("reject", "expected 20 fields, found 19"),
        12: ("reject", "expected 20 fields, found 21"),
        13: ("reject", "invalid destination port"),
        14: ("reject", "invalid address in src_ip"),
        15: ("reject", "invalid UTF-8 at byte 0 of the line"),
        16: ("skip", "blank line"),
    }
    assert [i for i, v in logged.items() if v == ("skip", "Zeek header line")] == [*range(1, 9), 18]
    uids = [r["session_id"] for r in records(store, result, "net")]
    assert uids == [fields[i][1].decode() for i in (0, 2, 7)]


# CRLF, BOM and truncated gzip: tests/test_hostile.py, for every text format


def test_same_size_other_file_is_ingested_and_hashed_right(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    # a file of a size the ledger knows is hashed before it is read; one of a new size is
    # hashed while it is read: both must give the file's true digest
    path = real("zeek-json/zat/conn.log")
    raw = path.read_bytes()
    twin = tmp_path / "twin.log"
    twin.write_bytes(raw.replace(b'"tcp"', b'"udp"', 1))
    assert len(twin.read_bytes()) == len(raw) and twin.read_bytes() != raw

    first, second = ingest_one(store, path), ingest_one(store, twin)
    assert first.sha256 == hashlib.sha256(raw).hexdigest()
    assert second.sha256 == hashlib.sha256(twin.read_bytes()).hexdigest()
    assert second.status == "ingested" and second.record_count == first.record_count
    again = ingest.ingest(store, [twin, path]).files
    assert [f.status for f in again] == ["already ingested", "already ingested"]
    for result in (first, second):
        ids = staged(store, result)["net"].column("src_ledger_id").to_pylist()
        assert set(ids) == {result.sha256}


def test_chunk_boundaries_do_not_matter(
    store: Store, real: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # odd block sizes cut lines; 333 bytes also splits conn_date_issue.log's header block,
    # whose state (separator, fields) the TSV parser must carry from chunk to chunk
    files = [
        (real("zeek-tsv/zat/conn_date_issue.log"), 333),
        (real("zeek-tsv/zat/dns.log"), 1499),
        (real("zeek-json/zat/http.log"), 1499),
    ]
    small = other_store(tmp_path, "small-blocks")
    for path, block in files:
        whole = ingest_one(store, path)
        with monkeypatch.context() as m:
            m.setattr(_lines, "BLOCK", block)
            cut = ingest_one(small, path)
        assert whole.record_count > 0
        assert (cut.lines, cut.records, cut.skipped, cut.rejected) == (
            whole.lines,
            whole.records,
            whole.skipped,
            whole.rejected,
        )
        for table in ("net", "dns"):
            assert records(small, cut, table) == records(store, whole, table)
        assert line_log(small, cut) == line_log(store, whole)


def test_over_long_line_is_rejected(
    store: Store, real: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = real("zeek-json/zat/conn.log").read_bytes().splitlines(keepends=True)
    path = tmp_path / "conn.log"
    path.write_bytes(good[0] + _set(good[1], pad="x" * 5000) + good[1] + good[2])
    monkeypatch.setattr(_lines, "BLOCK", 700)
    monkeypatch.setattr(_lines, "MAX_LINE", 1000)

    result = ingest_one(store, path)
    assert (result.lines, result.records["net"]) == (4, 3)
    assert line_log(store, result) == {2: ("reject", "line longer than 1000 bytes")}
    assert [r["src_line"] for r in records(store, result, "net")] == [1, 3, 4]


def test_suricata_times_outside_int64_ns(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    lines = real("suricata-eve/beats-eve-small.log").read_bytes().splitlines(keepends=True)
    http = json.loads(lines[2])
    flow = json.loads(lines[7])
    variants = [
        {**http, "timestamp": "1900-01-01T00:00:00.000000+0000"},  # old Suricata, bogus clock
        {**http, "timestamp": "2500-01-01T00:00:00.000000+0000"},  # beyond int64 ns
        {**flow, "flow": {**flow["flow"], "start": "2500-01-01T00:00:00.000000+0000"}},
        {**flow, "flow": {**flow["flow"], "end": "2500-01-01T00:00:00.000000+0000"}},
    ]
    path = tmp_path / "eve.json"
    path.write_bytes(b"".join(json.dumps(v).encode() + b"\n" for v in variants))

    result = ingest_one(store, path)
    assert result.status == "ingested"
    assert line_log(store, result) == {
        2: ("reject", "missing or invalid timestamp"),
        3: ("reject", "missing or invalid timestamp"),
        4: ("reject", "invalid duration"),
    }
    (row,) = records(store, result, "net")
    assert row["ts_utc"] == -2_208_988_800 * 10**9
    assert [c["findings"]["before_1990"]["records"] for c in result.clock_skew] == [1]
    assert not any("1990" in w for w in result.warnings)


def test_skip_reasons_never_echo_input(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    eve = json.loads(real("suricata-eve/beats-eve-small.log").read_bytes().splitlines()[0])
    zeek = json.loads(real("zeek-json/zat/conn.log").read_bytes().splitlines()[0])
    tsv = real("zeek-tsv/zat/conn.log").read_text().replace("#path\tconn", "#path\tCANARY-p")
    files = {
        "eve.json": json.dumps({**eve, "event_type": "CANARY-event-7f3a"}) + "\n",
        "zeek.log": json.dumps({**zeek, "_path": "CANARY-path-7f3a"}) + "\n",
        "tsv.log": tsv,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    results = ingest.ingest(store, [tmp_path / n for n in files]).files
    reasons = [set(r.skip_reasons) for r in results]
    assert reasons == [
        {"event_type not recognised"},
        {"Zeek log type not recognised"},
        {"Zeek header line", "Zeek log type not recognised"},
    ]
    for r in results:
        assert r.record_count == 0
        assert "canary" not in json.dumps(line_log(store, r)).lower()


@pytest.mark.parametrize(
    ("content", "lines"), [(b"", 0), (b"\n\n  \n\r\n", 4), (b"\xef\xbb\xbf\n", 1)]
)
def test_empty_or_blank_file_is_ingested_as_empty(
    store: Store, tmp_path: Path, content: bytes, lines: int
) -> None:
    # a log rotated before anything was written must not fail a cron job
    path = tmp_path / "rotated.log"
    path.write_bytes(content)
    result = ingest.ingest(store, [path]).files[0]
    assert (result.status, result.format, result.exit_code) == ("ingested", "empty", 0)
    assert (result.lines, result.skipped, result.record_count) == (lines, lines, 0)
    assert result.skip_reasons == ({"blank line": lines} if lines else {})
    assert store.ledger_entry(result.sha256)["format"] == "empty"  # type: ignore[index]


def test_blank_head_before_content_is_still_detected(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    line = json.dumps(
        {"ts": 1.5, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
         "id.resp_h": "10.0.0.2", "id.resp_p": 2, "proto": "tcp"}
    )  # fmt: skip
    path.write_bytes(b"\n" * 70_000 + line.encode() + b"\n")
    result = ingest.ingest(store, [path]).files[0]
    assert (result.status, result.format) == ("ingested", "zeek-json")
    assert (result.lines, result.skipped, result.record_count) == (70_001, 70_000, 1)
