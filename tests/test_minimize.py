"""Minimization (DESIGN §4): content fields never reach any output; what is kept is normalized.

The canary tests take real sensor lines, write a distinct marker into every field that is not
machine information, run ingest, seal and package, and then look for the markers in every
byte the store and the bundle hold, compressed Parquet pages included.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import struct
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import _cmdformat
from _scan import hits
from _winrows import Ingested
from acdkit import bundle, ingest, keys, minimize, schema, sources
from acdkit.errors import MalformedError
from acdkit.seal import seal
from acdkit.sources._lines import LineChunk
from acdkit.store import Store, init_store

MARK = "CANARY"
BITS = "sysmon-json/cmd_bitsadmin_download_psh_script_2020-10-2302365189.json"
BEAT = "winlogbeat/winlogbeat-sysmon-security.ndjson"


INVISIBLE = {"Zs", "Zl", "Zp", "Cc", "Cf", "Co"}  # Unicode categories that end a path


def path_of(uri: str) -> str:
    """The minimization policy for an origin-form request target (README, net.v1.yaml).

    A target that starts with '//' may be scheme-relative (``//user:pass@host/...``): what
    could be its user-info, up to the last '@' before any '?' or '#', is dropped."""
    if uri.startswith("//"):
        uri = re.sub("^//[^?#]*@", "//", uri)
    path = re.split("[?#;]|%3[fF]|%2[35]", uri, maxsplit=1)[0]
    cut = next((i for i, c in enumerate(path) if unicodedata.category(c) in INVISIBLE), None)
    path = path if cut is None else path[:cut]
    # paths keep no user names: a user's directory segment becomes <user>
    return re.sub("(/home/|/Users/|/~|/%7[eE])[^/]+", r"\1<user>", path)


def canary(field: str) -> str:
    return f"{MARK}-{field}-7f3a"


# -- planting ---------------------------------------------------------------------------------

# Fields acdkit keeps (machine information), by JSON key path; every other field gets a canary.
ZEEK_KEEP = {
    "_path", "@stream", "@system", "_system_name", "ts", "uid", "proto", "service", "duration",
    "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "ja3", "ja3s", "server_name",
    "method", "host", "uri", "status_code", "query", "qtype", "qtype_name", "rcode",
    "rcode_name", "trans_id", "answers",
    *(f"id{sep}{k}" for sep in "._" for k in ("orig_h", "orig_p", "resp_h", "resp_p")),
}  # fmt: skip
EVE_KEEP = {
    "timestamp", "flow_id", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto",
    "app_proto", "host", "flow.pkts_toserver", "flow.pkts_toclient", "flow.bytes_toserver",
    "flow.bytes_toclient", "flow.start", "flow.end", "tls.sni", "tls.ja3.hash", "tls.ja3s.hash",
    "http.hostname", "http.url", "http.http_method", "http.status", "dns.version", "dns.type",
    "dns.id", "dns.rrname", "dns.rrtype", "dns.rcode", "dns.rdata", "dns.answers.rdata",
    "dns.grouped", "dns.queries.rrname", "dns.queries.rrtype",
}  # fmt: skip
# content a sensor may log that the real lines below happen not to carry
ZEEK_EXTRA = (
    "user_agent",
    "referrer",
    "username",
    "password",
    "cookie",
    "status_msg",
    "subject",
    "issuer",
    "client_subject",
    "orig_filenames",
    "client_header_names",
    "server_header_names",
    "post_body",
    "msg",
)
EVE_EXTRA = {
    "payload": "", "payload_printable": "", "packet": "",
    "http": {"http_user_agent": "", "http_refer": "", "http_content_type": "", "cookie": "",
             "http_request_body_printable": "", "xff": ""},
    "tls": {"subject": "", "issuerdn": "", "serial": "", "fingerprint": "",
            "ja3": {"string": ""}, "ja3s": {"string": ""}},
    "alert": {"signature": "", "category": "", "metadata": {"tag": [""]}},
    "fileinfo": {"filename": "", "magic": ""},
}  # fmt: skip


def plant(obj: Any, keep: set[str], path: str = "") -> Any:
    """A copy with every value whose key path is not in ``keep`` replaced by a canary."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            p = f"{path}{key}"
            if p in keep:
                out[key] = value
            elif isinstance(value, dict) or (
                isinstance(value, list) and value and isinstance(value[0], dict)
            ):
                out[key] = plant(value, keep, p + ".")
            else:
                out[key] = [canary(p)] if isinstance(value, list) else canary(p)
        return out
    return [plant(item, keep, path) for item in obj]


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict):
            out[key] = merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
        else:
            out.setdefault(key, value)
    return out


def poison_url(obj: dict[str, Any], uri: str, host: str) -> None:
    """Query string, fragment and user-info canaries around a kept path and host."""
    if obj.get(uri) not in (None, "-"):  # "-" is Zeek TSV's unset
        obj[uri] += f"?q={canary('query')}&x=1#{canary('fragment')}"
    if obj.get(host) not in (None, "-"):
        obj[host] = f"{canary('userinfo')}:{canary('password')}@{obj[host]}"


def zeek_json_line(obj: dict[str, Any]) -> dict[str, Any]:
    out = plant(obj, ZEEK_KEEP)
    for key in ZEEK_EXTRA:
        out.setdefault(key, canary(key))
    poison_url(out, "uri", "host")
    return out


def eve_line(obj: dict[str, Any]) -> dict[str, Any]:
    ingested = obj["event_type"] in ("flow", "tls", "http", "dns")
    keep = EVE_KEEP if ingested else {"timestamp", "event_type"}
    out = plant(merge(obj, EVE_EXTRA), keep)
    if isinstance(out.get("http"), dict) and ingested:
        poison_url(out["http"], "url", "hostname")
    return out


def zeek_tsv_lines(path: Path, take: int) -> tuple[list[str], list[dict[str, str]]]:
    """The real header and ``take`` rows, with canaries in every column not kept."""
    text = path.read_text().splitlines()
    header = [t for t in text if t.startswith("#") and not t.startswith("#close")]
    names = header[[h.split("\t")[0] for h in header].index("#fields")].split("\t")[1:]
    extra = ("cookie", "post_body")
    out_header = []
    for h in header:
        if h.startswith("#fields"):
            h += "\t" + "\t".join(extra)
        elif h.startswith("#types"):
            h += "\tstring" * len(extra)
        out_header.append(h)
    originals, rows = [], []
    for line in [t for t in text if not t.startswith("#")][:take]:
        values = dict(zip(names, line.split("\t"), strict=True))
        originals.append(values)
        row = {k: v if k in ZEEK_KEEP else canary(k) for k, v in values.items()}
        row.update({k: canary(k) for k in extra})
        poison_url(row, "uri", "host")
        rows.append("\t".join(row.values()))
    return [*out_header, *rows], originals


# -- scanning ---------------------------------------------------------------------------------


def planted_fields(folder: Path) -> set[str]:
    """Names of the fields that carry a canary in the input files (text or UTF-16 records)."""
    found: set[str] = set()
    for path in folder.iterdir():
        raw = path.read_bytes()
        # UTF-16 text inside binary records (EVTX) starts at even or odd offsets
        texts = [raw.decode("latin-1")]
        texts += [raw[start:].decode("utf-16-le", errors="ignore") for start in (0, 1)]
        for text in texts:
            found.update(re.findall(f"{MARK}-(.+?)-7f3a", text))
    return found


