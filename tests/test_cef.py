"""CEF: every line accounted for, escapes in the header and the extension, times with and
without zone or year, DNS events, and content that never reaches the store.

Expected values were read off the raw lines by hand; the fixture in tests/data/cef was
written from the CEF specification (see its SOURCES.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _scan import hits
from acdkit import ingest, sources
from acdkit.errors import UsageError
from acdkit.store import Store

S = 1_000_000_000
JST = timezone(timedelta(hours=9))
SPEC = "cef/spec-examples.log"
FORCEPOINT = "cef/elastic-test-fp-ngfw-smc.log"


def ingest_file(store: Store, path: Path, **kw: Any) -> tuple[ingest.FileResult, dict[str, list]]:
    """Ingest one file: its result, rows per table (ts and durations as int ns)."""
    (result,) = ingest.ingest(store, [path], **kw).files
    assert result.status == "ingested", result.error
    (staged,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    out: dict[str, list] = {}
    for table in ("net", "dns"):
        t = ingest.read_staged(staged, table)
        for name in ("ts_utc", "duration_ns"):
            if name in t.column_names:
                t = t.set_column(
                    t.schema.get_field_index(name), name, t.column(name).cast(pa.int64())
                )
        out[table] = t.drop_columns(["src_ledger_id"]).to_pylist() if t.num_rows else []
    lines = staged / "lines.parquet"
    log = pq.read_table(lines).to_pylist() if lines.is_file() else []
    out["lines"] = [(r["line"], r["kind"], r["reason"]) for r in log]
    return result, out


def ns(when: datetime) -> int:
    return int(when.timestamp()) * S + when.microsecond * 1000


def lines_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.cef"
    path.write_text("".join(line + "\n" for line in lines))
    return path


# -- the real files ---------------------------------------------------------------------------


def test_elastic_lines_without_time_are_rejects(store: Store, real: Callable[[str], Path]) -> None:
    result, got = ingest_file(store, real("cef/elastic-test-cef.log"))
    assert (result.format, result.lines) == ("cef", 4)
    # three events with addresses but no rt/start/end and no syslog header; one without
    # any network field
    assert sorted(got["lines"]) == [
        (1, "reject", "missing or invalid timestamp"),
        (2, "reject", "missing or invalid timestamp"),
        (3, "skip", "CEF event without a source and destination"),
        (4, "reject", "missing or invalid timestamp"),
    ]


def test_forcepoint_needs_a_zone(store: Store, real: Callable[[str], Path]) -> None:
    # rt=Jan 17 2020 08:52:09 has no zone: never guessed. The file is refused, as a DNS
    # server log is: its three events used to be rejects, and once the file was in the
    # ledger, ingesting it again with --assume-tz added nothing
    (result,) = ingest.ingest(store, [real(FORCEPOINT)]).files
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error == (
        "this file's times carry no time zone (the first at line 3) "
        "(give --assume-tz ZONE (an IANA name such as Asia/Tokyo, or UTC))"
    )
    assert store.ledger() == []
    (again,) = ingest.ingest(store, [real(FORCEPOINT)], assume_tz="UTC").files
    assert (again.status, again.records["net"]) == ("ingested", 3)


def test_forcepoint_with_assumed_zone(store: Store, real: Callable[[str], Path]) -> None:
    result, got = ingest_file(store, real(FORCEPOINT), assume_tz="Asia/Tokyo")
    assert result.records == {"net": 3, "dns": 0, "edr": 0}
    assert (result.skipped, result.rejected) == (10, 0)
    rows = {r["src_line"]: r for r in got["net"]}
    assert set(rows) == {3, 4, 5}
    # line 4: src=172.16.1.1 dst=89.160.20.156 spt=68 dpt=67 proto=17
    #         rt=Jan 17 2020 08:56:21 app=BOOTPS (UDP), deviceExternalId=Firewall-10 node 1
    r = rows[4]
    assert (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"]) == (
        "172.16.1.1", 68, "89.160.20.156", 67, "udp",
    )  # fmt: skip
    assert r["ts_utc"] == ns(datetime(2020, 1, 17, 8, 56, 21, tzinfo=JST))
    assert (r["service"], r["sensor_id"], r["event_kind"]) == (
        "bootps (udp)", "Firewall-10 node 1", "conn",
    )  # fmt: skip
    # line 3: the msg value holds "frag\=0x4000": an escaped '=' does not start a key
    r = rows[3]
    assert (r["src_ip"], r["dst_ip"], r["proto"], r["src_port"]) == (
        "10.37.205.252", "10.1.1.40", "icmp", None,
    )  # fmt: skip
    assert r["service"] == "dest. unreachable (host unreachable)"
    assert result.warnings == [
        "times without a zone read as local time in Asia/Tokyo (--assume-tz)"
    ]


def test_spec_examples(store: Store, real: Callable[[str], Path]) -> None:
    result, got = ingest_file(store, real(SPEC), assume_tz="UTC", year=2021)
    assert result.records == {"net": 7, "dns": 1, "edr": 0}
    assert got["lines"] == [(9, "skip", "blank line")]
    net = {r["src_line"]: r for r in got["net"]}

    def five(r: dict) -> tuple:
        return r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"]

    # 1: "Sep 19 08:26:10 host CEF:0|…|src=10.0.0.1 dst=2.1.2.2 spt=1232": the syslog time
    assert five(net[1]) == ("10.0.0.1", 1232, "2.1.2.2", None, None)
    assert net[1]["ts_utc"] == ns(datetime(2021, 9, 19, 8, 26, 10, tzinfo=UTC))
    assert net[1]["sensor_id"] == "host"
    # 2-4: "\|" in the header, a bare "|", "\\" and "\=" in a value before " dst=1.1.1.1"
    assert [net[i]["dst_ip"] for i in (2, 3, 4)] == ["1.1.1.1"] * 3
    # 5: RFC 5424 header, rt in epoch ms (preferred to the header's time), in/out bytes
    r = net[5]
    assert five(r) == ("192.0.2.10", 51000, "198.51.100.20", 443, "tcp")
    assert r["ts_utc"] == 1614834367123 * 1_000_000
    assert (r["orig_bytes"], r["resp_bytes"], r["service"], r["sensor_id"]) == (
        1820, 50211, "https", "fw02 node 1",
    )  # fmt: skip
    # 6: start/end with milliseconds, an HTTP request whose query (with "\=") is cut
    r = net[6]
    assert five(r) == ("192.0.2.10", 51001, "198.51.100.21", 8443, "tcp")
    assert r["ts_utc"] == ns(datetime(2021, 3, 4, 5, 6, 8, 250000, tzinfo=UTC))
    assert r["duration_ns"] == 1_500_000_000
    assert (r["event_kind"], r["http_verb"], r["url_host"], r["url_path"]) == (
        "http", "POST", "www.example.com:8443", "/cart/add",
    )  # fmt: skip
    assert r["sensor_id"] == "proxy01.example.net"
    # 8: CEF:1, IPv6 (canonical form), rt with a +0900 offset
    r = net[8]
    assert five(r) == ("2001:db8::10", 40000, "2001:db8::20", 22, "tcp")
    assert r["ts_utc"] == ns(datetime(2021, 3, 4, 5, 6, 10, tzinfo=JST))
    assert r["sensor_id"] == "fw03"
    # 7: the Infoblox DNS query event
    (q,) = got["dns"]
    assert (q["src_line"], q["event_kind"], q["qname"], q["qtype"]) == (
        7,
        "query",
        "www.example.com",
        "A",
    )
    assert (q["resolver_ip"], q["resolver_port"], q["client_ip"], q["client_port"]) == (
        "192.0.2.53", 53, "192.0.2.10", 53111,
    )  # fmt: skip
    assert (q["proto"], q["ts_utc"], q["sensor_id"]) == ("udp", 1614834369 * S, "192.0.2.53")
    assert result.warnings == [
        "times without a zone read as local time in UTC (--assume-tz)",
        "times without a year given the year 2021 (--year)",
    ]


def test_spec_examples_without_year_or_zone(store: Store, real: Callable[[str], Path]) -> None:
    (result,) = ingest.ingest(store, [real(SPEC)]).files
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error == (
        "this file's times carry no year and no time zone (the first at line 1) "
        "(give --year YYYY and --assume-tz ZONE (an IANA name such as Asia/Tokyo, or UTC))"
    )
    (result,) = ingest.ingest(store, [real(SPEC)], assume_tz="UTC").files
    assert (
        result.error == "this file's times carry no year (the first at line 1) (give --year YYYY)"
    )
    (result,) = ingest.ingest(store, [real(SPEC)], year=2021).files
    assert (result.error or "").startswith("this file's times carry no time zone (the first at")
    assert store.ledger() == []  # refused files can simply be ingested again with the options
    (again,) = ingest.ingest(store, [real(SPEC)], year=2021, assume_tz="UTC").files
    assert (again.status, again.records) == ("ingested", {"net": 7, "dns": 1, "edr": 0})


def test_syslog_time_needs_a_zone(store: Store, tmp_path: Path) -> None:
    path = lines_file(tmp_path, "Sep 19 08:26:10 host CEF:0|V|P|1|1|n|1|src=10.0.0.1 dst=10.0.0.2")
    (result,) = ingest.ingest(store, [path], year=2021).files
    assert (result.status, result.exit_code) == ("failed", 2)
    assert (result.error or "").startswith(
        "this file's times carry no time zone (the first at line 1)"
    )


# -- escapes and shapes -----------------------------------------------------------------------


def test_escapes_and_odd_lines(store: Store, tmp_path: Path) -> None:
    head = "CEF:0|V|P|1|1|n|1|"
    path = lines_file(
        tmp_path,
        head + r"msg=a\=b src\=9.9.9.9 src=10.0.0.1 dst=10.0.0.2 rt=1614834367123",
        r"CEF:0|V\|src=1.1.1.1|P\\|1|1|n|1|src=10.0.0.3 dst=10.0.0.4 rt=1614834367123",
        head + r"src=10.0.0.1 dst=10.0.0.2 rt=1614834367123 dvchost=a\\b\=c",
        head + "src=10.0.0.1 dst=10.0.0.2 src=10.0.0.9 rt=1614834367123",
        head + "src=10.0.0.1 sourceAddress=10.0.0.9 dst=10.0.0.2 rt=1614834367123",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=1614834367",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07 CST",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07 Mars/Olympus",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Feb 30 2021 05:06:07 UTC",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=04/03/2021 05:06:07",
        head + "src=10.0.0.1 dst=10.0.0.2 proto=300 rt=1614834367123",
        "CEF:2|V|P|1|1|n|1|src=10.0.0.1 dst=10.0.0.2 rt=1614834367123",
        "CEF:0|V|P|1|1|n|src=10.0.0.1 dst=10.0.0.2",
        "<13>Mar  4 05:06:07 host just a syslog line",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07 America/New_York",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07.5 GMT-03:30",
        head + r"src=10.0.0.1 dst=10.0.0.2 rt=1614834367123 dvchost=a\nb",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=1614834367123 dvchost=fw\x1b[31m1",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=1614834367123 proto=tcp or a secret",
        head + "app=DNS src=10.0.0.1 dst=10.0.0.2 rt=1614834367123 destinationDnsDomain=a.example"
        " InfobloxDNSQType=A or any text",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07 +9999",
        head + "src=10.0.0.1 dst=10.0.0.2 rt=Mar 04 2021 05:06:07 UTC+14:00",
    )
    _, got = ingest_file(store, path)
    rows = {r["src_line"]: r for r in got["net"]}
    # 1: "src\=9.9.9.9" is inside msg's value; the real src follows
    assert (rows[1]["src_ip"], rows[1]["dst_ip"]) == ("10.0.0.1", "10.0.0.2")
    # 2: the header's "\|" does not end the vendor; its text never becomes a key
    assert rows[2]["src_ip"] == "10.0.0.3"
    # 3: "\\" and "\=" undone in a value that is kept; "\n" too, but a sensor name with
    # a line break or an escape sequence (17, 18) would act on the operator's terminal
    # when ingest prints it, a protocol is a name (19) and a query type a code (20): all
    # four are rejects
    assert rows[3]["sensor_id"] == "a\\b=c"
    assert rows[15]["ts_utc"] == ns(datetime(2021, 3, 4, 10, 6, 7, tzinfo=UTC))
    assert rows[16]["ts_utc"] == ns(datetime(2021, 3, 4, 8, 36, 7, 500000, tzinfo=UTC))
    assert rows[22]["ts_utc"] == ns(datetime(2021, 3, 3, 15, 6, 7, tzinfo=UTC))
    assert sorted(got["lines"]) == [
        (4, "reject", "a CEF key acdkit reads appears twice"),
        (5, "reject", "a CEF key acdkit reads appears twice"),
        (6, "reject", "CEF rt is a number but not epoch milliseconds"),
        (7, "reject", "CEF rt has a time zone acdkit does not read, or is out of range"),
        (8, "reject", "CEF rt has a time zone acdkit does not read, or is out of range"),
        (9, "reject", "CEF rt is not a valid date"),
        (10, "reject", "CEF rt is not in a CEF time format"),
        (11, "reject", "invalid protocol number"),
        (12, "reject", "unsupported CEF version"),
        (13, "reject", "CEF header has fewer than 8 fields"),
        (14, "reject", "no CEF header in the line"),
        (17, "reject", "invalid sensor name"),
        (18, "reject", "invalid sensor name"),
        (19, "reject", "invalid protocol name"),
        (20, "reject", "invalid DNS query type"),
        # an offset beyond ±14 hours (read as 100 h 39 min before)
        (21, "reject", "CEF rt has a time zone acdkit does not read, or is out of range"),
    ]


def test_the_query_of_a_chunk_stays_small_to_bind() -> None:
    # binding cost 0.3-0.4 s per chunk (a 1,000-line file parsed at 3,400 lines/s): the zone
    # names and offset table were written six times per time column (107 KB of SQL) and
    # each of 18 values had its own lambda; written once each, a small chunk parses 3x faster
    import duckdb

    from acdkit.sources import Context, cef

    query = cef.CefParser(Context(duckdb.connect(), assume_tz="UTC", year=2021))._rows()
    assert len(query) < 40_000
    assert query.count("lambda") <= 6
    assert "Asia/Tokyo" not in query  # the zone names are an ENUM of the connection


def test_unknown_zone_option_is_a_usage_error(store: Store, real: Callable[[str], Path]) -> None:
    for zone in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(UsageError):
            ingest.ingest(store, [real(SPEC)], assume_tz=zone)
    with pytest.raises(UsageError):
        ingest.ingest(store, [real(SPEC)], year=20)


# -- what never reaches the store -------------------------------------------------------------


def test_cef_content_never_reaches_the_store(store: Store, tmp_path: Path) -> None:
    fields = (
        "msg", "suser", "duser", "suid", "requestClientApplication", "requestCookies",
        "requestContext", "cs1", "cs1Label", "cs6", "filePath", "fname", "act", "reason",
    )  # fmt: skip
    ext = " ".join(f"{f}=CANARY-{f}-7f3a with spaces" for f in fields)
    path = lines_file(
        tmp_path,
        "CEF:0|CANARY-vendor|CANARY-product|1|CANARY-sig|CANARY-name|1|"
        "src=10.0.0.1 spt=1 dst=10.0.0.2 dpt=80 rt=1614834367123 requestMethod=GET "
        "request=http://CANARY-user:CANARY-pw@www.example.com/p?q\\=CANARY-query#CANARY-frag "
        + ext,
    )
    result, got = ingest_file(store, path)
    assert result.records["net"] == 1
    (r,) = got["net"]
    assert (r["url_host"], r["url_path"], r["dst_port"]) == ("www.example.com", "/p", 80)
    assert hits(store.root, ("CANARY",)) == []


def test_detection_needs_every_head_line_to_be_cef() -> None:
    sniff = sources.get("cef").sniff
    assert sniff(b"<134>Jan 17 08:52:09 fw01 CEF:0|V|P|1|1|n|1|src=1.2.3.4\n")
    assert not sniff(b"CEF:0|V|P|1|1|n|1|src=1.2.3.4\nplain syslog line\n")
    assert not sniff(b"CEF:0|V|P|1|1\n")  # too few header fields
    assert not sniff(b"text mentioning CEF:0| only\n")
