"""DNS server logs (BIND, Unbound, dnsmasq, Windows DNS): detection, every line accounted for,
hand-checked records, the rules for times without a zone or a year, and hostile lines.
Their canary inputs are in test_minimize.py, their damaged samples in test_hostile.py.

Expected times are computed here from the raw text with datetime and zoneinfo, not with the
parsers; the fixtures' provenance is in tests/data/{bind,unbound,dnsmasq,windns}/SOURCES.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from acdkit import ingest, sources
from acdkit.cli import app
from acdkit.errors import UsageError
from acdkit.sources import _lines, dnsmasq
from acdkit.sources._lines import content_head
from acdkit.store import Store
from test_sources import by_line, ingest_one

TOKYO = "Asia/Tokyo"
MINE = ("bind", "unbound", "dnsmasq", "windns")


def local_ns(text: str, layout: str, zone: str) -> int:
    """A wall-clock time read in ``zone`` -> ns since the epoch (exact integer maths)."""
    naive = datetime.strptime(text, layout)
    delta = naive.replace(tzinfo=ZoneInfo(zone)) - datetime(1970, 1, 1, tzinfo=UTC)
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def line_of(path: Path, number: int) -> str:
    return path.read_bytes().splitlines()[number - 1].decode()


def ingest_dns(store: Store, path: Path, **kw: Any) -> tuple[ingest.FileResult, dict[int, Any]]:
    result, rows = ingest_one(store, path, **kw)
    assert rows["net"] == []
    return result, by_line(rows["dns"])


def ledger_of(store: Store, result: ingest.FileResult) -> dict[str, Any]:
    (staged,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    return dict(json.loads((staged / "ledger.json").read_text()))


# -- detection --------------------------------------------------------------------------------

# folders whose formats acdkit reads, and the format each file in them must be detected as
KNOWN = {
    "zeek-tsv": "zeek-tsv",
    "zeek-json": "zeek-json",
    "suricata-eve": "suricata-eve",
    "bind": "bind",
    "unbound": "unbound",
    "dnsmasq": "dnsmasq",
    "windns": "windns",
}


def _sample_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".md")


def test_detection_over_every_sample(samples: Path, data: Path) -> None:
    checked = {name: 0 for name in MINE}
    for root in (samples, data):
        for path in _sample_files(root):
            folder = path.relative_to(root).parts[0]
            head, raw = content_head(path), path.read_bytes()[: ingest.HEAD_BYTES]
            claims = {n for n in MINE if sources.get(n).sniff(head)}
            expected = KNOWN.get(folder)
            if expected in MINE:
                assert claims == {expected}, path
                checked[expected] += 1
            else:  # another helper's format, or one acdkit does not read yet: not ours
                assert claims == set(), path
            if expected is not None:
                assert sources.detect(head, raw).name == expected, path
    assert checked == {"bind": 7, "unbound": 4, "dnsmasq": 4, "windns": 4}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a syslog file of several programs goes to the most frequent DNS server
        (b"Jan  1 00:00:00 h named[1]: x\nJan  1 00:00:00 h named[1]: y\n"
         b"Jan  1 00:00:00 h dnsmasq[2]: z\n", "bind"),
        (b"Jan  1 00:00:00 h dnsmasq[2]: query[A] a from 10.0.0.1\n"
         b"Jan  1 00:00:00 h sshd[9]: x\n", "dnsmasq"),
        (b"[1599849598] unbound[1:0] info: 10.0.0.5 example.com. A IN\n", "unbound"),
        (b"client @0x7f91b8005490 127.0.0.1#62536 (www.example.com): query: www.example.com "
         b"IN AAAA +E(0)K (127.0.0.1)\n", "bind"),
        (b"DNS Server log file creation at 6/5/2013 9:58:01 AM\r\n", "windns"),
    ],
)  # fmt: skip
def test_detection_from_content(text: bytes, expected: str) -> None:
    assert sources.detect(text).name == expected


def test_a_tie_between_two_servers_is_claimed_by_neither() -> None:
    text = b"Jan  1 00:00:00 h named[1]: x\nJan  1 00:00:00 h dnsmasq[2]: y\n"
    assert [n for n in MINE if sources.get(n).sniff(text)] == []


# -- every line of every file accounted for ---------------------------------------------------

Y2023 = {"assume_tz": TOKYO, "year": 2023}
# path (tests/data copy or shared sample), format, records, skips, rejects, ingest options
COUNTS = [
    ("bind/querylog-9.16-print-all.log", "bind", 6, 4, 0, {"assume_tz": TOKYO}),
    ("bind/querylog-9.9-view.log", "bind", 3, 1, 0, {"assume_tz": TOKYO}),
    ("bind/querylog-9.8-no-name.log", "bind", 4, 0, 0, {"assume_tz": TOKYO}),
    ("bind/querylog-9.2-old-time.log", "bind", 3, 1, 0, Y2023),
    ("bind/querylog-syslog-rollover.log", "bind", 5, 2, 0, Y2023),
    ("bind/querylog-iso8601-utc.log", "bind", 2, 1, 0, {}),
    ("bind/elastic-infoblox-nios-test-dns.log", "bind", 12, 16, 0,
     {"assume_tz": "UTC", "year": 2022}),
    ("unbound/unbound-logfile.log", "unbound", 8, 3, 0, {}),
    ("unbound/unbound-tagged-ascii.log", "unbound", 4, 1, 0, Y2023),
    ("unbound/unbound-syslog-host.log", "unbound", 3, 2, 0, Y2023),
    ("unbound/elastic-pfsense-unbound.log", "unbound", 2, 0, 0, Y2023),
    ("dnsmasq/dnsmasq-log-facility.log", "dnsmasq", 13, 27, 0, Y2023),
    ("dnsmasq/dnsmasq-extra-proto.log", "dnsmasq", 5, 8, 0, Y2023),
    ("dnsmasq/pihole.log", "dnsmasq", 5, 6, 0, Y2023),
    ("dnsmasq/dnsmasq-syslog-rollover.log", "dnsmasq", 2, 2, 0, Y2023),
    ("windns/dns-en-US.log", "windns", 8, 48, 0, {"assume_tz": TOKYO}),
    ("windns/dns-de-DE.log", "windns", 3, 30, 0, {"assume_tz": "Europe/Berlin"}),
    ("windns/dns-ja-JP.log", "windns", 2, 30, 0, {"assume_tz": TOKYO}),
]  # fmt: skip


@pytest.mark.parametrize(("rel", "fmt", "records", "skips", "rejects", "kw"), COUNTS)
def test_every_line_accounted(
    store: Store,
    real: Callable[[str], Path],
    rel: str,
    fmt: str,
    records: int,
    skips: int,
    rejects: int,
    kw: dict[str, Any],
) -> None:
    path = real(rel)
    raw = path.read_bytes()
    n_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    result, dns = ingest_dns(store, path, **kw)
    assert result.format == fmt  # detected, not forced
    assert (result.records["dns"], result.skipped, result.rejected) == (records, skips, rejects)
    assert result.lines == n_lines == records + skips + rejects
    assert len(dns) == records


# -- BIND -------------------------------------------------------------------------------------

BIND_TIME = "%d-%b-%Y %H:%M:%S.%f"


def test_bind_9_11_layout_fields(store: Store, data: Path) -> None:
    path = data / "bind/querylog-9.16-print-all.log"
    result, dns = ingest_dns(store, path, assume_tz=TOKYO)
    row = dns[1]
    assert (row["qname"], row["qtype"], row["event_kind"]) == ("www.example.com", "A", "query")
    assert (row["client_ip"], row["client_port"]) == ("192.168.1.6", 60844)
    assert (row["resolver_ip"], row["resolver_port"], row["proto"]) == ("192.168.1.250", None,
                                                                        "udp")  # fmt: skip
    assert row["rrdata"] is None and row["rcode"] is None  # the query log has no answers
    assert row["ts_utc"] == local_ns("04-Jun-2018 14:48:15.540", BIND_TIME, TOKYO)
    assert row["ts_utc"] == 1_528_091_295_540_000_000  # 05:48:15.540 UTC
    row = dns[4]  # -E(0)TDC over IPv6: TCP; both addresses canonical
    assert (row["client_ip"], row["client_port"], row["resolver_ip"], row["proto"]) == (
        "2001:db8::17",
        53001,
        "2001:db8::53",
        "tcp",
    )
    assert row["qtype"] == "MX"
    row = dns[5]  # "view internal:" and "[ECS ...]" around the same fields
    assert (row["qname"], row["resolver_ip"], row["client_ip"]) == (
        "mail.example.com",
        "10.0.0.53",
        "10.0.0.8",
    )
    row = dns[9]  # a signed query: "/key NAME" after the port; the key name is not kept
    assert (row["qname"], row["qtype"], row["client_port"]) == ("_ldap._tcp.example.com", "SRV",
                                                                5300)  # fmt: skip
    assert set(dns) == {1, 2, 3, 4, 5, 9}
    assert result.skip_reasons == {
        "BIND query error message": 1,
        "BIND message that is not a query": 3,
    }
    assert f"times without a zone were read in {TOKYO}" in result.warnings


def test_bind_older_layouts(store: Store, data: Path) -> None:
    _, dns = ingest_dns(store, data / "bind/querylog-9.9-view.log", assume_tz="UTC")
    assert [(r["qname"], r["qtype"], r["client_port"]) for r in dns.values()] == [
        ("example.org", "A", 34474),
        ("www.example.org", "AAAA", 34475),
        ("1.1.1.10.in-addr.arpa", "PTR", 1024),
    ]
    assert dns[3]["ts_utc"] == local_ns("15-Jan-2014 09:12:02.000", BIND_TIME, "UTC")

    _, dns = ingest_dns(store, data / "bind/querylog-9.8-no-name.log", assume_tz="UTC")
    assert dns[2]["qtype"] == "SOA" and dns[2]["resolver_ip"] == "192.0.2.53"
    assert dns[3]["resolver_ip"] is None and dns[3]["proto"] == "udp"  # no address printed
    assert dns[4]["proto"] == "tcp" and dns[4]["qtype"] == "ANY"

    result, dns = ingest_dns(store, data / "bind/querylog-9.2-old-time.log", **Y2023)
    assert dns[4]["ts_utc"] == local_ns("2023 Feb 26 07:30:08.211", "%Y %b %d %H:%M:%S.%f",
                                        TOKYO)  # fmt: skip
    assert dns[1]["proto"] is None  # no flags at all in 9.2
    assert result.skip_reasons == {"BIND message that is not a query": 1}


def test_lines_of_no_bind_layout_in_a_bind_log_are_rejects(
    store: Store, tmp_path: Path, data: Path
) -> None:
    # a real query log with foreign lines spliced in (a web log line, JSON, words): they
    # are not "BIND messages that are not queries" but no BIND lines at all
    real = (data / "bind/querylog-9.16-print-all.log").read_text().splitlines()
    foreign = ["GET /index.html HTTP/1.1", '{"query": "example.com"}', "just some words"]
    path = tmp_path / "mixed.log"
    path.write_text("\n".join([real[0], *foreign, *real[1:3]]) + "\n")
    result, dns = ingest_dns(store, path, fmt="bind", assume_tz="UTC")  # too few to detect
    assert sorted(dns) == [1, 5, 6]
    reason = "not a BIND log line (no BIND time, category or client, no syslog header)"
    assert result.reject_reasons == {reason: 3}
    assert result.skip_reasons == {}
    assert (result.record_count, result.rejected, result.skipped) == (3, 3, 0)
    (staged,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    log = pq.read_table(staged / "lines.parquet").to_pylist()
    assert sorted((r["line"], r["kind"]) for r in log) == [(2, "reject"), (3, "reject"),
                                                           (4, "reject")]  # fmt: skip


def test_bind_iso8601_utc_needs_no_zone(store: Store, data: Path) -> None:
    result, dns = ingest_dns(store, data / "bind/querylog-iso8601-utc.log")
    assert dns[1]["ts_utc"] == 1_678_011_072_345_000_000  # 2023-03-05T10:11:12.345Z
    assert dns[2]["qtype"] == "HTTPS"
    assert result.warnings == []


def test_bind_syslog_year_rollover(store: Store, data: Path) -> None:
    path = data / "bind/querylog-syslog-rollover.log"
    result, dns = ingest_dns(store, path, **Y2023)
    layout = "%Y %b %d %H:%M:%S"
    assert dns[1]["ts_utc"] == local_ns("2023 Dec 31 23:59:58", layout, TOKYO)
    assert dns[3]["ts_utc"] == local_ns("2024 Jan 01 00:00:00", layout, TOKYO)
    # written late, after a January line: still December 31 of the old year
    assert dns[4]["ts_utc"] == local_ns("2023 Dec 31 23:59:59", layout, TOKYO)
    assert dns[5]["ts_utc"] == local_ns("2024 Jan 01 00:00:01", layout, TOKYO)
    assert dns[5]["proto"] == "tcp" and dns[5]["qtype"] == "TXT"
    assert {r["sensor_id"] for r in dns.values()} == {"ns1"}  # the syslog host
    assert result.skip_reasons == {
        "syslog message of another program": 1,
        "BIND message that is not a query": 1,
    }
    assert "syslog times enter year 2024 at line 3 (New Year)" in result.warnings
    assert "line 4 is read as a late line of year 2023" in result.warnings
    entry = ledger_of(store, result)
    assert (entry["assume_tz"], entry["year"]) == (TOKYO, 2023)
    assert any("2023 (--year)" in w for w in entry["warnings"])


def test_infoblox_responses_give_rrdata(store: Store, real: Callable[[str], Path]) -> None:
    path = real("bind/elastic-infoblox-nios-test-dns.log")
    result, dns = ingest_dns(store, path, assume_tz="UTC", year=2022)
    row = dns[5]  # "... response: NOERROR +ED a1.foo.com 28800 IN A 192.168.0.2; ... 0.3;"
    assert (row["qname"], row["qtype"], row["rcode"], row["event_kind"]) == (
        "a1.foo.com",
        "A",
        "NOERROR",
        "transaction",
    )
    assert row["rrdata"] == ["192.168.0.2", "192.168.0.3"]
    assert (row["client_ip"], row["client_port"], row["proto"]) == ("192.168.0.1", 57398, "udp")
    assert row["ts_utc"] == local_ns("07-Apr-2022 08:08:10.043", BIND_TIME, "UTC")
    assert row["sensor_id"] == "infoblox.localdomain"
    assert (dns[2]["rcode"], dns[2]["rrdata"]) == ("REFUSED", [])
    assert (dns[4]["rcode"], dns[4]["rrdata"]) == ("NXDOMAIN", [])
    assert dns[25]["rrdata"] == ["089.160.20.112.a1.foo.com"]  # a PTR name, final dot gone
    assert dns[25]["qname"] == "89.160.20.128.a1.foo.com"
    # TXT data is free text (with a ';' inside quotes): the record stays, the text does not
    assert (dns[26]["qtype"], dns[26]["rrdata"]) == ("TXT", [])
    assert dns[22]["sensor_id"] == "10.50.1.227"  # "infoblox-responses:" before the time
    row = dns[23]  # the classic 9.11+ line, through syslog, with print-category
    assert (row["qname"], row["resolver_ip"], row["client_port"]) == (
        "ocsp.digicert.com",
        "192.168.1.10",
        64727,
    )
    assert row["ts_utc"] == local_ns("2022 Apr 14 16:16:05", "%Y %b %d %H:%M:%S", "UTC")
    assert dns[27]["ts_utc"] == local_ns("2022 Nov 27 13:03:52", "%Y %b %d %H:%M:%S", "UTC")
    assert dns[28]["proto"] == "tcp" and dns[28]["qtype"] == "TXT"  # version.bind CH TXT +T
    assert result.skip_reasons == {
        "BIND query error message": 2,
        "BIND RPZ message": 2,
        "BIND dynamic update message": 1,
        "CEF event inside a BIND log": 1,
        "BIND zone transfer or notify message": 6,
        "BIND message that is not a query": 1,
        "BIND DNSSEC validation message": 3,
    }


# -- Unbound ----------------------------------------------------------------------------------


def test_unbound_own_logfile(store: Store, data: Path) -> None:
    result, dns = ingest_dns(store, data / "unbound/unbound-logfile.log")
    assert result.warnings == []  # epoch times: no zone, no year needed
    row = dns[3]
    assert (row["event_kind"], row["qname"], row["qtype"], row["client_ip"]) == (
        "query",
        "example.com",
        "A",
        "172.30.0.2",
    )
    assert row["ts_utc"] == 1_599_849_598 * 10**9 and row["rcode"] is None
    row = dns[6]  # log-replies: rcode, no answers, no port
    assert (row["event_kind"], row["rcode"], row["client_ip"], row["rrdata"]) == (
        "answer",
        "NXDOMAIN",
        "2001:db8::15",
        None,
    )
    assert dns[7]["qname"] == "." and dns[7]["qtype"] == "NS"  # the root keeps its dot
    assert (dns[9]["qname"], dns[9]["rcode"]) == (None, "FORMERR")
    assert (dns[11]["qname"], dns[11]["qtype"]) == ("odd?name.example", "TYPE65534")
    assert result.skip_reasons == {"Unbound message that is not a query or reply": 3}


def test_unbound_tagged_and_syslog(store: Store, data: Path, real: Callable[[str], Path]) -> None:
    _, dns = ingest_dns(store, data / "unbound/unbound-tagged-ascii.log", **Y2023)
    assert [(r["event_kind"], r["qtype"], r["rcode"]) for r in dns.values()] == [
        ("query", "A", None), ("answer", "A", "NOERROR"),
        ("query", "MX", None), ("answer", "MX", "SERVFAIL"),
    ]  # fmt: skip
    assert dns[3]["ts_utc"] == local_ns("2023 Sep 11 14:40:03", "%Y %b %d %H:%M:%S", TOKYO)

    result, dns = ingest_dns(store, data / "unbound/unbound-syslog-host.log", **Y2023)
    assert dns[1]["ts_utc"] == local_ns("2023 Dec 31 23:59:50", "%Y %b %d %H:%M:%S", TOKYO)
    assert dns[3]["ts_utc"] == local_ns("2024 Jan 01 00:00:10", "%Y %b %d %H:%M:%S", TOKYO)
    assert dns[3]["sensor_id"] == "resolver1"
    assert result.skip_reasons == {
        "Unbound message that is not a query or reply": 1,
        "syslog message of another program": 1,
    }

    # the real pfSense sample: no host, lines out of time order, no final newline
    _, dns = ingest_dns(store, real("unbound/elastic-pfsense-unbound.log"), **Y2023)
    assert [(r["qname"], r["client_ip"]) for r in dns.values()] == [
        ("api.opensubtitles.org", "192.168.1.1"),
        ("clients4.google.com", "172.16.33.2"),
    ]
    layout = "%Y %b %d %H:%M:%S"
    assert dns[1]["ts_utc"] == local_ns("2023 Aug 15 16:19:02", layout, TOKYO)
    assert dns[2]["ts_utc"] == local_ns("2023 Aug 15 16:18:59", layout, TOKYO)


# -- dnsmasq ----------------------------------------------------------------------------------


def test_dnsmasq_query_lines_fold_into_one_record(store: Store, data: Path) -> None:
    path = data / "dnsmasq/dnsmasq-log-facility.log"
    result, dns = ingest_dns(store, path, **Y2023)
    row = dns[5]  # query, forwarded, other queries in between, then its reply (line 11)
    assert (row["event_kind"], row["qname"], row["qtype"], row["client_ip"]) == (
        "transaction",
        "www.example.com",
        "AAAA",
        "127.0.0.1",
    )
    assert (row["rcode"], row["rrdata"]) == ("NOERROR", ["2001:db8:4004:c07::6a"])
    assert row["ts_utc"] == local_ns("2023 Jun 02 06:03:07", "%Y %b %d %H:%M:%S", TOKYO)
    assert row["resolver_ip"] is None  # dnsmasq does not log its own address
    # a CNAME chain: each <CNAME> stands for the name on the next line, as Zeek lists it
    assert dns[7]["rrdata"] == ["cdn.example.net.edgekey.example", "e1.a.akamaiedge.example",
                                "198.51.100.23"]  # fmt: skip
    # PTR answers name the address: they go back to their reverse-name queries
    assert (dns[12]["qname"], dns[12]["rrdata"]) == ("25.0.168.192.in-addr.arpa", ["node05"])
    assert dns[22]["rrdata"] == ["www.example.com"] and dns[22]["qname"].endswith(".ip6.arpa")
    assert (dns[14]["rcode"], dns[14]["rrdata"]) == ("NOERROR", [])  # config ... NODATA-IPv6
    assert (dns[17]["rcode"], dns[17]["rrdata"]) == ("NXDOMAIN", [])
    assert dns[19]["rrdata"] == ["203.0.113.80"]  # the same name again: its own answer
    assert (dns[24]["rcode"], dns[24]["rrdata"]) == ("NOERROR", [])  # <TXT>: data not logged
    assert (dns[27]["rcode"], dns[27]["rrdata"]) == ("SERVFAIL", [])
    assert (dns[31]["event_kind"], dns[31]["rrdata"], dns[31]["rcode"]) == ("query", None, None)
    assert dns[35]["qtype"] == "65"  # query[type=65]
    assert dns[39]["rrdata"] == ["192.168.1.30"]  # a DHCP lease name
    # an answer whose query is not in the file is a record of its own
    row = dns[16]
    assert (row["event_kind"], row["qname"], row["qtype"], row["rrdata"]) == (
        "answer",
        "lost.example.org",
        None,
        ["203.0.113.9"],
    )
    assert result.skip_reasons == {
        "dnsmasq message that is not a query step": 4,
        "forwarding step folded into the record of its query": 4,  # lines 6, 18, 25, 28
        "answer folded into the record of its query": 13,
        "forwarding step whose query is not in the file": 1,
        "DNSSEC step of dnsmasq itself": 3,
        "dnsmasq DHCP or TFTP message": 2,
    }


def test_dnsmasq_extra_serials_tell_same_name_queries_apart(store: Store, data: Path) -> None:
    result, dns = ingest_dns(store, data / "dnsmasq/dnsmasq-extra-proto.log", **Y2023)
    # two clients ask api.example.com at once; by name alone the answers would swap
    assert (dns[1]["client_ip"], dns[1]["client_port"], dns[1]["rrdata"]) == (
        "192.168.1.30",
        53211,
        ["203.0.113.7"],
    )
    assert (dns[3]["client_ip"], dns[3]["client_port"], dns[3]["rrdata"]) == (
        "192.168.1.31",
        40001,
        ["203.0.113.8"],
    )
    assert {r["proto"] for r in dns.values()} == {"udp", "tcp"}
    assert (dns[7]["proto"], dns[7]["client_ip"]) == ("tcp", "2001:db8::32")
    assert dns[10]["rrdata"] == [] and dns[10]["qtype"] == "AAAA"
    assert (dns[13]["event_kind"], dns[13]["client_port"]) == ("answer", 39999)
    assert {r["sensor_id"] for r in dns.values()} == {"gw"}
    assert result.skip_reasons["DNSSEC step of dnsmasq itself"] == 1


def test_pihole_blocking_answers(store: Store, data: Path) -> None:
    _, dns = ingest_dns(store, data / "dnsmasq/pihole.log", **Y2023)
    assert [(r["qname"], r["qtype"], r["rcode"], r["rrdata"]) for r in dns.values()] == [
        ("ads.example.net", "A", "NOERROR", ["0.0.0.0"]),
        ("ads.example.net", "AAAA", "NOERROR", ["::"]),
        ("pi.hole", "A", "NOERROR", ["192.168.1.2"]),
        ("mask.icloud.example", "A", "NXDOMAIN", []),
        ("nas.lan", "A", "NOERROR", ["192.168.1.5"]),
    ]


def test_dnsmasq_answer_across_new_year(store: Store, data: Path) -> None:
    _, dns = ingest_dns(store, data / "dnsmasq/dnsmasq-syslog-rollover.log", **Y2023)
    layout = "%Y %b %d %H:%M:%S"
    assert dns[1]["ts_utc"] == local_ns("2023 Dec 31 23:59:59", layout, TOKYO)
    assert dns[1]["rrdata"] == ["192.0.2.80"]  # its answer came in 2024
    assert dns[3]["ts_utc"] == local_ns("2024 Jan 01 00:00:01", layout, TOKYO)


@pytest.mark.parametrize("block", [16, 200, 1000])
def test_dnsmasq_chunk_boundaries_change_nothing(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from acdkit.store import init_store

    def run(name: str) -> tuple[ingest.FileResult, list[dict[str, Any]]]:
        st, _ = init_store(tmp_path / name, tmp_path / f"{name}-k" / "sealer.key")
        result, rows = ingest_one(st, data / "dnsmasq/dnsmasq-log-facility.log", **Y2023)
        return result, rows["dns"]

    whole, whole_rows = run("whole")
    # blocks of a few lines: a query's answers land in later chunks than the query
    monkeypatch.setattr(_lines, "BLOCK", block)
    split, split_rows = run(f"split{block}")
    assert (split.skip_reasons, split.reject_reasons) == (whole.skip_reasons, whole.reject_reasons)
    assert split_rows == whole_rows


@pytest.mark.parametrize("block", [64, 1 << 20])
def test_dnsmasq_answers_survive_a_clock_step_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    path = tmp_path / "step.log"
    path.write_text(
        "Oct 29 02:59:59 dnsmasq[1]: query[A] slow.example.com from 10.0.0.1\n"
        "Oct 29 02:59:59 dnsmasq[1]: forwarded slow.example.com to 192.0.2.1\n"
        "Oct 29 02:00:01 dnsmasq[1]: query[A] soon.example.com from 10.0.0.2\n"
        "Oct 29 02:00:01 dnsmasq[1]: reply soon.example.com is 192.0.2.8\n"
        "Oct 29 02:00:02 dnsmasq[1]: reply slow.example.com is 192.0.2.9\n"
        "Oct 29 02:00:03 dnsmasq[1]: query[A] soon.example.com from 10.0.0.3\n"
        "Oct 29 02:00:03 dnsmasq[1]: reply soon.example.com is 192.0.2.10\n"
    )
    monkeypatch.setattr(_lines, "BLOCK", block)  # one line a chunk, or all in one
    result, dns = ingest_dns(store, path, assume_tz="UTC", year=2023)
    # the clock went back an hour between the query and its answer: still one record
    assert (dns[1]["event_kind"], dns[1]["rrdata"]) == ("transaction", ["192.0.2.9"])
    # a second query of a name takes the answers that follow it
    assert (dns[3]["rrdata"], dns[6]["rrdata"]) == (["192.0.2.8"], ["192.0.2.10"])
    assert result.skip_reasons == {
        "forwarding step folded into the record of its query": 1,
        "answer folded into the record of its query": 3,
    }


def test_dnsmasq_lag_bound_closes_old_queries(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lag.log"
    filler = "".join(
        f"Jun  2 06:00:00 dnsmasq[1]: query[A] n{i}.example.com from 10.0.0.9\n" for i in range(6)
    )
    path.write_text(
        "Jun  2 06:00:00 dnsmasq[1]: query[A] first.example.com from 10.0.0.1\n"
        + filler
        + "Jun  2 06:00:00 dnsmasq[1]: reply first.example.com is 192.0.2.1\n"
    )
    monkeypatch.setattr(_lines, "BLOCK", 64)  # a line or so per chunk
    monkeypatch.setattr(dnsmasq, "MAX_LAG", 3)
    result, dns = ingest_dns(store, path, **Y2023)
    # the answer came more than MAX_LAG lines after the query: it stands alone
    assert (dns[1]["event_kind"], dns[1]["rrdata"]) == ("query", None)
    assert (dns[8]["event_kind"], dns[8]["qname"], dns[8]["rrdata"]) == (
        "answer",
        "first.example.com",
        ["192.0.2.1"],
    )
    assert result.records["dns"] == 8 and result.skipped == 0


# -- Windows DNS ------------------------------------------------------------------------------

US = "%m/%d/%Y %I:%M:%S %p"


def test_windns_us_locale_packets(store: Store, data: Path) -> None:
    path = data / "windns/dns-en-US.log"
    result, dns = ingest_dns(store, path, assume_tz=TOKYO)
    row = dns[31]  # Rcv, R blank: a client's query
    assert (row["event_kind"], row["qname"], row["qtype"], row["trans_id"]) == (
        "query",
        "somecomputer.domain.com",
        "A",
        0x5B47,
    )
    assert (row["client_ip"], row["resolver_ip"], row["proto"], row["rcode"]) == (
        "10.161.60.71",
        None,
        "udp",
        None,
    )
    assert row["ts_utc"] == local_ns("6/5/2013 10:00:32 AM", US, TOKYO)
    row = dns[32]  # Snd, R blank: the server asks a forwarder
    assert (row["event_kind"], row["resolver_ip"], row["client_ip"], row["trans_id"]) == (
        "query",
        "10.2.0.1",
        None,
        0xA1C3,
    )
    assert (dns[33]["event_kind"], dns[33]["resolver_ip"], dns[33]["rcode"]) == (
        "answer",
        "10.2.0.1",
        "NOERROR",
    )
    assert (dns[34]["event_kind"], dns[34]["client_ip"]) == ("answer", "10.161.60.71")
    row = dns[36]  # 1 PM, IPv6 over TCP, flag letters "A DR" with a gap
    assert (row["rcode"], row["proto"], row["client_ip"]) == (
        "NXDOMAIN",
        "tcp",
        "fe80::2d0:b7ff:fe1b:4501",
    )
    assert row["ts_utc"] == local_ns("6/13/2013 1:07:45 PM", US, TOKYO)
    assert dns[38]["qname"] == "." and dns[38]["qtype"] == "NS"  # the root, (0)
    assert 37 not in dns  # a dynamic update
    assert result.skip_reasons == {
        "Windows DNS log header": 28,
        "blank line": 3,
        "Windows DNS update packet": 1,
        "Windows DNS packet details (not used)": 15,
        "Windows DNS message that is not a packet": 1,
    }
    assert "dates read as month/day/year: the file has a second date field above 12" in (
        result.warnings
    )


def test_windns_day_first_and_year_first_locales(store: Store, data: Path) -> None:
    result, dns = ingest_dns(store, data / "windns/dns-de-DE.log", assume_tz="Europe/Berlin")
    layout = "%d.%m.%Y %H:%M:%S"
    assert dns[31]["ts_utc"] == local_ns("20.01.2026 23:00:00", layout, "Europe/Berlin")
    assert dns[33]["ts_utc"] == local_ns("21.01.2026 00:15:09", layout, "Europe/Berlin")
    assert (dns[33]["qname"], dns[33]["trans_id"]) == ("16.2.0.192.in-addr.arpa", 0xFF)
    assert any(w.startswith("dates read as day/month/year") for w in result.warnings)

    _, dns = ingest_dns(store, data / "windns/dns-ja-JP.log", assume_tz=TOKYO)
    assert dns[31]["ts_utc"] == local_ns("2019/08/20 11:48:27", "%Y/%m/%d %H:%M:%S", TOKYO)
    assert (dns[31]["event_kind"], dns[31]["rcode"], dns[31]["resolver_ip"]) == (
        "answer",
        "REFUSED",
        "198.51.100.8",
    )


def test_windns_ambiguous_dates_need_date_order(store: Store, data: Path) -> None:
    path = data / "windns/dns-ambiguous-date.log"
    (failed,) = ingest.ingest(store, [path], assume_tz="UTC").files
    assert (failed.status, failed.exit_code) == ("failed", 2)
    assert "--date-order" in (failed.error or "") and store.staged_dirs() == []

    result, dns = ingest_dns(store, path, assume_tz="UTC", date_order="dmy")
    assert dns[31]["ts_utc"] == local_ns("3/4/2024 8:00:01 AM", "%d/%m/%Y %I:%M:%S %p", "UTC")
    assert "dates read as day/month/year (--date-order)" in result.warnings


def test_windns_date_that_contradicts_the_order_is_rejected(store: Store, data: Path) -> None:
    result, dns = ingest_dns(
        store, data / "windns/dns-de-DE.log", assume_tz="UTC", date_order="mdy"
    )
    assert result.reject_reasons == {"date does not fit the file's day/month order": 3}
    assert dns == {}


# -- zone-less times: the rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rel",
    ["bind/querylog-9.16-print-all.log", "dnsmasq/pihole.log", "windns/dns-ja-JP.log",
     "unbound/unbound-tagged-ascii.log"],
)  # fmt: skip
def test_local_times_without_assume_tz_are_a_usage_error(
    store: Store, data: Path, rel: str
) -> None:
    (failed,) = ingest.ingest(store, [data / rel], year=2023).files
    assert (failed.status, failed.exit_code) == ("failed", 2)
    assert "--assume-tz" in (failed.error or "")
    assert store.staged_dirs() == [] and store.ledger() == []


def test_missing_year_is_guessed_from_mtime_with_a_warning(
    store: Store, data: Path, tmp_path: Path
) -> None:
    path = tmp_path / "syslog.log"
    path.write_bytes((data / "bind/querylog-syslog-rollover.log").read_bytes())
    # modified on 2024-01-01 09:00 local: its first line (Dec 31) is from 2023
    mtime = local_ns("2024-01-01 09:00:00", "%Y-%m-%d %H:%M:%S", TOKYO)
    os.utime(path, ns=(mtime, mtime))
    result, dns = ingest_dns(store, path, assume_tz=TOKYO)
    assert dns[1]["ts_utc"] == local_ns("2023 Dec 31 23:59:58", "%Y %b %d %H:%M:%S", TOKYO)
    assert (
        "syslog times carry no year: 2023 was guessed for the first one from the file's "
        "modification time (2024-01-01); give --year to be sure"
    ) in result.warnings


def test_bad_zone_year_and_order_are_usage_errors(store: Store, data: Path) -> None:
    path = data / "dnsmasq/pihole.log"
    for kw, word in (
        ({"assume_tz": "Mars/Olympus"}, "time zone"),
        ({"assume_tz": "UTC", "year": 1900}, "--year"),
        ({"assume_tz": "UTC", "date_order": "myd"}, "--date-order"),
    ):
        with pytest.raises(UsageError, match=word):
            ingest.ingest(store, [path], **kw)


def test_cli_options_and_environment(store: Store, data: Path, runner: CliRunner) -> None:
    path = data / "dnsmasq/pihole.log"
    refused = runner.invoke(app, ["ingest", str(store.root), str(path), "--json"])
    assert refused.exit_code == 2
    doc = json.loads(refused.stdout)
    assert "--assume-tz" in doc["files"][0]["error"]

    done = runner.invoke(
        app,
        ["ingest", str(store.root), str(path), "--year", "2023", "--json"],
        env={"ACDKIT_ASSUME_TZ": TOKYO},
    )
    assert done.exit_code == 0, done.stderr
    (file_doc,) = json.loads(done.stdout)["files"]
    assert file_doc["records"]["dns"] == 5
    assert f"times without a zone were read in {TOKYO}" in file_doc["warnings"]


# -- hostile lines ----------------------------------------------------------------------------

LONG = "a" * 10_000 + ".example.com"
HOSTILE = {
    "bind": (
        "04-Jun-2018 14:48:15.540 client @0x1 192.0.2.1#53 ({n}): query: {n} IN A + (192.0.2.53)",
        "04-Jun-2018 14:48:15.540 client @0x1 192.0.2.1#99999 (x.example): query: x.example IN A"
        " + (192.0.2.53)",
        "04-Jun-2018 14:48:15.540 client @0x1 192.0.2.1#53 (x): query: x IN",
    ),
    "unbound": (
        "[1599849598] unbound[1:0] info: 192.0.2.1 {n}. A IN",
        "[1599849598] unbound[1:0] info: 999.0.2.1 x.example. A IN",
        "[99999999999999999999] unbound[1:0] info: 192.0.2.1 x.example. A IN",
    ),
    "dnsmasq": (
        "Jun  2 06:00:00 dnsmasq[1]: query[A] {n} from 192.0.2.1",
        "Jun 31 06:00:00 dnsmasq[1]: query[A] x.example from 192.0.2.1",
        "Jun  2 06:00:00 dnsmasq[1]: query[A] y.example from 192.0.2.300",
    ),
    "windns": (
        "6/13/2013 1:07:45 PM 06B0 PACKET  0 UDP Rcv 192.0.2.1 0d4e   Q [0001   D   NOERROR]"
        " A (99)www(7)example(3)org(0)",
        "6/13/2013 1:07:45 PM 06B0 PACKET  0 UDP Rcv 192.0.2.1 0d4e   Q [0001   D   NOERROR]"
        " A (10000){n}(0)",
        "6/13/2013 1:07:45 PM 06B0 PACKET  0 UDP Rcv 192.0.2.1 zz   Q [0001   D   NOERROR]",
    ),
}
HOSTILE_REASONS = {
    "bind": {
        "query name longer than 1024 bytes": 1,
        "invalid client port": 1,
        "malformed BIND query line": 1,
        "invalid UTF-8 at byte 23 of the line": 1,
    },
    "unbound": {
        "query name longer than 1024 bytes": 1,
        "invalid address in client_ip": 1,
        "missing or invalid timestamp": 1,
        "invalid UTF-8 at byte 23 of the line": 1,
    },
    "dnsmasq": {
        "query name longer than 1024 bytes": 1,
        "missing or invalid timestamp": 1,
        "invalid address in client_ip": 1,
        "invalid UTF-8 at byte 23 of the line": 1,
    },
    "windns": {
        "query name labels do not match their lengths": 1,
        "query name longer than 1024 bytes": 1,
        "malformed Windows DNS packet line": 1,
        "invalid UTF-8 at byte 23 of the line": 1,
    },
}


@pytest.mark.parametrize("fmt", MINE)
def test_hostile_lines_are_rejects_with_reasons(store: Store, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"{fmt}.log"
    lines = [t.format(n=LONG).encode() for t in HOSTILE[fmt]]
    lines.append(b"Jun  2 06:00:00 CANARY \xff\xfe " + LONG.encode())  # not UTF-8
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest.ingest(
        store, [path], fmt=fmt, assume_tz="UTC", year=2013, date_order="mdy"
    ).files[0]
    assert result.status == "ingested", result.error
    assert (result.rejected, result.record_count) == (4, 0)
    assert result.reject_reasons == HOSTILE_REASONS[fmt]
    for reason in result.reject_reasons:  # a reason never carries the input
        assert "aaaa" not in reason and "CANARY" not in reason and "example" not in reason


def test_sequential_formats_bypass_the_pool(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acdkit.store import init_store

    files = [data / "dnsmasq/dnsmasq-log-facility.log", data / "zeek-json/zat/dns.log"]
    st, _ = init_store(tmp_path / "seq", tmp_path / "k1" / "sealer.key")
    seq = ingest.ingest(st, files, assume_tz=TOKYO, year=2023)
    monkeypatch.setattr(_lines, "BLOCK", 512)
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)  # a pool, and files it would take
    st, _ = init_store(tmp_path / "par", tmp_path / "k2" / "sealer.key")
    par = ingest.ingest(st, files, assume_tz=TOKYO, year=2023)
    for a, b in zip(seq.files, par.files, strict=True):
        assert (a.records, a.skip_reasons, a.warnings) == (b.records, b.skip_reasons, b.warnings)