def seal_and_package(store: Store, signer: keys.Signer, out: Path) -> bundle.PackageReport:
    seal(store, signer)
    window = bundle.Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
    return bundle.package(store, signer, "INC-1", window, out)


def sealed(store: Store, table: str) -> list[dict[str, Any]]:
    files = [
        str(d / f"{table}.parquet")
        for d in store.segment_dirs()
        if (d / f"{table}.parquet").is_file()
    ]
    rel = duckdb.sql(f"SELECT * EXCLUDE (ts_utc, integrity_hash) FROM read_parquet({files})")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


# -- the canary inputs, one builder per format ------------------------------------------------


@dataclass
class CanaryCase:
    """Inputs with markers in every content field, and what must still arrive."""

    files: list[Path]
    records: int  # records of all files together
    planted: set[str]  # fields that must carry a marker in the inputs
    check: Callable[[Store, Path], None]  # machine information arrived (store, bundle)
    options: dict[str, Any] = field(default_factory=dict)  # ingest options the files need


def zeek_json_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    expected_http, expected_tls, expected_dns = [], [], []
    takes = {
        "zat/conn.log": 3,
        "zat/dns.log": 6,
        "zat/http.log": 28,
        "zat/ssl.log": 3,
        "otrf-apt29/SCRANTON_ssl.log": 2,
        "otrf-apt29/SCRANTON_http.log": 3,
        "otrf-apt29/UTICA-C_conn.log": 2,
        "otrf-apt29/UTICA-C_dns.log": 1,
    }
    for rel, take in takes.items():
        objs = [json.loads(t) for t in real(f"zeek-json/{rel}").read_text().splitlines()[:take]]
        for o in objs:
            if "http" in rel:  # some zat rows are timeouts with no request line
                uri = o.get("uri")
                expected_http.append((uri and path_of(uri), o.get("host")))
            if "ja3" in o:
                expected_tls.append(o["ja3"])
            if "query" in o:
                expected_dns.append((o["query"], o.get("answers")))
        target = inputs / rel.replace("/", "-")
        target.write_text("".join(json.dumps(zeek_json_line(o)) + "\n" for o in objs))

    def check(store: Store, out: Path) -> None:
        net, dns = sealed(store, "net"), sealed(store, "dns")
        http = Counter((r["url_path"], r["url_host"]) for r in net if r["event_kind"] == "http")
        assert http == Counter(expected_http)
        assert sorted(r["tls_ja3"] for r in net if r["tls_ja3"]) == sorted(expected_tls)
        got_dns = [(r["qname"], r["rrdata"]) for r in dns]
        assert sorted(got_dns, key=repr) == sorted(expected_dns, key=repr)

    planted = {
        "user_agent", "referrer", "username", "password", "cookie", "status_msg", "subject",
        "issuer", "client_header_names", "resp_mime_types", "query", "fragment", "userinfo",
        "history", "version", "cipher",
    }  # fmt: skip
    return CanaryCase(sorted(inputs.iterdir()), sum(takes.values()), planted, check)


def zeek_tsv_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    expected_http, expected_dns = [], []
    takes = {"http": 12, "ssl": 3, "dns": 3, "conn": 3}
    for log, take in takes.items():
        lines, originals = zeek_tsv_lines(real(f"zeek-tsv/zat/{log}.log"), take)
        expected_http += [(path_of(o["uri"]), o["host"]) for o in originals if "uri" in o]
        assert log != "http" or sum("?" in o["uri"] for o in originals) >= 3
        expected_dns += [(o["query"], o["answers"].split(",")) for o in originals if "query" in o]
        (inputs / f"tsv-{log}.log").write_text("\n".join(lines) + "\n")

    def check(store: Store, out: Path) -> None:
        net, dns = sealed(store, "net"), sealed(store, "dns")
        http = Counter((r["url_path"], r["url_host"]) for r in net if r["event_kind"] == "http")
        assert http == Counter(expected_http)
        assert sum(p is not None and p.endswith(".css") for p, _ in http.elements()) >= 3
        got_dns = [(r["qname"], r["rrdata"]) for r in dns]
        assert sorted(got_dns, key=repr) == sorted(expected_dns, key=repr)
        assert len([r for r in net if r["event_kind"] == "tls"]) == 3
        csv = (out / "records" / "net.csv").read_text()
        assert "/wp-content/plugins/contact-form-7/includes/css/styles.css" in csv

    planted = {
        "user_agent", "referrer", "username", "password", "status_msg", "subject",
        "issuer_subject", "resp_mime_types", "query", "fragment", "userinfo", "history",
        "version", "cipher", "cookie", "post_body",
    }  # fmt: skip
    return CanaryCase(sorted(inputs.iterdir()), sum(takes.values()), planted, check)


def suricata_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    events = [
        json.loads(t) for t in real("suricata-eve/beats-eve-small.log").read_text().splitlines()
    ]
    events += [
        json.loads(t)
        for t in real("suricata-eve/beats-eve-dns-4.1.4.log").read_text().splitlines()[:12]
    ]
    magnc = [json.loads(t) for t in real("suricata-eve/magnc/eve.json").read_text().splitlines()]
    events += [next(e for e in magnc if e["event_type"] == t) for t in ("flow", "tls", "ssh")]
    # an http event with a query string in its URL, from the real one
    events.append(copy.deepcopy(events[2]))
    events[-1]["http"]["url"] = "/dd.xml?device=living-room"
    kinds = [e["event_type"] for e in events]
    assert {"alert", "fileinfo", "http", "tls", "flow", "dns", "stats", "ssh"} <= set(kinds)
    path = inputs / "eve.json"
    path.write_text("".join(json.dumps(eve_line(e)) + "\n" for e in events))

    def check(store: Store, out: Path) -> None:
        net, dns = sealed(store, "net"), sealed(store, "dns")
        http = [r for r in net if r["event_kind"] == "http"]
        assert [(r["url_path"], r["url_host"]) for r in http] == [("/dd.xml", "192.168.86.28")] * 2
        tls = {r["sni"] for r in net if r["event_kind"] == "tls"}
        assert "p33-btmmdns.icloud.com." in tls
        ja3 = next(e for e in magnc if e["event_type"] == "tls")["tls"]["ja3"]["hash"]
        assert ja3 in {r["tls_ja3"] for r in net}
        assert {r["qname"] for r in dns} >= {"google.com", "www.elastic.co", "clients.l.google.com"}

    planted = {
        "http.http_user_agent", "http.http_content_type", "http.http_refer", "http.length",
        "tls.subject", "tls.issuerdn", "tls.ja3.string", "tls.ja3s.string", "alert.signature",
        "fileinfo.filename", "fileinfo.sha256", "dns.answers.rrname", "dns.ttl",
        "ssh.client.software_version", "query", "fragment", "userinfo", "payload", "in_iface",
        "tcp.tcp_flags",
    }  # fmt: skip
    ingested = sum(k in ("flow", "tls", "http", "dns") for k in kinds)
    return CanaryCase([path], ingested, planted, check)


