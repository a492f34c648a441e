"""Source formats: detection, and field by field what real sensor lines become.

Expected values are read from the sample files here, independently of acdkit's parsers
(Python's json, plain string splitting, datetime and ipaddress), or are values that the
samples' SOURCES.md documents.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import pkgutil
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from acdkit import ingest, sources
from acdkit.errors import MalformedError, UsageError
from acdkit.sources._lines import content_head
from acdkit.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JA3 = "72a589da586844d7f0818ce684948eea"
JA3S = "ec74a5c51106f0419184d0dd08fb05bc"


INVISIBLE = {"Zs", "Zl", "Zp", "Cc", "Cf", "Co"}  # Unicode categories that end a path


def path_of(uri: str) -> str:
    """The minimization policy for an origin-form request target (README, net.v1.yaml)."""
    path = re.split("[?#;]|%3[fF]|%2[35]", uri, maxsplit=1)[0]
    cut = next((i for i, c in enumerate(path) if unicodedata.category(c) in INVISIBLE), None)
    return path if cut is None else path[:cut]


# -- helpers ----------------------------------------------------------------------------------


def ingest_one(store: Store, path: Path, **kw: Any) -> tuple[ingest.FileResult, dict[str, list]]:
    """Ingest one file; return its result and staged rows per table (ts as int ns)."""
    result = ingest.ingest(store, [path], **kw).files[0]
    assert result.status == "ingested", result.error
    (staged,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    rows: dict[str, list] = {}
    for table in ("net", "dns"):
        t = ingest.read_staged(staged, table)
        if t.num_rows:
            t = t.set_column(
                t.schema.get_field_index("ts_utc"), "ts_utc", t.column("ts_utc").cast(pa.int64())
            )
            rows[table] = t.to_pylist()
        else:
            rows[table] = []
    return result, rows


def by_line(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["src_line"]: r for r in rows}


def iso_ns(text: str) -> int:
    """Suricata's ISO time with a ±hhmm offset -> ns since the epoch (exact integer maths)."""
    delta = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z") - EPOCH
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def epoch_ns(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


def json_lines(path: Path) -> dict[int, dict[str, Any]]:
    return {i: json.loads(raw) for i, raw in enumerate(path.read_bytes().splitlines(), 1)}


def tsv_rows(path: Path) -> tuple[list[str], list[str], dict[int, list[str]]]:
    """(#fields, #types, {line number: values}) of a Zeek TSV file, split by hand."""
    fields: list[str] = []
    types: list[str] = []
    rows: dict[int, list[str]] = {}
    for i, raw in enumerate(path.read_text().splitlines(), 1):
        text = raw.lstrip("\t")
        if text.startswith("#fields\t"):
            fields = text.split("\t")[1:]
        elif text.startswith("#types\t"):
            types = text.split("\t")[1:]
        elif not text.startswith("#"):
            rows[i] = raw.split("\t")
    return fields, types, rows


# -- detection --------------------------------------------------------------------------------

DETECTED = [
    ("zeek-tsv/zat/conn.log", "zeek-tsv"),
    ("zeek-tsv/zat/conn_date_issue.log", "zeek-tsv"),  # "#separator<TAB>", no #close
    ("zeek-tsv/zat/http_empty.log", "zeek-tsv"),
    ("zeek-tsv/slips-test10/conn.log", "zeek-tsv"),  # leading TAB before #separator
    ("zeek-json/zat/dns.log", "zeek-json"),
    ("zeek-json/otrf-apt29/SCRANTON_ssl.log", "zeek-json"),  # underscored keys + envelope
    ("zeek-json/slips-test9/ssl.log", "zeek-json"),
    ("suricata-eve/beats-eve-small.log", "suricata-eve"),
    ("suricata-eve/beats-eve-dns-4.1.4.log", "suricata-eve"),
    ("suricata-eve/magnc/eve.json", "suricata-eve"),
]


@pytest.mark.parametrize(("rel", "expected"), DETECTED)
def test_format_is_detected_from_content(
    real: Callable[[str], Path], rel: str, expected: str
) -> None:
    assert sources.detect(content_head(real(rel))).name == expected


def test_unidentifiable_content_names_every_format_tried() -> None:
    with pytest.raises(MalformedError) as err:
        sources.detect(b"Aug 15 16:19:02 host sshd[1]: Connection closed by 10.0.0.1\n")
    assert (
        err.value.message
        == f"could not identify the input format (tried: {', '.join(sources.names())})"
    )
    assert err.value.exit_code == 4


def _formats_of_the_package() -> list[str]:
    """The names the public modules of acdkit.sources register, found without the registry:
    a format module left out of `sources._load_builtin` shows here and not there."""
    found = []
    for info in pkgutil.iter_modules(sources.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"acdkit.sources.{info.name}")
        found += [v.name for v in vars(module).values() if isinstance(v, sources.SourceFormat)]
    return sorted(set(found))


def _registered(first: str = "") -> list[str]:
    """The registry of a fresh interpreter (it is process-wide), after importing ``first``."""
    code = f"{first}\nfrom acdkit import sources\nprint(' '.join(sorted(sources.names())))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_registry_holds_every_format_module() -> None:
    expected = _formats_of_the_package()
    assert len(expected) >= 15  # the issue 4 formats and Zeek and Suricata at least
    assert _registered() == expected


def test_importing_one_format_first_keeps_the_others() -> None:
    assert _registered("import acdkit.sources.zeek_tsv") == _formats_of_the_package()


def test_unknown_format_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="zeek-json"):
        sources.get("zeek-xml")


