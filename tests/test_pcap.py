"""PCAP: JA3/JA3S against the oracle values of samples/pcap/SOURCES.md, flows, DNS, damage.

The sample captures are read from ../shared/samples/pcap; the other captures are built here
from their packets (or from scratch) with scapy's writers.  Expected times, addresses, byte
and packet counts were read off the samples with ``tcpdump -nn -tt -r``.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, PcapWriter, rdpcap

from acdkit import ingest, sources
from acdkit.sources import pcap
from acdkit.sources._flows import LATER_PACKET
from acdkit.sources._tcpstream import Stream
from acdkit.sources._tls import first_handshake
from acdkit.sources.ja3 import is_grease, ja3_string, ja3s_string
from acdkit.store import Store
from conftest import shared_samples
from test_sources import ingest_one

Sample = Callable[[str], Path]

# file, client (address, port), JA3, JA3 string, JA3S, JA3S string, SNI: samples/pcap/SOURCES.md
ORACLE = [
    ("tls1_1.pcap", ("192.168.17.58", 62987), "5eb6e1fe80f696450a62a48bb3d6a965",
     "770,49172-49162-57-56-55-54-136-135-134-133-49167-49157-53-132-49171-49161-51-50-49-48-"
     "154-153-152-151-69-68-67-66-49166-49156-47-150-65-7-49169-49159-49164-49154-5-4-49170-"
     "49160-22-19-16-13-49165-49155-10-255,11-10-35-15,23-25-28-27-24-26-22-14-13-11-12-9-10,"
     "0-1-2", "b5237e0430ad71aac52aa90b6627cb5f", "770,49171,65281-35-11", None),
    ("ecdhe.pcap", ("192.168.18.50", 56981), "29d8afc9e0a4d38d138ec2643966815f",
     "771,49172-255,11-10-35-13-15,14-13-25-11-12-24-9-10-22-23-8-6-7-20-21-4-5-18-19-1-2-3-"
     "15-16-17,0-1-2", "a8d2a5625ef8f3aada2fb53dad3f2921", "771,49172,65281-11-35", None),
    ("tls13_wolfssl.pcap", ("192.168.186.133", 43056), "39cef737bf0cabc32c28f95d09b97702",
     "771,4866,51-43-13-11-10-23,25-24-23-21-19-16-256,0", "907bf3ecef1c987c889946b737b43de8",
     "771,4866,51-43", None),
    ("chrome-34-google.pcap", ("192.168.4.149", 55881), "a607f3a5c94c2ee592af1456f36c8367",
     "771,49195-49199-158-52244-52243-49162-49161-49171-49172-49159-49169-51-50-57-156-47-53-"
     "10-5-4,0-65281-10-11-35-13172-16-30032-5-13-18,23-24-25,0",
     "9f5e2e0d84076af5475bbe44debdb03e", "771,49199,0-65281-11-35-30032-16", "google.de"),
    ("tls13-ech.pcap", ("192.168.20.65", 51066), "2fcbf8655473005933c5869b2b5d8044",
     "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,65281-"
     "16-13-51-45-17513-35-43-10-65037-23-5-18-11-0-27-21,29-23-24,0",
     "f4febc55ea12b31ae17cfb7e614afda8", "771,4865,43-51", "cloudflare-ech.com"),
    ("tls13-ech.pcap", ("192.168.20.65", 51071), "fa58f5ffd45a2d590a1677134966dc64",
     "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,10-35-"
     "17513-11-65037-65281-18-5-13-27-45-23-0-16-43-51-21,29-23-24,0",
     "f4febc55ea12b31ae17cfb7e614afda8", "771,4865,43-51", "cloudflare-ech.com"),
]  # fmt: skip

# packets, net records (flows), skips: tcpdump counts the packets and the distinct 5-tuples
COUNTS = {
    "tls1_1.pcap": (23, 1, 22),
    "ecdhe.pcap": (28, 1, 27),
    "tls13_wolfssl.pcap": (21, 1, 20),
    "chrome-34-google.pcap": (42, 1, 41),
    "tls13-ech.pcap": (69, 3, 66),
}


def flows(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["src_ip"], r["src_port"]): r for r in rows["net"]}


# explicit addresses: scapy would look up a destination MAC for a bare Ether() it builds
L2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def write(path: Path, packets: list[Packet], **kw: Any) -> Path:
    with PcapWriter(str(path), **kw) as out:
        for p in packets:
            out.write(p)
    return path


def sample_packets(real: Sample, name: str) -> list[Packet]:
    return list(rdpcap(str(real(f"pcap/{name}"))))


# -- JA3 strings --------------------------------------------------------------------------------


def test_grease_values_are_the_sixteen_reserved_ones() -> None:
    found = [v for v in range(1 << 16) if is_grease(v)]
    assert found == [0x0A0A + 0x1010 * i for i in range(16)]


def test_ja3_string_drops_grease_and_keeps_empty_lists() -> None:
    text = ja3_string(771, [0x1A1A, 4865], [0x2A2A, 0, 21, 0xFAFA], [0x3A3A, 29], [])
    assert text == "771,4865,0-21,29,"
    assert ja3_string(769, [], [], [], []) == "769,,,,"
    assert ja3s_string(771, 4865, [43, 51]) == "771,4865,43-51"


@pytest.mark.parametrize("case", ORACLE, ids=lambda c: f"{c[0]}:{c[1][1]}")
def test_ja3_and_ja3s_match_the_oracle(store: Store, real: Sample, case: tuple[Any, ...]) -> None:
    name, client, ja3, ja3_text, ja3s, ja3s_text, sni = case
    # the oracle's strings are those hashes (a check of the table itself)
    assert hashlib.md5(ja3_text.encode()).hexdigest() == ja3
    assert hashlib.md5(ja3s_text.encode()).hexdigest() == ja3s
    _, rows = ingest_one(store, real(f"pcap/{name}"))
    flow = flows(rows)[client]
    assert (flow["tls_ja3"], flow["tls_ja3s"], flow["sni"]) == (ja3, ja3s, sni)
    assert flow["service"] == "ssl"


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_packet_is_a_record_or_a_skip(store: Store, real: Sample, name: str) -> None:
    packets, records, skipped = COUNTS[name]
    result, _ = ingest_one(store, real(f"pcap/{name}"))
    assert result.format == "pcap"
    assert result.lines == packets
    assert result.records == {"net": records, "dns": 0, "edr": 0}
    assert result.skip_reasons == {LATER_PACKET: skipped}
    assert (result.rejected, result.warnings) == (0, [])


def test_a_flow_checked_by_hand(store: Store, real: Sample) -> None:
    # tcpdump: 23 packets, 12 from the client carrying 200+150+53+53 bytes (the last one a
    # retransmission), 11 from the server carrying 1430*3+219+303; first 1512072318.401739,
    # last 1512072319.419296
    result, rows = ingest_one(store, real("pcap/tls1_1.pcap"), sensor="tap-1")
    (flow,) = rows["net"]
    assert flow == flow | {
        "event_kind": "conn",
        "src_ip": "192.168.17.58",
        "src_port": 62987,
        "dst_ip": "216.58.192.14",
        "dst_port": 443,
        "proto": "tcp",
        "ts_utc": 1_512_072_318_401_739_000,
        "duration_ns": 1_017_557_000,
        "orig_pkts": 12,
        "resp_pkts": 11,
        "orig_bytes": 456,
        "resp_bytes": 4812,
        "sensor_id": "tap-1",
        "src_line": 1,
        "session_id": None,
    }
    assert (result.ts_min_ns, result.ts_max_ns) == (1_512_072_318_401_739_000,) * 2


def test_second_connection_starts_at_its_syn(store: Store, real: Sample) -> None:
    _, rows = ingest_one(store, real("pcap/tls13-ech.pcap"))
    got = flows(rows)
    # packet 36 is the SYN of port 51071; the capture opens inside an older connection
    assert got[("192.168.20.65", 51071)]["src_line"] == 36
    assert got[("192.168.20.65", 51071)]["ts_utc"] == 1_697_458_700_909_275_000
    older = got[("192.168.20.65", 51053)]
    assert (older["src_line"], older["service"], older["tls_ja3"]) == (1, None, None)


# -- TCP reassembly -----------------------------------------------------------------------------


def split_segment(packets: list[Packet], index: int, cuts: list[int]) -> list[Packet]:
    """The capture with packet ``index`` split into TCP segments at the payload ``cuts``."""
    whole = packets[index]
    data = bytes(whole[TCP].payload)
    bounds = [0, *cuts, len(data)]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        part = whole.copy()
        part[TCP].remove_payload()
        part[TCP].add_payload(Raw(data[lo:hi]))
        part[TCP].seq = whole[TCP].seq + lo
        del part[IP].len, part[IP].chksum, part[TCP].chksum
        part.time = whole.time
        parts.append(Ether(bytes(part)))
        parts[-1].time = whole.time
    return packets[:index] + parts + packets[index + 1 :]


@pytest.mark.parametrize("order", ["in order", "second first"])
def test_client_hello_split_across_two_segments(
    store: Store, real: Sample, tmp_path: Path, order: str
) -> None:
    packets = sample_packets(real, "tls13-ech.pcap")
    hello = 6  # 0-based: packet 7, the 517-byte ClientHello of port 51066
    assert len(packets[hello][TCP].payload) == 517
    split = split_segment(packets, hello, [200])
    if order == "second first":
        split[hello], split[hello + 1] = split[hello + 1], split[hello]
    result, rows = ingest_one(store, write(tmp_path / "split.pcap", split))
    flow = flows(rows)[("192.168.20.65", 51066)]
    assert flow["tls_ja3"] == "2fcbf8655473005933c5869b2b5d8044"
    assert flow["orig_bytes"] == 1365 and flow["orig_pkts"] == 17
    assert result.lines == 70 and result.skipped == 67


def test_retransmitted_overlapping_piece_is_not_added_twice(
    store: Store, real: Sample, tmp_path: Path
) -> None:
    packets = sample_packets(real, "tls1_1.pcap")
    split = split_segment(packets, 3, [50, 120])
    again = split_segment([split[4]], 0, [30])[0]  # the second piece's first 30 bytes, resent
    split.insert(5, again)
    _, rows = ingest_one(store, write(tmp_path / "retrans.pcap", split))
    assert rows["net"][0]["tls_ja3"] == "5eb6e1fe80f696450a62a48bb3d6a965"


def test_stream_wraps_around_the_sequence_space() -> None:
    stream = Stream((1 << 32) - 3, b"abc", 100)
    assert stream.add(2, b"fg") is False  # ahead of a gap: waits
    assert stream.add(0, b"de")
    assert bytes(stream.buf) == b"abcdefg"
    assert stream.add(1, b"ef") is False  # old bytes only
    assert stream.add(4, b"h" * 200) and stream.full and len(stream.buf) == 100


def test_handshake_fragmented_over_two_records() -> None:
    message = bytes([1, 0, 0, 6]) + b"abcdef"
    records = b"\x16\x03\x01\x00\x04" + message[:4] + b"\x16\x03\x01\x00\x06" + message[4:]
    assert first_handshake(records) == (1, message)
    assert first_handshake(records[:12]) is None
    assert first_handshake(b"\x17\x03\x03\x00\x01x") is False


# -- IPv6, pcapng, pcap variants ------------------------------------------------------------


V6 = {"192.168.186.133": "2001:db8:0:1::133", "192.168.186.134": "2001:db8:0:1::134"}


def as_ipv6(packets: list[Packet]) -> list[Packet]:
    out = []
    for p in packets:
        tcp = p[TCP].copy()
        del tcp.chksum
        q = L2 / IPv6(src=V6[p[IP].src], dst=V6[p[IP].dst]) / tcp
        q = Ether(bytes(q))
        q.time = p.time
        out.append(q)
    return out


def test_ipv6_flow_gives_the_same_fingerprints(store: Store, real: Sample, tmp_path: Path) -> None:
    packets = sample_packets(real, "tls13_wolfssl.pcap")
    _, rows = ingest_one(store, write(tmp_path / "v6.pcap", as_ipv6(packets)))
    (flow,) = rows["net"]
    assert (flow["src_ip"], flow["dst_ip"]) == ("2001:db8:0:1::133", "2001:db8:0:1::134")
    assert (flow["src_port"], flow["dst_port"]) == (43056, 9090)
    assert flow["tls_ja3"] == "39cef737bf0cabc32c28f95d09b97702"
    assert flow["tls_ja3s"] == "907bf3ecef1c987c889946b737b43de8"
    assert (flow["orig_bytes"], flow["resp_bytes"]) == (400, 1237)


def comparable(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    kept = [{k: v for k, v in r.items() if k != "src_ledger_id"} for r in rows["net"]]
    return sorted(kept, key=lambda r: r["src_line"])


@pytest.mark.parametrize(
    "variant",
    [
        {"nano": True},
        {"endianness": ">"},
        {"endianness": ">", "nano": True},
        {"gz": True},
        "pcapng",
    ],
    ids=["ns", "big-endian", "big-endian-ns", "gzip", "pcapng"],
)
def test_capture_variants_give_the_same_records(
    tmp_path: Path, real: Sample, variant: Any, key_path: Path
) -> None:
    from acdkit.store import init_store

    original = real("pcap/chrome-34-google.pcap")
    packets = sample_packets(real, "chrome-34-google.pcap")
    path = tmp_path / "copy.cap"
    if variant == "pcapng":
        with PcapNgWriter(str(path)) as out:
            for p in packets:
                out.write(p)
    else:
        write(path, packets, **variant)
    first, _ = init_store(tmp_path / "a", tmp_path / "a.key", "t")
    second, _ = init_store(tmp_path / "b", tmp_path / "b.key", "t")
    assert pcap.sniff(path.read_bytes()[:4096])
    result, rows = ingest_one(first, path)
    _, expected = ingest_one(second, original)
    assert result.format == "pcap" and result.lines == 42
    assert comparable(rows) == comparable(expected)


def test_nanosecond_times_are_kept_exactly(store: Store, tmp_path: Path) -> None:
    p = L2 / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=5000, dport=6000) / b"x"
    p.time = pcap_time = __import__("decimal").Decimal("1700000000.123456789")
    assert pcap_time
    _, rows = ingest_one(store, write(tmp_path / "ns.pcap", [p], nano=True))
    assert rows["net"][0]["ts_utc"] == 1_700_000_000_123_456_789


# -- DNS ----------------------------------------------------------------------------------------


CLIENT, RESOLVER = "10.0.0.5", "10.0.0.53"


def at(t: float, p: Packet) -> Packet:
    q = Ether(bytes(L2 / p))
    q.time = t
    return q


def dns_capture() -> list[Packet]:
    query = DNS(id=0x1234, rd=1, qd=DNSQR(qname="www.example.com", qtype="A"))
    answer = DNS(
        id=0x1234, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.com", qtype="A"),
        an=[DNSRR(rrname="www.example.com", type="CNAME", rdata="edge.example.net"),
            DNSRR(rrname="edge.example.net", type="A", rdata="192.0.2.7")],
    )  # fmt: skip
    unanswered = DNS(id=0x1235, rd=1, qd=DNSQR(qname="www.example.com", qtype="AAAA"))
    lonely = DNS(id=9, rd=1, qd=DNSQR(qname="nothing.example", qtype="TXT"))
    nx = DNS(id=77, qr=1, rcode=3, qd=DNSQR(qname="no.such.example", qtype="A"))
    v6 = DNS(
        id=5, qr=1, qd=DNSQR(qname="v6.example", qtype="AAAA"),
        an=[DNSRR(rrname="v6.example", type="AAAA", rdata="2001:db8:0:0:0:0:0:1")],
    )  # fmt: skip
    u = UDP(sport=40000, dport=53)
    back = UDP(sport=53, dport=40000)
    return [
        at(1.0, IP(src=CLIENT, dst=RESOLVER) / u / query),  # 1: opens the flow (net record)
        at(1.001, IP(src=CLIENT, dst=RESOLVER) / u / unanswered),  # 2: query, never answered
        at(1.02, IP(src=RESOLVER, dst=CLIENT) / back / answer),  # 3: transaction with 1
        at(2.0, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=40001, dport=53) / lonely),  # 4
        at(3.0, IP(src=RESOLVER, dst="10.0.0.6") / UDP(sport=53, dport=40002) / nx),  # 5
        at(4.0, ARP(psrc=CLIENT, pdst=RESOLVER, hwsrc=L2.src)),  # 6: not IP
        at(5.0, IPv6(src="2001:db8::53", dst="2001:db8::5") / UDP(sport=53, dport=1234) / v6),
    ]


def test_dns_exchanges(store: Store, tmp_path: Path) -> None:
    result, rows = ingest_one(store, write(tmp_path / "dns.pcap", dns_capture()))
    assert result.lines == 7
    # net: the flow of 1-3 only; the other flows are one DNS record each
    assert result.records == {"net": 1, "dns": 5, "edr": 0}
    assert result.skip_reasons == {"not an IP packet": 1}
    dns = {r["src_line"]: r for r in rows["dns"]}
    assert dns[3] == dns[3] | {
        "event_kind": "transaction",
        "qname": "www.example.com",
        "qtype": "A",
        "rcode": "NOERROR",
        "rrdata": ["edge.example.net", "192.0.2.7"],
        "resolver_ip": RESOLVER,
        "resolver_port": 53,
        "client_ip": CLIENT,
        "client_port": 40000,
        "proto": "udp",
        "trans_id": 0x1234,
        "ts_utc": 1_000_000_000,
    }
    assert dns[2] | {} == dns[2] | {"event_kind": "query", "qtype": "AAAA", "rcode": None}
    assert dns[2]["rrdata"] is None and dns[2]["ts_utc"] == 1_001_000_000
    assert (dns[4]["event_kind"], dns[4]["qtype"], dns[4]["client_port"]) == ("query", "TXT", 40001)
    assert dns[5] == dns[5] | {"event_kind": "answer", "rcode": "NXDOMAIN", "rrdata": []}
    assert (dns[5]["client_ip"], dns[5]["resolver_ip"]) == ("10.0.0.6", RESOLVER)
    assert dns[7]["rrdata"] == ["2001:db8::1"] and dns[7]["resolver_ip"] == "2001:db8::53"
    (flow,) = rows["net"]
    assert flow == flow | {"src_line": 1, "service": "dns", "orig_pkts": 2, "resp_pkts": 1}


def test_flow_opened_by_an_unanswered_query_names_its_next_packet(
    store: Store, tmp_path: Path
) -> None:
    q = DNS(id=1, qd=DNSQR(qname="a.example"))
    packets = [
        at(1.0, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=999, dport=53) / q),
        at(1.5, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=999, dport=53) / b"not dns"),
        at(1.6, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=999, dport=53) / b"nor this"),
    ]
    result, rows = ingest_one(store, write(tmp_path / "q.pcap", packets))
    assert [r["src_line"] for r in rows["dns"]] == [1]
    assert [r["src_line"] for r in rows["net"]] == [2]
    assert rows["net"][0]["ts_utc"] == 1_000_000_000 and rows["net"][0]["orig_pkts"] == 3
    assert result.skip_reasons == {LATER_PACKET: 1}


def test_dns_over_tcp(store: Store, tmp_path: Path) -> None:
    q = bytes(DNS(id=42, qd=DNSQR(qname="tcp.example", qtype="A")))
    r = bytes(
        DNS(id=42, qr=1, qd=DNSQR(qname="tcp.example"), an=[DNSRR(rrname="tcp.example",
            rdata="198.51.100.1")])
    )  # fmt: skip
    c, s = IP(src=CLIENT, dst=RESOLVER), IP(src=RESOLVER, dst=CLIENT)
    query = len(q).to_bytes(2, "big") + q
    answer = len(r).to_bytes(2, "big") + r
    packets = [
        at(1.0, c / TCP(sport=5555, dport=53, flags="S", seq=100)),
        at(1.1, s / TCP(sport=53, dport=5555, flags="SA", seq=700, ack=101)),
        at(1.2, c / TCP(sport=5555, dport=53, flags="PA", seq=101, ack=701) / query[:5]),
        at(1.3, c / TCP(sport=5555, dport=53, flags="PA", seq=106, ack=701) / query[5:]),
        at(1.4, s / TCP(sport=53, dport=5555, flags="PA", seq=701, ack=101 + len(query)) / answer),
        at(1.5, c / TCP(sport=5555, dport=53, flags="R", seq=101 + len(query))),
    ]
    result, rows = ingest_one(store, write(tmp_path / "tcpdns.pcap", packets))
    assert result.records == {"net": 1, "dns": 1, "edr": 0}
    (rec,) = rows["dns"]
    assert rec == rec | {"event_kind": "transaction", "src_line": 5, "proto": "tcp"}
    assert rec["rrdata"] == ["198.51.100.1"] and rec["ts_utc"] == 1_300_000_000
    assert rows["net"][0]["service"] == "dns" and result.skipped == 4


# -- damaged files ------------------------------------------------------------------------------


def test_capture_cut_inside_a_packet(store: Store, real: Sample, tmp_path: Path) -> None:
    data = real("pcap/tls1_1.pcap").read_bytes()
    # 24-byte file header, then per record 16 bytes + the frame; cut 10 bytes into frame 5
    offset = 24
    for _ in range(4):
        offset += 16 + int.from_bytes(data[offset + 8 : offset + 12], "little")
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: offset + 16 + 10])
    result, rows = ingest_one(store, cut)
    assert result.lines == 5
    assert result.reject_reasons == {"packet cut short by the end of the file": 1}
    assert result.records["net"] == 1 and result.skipped == 3
    assert rows["net"][0]["tls_ja3"] == "5eb6e1fe80f696450a62a48bb3d6a965"
    assert any("ends inside packet 5" in w for w in result.warnings)


def test_capture_cut_inside_a_record_header(store: Store, real: Sample, tmp_path: Path) -> None:
    data = real("pcap/tls1_1.pcap").read_bytes()
    first = 24 + 16 + int.from_bytes(data[32:36], "little")
    cut = tmp_path / "cut-header.pcap"
    cut.write_bytes(data[: first + 7])
    result, _ = ingest_one(store, cut)
    assert result.lines == 1 and result.records["net"] == 1
    assert result.warnings == ["7 bytes after packet 1 do not form a whole record (cut short?) "
                               "and were not read"]  # fmt: skip


def test_gzip_capture_cut_short_keeps_its_whole_packets(
    store: Store, real: Sample, tmp_path: Path
) -> None:
    # the EOFError of the cut stream escaped the reader: ingest printed "Aborted." and exited
    # 1, the code of TAMPERED
    packed = gzip.compress(real("pcap/tls13-ech.pcap").read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed[:3000])
    result, rows = ingest_one(store, cut)
    assert (result.lines, result.records["net"], result.skipped) == (9, 2, 7)
    assert result.warnings == [
        "compressed input is truncated or corrupt after packet 9: every whole packet before it "
        "was kept"
    ]
    assert {r["src_port"] for r in rows["net"]} == {51053, 51066}


def test_garbage_after_a_valid_header_is_a_clear_error(
    store: Store, real: Sample, tmp_path: Path
) -> None:
    header = real("pcap/tls1_1.pcap").read_bytes()[:24]
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(header + b"\xff" * 300)
    result = ingest.ingest(store, [bad]).files[0]
    assert result.status == "failed" and result.exit_code == 4
    assert "no whole packet could be read" in (result.error or "")
    assert "\xff" not in (result.error or "")


def test_garbage_records_are_rejects_not_crashes(store: Store, tmp_path: Path) -> None:
    frames = [
        Raw(bytes(L2 / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())[:20]),  # IP cut
        Raw(bytes(L2 / b"\x45\x00\x00")[:12] + b"\x08\x00\x45\x00\x00"),
        Raw(bytes(L2 / IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / b"\x00\x01")),
    ]
    for i, f in enumerate(frames):
        f.time = 10 + i
    result, _ = ingest_one(store, write(tmp_path / "bad.pcap", frames))
    assert result.rejected == 3 and result.records["net"] == 0
    assert result.reject_reasons == {
        "truncated or invalid IP header": 2,
        "truncated or invalid TCP header": 1,
    }


def test_unsupported_link_type_is_rejected_per_packet(store: Store, tmp_path: Path) -> None:
    p = Raw(b"\x00" * 30)
    p.time = 1
    result, _ = ingest_one(store, write(tmp_path / "link.pcap", [p, p], linktype=147))
    assert result.reject_reasons == {"link type 147 is not supported": 2}


# -- detection ----------------------------------------------------------------------------------


KNOWN = {
    "zeek-tsv": ["zeek-tsv/zat/conn.log", "zeek-tsv/zat/dns.log", "zeek-tsv/zat/http_empty.log",
                 "zeek-tsv/slips-test10/conn.log"],
    "zeek-json": ["zeek-json/zat/dns.log", "zeek-json/otrf-apt29/SCRANTON_ssl.log",
                  "zeek-json/slips-test9/ssl.log"],
    "suricata-eve": ["suricata-eve/beats-eve-small.log", "suricata-eve/magnc/eve.json"],
    "pcap": [f"pcap/{name}" for name in COUNTS],
}  # fmt: skip


def detect_file(path: Path) -> sources.SourceFormat:
    from acdkit.sources._lines import content_head

    return sources.detect(content_head(path), path.read_bytes()[: ingest.HEAD_BYTES])


@pytest.mark.parametrize(("fmt", "rel"), [(f, r) for f, rels in KNOWN.items() for r in rels])
def test_detection_names_the_format(real: Sample, fmt: str, rel: str) -> None:
    assert detect_file(real(rel)).name == fmt


def test_pcap_sniffer_claims_no_other_sample(data: Path) -> None:
    roots = [data, shared_samples()]
    seen = 0
    for path in sorted(p for root in roots if root.is_dir() for p in root.rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        head = path.read_bytes()[: ingest.HEAD_BYTES]
        assert pcap.sniff(head) == (path.parent.name == "pcap"), path
        seen += 1
    assert seen > 20


def test_text_sniffers_do_not_claim_captures(real: Sample, tmp_path: Path) -> None:
    from acdkit.sources._lines import content_head

    plain = real("pcap/ecdhe.pcap")
    packed = tmp_path / "ecdhe.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    ng = tmp_path / "ecdhe.pcapng"
    with PcapNgWriter(str(ng)) as out:
        for p in rdpcap(str(plain)):
            out.write(p)
    for path in (plain, packed, ng):
        head = content_head(path)
        for fmt in sources.names():
            if fmt != "pcap":
                assert not sources.get(fmt).sniff(head), (fmt, path)
        assert detect_file(path).name == "pcap"


# -- flow ends, chunks, minimization --------------------------------------------------------


def test_idle_flow_ends_and_the_same_ports_open_a_new_one(store: Store, tmp_path: Path) -> None:
    u = IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=7000, dport=7001)
    packets = [at(100.0, u / b"a"), at(130.0, u / b"bb"), at(191.0, u / b"ccc")]
    result, rows = ingest_one(store, write(tmp_path / "idle.pcap", packets))
    # 60 s of silence ends a UDP flow: packets 1-2 are one flow, packet 3 the next
    got = [(r["src_line"], r["orig_pkts"], r["orig_bytes"], r["duration_ns"]) for r in rows["net"]]
    assert sorted(got) == [(1, 2, 3, 30_000_000_000), (3, 1, 3, 0)]
    assert result.skip_reasons == {LATER_PACKET: 1}


def test_full_flow_table_and_small_chunks(
    store: Store, real: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pcap, "MAX_FLOWS", 1)
    monkeypatch.setattr(pcap, "CHUNK_PACKETS", 10)
    result, rows = ingest_one(store, real("pcap/tls13-ech.pcap"))
    assert result.records["net"] == 3 and result.skipped == 66
    assert {r["tls_ja3"] for r in rows["net"]} == {
        None, "2fcbf8655473005933c5869b2b5d8044", "fa58f5ffd45a2d590a1677134966dc64"
    }  # fmt: skip
    assert result.warnings == [
        "2 flows were ended early because more than 1 were open at once (a later packet of "
        "such a flow opens a new record)"
    ]


def test_no_payload_reaches_the_store(store: Store, real: Sample, tmp_path: Path) -> None:
    c, s = IP(src="10.7.0.1", dst="10.7.0.2"), IP(src="10.7.0.2", dst="10.7.0.1")
    http = b"GET /CANARY-PATH?CANARY-QUERY HTTP/1.1\r\nUser-Agent: CANARY-UA\r\n\r\n"
    txt = DNS(id=3, qr=1, qd=DNSQR(qname="t.example", qtype="TXT"),
              an=[DNSRR(rrname="t.example", type="TXT", rdata=["CANARY-TXT"])])  # fmt: skip
    hello = bytes(sample_packets(real, "chrome-34-google.pcap")[5][TCP].payload)
    packets = [
        at(1.0, c / TCP(sport=4000, dport=80, flags="PA", seq=1) / http),
        at(1.1, s / TCP(sport=80, dport=4000, flags="PA", seq=1) / b"HTTP/1.1 200 CANARY-BODY"),
        at(2.0, s / UDP(sport=53, dport=4001) / txt),
        at(3.0, s / TCP(sport=443, dport=4002, flags="PA", seq=9) / (hello + b"CANARY-CERT")),
    ]
    result, _ = ingest_one(store, write(tmp_path / "canary.pcap", packets))
    assert result.records == {"net": 2, "dns": 1, "edr": 0}
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"CANARY" not in path.read_bytes(), path


def test_forcing_pcap_on_a_text_log_is_malformed(store: Store, real: Sample) -> None:
    result = ingest.ingest(store, [real("zeek-json/zat/conn.log")], fmt="pcap").files[0]
    assert (result.status, result.exit_code) == ("failed", 4)
    assert "not a readable pcap or pcapng capture" in (result.error or "")


def test_registering_the_format_does_not_import_scapy() -> None:
    # scapy takes about a second to import: only reading a capture may pay for it
    import subprocess
    import sys

    code = "import sys; from acdkit import sources; sources.names(); print('scapy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