def pcap_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    """A real TLS capture plus flows whose payloads carry markers (HTTP, a certificate, DNS
    TXT, FTP log-in, syslog); only addresses, counters, fingerprints and names may arrive."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter, rdpcap

    chrome = list(rdpcap(str(real("pcap/chrome-34-google.pcap"))))
    server_hello = bytes(chrome[5][TCP].payload)
    cert = f"subject CN={canary('tls.certificate_subject')}, O={canary('tls.issuer')}".encode()
    http = (
        f"GET /index.html?{canary('http.query')} HTTP/1.1\r\nHost: example.org\r\n"
        f"User-Agent: {canary('http.user_agent')}\r\nCookie: {canary('http.cookie')}\r\n\r\n"
    ).encode()
    txt = DNS(id=3, qr=1, qd=DNSQR(qname="t.example", qtype=255), an=[
        DNSRR(rrname="t.example", type="TXT", rdata=[canary("dns.txt")]),
        DNSRR(rrname="t.example", type="A", rdata="192.0.2.9")])  # fmt: skip
    c, s = IP(src="10.7.0.1", dst="10.7.0.2"), IP(src="10.7.0.2", dst="10.7.0.1")
    t0 = float(chrome[-1].time) + 10
    layered = [
        c / TCP(sport=4000, dport=80, flags="PA", seq=1) / http,
        s / TCP(sport=80, dport=4000, flags="PA", seq=1) / f"200 OK {canary('http.body')}",
        s / TCP(sport=443, dport=4002, flags="PA", seq=9) / (server_hello + cert),
        c / UDP(sport=4001, dport=53) / DNS(id=3, qd=DNSQR(qname="t.example", qtype=255)),
        s / UDP(sport=53, dport=4001) / txt,
        c
        / TCP(sport=4010, dport=21, flags="PA", seq=1)
        / f"USER {canary('ftp.user')}\r\nPASS {canary('ftp.password')}\r\n",
        c / UDP(sport=4020, dport=514) / f"<13>host app: {canary('syslog.message')}",
    ]
    l2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    path = inputs / "marked.pcap"
    with PcapWriter(str(path)) as out:
        for p in chrome:
            out.write(p)
        for i, p in enumerate(layered):
            frame = Ether(bytes(l2 / p))
            frame.time = t0 + i
            out.write(frame)

    def check(store: Store, out: Path) -> None:
        net, dns = sealed(store, "net"), sealed(store, "dns")
        tls = {(r["tls_ja3"], r["sni"]) for r in net if r["tls_ja3"]}
        assert tls == {("a607f3a5c94c2ee592af1456f36c8367", "google.de")}
        assert [(r["qname"], r["rrdata"]) for r in dns] == [("t.example", ["192.0.2.9"])]
        assert sorted(r["dst_port"] for r in net) == [21, 53, 80, 443, 514, 4002]

    planted = {
        "tls.certificate_subject", "tls.issuer", "http.query", "http.user_agent", "http.cookie",
        "http.body", "dns.txt", "ftp.user", "ftp.password", "syslog.message",
    }  # fmt: skip
    return CanaryCase([path], 7, planted, check)


# AWS fields that name things (ECS clusters, services, tasks, tags): content, never kept;
# the identifiers acdkit checks the shape of (vpc-id, …) are left as they are
AWS_CONTENT = (
    "ecs-cluster-arn", "ecs-cluster-name", "ecs-container-instance-arn",
    "ecs-container-instance-id", "ecs-container-id", "ecs-second-container-id",
    "ecs-service-name", "ecs-task-definition-arn", "ecs-task-arn", "ecs-task-id",
    "pkt-src-aws-service", "pkt-dst-aws-service", "sublocation-type", "sublocation-id",
    "instance-tag", "interface-tag",
)  # fmt: skip


def aws_vpc_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    from acdkit.sources.aws_vpc import ALL_FIELDS

    order = [*ALL_FIELDS[:14], "vpc-id", "instance-id", "pkt-srcaddr", "pkt-dstaddr"]
    order += AWS_CONTENT
    values = {
        "vpc-id": "vpc-abcdefab012345678", "instance-id": "i-01234567890123456",
        **{f: canary(f) for f in AWS_CONTENT},
    }  # fmt: skip
    lines = []
    for raw in real("aws-vpc/elastic-test-extra-samples.log").read_text().splitlines():
        fields = dict(zip(ALL_FIELDS[:14], raw.split(" "), strict=True))
        fields |= {"pkt-srcaddr": fields["srcaddr"], "pkt-dstaddr": fields["dstaddr"]}
        lines.append(" ".join({**fields, **values}[f] for f in order))
    (inputs / "vpcflow-s3.log").write_text(" ".join(order) + "\n" + "\n".join(lines) + "\n")

    def check(store: Store, out: Path) -> None:
        net = sealed(store, "net")
        assert sorted(r["dst_port"] for r in net) == [0, 0, 22, 22, 3389]
        assert {r["sensor_id"] for r in net} == {"eni-1235b8ca123456789"}

    return CanaryCase([inputs / "vpcflow-s3.log"], 5, set(AWS_CONTENT), check)


def azure_flow_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    blob = json.loads(real("azure-nsg/elastic-sample_logs-testdata.log").read_text())
    for rec in blob["records"]:
        rec |= {"systemId": canary("systemId"), "operationName": canary("operationName")}
        rec["tags"] = {"owner": canary("tags")}
        for group in rec["properties"]["flows"]:
            group["rule"] = canary("rule")
    vnet = json.loads(real("azure-vnet/docs-vnet.json").read_text())
    for rec in vnet["records"]:
        rec |= {"flowLogGUID": canary("flowLogGUID"), "flowLogResourceID": canary("flowLog")}
        for flow in rec["flowRecords"]["flows"]:
            flow["aclID"] = canary("aclID")
            for group in flow["flowGroups"]:
                group["rule"] = canary("vnet-rule")
    (inputs / "PT1H.json").write_text(json.dumps(blob, indent=2))
    (inputs / "vnet.json").write_text(json.dumps(vnet))

    def check(store: Store, out: Path) -> None:
        net = sealed(store, "net")
        assert len(net) == 30 and {r["dst_ip"] for r in net} >= {"10.5.16.4", "10.0.0.6"}

    planted = {"systemId", "operationName", "tags", "rule", "flowLogGUID", "flowLog", "aclID"}
    return CanaryCase(sorted(inputs.iterdir()), 11 + 19, planted, check)


GCP_KEEP = {
    "jsonPayload.connection.src_ip", "jsonPayload.connection.src_port",
    "jsonPayload.connection.dest_ip", "jsonPayload.connection.dest_port",
    "jsonPayload.connection.protocol", "jsonPayload.start_time", "jsonPayload.end_time",
    "jsonPayload.bytes_sent", "jsonPayload.packets_sent", "jsonPayload.reporter",
    "resource.labels.subnetwork_id",
}  # fmt: skip


def gcp_vpc_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    entries = [
        json.loads(t) for t in real("gcp-vpc/docs-src-dest-report.jsonl").read_text().splitlines()
    ]
    planted_entries = [plant(e, GCP_KEEP) for e in entries]
    (inputs / "vpc_flows.jsonl").write_text("".join(json.dumps(e) + "\n" for e in planted_entries))

    def check(store: Store, out: Path) -> None:
        net = sealed(store, "net")
        assert sorted(r["sensor_id"] for r in net) == [
            "1111111111111111111/src", "1111111111111111111/src", "2222222222222222222/dest",
        ]  # fmt: skip
        assert sorted(r["dst_port"] for r in net) == [443, 5432, 5432]

    planted = {
        "insertId", "logName", "timestamp", "receiveTimestamp", "jsonPayload.rtt_msec",
        "jsonPayload.src_instance.vm_name", "jsonPayload.dest_instance.vm_name",
        "jsonPayload.src_vpc.vpc_name", "jsonPayload.dest_location.country",
        "resource.labels.project_id", "resource.labels.subnetwork_name",
    }  # fmt: skip
    return CanaryCase([inputs / "vpc_flows.jsonl"], 3, planted, check)


CEF_CONTENT = (
    "msg", "suser", "duser", "suid", "spriv", "requestClientApplication", "requestCookies",
    "requestContext", "cs1", "cs1Label", "cs6", "cn1Label", "fname", "filePath", "act",
    "reason", "destinationServiceName", "sourceUserName",
)  # fmt: skip


def cef_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    lines = []
    for raw in real("cef/zoned.log").read_text().splitlines():
        pre, cef = raw.split("CEF:", 1)
        # the header's fields end at pipes that no backslash escapes
        version, *_, severity, ext = re.split(r"(?<!\\)\|", cef, maxsplit=7)
        head = [version, canary("vendor"), canary("product"), "1", canary("sig"), canary("name")]
        ext = ext.replace("request=https://", f"request=https://{canary('userinfo')}@")
        ext = ext.replace("?item", f"?{canary('query')}=1&item")
        extra = " ".join(f"{f}={canary(f)} with spaces" for f in CEF_CONTENT)
        lines.append(f"{pre}CEF:{'|'.join(head)}|{severity}|{ext} {extra}")
    (inputs / "events.cef").write_text("\n".join(lines) + "\n")

    def check(store: Store, out: Path) -> None:
        net, dns = sealed(store, "net"), sealed(store, "dns")
        http = [(r["url_host"], r["url_path"]) for r in net if r["event_kind"] == "http"]
        assert http == [("www.example.com:8443", "/cart/add")]
        assert [r["qname"] for r in dns] == ["www.example.com"]
        assert len(net) == 3

    planted = {*CEF_CONTENT, "vendor", "product", "sig", "name", "userinfo", "query"}
    return CanaryCase([inputs / "events.cef"], 4, planted, check)


# Windows events: the EventData fields the mapping reads as machine information; every other
# field (user names, image paths, command lines, host names of reverse lookups, Message) is
# content, and the command line must arrive only as its signature
WIN_KEEP = {
    "UtcTime", "ProcessGuid", "ParentProcessGuid", "ParentProcessId", "Hashes", "SourceIp",
    "SourcePort", "DestinationIp", "DestinationPort", "Protocol", "Initiated", "QueryName",
    "QueryStatus", "QueryResults", "SubjectUserSid", "TargetUserSid", "NewProcessId",
    "ProcessId", "Direction", "SourceAddress", "DestAddress", "DestPort",
}  # fmt: skip
WIN_MAPPED = {
    ("Microsoft-Windows-Sysmon", 1), ("Microsoft-Windows-Sysmon", 3),
    ("Microsoft-Windows-Sysmon", 22), ("Microsoft-Windows-Security-Auditing", 4688),
    ("Microsoft-Windows-Security-Auditing", 5156),
}  # fmt: skip


def _guid(text: str) -> str:
    return text.strip("{}").lower()


def winevent_flat_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    # Sysmon events and skipped ones: the Security 4688/5156 of this export have no UTC time
    # and are rejected without --assume-tz (their content then reaches nothing either)
    objs = [json.loads(t) for t in real(BITS).read_text(encoding="utf-8").splitlines()]
    sysmon = [o for o in objs if (o["SourceName"], o["EventID"]) in WIN_MAPPED][:40]
    sysmon = [o for o in sysmon if o["SourceName"] == "Microsoft-Windows-Sysmon"]
    skipped = [o for o in objs if (o["SourceName"], o["EventID"]) not in WIN_MAPPED][:30]
    lines = [plant(o, {"SourceName", "EventID", "Hostname", *WIN_KEEP}) for o in sysmon]
    lines += [plant(o, {"SourceName", "EventID"}) for o in skipped]
    (inputs / "winevent.json").write_text("".join(json.dumps(o) + "\n" for o in lines))
    expected_exec = sorted(_guid(o["ProcessGuid"]) for o in sysmon if o["EventID"] == 1)
    expected_dns = sorted(o["QueryName"] for o in sysmon if o["EventID"] == 22)

    def check(store: Store, out: Path) -> None:
        edr, dns, net = sealed(store, "edr"), sealed(store, "dns"), sealed(store, "net")
        assert sorted(r["proc_exec_id"] for r in edr) == expected_exec
        assert all(r["cmdline_sig"] for r in edr)
        assert sorted(r["qname"] for r in dns) == expected_dns
        assert {r["dst_port"] for r in net} >= {443, 5985}

    planted = {
        "CommandLine", "ParentCommandLine", "CurrentDirectory", "User", "Image", "ParentImage",
        "Message", "SourceHostname", "DestinationHostname", "SubjectUserName",
    }  # fmt: skip
    return CanaryCase([inputs / "winevent.json"], len(sysmon), planted, check)


def winlogbeat_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    objs = [json.loads(t) for t in real(BEAT).read_text().splitlines()]
    keep = {"@timestamp", *(f"winlog.{k}" for k in ("provider_name", "event_id", "computer_name"))}
    keep |= {f"winlog.event_data.{k}" for k in WIN_KEEP}
    lines = [plant(o, keep) for o in objs]
    (inputs / "winlogbeat.ndjson").write_text("".join(json.dumps(o) + "\n" for o in lines))

    def check(store: Store, out: Path) -> None:
        edr, net = sealed(store, "edr"), sealed(store, "net")
        assert sorted(r["user_sid"] or "" for r in edr) == ["", "S-1-5-19"]
        assert all(r["cmdline_sig"] for r in edr)
        assert sorted(r["dst_port"] for r in net) == [443, 445, 445]

    planted = {
        "winlog.event_data.CommandLine", "winlog.event_data.User", "winlog.event_data.Image",
        "winlog.event_data.ParentCommandLine", "winlog.event_data.TargetUserName",
        "winlog.event_data.SubjectUserName", "winlog.event_data.Application",
        "process.command_line", "user.name", "message", "host.name",
    }  # fmt: skip
    return CanaryCase([inputs / "winlogbeat.ndjson"], 6, planted, check)


def _evtx_with_canaries(src: Path, dst: Path) -> tuple[set[str], set[str]]:
    """``src`` with every content string of its records overwritten in place by a canary of
    the same length, the chunks' checksums made good again; (canary labels, field names)."""
    import evtx  # the EVTX decoder, to find the strings the records hold

    data = bytearray(src.read_bytes())
    labels: set[str] = set()
    names: set[str] = set()
    done: set[bytes] = set()
    for rec in evtx.PyEvtxParser(str(src)).records_json():
        fields = json.loads(rec["data"])["Event"].get("EventData") or {}
        for name, value in fields.items():
            if name in WIN_KEEP or not isinstance(value, str) or len(value) < 13:
                continue
            # the marker takes the value's exact length (canary() adds 12 characters), so
            # every length field of the binary XML stays right
            label = name.ljust(len(value) - 12, "_")[: len(value) - 12]
            old, new = value.encode("utf-16-le"), canary(label).encode("utf-16-le")
            assert len(old) == len(new)
            if old in done:  # the same text in another field (a parent's command line)
                names.add(name)
            elif old in data:
                data[:] = data.replace(old, new)
                done.add(old)
                labels.add(label)
                names.add(name)
    for offset in range(4096, len(data), 65536):
        chunk = data[offset : offset + 65536]
        if chunk[:8] != b"ElfChnk\x00":
            continue
        free = struct.unpack_from("<I", chunk, 48)[0]
        struct.pack_into("<I", chunk, 52, zlib.crc32(chunk[512:free]))
        struct.pack_into("<I", chunk, 124, zlib.crc32(chunk[:120] + chunk[128:512]))
        data[offset : offset + 65536] = chunk
    dst.write_bytes(bytes(data))
    return labels, names