# -- Zeek TSV ---------------------------------------------------------------------------------


def test_zeek_tsv_http_keeps_path_and_cuts_query(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/zat/http.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    row = net[12]  # .../styles.css?ver=3.4.1
    assert row["url_path"] == "/wp-content/plugins/contact-form-7/includes/css/styles.css"
    assert row["url_host"] == "www.guyspy.com"
    assert (row["event_kind"], row["http_verb"], row["http_status"]) == ("http", "GET", 200)
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]) == (
        "192.168.33.10",
        1040,
        "54.245.228.191",
        80,
    )
    assert row["session_id"] == "CiCKTz4e0fkYYazBS3"
    assert row["ts_utc"] == 1_379_288_668_150_301_000

    uri = fields.index("uri")
    with_query = [n for n, v in lines.items() if "?" in v[uri]]
    assert len(with_query) > 10  # the sample really carries query strings
    assert sorted(net) == sorted(lines)
    for n, values in lines.items():
        assert net[n]["url_path"] == path_of(values[uri])


def test_zeek_tsv_unset_is_null_and_escaped_comma_rows_survive(
    store: Store, real: Callable[[str], Path]
) -> None:
    path = real("zeek-tsv/zat/ssl.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    escaped = [n for n, v in lines.items() if "\\," in "\t".join(v)]
    assert len(escaped) == 35 and len(lines) == 37  # SOURCES.md
    assert sorted(net) == sorted(lines)
    sni = fields.index("server_name")
    for n, values in lines.items():
        expected = None if values[sni] == "-" else values[sni]
        assert net[n]["sni"] == expected
        assert net[n]["event_kind"] == "tls"
    assert sum(v[sni] == "-" for v in lines.values()) > 0


def test_zeek_tsv_unset_service_is_null(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/zat/conn.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    service, duration = fields.index("service"), fields.index("duration")
    for n, values in lines.items():
        assert net[n]["service"] == (None if values[service] == "-" else values[service])
        expected = None if values[duration] == "-" else epoch_ns(values[duration])
        assert net[n]["duration_ns"] == expected
    assert any(v[service] == "-" for v in lines.values())
    assert any(v[service] != "-" for v in lines.values())


def test_zeek_tsv_logs_concatenated_in_one_file_keep_every_run(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    # `cat conn.log dns.log conn.log`: three header blocks inside one read chunk
    conn, dns = real("zeek-tsv/zat/conn.log"), real("zeek-tsv/zat/dns.log")
    joined = tmp_path / "joined.log"
    joined.write_bytes(conn.read_bytes() + dns.read_bytes() + conn.read_bytes())
    n_conn, n_dns = len(tsv_rows(conn)[2]), len(tsv_rows(dns)[2])
    conn_lines = len(conn.read_bytes().splitlines())
    dns_lines = len(dns.read_bytes().splitlines())
    result, rows = ingest_one(store, joined)

    assert result.records["net"] == 2 * n_conn and result.records["dns"] == n_dns
    assert result.lines == 2 * conn_lines + dns_lines
    assert result.record_count + result.skipped + result.rejected == result.lines
    # the second copy of conn.log keeps its own line numbers
    second = {r["src_line"] for r in rows["net"] if r["src_line"] > conn_lines + dns_lines}
    offset = conn_lines + dns_lines
    assert second == {n + offset for n in tsv_rows(conn)[2]}
    assert {r["src_line"] for r in rows["dns"]} == {n + conn_lines for n in tsv_rows(dns)[2]}


def _dns_variant(path: Path, tmp: Path, changes: list[dict[str, str]]) -> Path:
    """The real file's header and first data line, once per change set."""
    text = path.read_text().splitlines()
    header = [t for t in text if t.startswith("#") and not t.startswith("#close")]
    fields = header[[h.split("\t")[0] for h in header].index("#fields")].split("\t")[1:]
    first = next(t for t in text if not t.startswith("#")).split("\t")
    out = []
    for change in changes:
        values = list(first)
        for name, value in change.items():
            values[fields.index(name)] = value
        out.append("\t".join(values))
    target = tmp / "dns-variants.log"
    target.write_text("\n".join(header + out) + "\n")
    return target


def test_zeek_tsv_empty_unset_and_escapes(
    store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    path = _dns_variant(
        real("zeek-tsv/zat/dns.log"),
        tmp_path,
        [
            {"answers": "(empty)"},  # an empty vector
            {"answers": "-"},  # unset
            {"answers": "odd\\x2cname.example,54.245.228.191"},  # escaped set separator
            {"query": "\\x2d"},  # a literal "-" is written escaped, so it is not unset
            {"query": "(empty)"},
            {"query": "back\\\\slash.example"},
        ],
    )
    result, rows = ingest_one(store, path)
    assert result.rejected == 0
    dns = [r for r in sorted(rows["dns"], key=lambda r: r["src_line"])]
    assert [r["rrdata"] for r in dns[:3]] == [[], None, ["odd,name.example", "54.245.228.191"]]
    assert [r["qname"] for r in dns[3:]] == ["-", "", "back\\slash.example"]


def test_zeek_tsv_non_utf8_escapes_stay_text(store: Store, real: Callable[[str], Path]) -> None:
    # slips-test10/dns.log line 21: a TXT answer with \x2c and non-UTF-8 \xa8\xbd escapes
    path = real("zeek-tsv/slips-test10/dns.log")
    _, rows = ingest_one(store, path)
    txt = by_line(rows["dns"])[21]["rrdata"]
    assert len(txt) == 1 and txt[0].startswith("TXT 9 txtvers=1 TXT 5 note=")
    # undoing only some escapes of a value would make its bytes ambiguous: all stay as text
    assert "\\xa8\\xbd" in txt[0] and "octet-stream\\x2capplication/PCL" in txt[0]


def test_zeek_tsv_ipv6_conn_rows(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/slips-test10/conn.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    assert len(net) == 141  # SOURCES.md
    assert sum(":" in r["src_ip"] for r in net.values()) == 74
    orig_h = fields.index("id.orig_h")
    for n, values in lines.items():
        assert net[n]["src_ip"] == str(ipaddress.ip_address(values[orig_h]))


# -- DNS answers ------------------------------------------------------------------------------


def test_zeek_dns_answers_keep_order(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/zat/dns.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    dns = by_line(rows["dns"])

    assert len(dns) == 54
    answers = fields.index("answers")
    for n, values in lines.items():
        expected = None if values[answers] == "-" else values[answers].split(",")
        assert dns[n]["rrdata"] == expected
    row = dns[10]  # www.guyspy.com -> CNAME guyspy.com, then its address
    assert row["qname"] == "www.guyspy.com"
    assert row["rrdata"] == ["guyspy.com", "54.245.228.191"]
    assert (row["qtype"], row["rcode"], row["trans_id"]) == ("A", "NOERROR", 50071)
    assert (row["resolver_ip"], row["resolver_port"]) == ("4.2.2.3", 53)
    assert (row["client_ip"], row["client_port"]) == ("192.168.33.10", 1030)
    assert row["event_kind"] == "transaction"


def test_zeek_dns_ipv6_answers_canonical(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-tsv/slips-test10/dns.log")
    fields, _, lines = tsv_rows(path)
    _, rows = ingest_one(store, path)
    dns = by_line(rows["dns"])

    assert len(dns) == 93
    answers = fields.index("answers")
    aaaa = 0
    for n, values in lines.items():
        if values[answers] in ("-", "(empty)") or "\\x" in values[answers]:
            continue
        expected = []
        for item in values[answers].split(","):
            try:
                expected.append(str(ipaddress.ip_address(item)))
                aaaa += ":" in item
            except ValueError:
                expected.append(item)
        assert dns[n]["rrdata"] == expected
    assert aaaa > 0


def test_zeek_json_dns_cname_chain(store: Store, real: Callable[[str], Path]) -> None:
    _, rows = ingest_one(store, real("zeek-json/otrf-apt29/UTICA-C_dns.log"))
    (row,) = rows["dns"]
    assert row["rrdata"] == [
        "global.asimov.events.data.trafficmanager.net",
        "skypedataprdcolwus00.cloudapp.net",
        "13.88.28.53",
    ]
    assert (row["qname"], row["qtype"], row["rcode"]) == (
        "v10.events.data.microsoft.com",
        "A",
        "NOERROR",
    )
    assert (row["resolver_ip"], row["client_ip"], row["client_port"]) == (
        "10.0.0.4",
        "10.0.1.5",
        60019,
    )
    assert row["sensor_id"] == "test-nsm"  # from "@system"
    assert row["ts_utc"] == 1_588_317_723_381_153_000


def test_zeek_json_nxdomain_has_no_rrdata(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-json/zat/dns.log")
    _, rows = ingest_one(store, path)
    dns = by_line(rows["dns"])
    for n, obj in json_lines(path).items():
        assert dns[n]["rrdata"] == obj.get("answers")
        assert dns[n]["rcode"] == obj.get("rcode_name")  # absent: no response seen
    assert sum(r["rcode"] == "NXDOMAIN" and r["rrdata"] is None for r in dns.values()) > 0


def test_suricata_dns_v1_v2_mix(store: Store, real: Callable[[str], Path]) -> None:
    path = real("suricata-eve/beats-eve-dns-4.1.4.log")
    events = json_lines(path)
    _, rows = ingest_one(store, path)
    dns = by_line(rows["dns"])

    assert len(dns) == 24 and rows["net"] == []
    kinds = {n: r["event_kind"] for n, r in dns.items()}
    assert sorted(set(kinds.values())) == ["answer", "query"]
    assert sum(k == "query" for k in kinds.values()) == 8
    for n, e in events.items():
        d = e["dns"]
        assert kinds[n] == d["type"]
        assert dns[n]["session_id"] == str(e["flow_id"])
        assert dns[n]["trans_id"] == d["id"]
        # whichever way the event is oriented, the resolver is the port-53 side
        assert (dns[n]["resolver_ip"], dns[n]["resolver_port"]) == ("10.0.2.3", 53)
        assert dns[n]["client_ip"] == "10.0.2.15"
        if "answers" in d:  # v2: all answers, in order, addresses canonical
            expected = [
                str(ipaddress.ip_address(a["rdata"]))
                if a["rrtype"] in ("A", "AAAA")
                else a["rdata"]
                for a in d["answers"]
            ]
            assert dns[n]["rrdata"] == expected
        elif "rdata" in d:  # v1: one event per answer record
            assert len(dns[n]["rrdata"]) == 1
        else:
            assert dns[n]["rrdata"] is None
    assert dns[3]["rrdata"] == ["2607:f8b0:4006:805::200e"]  # written fully expanded


# -- Suricata ---------------------------------------------------------------------------------


def test_suricata_small_record_values(store: Store, real: Callable[[str], Path]) -> None:
    path = real("suricata-eve/beats-eve-small.log")
    events = json_lines(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    assert sorted(net) == [3, 7, 8]
    http, tls, flow = net[3], net[7], net[8]
    assert (
        http["event_kind"],
        http["url_path"],
        http["url_host"],
        http["http_verb"],
        http["http_status"],
    ) == ("http", "/dd.xml", "192.168.86.28", "GET", 200)
    # 15:43:47.690014-0400 is 19:43:47.690014 UTC
    assert http["ts_utc"] == iso_ns("2018-07-05T19:43:47.690014+0000")
    assert http["ts_utc"] == iso_ns(events[3]["timestamp"])
    assert (tls["event_kind"], tls["sni"], tls["tls_ja3"]) == (
        "tls",
        "p33-btmmdns.icloud.com.",
        None,
    )
    # fully expanded IPv6 in, canonical text out
    assert flow["src_ip"] == "fe80::fada:cff:fedc:87f1"
    assert flow["dst_ip"] == "ff02::1:2"
    assert (flow["event_kind"], flow["proto"], flow["service"]) == ("conn", "udp", "failed")
    # a flow event's time is flow.start, not the later event timestamp
    assert flow["ts_utc"] == iso_ns(events[8]["flow"]["start"])
    assert flow["ts_utc"] != iso_ns(events[8]["timestamp"])
    assert (flow["duration_ns"], flow["orig_bytes"], flow["orig_pkts"]) == (0, 110, 1)
    assert flow["session_id"] == "1828507008887644"

    (answer,) = rows["dns"]
    assert (answer["src_line"], answer["event_kind"], answer["qname"], answer["rrdata"]) == (
        5,
        "answer",
        "clients.l.google.com",
        ["172.217.13.110"],
    )
    assert answer["resolver_ip"] == "192.168.86.1"  # src of the event, port 53


def test_suricata_flows_and_ja3(store: Store, real: Callable[[str], Path]) -> None:
    path = real("suricata-eve/magnc/eve.json")
    events = json_lines(path)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])

    flows = {n: e for n, e in events.items() if e["event_type"] == "flow"}
    tls = {n: e for n, e in events.items() if e["event_type"] == "tls"}
    assert (len(flows), len(tls), len(net)) == (215, 12, 227)  # SOURCES.md
    assert sorted(net) == sorted([*flows, *tls])
    for n, e in flows.items():
        f, row = e["flow"], net[n]
        assert row["ts_utc"] == iso_ns(f["start"])
        assert row["duration_ns"] == iso_ns(f["end"]) - iso_ns(f["start"])
        assert (row["orig_bytes"], row["resp_bytes"], row["orig_pkts"], row["resp_pkts"]) == (
            f["bytes_toserver"],
            f["bytes_toclient"],
            f["pkts_toserver"],
            f["pkts_toclient"],
        )
        assert row["session_id"] == str(e["flow_id"])  # 64-bit ids survive exactly
        assert row["src_ip"] == str(ipaddress.ip_address(e["src_ip"]))
        assert row["dst_ip"] == str(ipaddress.ip_address(e["dest_ip"]))
    assert any(net[n]["duration_ns"] > 0 for n in flows)
    for n, e in tls.items():
        assert net[n]["tls_ja3"] == e["tls"]["ja3"]["hash"]
        assert net[n]["tls_ja3s"] == e["tls"]["ja3s"]["hash"]
        assert net[n]["ts_utc"] == iso_ns(e["timestamp"])


# -- Zeek JSON --------------------------------------------------------------------------------


def test_zeek_json_ja3_and_envelope_sensor(store: Store, real: Callable[[str], Path]) -> None:
    _, rows = ingest_one(store, real("zeek-json/otrf-apt29/SCRANTON_ssl.log"))
    assert len(rows["net"]) == 2
    for row in rows["net"]:
        assert (row["tls_ja3"], row["tls_ja3s"]) == (JA3, JA3S)
        assert row["sensor_id"] == "simplerockbuild.simplerock.lan"
        assert (row["event_kind"], row["dst_ip"], row["dst_port"]) == ("tls", "192.168.0.5", 443)
        assert row["sni"] is None  # no server_name key in these records
    assert [r["session_id"] for r in rows["net"]] == ["CN30222JydecBjLXGh", "CzUOBX1HtxiLDcLRXg"]


def test_sensor_option_is_a_fallback(store: Store, real: Callable[[str], Path]) -> None:
    _, own = ingest_one(store, real("zeek-json/otrf-apt29/SCRANTON_ssl.log"), sensor="collector-7")
    _, bare = ingest_one(store, real("zeek-json/zat/ssl.log"), sensor="collector-7")
    assert {r["sensor_id"] for r in own["net"]} == {"simplerockbuild.simplerock.lan"}
    assert {r["sensor_id"] for r in bare["net"]} == {"collector-7"}


# NOTE: SOURCES.md says SCRANTON_http.log has URIs with query strings; it has none.
# zat/http.log has one ("/fwlink/?LinkID=403856&...").
@pytest.mark.parametrize(
    ("rel", "queries"),
    [("zeek-json/otrf-apt29/SCRANTON_http.log", 0), ("zeek-json/zat/http.log", 1)],
)
def test_zeek_json_http_fields(
    store: Store, real: Callable[[str], Path], rel: str, queries: int
) -> None:
    path = real(rel)
    _, rows = ingest_one(store, path)
    net = by_line(rows["net"])
    objs = json_lines(path)
    assert sorted(net) == sorted(objs)
    assert sum("?" in o.get("uri", "") for o in objs.values()) == queries
    for n, o in objs.items():
        # some zat rows are timeouts with no request line: no method, host or uri
        uri = o.get("uri")
        assert net[n]["url_path"] == (None if uri is None else path_of(uri))
        assert (net[n]["http_verb"], net[n]["url_host"]) == (o.get("method"), o.get("host"))
        assert net[n]["http_status"] == o.get("status_code")
        assert net[n]["event_kind"] == "http"


def test_relative_zeek_times_are_kept(store: Store, real: Callable[[str], Path]) -> None:
    path = real("zeek-json/slips-test9/ssl.log")
    result, rows = ingest_one(store, path)
    net = by_line(rows["net"])
    assert len(net) == 205
    for n, line in enumerate(path.read_text().splitlines(), 1):
        ts = line.split('"ts":', 1)[1].split(",", 1)[0]  # the number as written
        assert net[n]["ts_utc"] == epoch_ns(ts)
    assert min(r["ts_utc"] for r in net.values()) < 100 * 10**9
    assert [c["findings"]["before_1990"]["records"] for c in result.clock_skew] == [205]


# -- the same event as TSV and as JSON --------------------------------------------------------


def _json_value(kind: str, text: str) -> Any:
    if kind.startswith(("set[", "vector[", "table[")):
        inner = kind[kind.index("[") + 1 : -1]
        return [] if text == "(empty)" else [_json_value(inner, v) for v in text.split(",")]
    if kind in ("count", "port", "int"):
        return int(text)
    if kind in ("time", "interval", "double"):
        return float(text)
    if kind == "bool":
        return text == "T"
    return text


def _write_pair(path: Path, take: int, tmp: Path) -> tuple[Path, Path]:
    """The first ``take`` rows of a real TSV log, as TSV and as Zeek's JSON writer would
    write them, both with a ``_system_name`` column added (as a cluster node writes it)."""
    fields, types, lines = tsv_rows(path)
    head = [
        t
        for t in path.read_text().splitlines()
        if t.startswith("#") and not t.startswith(("#fields", "#types", "#close"))
    ]
    rows = [[*values, "zeek-node-1"] for values in list(lines.values())[:take]]
    fields, types = [*fields, "_system_name"], [*types, "string"]
    tsv = tmp / "pair.tsv.log"
    tsv.write_text(
        "\n".join(
            [
                *head,
                "\t".join(["#fields", *fields]),
                "\t".join(["#types", *types]),
                *("\t".join(r) for r in rows),
            ]
        )
        + "\n"
    )
    as_json = tmp / "pair.json.log"
    with as_json.open("w") as fh:
        for values in rows:
            obj = {
                f: _json_value(t, v)
                for f, t, v in zip(fields, types, values, strict=True)
                if v != "-"
            }
            fh.write(json.dumps(obj) + "\n")
    return tsv, as_json


@pytest.mark.parametrize("log", ["conn", "dns", "http", "ssl"])
def test_tsv_and_json_forms_give_the_same_record(
    store: Store, real: Callable[[str], Path], tmp_path: Path, log: str
) -> None:
    tsv, as_json = _write_pair(real(f"zeek-tsv/zat/{log}.log"), 30, tmp_path)
    r_tsv, from_tsv = ingest_one(store, tsv)
    r_json, from_json = ingest_one(store, as_json)
    assert (r_tsv.format, r_json.format) == ("zeek-tsv", "zeek-json")

    table = "dns" if log == "dns" else "net"
    drop = ("src_ledger_id", "src_line")
    want = [{k: v for k, v in r.items() if k not in drop} for r in from_tsv[table]]
    got = [{k: v for k, v in r.items() if k not in drop} for r in from_json[table]]
    assert len(got) == 30
    assert got == want
    assert {r["sensor_id"] for r in got} == {"zeek-node-1"}