def windows_evtx_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    sources_ = {
        "sysmon-evtx/LM_impacket_docmexec_mmc_sysmon_01.evtx": 9,
        "winsec-4688/mdecrevoisier-ID4688-4697-5140-5145-PSexec-remote-execution.evtx": 11,
        "winsec-4688/DE_RDP_Tunnel_5156.evtx": 80,
    }
    labels: set[str] = set()
    names: set[str] = set()
    for rel in sources_:
        got = _evtx_with_canaries(real(rel), inputs / rel.replace("/", "-"))
        labels, names = labels | got[0], names | got[1]
    original = Ingested(
        init_store(inputs.parent / "plain", inputs.parent / "k", "o")[0],
        real("sysmon-evtx/LM_impacket_docmexec_mmc_sysmon_01.evtx"),
    )

    def check(store: Store, out: Path) -> None:
        edr, net = sealed(store, "edr"), sealed(store, "net")
        assert len(edr) == 5 + 11 + 17 and len(net) == 4 + 63
        guids = {r["proc_exec_id"] for r in original.rows["edr"].values()}
        assert guids <= {r["proc_exec_id"] for r in edr}
        assert sum(r["cmdline_sig"] is not None for r in edr) >= 5 + 11

    # fields whose values are too short for a marker (IEUser, admmig) are checked with the
    # real secrets in test_secrets_of_real_samples_reach_no_output
    planted = {
        "CommandLine", "ParentCommandLine", "CurrentDirectory", "Image", "ParentImage",
        "NewProcessName", "ParentProcessName", "Application", "User",
    }  # fmt: skip
    assert planted <= names, planted - names
    return CanaryCase(sorted(inputs.iterdir()), sum(sources_.values()), labels, check)


def _planted_lines(
    real: Callable[[str], Path], rel: str, swaps: dict[int, list[tuple[str, str]]]
) -> list[str]:
    """A sample's lines, with text replaced (canaries) in the lines given (1-based)."""
    lines = real(rel).read_text().splitlines()
    for number, changes in swaps.items():
        for old, new in changes:
            assert old in lines[number - 1], (rel, number, old)
            lines[number - 1] = lines[number - 1].replace(old, new)
    return lines


def _write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end)
    return path


def _dns_check(
    expected: list[tuple[str | None, list[str] | None]],
) -> Callable[[Store, Path], None]:
    def check(store: Store, out: Path) -> None:
        got = sorted(((r["qname"], r["rrdata"]) for r in sealed(store, "dns")), key=repr)
        assert got == sorted(expected, key=repr)

    return check


def bind_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    # RPZ, update and CEF messages, TXT answer text, view and TSIG key names, other messages
    c = canary
    infoblox = _planted_lines(real, "bind/elastic-infoblox-nios-test-dns.log", {
        9: [("query123-10-120-20-93", c("rpz_rewrite"))],
        10: [("a6.test1.com", c("update_name"))],
        11: [("rpz QNAME NXDOMAIN rewrite", c("cef_msg"))],
        26: [("k=rsa; p=abc", c("txt_data")), ('"jkl"', f'"{c("txt_more")}"')],
    })  # fmt: skip
    querylog = _planted_lines(real, "bind/querylog-9.16-print-all.log", {
        5: [("view internal", f"view {c('view')}")],
        7: [("lame server resolving", c("lame_message"))],
        9: [("ddns-key", c("tsig_key"))],
        10: [("running", c("general_message"))],
    })  # fmt: skip
    files = [_write(inputs / "infoblox.log", infoblox), _write(inputs / "querylog.log", querylog)]
    expected = [
        ("a1.foo.com", ["foo.com", "0.0.0.0"]), ("test.com", []), ("a2.foo.com", ["192.168.0.3"]),
        ("non-exist.foo.com", []), ("a1.foo.com", ["192.168.0.2", "192.168.0.3"]),
        ("config.nos-avg.cz", None), ("settings-win.data.microsoft.com", []),
        ("ocsp.digicert.com", None), ("89.160.20.128.a1.foo.com", ["089.160.20.112.a1.foo.com"]),
        ("settings-win.data.microsoft.com", []), ("abugtera.tun.p2.42", None),
        ("version.bind", None),
        ("www.example.com", None), ("www.example.com", None), ("www.example.net", None),
        ("example.com", None), ("mail.example.com", None), ("_ldap._tcp.example.com", None),
    ]  # fmt: skip
    planted = {"rpz_rewrite", "update_name", "cef_msg", "txt_data", "txt_more", "view",
               "lame_message", "tsig_key", "general_message"}  # fmt: skip
    options = {"assume_tz": "UTC", "year": 2022}
    return CanaryCase(files, len(expected), planted, _dns_check(expected), options)


def unbound_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    lines = _planted_lines(real, "unbound/unbound-logfile.log", {
        1: [("validator", canary("module_name"))],
        2: [("unbound 1.13.1", canary("version"))],
        10: [("all the configured stub or forward servers failed", canary("servfail_reason"))],
    })  # fmt: skip
    expected = [
        ("example.com", None), ("example.com", None), ("www.example.org", None),
        ("www.example.org", None), (".", None), (".", None), (None, None),
        ("odd?name.example", None),
    ]  # fmt: skip
    planted = {"module_name", "version", "servfail_reason"}
    files = [_write(inputs / "unbound.log", lines)]
    return CanaryCase(files, len(expected), planted, _dns_check(expected))


def dnsmasq_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    # start-up text, hosts file and list paths, DHCP host names and MAC addresses
    c = canary
    facility = _planted_lines(real, "dnsmasq/dnsmasq-log-facility.log", {
        1: [("version 2.89", f"version {c('version')}")],
        2: [("IPv6 GNU-getopt", c("compile_options"))],
        4: [("read /etc/hosts", f"read /etc/{c('hosts_read')}")],
        13: [("/etc/hosts", f"/etc/{c('hosts_path')}")],
        37: [("00:00:5e:00:53:01", c("mac"))],
        38: [("laptop", c("dhcp_host"))],
    })  # fmt: skip
    pihole = _planted_lines(real, "dnsmasq/pihole.log", {
        10: [("/etc/pihole/custom.list", f"/etc/pihole/{c('list_path')}")],
        11: [("custom.list", c("list_read"))],
    })  # fmt: skip
    files = [_write(inputs / "dnsmasq.log", facility), _write(inputs / "pihole.log", pihole)]
    reverse6 = "a.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.0.c.0.4.0.0.4.8.b.d.0.1.0.0.2.ip6.arpa"
    expected = [
        ("www.example.com", ["2001:db8:4004:c07::6a"]),
        ("cdn.example.net",
         ["cdn.example.net.edgekey.example", "e1.a.akamaiedge.example", "198.51.100.23"]),
        ("25.0.168.192.in-addr.arpa", ["node05"]), ("node05", []),
        ("lost.example.org", ["203.0.113.9"]), ("nx.example.org", []),
        ("www.example.com", ["203.0.113.80"]), (reverse6, ["www.example.com"]),
        ("big.example.com", []), ("fail.example.org", []), ("example.org", None),
        ("svc.example.org", []), ("laptop.lan", ["192.168.1.30"]),
        ("ads.example.net", ["0.0.0.0"]), ("ads.example.net", ["::"]),
        ("pi.hole", ["192.168.1.2"]), ("mask.icloud.example", []), ("nas.lan", ["192.168.1.5"]),
    ]  # fmt: skip
    planted = {"version", "compile_options", "hosts_read", "hosts_path", "mac", "dhcp_host",
               "list_path", "list_read"}  # fmt: skip
    options = {"assume_tz": "UTC", "year": 2023}
    return CanaryCase(files, len(expected), planted, _dns_check(expected), options)


def windns_case(real: Callable[[str], Path], inputs: Path) -> CanaryCase:
    # the header, a details block (anything may be there), EVENT text
    lines = _planted_lines(real, "windns/dns-en-US.log", {
        1: [("9:58:01 AM", f"9:58:01 AM {canary('header')}")],
        42: [("Remote addr", f"Remote {canary('details')}")],
        56: [("background loading", canary("event_text"))],
    })  # fmt: skip
    expected: list[tuple[str | None, list[str] | None]] = [
        *[("somecomputer.domain.com", None)] * 4, *[("www.example.org", None)] * 2,
        (".", None), (".", None),
    ]  # fmt: skip
    planted = {"header", "details", "event_text"}
    files = [_write(inputs / "dns.log", lines, "\r\n")]
    return CanaryCase(files, len(expected), planted, _dns_check(expected), {"assume_tz": "UTC"})


# every registered format needs one: a format merged without it fails the canary test
CANARY_INPUTS: dict[str, Callable[[Callable[[str], Path], Path], CanaryCase]] = {
    "zeek-json": zeek_json_case,
    "zeek-tsv": zeek_tsv_case,
    "suricata-eve": suricata_case,
    "pcap": pcap_case,
    "aws-vpc": aws_vpc_case,
    "azure-flow": azure_flow_case,
    "gcp-vpc": gcp_vpc_case,
    "cef": cef_case,
    "winevent-json": winevent_flat_case,
    "winlogbeat": winlogbeat_case,
    "windows-evtx": windows_evtx_case,
    "bind": bind_case,
    "unbound": unbound_case,
    "dnsmasq": dnsmasq_case,
    "windns": windns_case,
}


# -- the canary test --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sources.names())
def test_canaries_reach_no_output(
    fmt: str, store: Store, signer: keys.Signer, real: Callable[[str], Path], tmp_path: Path
) -> None:
    builder = CANARY_INPUTS.get(fmt)
    if builder is None:
        pytest.fail(
            f"format {fmt!r} is registered but has no canary input: add a builder to "
            "CANARY_INPUTS in tests/test_minimize.py that plants a marker in every content "
            "field the format carries (user agents, query strings, user names, command "
            "lines, certificate subjects, messages)"
        )
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    case = builder(real, inputs)
    assert case.planted <= planted_fields(inputs)

    report = ingest.ingest(store, case.files, **case.options)
    for f in report.files:
        assert (f.status, f.format, f.rejected) == ("ingested", fmt, 0), f
    assert report.records == case.records
    if sources.get(fmt).commands:  # the command-line markers were planted and signed
        assert sum(f.signatures for f in report.files) > 0

    out = tmp_path / "bundle"
    pkg = seal_and_package(store, signer, out)
    assert sum(pkg.disclosed.values()) == report.records

    assert hits(store.root, (MARK,)) == []
    assert hits(out, (MARK,)) == []
    # what is machine information did arrive, so the test cannot pass by keeping nothing
    case.check(store, out)


def test_every_format_has_a_canary_input() -> None:
    missing = sorted(set(sources.names()) - set(CANARY_INPUTS))
    assert not missing, f"registered formats without a canary input: {missing}"
    assert not set(CANARY_INPUTS) - set(sources.names()), "a canary input for no format"


# -- url handling, as a property --------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_HOST = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}(:[0-9]{1,5})?", fullmatch=True)


def _zeek_tsv_escape(text: str, everything: bool) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif everything or not (" " <= ch <= "~"):
            out += [f"\\x{b:02x}" for b in ch.encode()]
        else:
            out.append(ch)
    return "".join(out)


def _parse(fmt: str, lines: list[str]) -> pa.Table:
    """Run one source over the lines and minimize the net rows, as ingest does."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    parser = sources.get(fmt).make_parser(sources.Context(con))
    parsed = parser.parse(LineChunk(1, pa.array(lines, pa.large_string())))
    staged, rejects = minimize.finalize(parsed.tables["net"], schema.load("net"))
    assert rejects.num_rows == 0, rejects.to_pylist()
    return staged


def _zeek_tsv(uris: list[tuple[str, str, str]], everything: bool) -> list[str]:
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\thttp",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tmethod\thost\turi",
    ]
    rows = [
        f"1379288667.668082\tC{i}\t192.168.33.10\t1031\t54.245.228.191\t80\tGET\t"
        f"{_zeek_tsv_escape(f'{u}@{h}', everything)}\t{_zeek_tsv_escape(uri, everything)}"
        for i, (uri, u, h) in enumerate(uris)
    ]
    return [line + "\n" for line in head + rows]


def _zeek_json(uris: list[tuple[str, str, str]]) -> list[str]:
    return [
        json.dumps(
            {
                "ts": 1575413155.938245,
                "uid": f"C{i}",
                "id.orig_h": "10.18.20.97",
                "id.orig_p": 49203,
                "id.resp_h": "69.147.64.34",
                "id.resp_p": 80,
                "method": "GET",
                "host": f"{u}@{h}",
                "uri": uri,
            }
        )
        + "\n"
        for i, (uri, u, h) in enumerate(uris)
    ]


def _eve(uris: list[tuple[str, str, str]]) -> list[str]:
    return [
        json.dumps(
            {
                "timestamp": "2018-07-05T15:43:47.690014-0400",
                "flow_id": i,
                "event_type": "http",
                "src_ip": "192.168.86.85",
                "src_port": 56119,
                "dest_ip": "192.168.86.28",
                "dest_port": 80,
                "proto": "TCP",
                "http": {"hostname": f"{u}@{h}", "url": uri, "http_method": "GET"},
            }
        )
        + "\n"
        for i, (uri, u, h) in enumerate(uris)
    ]


_EDGES = [  # (path, query, fragment, user-info, host)
    ("a", "b", "", "user\nname:pw", "host.example"),  # newline inside the user-info
    ("~bob/home/x/Users/y", "", "", "", "h"),  # user directories, one after the other
    ("a#b", "", "?x", "", "h"),  # a fragment before anything that looks like a query
    ("%3F", "", "", "@@", "h:8080"),  # an encoded '?' ends the path too
    ("", "", "", "", "h"),
    ("\n?", "\n", "\n", "a\tb", "h"),  # newlines and tabs (escaped in TSV)
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(uris=_EDGES, fmt="zeek-json")
@example(uris=_EDGES, fmt="zeek-tsv")
@example(uris=_EDGES, fmt="zeek-tsv-escaped")
@example(uris=_EDGES, fmt="suricata-eve")
@given(
    uris=st.lists(st.tuples(_TEXT, _TEXT, _TEXT, _TEXT, _HOST), min_size=1, max_size=25),
    fmt=st.sampled_from(["zeek-json", "zeek-tsv", "zeek-tsv-escaped", "suricata-eve"]),
)
def test_url_path_is_the_part_before_query_and_fragment(
    uris: list[tuple[str, str, str, str, str]], fmt: str
) -> None:
    # a path, then optionally a query and/or fragment with any text in them
    cases = []
    for path, query, fragment, user, host in uris:
        uri = "/" + path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")
        cases.append((uri, user, host))
    if fmt.startswith("zeek-tsv"):
        lines = _zeek_tsv(cases, everything=fmt.endswith("escaped"))
        skip = 6
    else:
        lines = _zeek_json(cases) if fmt == "zeek-json" else _eve(cases)
        skip = 0
    staged = _parse(fmt.removesuffix("-escaped"), lines)

    assert staged.num_rows == len(cases)
    assert staged.column("src_line").to_pylist() == list(range(skip + 1, skip + len(cases) + 1))
    for (uri, _, host), path, url_host in zip(
        cases,
        staged.column("url_path").to_pylist(),
        staged.column("url_host").to_pylist(),
        strict=True,
    ):
        assert "?" not in path and "#" not in path and ";" not in path
        assert path == path_of(uri)
        assert url_host == host


_URL_CASES = [  # (uri, Host, expected url_path, expected url_host)
    (
        "user:pass@example.com:443",
        "user:pass@example.com:443",
        "example.com:443",
        "example.com:443",
    ),
    ("//user:pass@example.com/x", "example.com", "//example.com/x", "example.com"),
    (" http://u:x@h/p?q=1", " http://u:x@h/", "/p", "h"),
    ("/login;jsessionid=CANARY1", "h", "/login", "h"),
    ("/x%3Fsecret=CANARY2", "h", "/x", "h"),
    ("/x%23CANARY3", "h", "/x", "h"),
    ("/ok", "example.com/?secret=CANARY4", "/ok", "example.com"),
    ("/ok", "example.com:8080 CANARY5", "/ok", "example.com:8080"),
    ("http://h;CANARY6@evil/p", "h", "/p", "h"),
    ("//a/b", "h", "//a/b", "h"),  # a path that begins with an empty segment stays
    ("//#@CANARY14", "h", "//", "h"),  # an '@' in a fragment (found by Hypothesis)
    ("//x?q=@CANARY15", "h", "//x", "h"),
    # leading invisible characters, '/' or ';' inside user-info, double encoding, controls
    ("\v//CANARYU1:CANARYP1@h.example/x", "h.example", "//h.example/x", "h.example"),
    ("\x0chttp://CANARYU2:CANARYP2@h.example/x", "h.example", "/x", "h.example"),
    ("\u00a0//CANARYU3:CANARYP3@h.example/x", "h.example", "//h.example/x", "h.example"),
    ("CANARYU4:CANARY/P4@h.example:443", "h.example:443", "h.example:443", "h.example:443"),
    ("CANARYU5;x:CANARYP5@h:443", "h:443", "h:443", "h:443"),
    ("/x%253FCANARY7", "h", "/x", "h"),
    ("/x\n?CANARY8", "h", "/x", "h"),
    ("/ok", "h.example:80:CANARY9", "/ok", "h.example:80"),
    ("/ok", "h.example%20CANARY10", "/ok", "h.example"),
    ("/ok", 'h.example"CANARY11', "/ok", "h.example"),
    ("/ok", "h.example\u00a0CANARY12", "/ok", "h.example"),
    ("/ok", "CANARY13@", "/ok", ""),
    ("/ok", "[2001:db8::1]:8443", "/ok", "[2001:db8::1]:8443"),
    # user names in paths (a web server's user directories, path traversal attempts)
    ("/home/CANARY16/.ssh/id_rsa", "h", "/home/<user>/.ssh/id_rsa", "h"),
    ("/~CANARY17/index.html?x=1", "h", "/~<user>/index.html", "h"),
    ("/%7ECANARY18/a/%7eCANARY19", "h", "/%7E<user>/a/%7e<user>", "h"),
    ("/x/../../Users/CANARY20/Desktop", "h", "/x/../../Users/<user>/Desktop", "h"),
    ("/homes/ok/~", "h", "/homes/ok/~", "h"),
]


@pytest.mark.parametrize(("uri", "host", "path", "url_host"), _URL_CASES)
def test_url_user_info_and_parameters_never_survive(
    uri: str, host: str, path: str, url_host: str
) -> None:
    line = {
        "ts": 1575413155.938245,
        "uid": "C1",
        "id.orig_h": "10.18.20.97",
        "id.orig_p": 49203,
        "id.resp_h": "69.147.64.34",
        "id.resp_p": 80,
        "method": "CONNECT" if "@" in uri and not uri.startswith("/") else "GET",
        "host": host,
        "uri": uri,
    }
    staged = _parse("zeek-json", [json.dumps(line) + "\n"])
    assert staged.column("url_path").to_pylist() == [path]
    assert staged.column("url_host").to_pylist() == [url_host]
    kept = json.dumps(staged.to_pylist(), default=str).replace("<user>", "")
    for secret in ("CANARY", "pass", "user", ":x@", "u:x"):
        assert secret not in kept


# -- canonical forms --------------------------------------------------------------------------


@given(st.ip_addresses())
def test_canonical_ip_of_any_spelling(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    expected = f"::ffff:{addr.ipv4_mapped}" if addr.version == 6 and addr.ipv4_mapped else str(addr)
    assert minimize.canonical_ip(str(addr)) == expected
    assert minimize.canonical_ip(addr.exploded) == expected
    assert minimize.canonical_ip(addr.exploded.upper()) == expected
    assert minimize.canonical_ip(f"{addr}%{MARK}") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fe80:0000:0000:0000:fada:0cff:fedc:87f1", "fe80::fada:cff:fedc:87f1"),  # Suricata 4.x
        ("ff02:0:0:0:0:0:1:3", "ff02::1:3"),  # Sysmon style
        ("2607:F8B0:4006:0805:0000:0000:0000:200E", "2607:f8b0:4006:805::200e"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),  # mapped form stays IPv6, RFC 5952 §5 text
        (" 10.0.0.1 ", "10.0.0.1"),
        ("fe80::1%eth0", None),  # a zone ID is free text
        ("010.0.0.1", None),  # ambiguous octal-looking IPv4
        ("10.0.0.256", None),
        ("example.com", None),
        ("", None),
    ],
)
def test_canonical_ip_examples(text: str, expected: str | None) -> None:
    assert minimize.canonical_ip(text) == expected


def _dns_rows(resolver: list[str | None], rrdata: list[list[str] | None]) -> pa.Table:
    n = len(resolver)
    return pa.table(
        {
            "src_line": pa.array(range(10, 10 + n), pa.uint64()),
            "reject_reason": pa.array(
                [None] * (n - 1) + ["missing or invalid timestamp"], pa.string()
            ),
            "event_kind": ["transaction"] * n,
            "qname": ["example.com"] * n,
            "rrdata": pa.array(rrdata, pa.list_(pa.string())),
            "resolver_ip": pa.array(resolver, pa.string()),
            "ts_utc": pa.array([1_600_000_000 * 10**9] * n, pa.int64()),
            "unknown_content": [canary("extra")] * n,
        }
    )


def test_an_address_column_of_nulls_without_a_type_is_no_internal_error() -> None:
    # a projection that writes a bare NULL gives DuckDB's NULL type, Arrow's null: the
    # per-value mapping got None and raised TypeError, which ingest reports as exit 70
    con = duckdb.connect()
    rows = con.sql(
        "SELECT 7::UBIGINT AS src_line, NULL::VARCHAR AS reject_reason, 'query' AS event_kind,"
        " 'example.com' AS qname, NULL AS resolver_ip, NULL AS client_ip,"
        " 1600000000000000000::BIGINT AS ts_utc"
    ).to_arrow_table()
    assert rows.schema.field("resolver_ip").type == pa.null()
    staged, rejects = minimize.finalize(rows, schema.load("dns"))
    assert staged.column("resolver_ip").to_pylist() == [None]
    assert staged.column("client_ip").to_pylist() == [None]
    assert (staged.column("src_line").to_pylist(), rejects.num_rows) == ([7], 0)


def test_finalize_keeps_schema_fields_only_and_normalizes() -> None:
    rows = _dns_rows(
        [
            "10.0.0.53",
            "2001:0db8:0000:0000:0000:0000:0000:0035",
            "999.0.0.1",
            f"fe80::1%{canary('zone')}",
            None,
            "10.0.0.53",
        ],
        [
            ["www.example.com", "2001:0DB8:0:0:0:0:0:1", "10.1.2.3"],
            [],
            None,
            ["10.0.0.1"],
            ["::ffff:10.0.0.1"],
            ["10.0.0.9"],
        ],
    )
    staged, rejects = minimize.finalize(rows, schema.load("dns"))

    # the ledger id is not in the staged part; it is joined on when staged rows are read
    assert staged.schema == schema.load("dns").staged_file_arrow()
    assert "src_ledger_id" not in staged.column_names
    assert "unknown_content" not in staged.column_names
    assert staged.column("src_line").to_pylist() == [10, 11, 14]
    assert staged.column("resolver_ip").to_pylist() == ["10.0.0.53", "2001:db8::35", None]
    assert staged.column("rrdata").to_pylist() == [
        ["www.example.com", "2001:db8::1", "10.1.2.3"],
        [],
        ["::ffff:10.0.0.1"],
    ]
    assert rejects.to_pylist() == [
        {"line": 12, "reason": "invalid address in resolver_ip"},
        {"line": 13, "reason": "invalid address in resolver_ip"},
        {"line": 15, "reason": "missing or invalid timestamp"},  # the earlier reason wins
    ]


# -- paths keep no user names -----------------------------------------------------------------


def test_paths_keep_no_user_names(
    tmp_path: Path, real: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # every directory involved sits below a user's home, and the inputs carry user names in
    # URL paths and command lines: none of the names may reach the store or the bundle
    homes = {name: tmp_path / "home" / f"{MARK}-{name}-7f3a" for name in ("in", "st", "key")}
    monkeypatch.setenv("ACDKIT_KEY_DIR", str(homes["key"] / ".config" / "acdkit" / "keys"))
    logs = homes["in"] / "logs" / f"{MARK}-dir-7f3a"
    logs.mkdir(parents=True)
    http = json.loads(real("zeek-json/zat/http.log").read_text().splitlines()[0])
    lines = [
        {**http, "uri": f"/home/{MARK}-url1-7f3a/.ssh/id_rsa"},
        {**http, "uri": f"/~{MARK}-url2-7f3a/index.html?u={MARK}-q-7f3a"},
        {**http, "uri": f"/Users/{MARK}-url3-7f3a"},
    ]
    (logs / "http.log").write_text("".join(json.dumps(o) + "\n" for o in lines))
    cmd = rf"C:\Users\{MARK}-cmd-7f3a\AppData\Local\Temp\x.ps1 /home/{MARK}-arg-7f3a/y"
    (logs / "cmd.json").write_text(
        _cmdformat.line(1_575_413_155.9, "10.0.0.1", "10.0.0.2", 22, cmd)
    )
    key_path = homes["key"] / "sealer.key"

    st, _ = init_store(homes["st"] / "evidence", key_path, "org")
    signer = keys.load_signer(key_path)
    with _cmdformat.registered(monkeypatch):
        report = ingest.ingest(st, sorted(logs.iterdir()))
    assert [f.record_count for f in report.files] == [1, 3]
    assert report.sig_key_created is not None and MARK in report.sig_key_created
    out = homes["st"] / "bundle"
    seal_and_package(st, signer, out)

    assert hits(st.root, (MARK,)) == []
    assert hits(out, (MARK,)) == []
    assert sorted(e["name"] for e in st.ledger()) == ["cmd.json", "http.log"]  # base names
    paths = sorted(r["url_path"] for r in sealed(st, "net") if r["url_path"])
    assert paths == ["/Users/<user>", "/home/<user>/.ssh/id_rsa", "/~<user>/index.html"]


# -- clear-text secrets of the real samples ---------------------------------------------------

# user names and a password in clear in the shared samples (their SOURCES.md): in command
# lines (4688 PsExec `-p Admin1235`), image paths and user fields
SAMPLE_SECRETS = {
    "winsec-4688": ("Admin1235", "admmig", "user01", "bouss"),
    "sysmon-evtx": ("IEUser",),
    "sysmon-json": ("wardog",),
}


def _readable(path: Path) -> bool:
    try:
        ingest._format_of(path, None)
    except MalformedError:
        return False
    return True


@pytest.mark.parametrize("folder", sorted(SAMPLE_SECRETS))
def test_secrets_of_real_samples_reach_no_output(
    folder: str, samples: Path, store: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    files = sorted(p for p in (samples / folder).iterdir() if p.suffix != ".md")
    raws = [path.read_bytes() for path in files]
    texts = [raw.decode("latin-1") for raw in raws]
    texts += [raw[start:].decode("utf-16-le", "ignore") for raw in raws for start in (0, 1)]
    for secret in SAMPLE_SECRETS[folder]:  # the secrets are there to be found
        assert any(secret in t for t in texts), secret
    readable = [p for p in files if _readable(p)]
    assert readable, f"no registered format reads {folder}: its secrets would go untested"
    # the zone of the OTRF lab's collector: without it, files holding local times are refused
    report = ingest.ingest(store, readable, assume_tz="America/New_York")
    assert [f.status for f in report.files] == ["ingested"] * len(readable)
    assert report.records > 0

    out = tmp_path / "bundle"
    seal_and_package(store, signer, out)
    assert hits(store.root, SAMPLE_SECRETS[folder]) == []
    assert hits(out, SAMPLE_SECRETS[folder]) == []
