"""Packet captures (pcap in both byte orders, µs and ns; pcapng; gzip): flows, JA3/JA3S, DNS.

scapy reads the capture and dissects each packet (link layer, IP, TCP/UDP, DNS, the TLS
hellos); acdkit's own code follows the flows (`_flows`), reassembles the start of TCP
streams and builds the JA3/JA3S strings (`ja3`); one DuckDB query per chunk projects the
rows (MD5 of the fingerprint strings, protocol and DNS code names).  Packets are numbered
from 1 in file order; payloads never leave this module.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from acdkit.errors import MalformedError
from acdkit.sources import Context, Parsed, RecordChunk, SourceFormat, register
from acdkit.sources._flows import Dissectors, DnsMessage, FlowTable, Hello, Output, PacketInfo
from acdkit.sources._lines import GZIP_MAGIC
from acdkit.sources._sql import sql_quote
from acdkit.sources.ja3 import ja3_string, ja3s_string

__all__ = ["FORMAT", "MAX_FLOWS", "sniff"]

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAPNG_ORDER = (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a")

CHUNK_PACKETS = 20_000  # packets between two chunks handed to ingest
SWEEP_PACKETS = 1024  # packets between two looks for idle flows
MAX_FLOWS = 100_000  # open flows at once; beyond, the least recently active one ends
MAX_STREAMS = 4096  # TCP streams being reassembled at once (each holds at most 64 KiB)
MAX_CAPLEN = 262_144  # the largest snapshot length libpcap writes; more is a damaged record
SCAPY_SLICE = 65_535  # scapy hands out at most this many bytes of a record

log = logging.getLogger(__name__)


def sniff(raw: bytes) -> bool:
    """A pcap or pcapng file (gzip-compressed or not), told by its magic numbers."""
    head = raw
    if raw[:2] == GZIP_MAGIC:
        with contextlib.suppress(zlib.error):
            head = zlib.decompressobj(wbits=31).decompress(raw, 64)
    if head[:4] in PCAP_MAGICS:
        return len(head) >= 24
    return head[:4] == PCAPNG_MAGIC and head[8:12] in PCAPNG_ORDER


# -- scapy --------------------------------------------------------------------------------------


class _Scapy:
    """The scapy classes used here, imported on first use (scapy takes a second to import)."""

    def __init__(self) -> None:
        from scapy.config import conf
        from scapy.error import Scapy_Exception
        from scapy.layers import dns, inet, inet6
        from scapy.layers.tls import extensions, handshake
        from scapy.packet import NoPayload, Raw
        from scapy.utils import RawPcapReader

        self.l2types = conf.l2types
        self.reader = RawPcapReader
        self.error = Scapy_Exception
        self.IP, self.IPv6 = inet.IP, inet6.IPv6
        self.TCP, self.UDP = inet.TCP, inet.UDP
        self.ext_headers = (
            inet6.IPv6ExtHdrHopByHop,
            inet6.IPv6ExtHdrRouting,
            inet6.IPv6ExtHdrDestOpt,
            inet6.IPv6ExtHdrFragment,
        )
        self.fragment = inet6.IPv6ExtHdrFragment
        self.no_payload = NoPayload
        self.raw = Raw
        self.DNS = dns.DNS
        self.qtypes = {**dns.dnstypes, **dns.dnsqtypes, 255: "ANY"}
        self.client_hello, self.server_hello = handshake.TLSClientHello, handshake.TLSServerHello
        self.groups = extensions.TLS_Ext_SupportedGroups
        self.point_formats = extensions.TLS_Ext_SupportedPointFormat
        self.server_name = extensions.TLS_Ext_ServerName
        names = {k: v for k, v in self.qtypes.items() if isinstance(v, str)}
        self.dns_query = _DNS_QUERY.format(qtypes=_case("qtype_num", names))


_SCAPY: list[_Scapy] = []


def _scapy() -> _Scapy:
    if not _SCAPY:
        _SCAPY.append(_Scapy())
    return _SCAPY[0]


class _Quiet(logging.Filter):
    """Drops scapy's own warnings while a capture is read: the file's report says it better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet_scapy() -> Iterator[None]:
    logger = logging.getLogger("scapy.runtime")
    quiet = _Quiet()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def name_text(raw: bytes | str) -> str:
    """A DNS or SNI name as text: printable ASCII kept, every other byte as ``\\xNN``."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    text = raw.decode("ascii", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _dns_name(raw: bytes | str) -> str:
    text = name_text(raw)
    return text[:-1] if len(text) > 1 and text.endswith(".") else text


# answer types whose data are an address or a name; other data (TXT, ...) may be free text
_ADDRESS_TYPES = (1, 28)
_NAME_TYPES = (2, 5, 12, 39)  # NS, CNAME, PTR, DNAME


def _rdata(rr: Any) -> str | None:
    rtype = getattr(rr, "type", None)
    if rtype in _ADDRESS_TYPES and isinstance(rr.rdata, str):
        return str(rr.rdata)
    if rtype in _NAME_TYPES and isinstance(rr.rdata, bytes):
        return _dns_name(rr.rdata)
    if rtype == 15 and hasattr(rr, "exchange"):
        return _dns_name(rr.exchange)
    if rtype == 33 and hasattr(rr, "target"):
        return _dns_name(rr.target)
    return None


def _dns_message(sc: _Scapy, data: bytes) -> DnsMessage | None:
    if len(data) < 12:
        return None
    try:
        msg = sc.DNS(data)
        questions = msg.qd or []
        if not questions:
            return None
        question = questions[0]
        rrdata = [v for rr in (msg.an or []) if (v := _rdata(rr)) is not None]
        qname = _dns_name(question.qname) if question.qname is not None else None
        rcode = int(msg.rcode) if msg.qr else None
        return DnsMessage(bool(msg.qr), int(msg.id), qname, question.qtype, rcode, rrdata)
    except Exception:
        return None


def _hello(sc: _Scapy, msg_type: int, data: bytes) -> Hello | None:
    try:
        dissector: Any = sc.client_hello if msg_type == 1 else sc.server_hello
        hello = dissector(data)
        if hello.version is None:
            return None
        exts = list(hello.ext or [])
        types = [int(e.type) for e in exts]
        if msg_type != 1:
            return Hello(False, ja3s_string(hello.version, hello.cipher, types), None)
        groups = next((e.groups for e in exts if isinstance(e, sc.groups)), None) or []
        formats = next((e.ecpl for e in exts if isinstance(e, sc.point_formats)), None) or []
        text = ja3_string(hello.version, hello.ciphers or [], types, groups, formats)
        return Hello(True, text, _sni(sc, exts))
    except Exception:
        return None


def _sni(sc: _Scapy, exts: list[Any]) -> str | None:
    for ext in exts:
        if isinstance(ext, sc.server_name):
            for entry in ext.servernames or []:
                if entry.nametype == 0 and entry.servername:
                    return name_text(entry.servername)
    return None


# -- one packet ---------------------------------------------------------------------------------

Outcome = PacketInfo | tuple[bool, str]  # a packet to follow, or (is a reject, reason)

NOT_IP = (False, "not an IP packet")
FRAGMENT = (False, "IP fragment after the first (fragments are not reassembled)")
UNDECODABLE = (True, "undecodable packet")
TRUNCATED_IP = (True, "truncated or invalid IP header")
IP_ETHERTYPES = (0x0800, 0x86DD)


def _dissect(sc: _Scapy, num: int, ts: int, data: bytes, linktype: int, wirelen: int) -> Outcome:
    cls: Any = sc.l2types.get(linktype)
    if cls is None:
        return True, f"link type {int(linktype)} is not supported"
    try:
        layer = cls(data)
    except Exception:
        return UNDECODABLE
    while not isinstance(layer, (sc.IP, sc.IPv6)):
        outer, layer = layer, layer.payload
        if isinstance(layer, sc.raw):
            # an IP EtherType over too few bytes for an IP header: scapy leaves them raw
            if getattr(outer, "type", None) in IP_ETHERTYPES:
                return TRUNCATED_IP
            return NOT_IP
        if isinstance(layer, sc.no_payload):
            return NOT_IP
    link = len(data) - len(layer.original)
    if isinstance(layer, sc.IP):
        return _ipv4(sc, num, ts, layer, wirelen - link)
    return _ipv6(sc, num, ts, layer, wirelen - link)


def _ipv4(sc: _Scapy, num: int, ts: int, ip: Any, on_wire: int) -> Outcome:
    head = ip.ihl * 4 if ip.ihl is not None else 0
    if len(ip.original) < 20 or ip.version != 4 or head < 20 or len(ip.original) < head:
        return True, "truncated or invalid IPv4 header"
    if ip.frag:
        return FRAGMENT
    # TCP segmentation offload writes 0 into the length; the frame's length then tells
    total = ip.len or on_wire
    return _transport(sc, num, ts, ip, int(ip.proto), ip.payload, total - head)


def _ipv6(sc: _Scapy, num: int, ts: int, ip: Any, on_wire: int) -> Outcome:
    if len(ip.original) < 40 or ip.version != 6:
        return True, "truncated or invalid IPv6 header"
    proto, layer = int(ip.nh), ip.payload
    while isinstance(layer, sc.ext_headers):
        if isinstance(layer, sc.fragment) and layer.offset:
            return FRAGMENT
        proto, layer = int(layer.nh), layer.payload
    ext = len(ip.payload.original) - len(layer.original) if layer.original else 0
    payload = (ip.plen or on_wire - 40) - ext
    return _transport(sc, num, ts, ip, proto, layer, payload)


def _transport(sc: _Scapy, num: int, ts: int, ip: Any, proto: int, l4: Any, size: int) -> Outcome:
    src, dst = str(ip.src), str(ip.dst)
    if proto == 6:
        if not isinstance(l4, sc.TCP) or len(l4.original) < max(20, 4 * (l4.dataofs or 0)):
            return True, "truncated or invalid TCP header"
        payload = l4.payload.original if l4.payload else b""
        length = max(0, size - 4 * l4.dataofs)
        return PacketInfo(
            num, ts, 6, src, l4.sport, dst, l4.dport, length, int(l4.flags), l4.seq, payload
        )
    if proto == 17:
        if not isinstance(l4, sc.UDP) or len(l4.original) < 8:
            return True, "truncated or invalid UDP header"
        payload = l4.payload.original if l4.payload else b""
        length = max(0, size - 8)
        return PacketInfo(num, ts, 17, src, l4.sport, dst, l4.dport, length, 0, 0, payload)
    if proto in (1, 58):  # ICMP, ICMPv6: type and code stand in the port columns
        kind = getattr(l4, "type", None) if l4.original else None
        code = getattr(l4, "code", None) if l4.original else None
        length = max(0, size - 8)
        return PacketInfo(num, ts, proto, src, kind, dst, code, length, 0, 0, b"")
    return PacketInfo(num, ts, proto, src, None, dst, None, max(0, size), 0, 0, b"")


# -- the capture --------------------------------------------------------------------------------


class _Capture:
    """One capture file read front to back: packets numbered, flows followed, chunks made."""

    def __init__(self, path: Path, ctx: Context) -> None:
        self.sc = _scapy()
        self.ctx = ctx
        self.path = path
        sc = self.sc
        dissect = Dissectors(
            lambda data: _dns_message(sc, data), lambda t, data: _hello(sc, t, data)
        )
        self.flows = FlowTable(dissect, MAX_FLOWS, MAX_STREAMS)
        self.num = 0
        self.warnings: list[str] = []

    def chunks(self) -> Iterator[RecordChunk]:
        try:
            reader = self.sc.reader(str(self.path))
        except (self.sc.error, EOFError, OSError) as exc:
            raise MalformedError(
                f"{self.path.name} is not a readable pcap or pcapng capture",
                hint="its first block or file header is damaged",
            ) from exc
        try:
            yield from self._read(reader)
        finally:
            reader.close()

    def _read(self, reader: Any) -> Iterator[RecordChunk]:
        fh = reader.f
        nano = bool(getattr(reader, "nano", False))
        linktype = getattr(reader, "linktype", None)
        it = iter(reader)
        while True:
            start = fh.tell()
            try:
                data, meta = next(it)
            except StopIteration:
                break
            except (self.sc.error, EOFError, ValueError, OverflowError):
                self.warnings.append(f"the block after packet {self.num} is damaged")
                break
            if not self._packet(data, meta, nano, linktype, start):
                break
            if self.num % SWEEP_PACKETS == 0:
                self.flows.sweep()
            if self.num % CHUNK_PACKETS == 0:
                yield self._chunk(fh, done=False)
        self._trailing(fh, start)
        if self.num == 0 and self.warnings:
            raise MalformedError(
                f"{self.path.name}: no whole packet could be read ({self.warnings[0]})",
                hint="the capture is damaged right after its header",
            )
        self.flows.finish()
        yield self._chunk(fh, done=True)

    def _packet(self, data: bytes, meta: Any, nano: bool, linktype: int | None, at: int) -> bool:
        """Follow one record; False if it shows the file damaged from here on."""
        out = self.flows.out
        if hasattr(meta, "caplen"):  # classic pcap
            if meta.caplen > MAX_CAPLEN:
                self.warnings.append(
                    f"the record after packet {self.num} (at byte {at}) claims "
                    f"{int(meta.caplen)} bytes: the file is damaged from there and the rest "
                    "was not read"
                )
                return False
            self.num += 1
            if len(data) < min(meta.caplen, SCAPY_SLICE):
                out.rejects.append((self.num, "packet cut short by the end of the file"))
                self.warnings.append(
                    f"the capture ends inside packet {self.num} (cut short?): that record "
                    "was rejected, every whole packet before it was kept"
                )
                return True
            if meta.usec >= (1_000_000_000 if nano else 1_000_000):
                out.rejects.append((self.num, "invalid time in the record header"))
                return True
            ts = meta.sec * 1_000_000_000 + meta.usec * (1 if nano else 1000)
            wirelen = max(meta.wirelen, len(data))
        else:  # pcapng: the interface's link type and time resolution
            self.num += 1
            if meta.tshigh is None:
                out.rejects.append((self.num, "packet without a time (simple packet block)"))
                return True
            ts = ((meta.tshigh << 32) | meta.tslow) * 1_000_000_000 // meta.tsresol
            linktype, wirelen = meta.linktype, max(meta.wirelen or 0, len(data))
        outcome = _dissect(self.sc, self.num, ts, data, int(linktype or 0), wirelen)
        if isinstance(outcome, PacketInfo):
            self.flows.packet(outcome)
        elif outcome[0]:
            out.rejects.append((self.num, outcome[1]))
        else:
            out.skips.append((self.num, outcome[1]))
        return True

    def _trailing(self, fh: Any, start: int) -> None:
        """Warn about bytes after the last whole record (a capture cut inside a header)."""
        end = fh.tell()
        while block := fh.read(1 << 20):
            end += len(block)
        if end > start and not any("damaged" in w for w in self.warnings):
            self.warnings.append(
                f"{end - start} bytes after packet {self.num} do not form a whole record "
                "(cut short?) and were not read"
            )

    def _chunk(self, fh: Any, done: bool) -> RecordChunk:
        out = self.flows.take()
        parsed = Parsed()
        _lines(parsed, out)
        if out.net:
            parsed.tables["net"] = self._project(_NET_QUERY, "pcap_net", _net_table(out))
        if out.dns:
            query = self.sc.dns_query
            parsed.tables["dns"] = self._project(query, "pcap_dns", _dns_table(out))
        lowest = None if done else self.flows.lowest_open()
        last = self.num if lowest is None else lowest - 1
        warnings = self._closing_warnings() if done else []
        position = fh.tell() if not done else 0
        return RecordChunk(last, parsed, position, warnings)

    def _project(self, query: str, name: str, rows: pa.Table) -> pa.Table:
        con = self.ctx.con
        con.register(name, rows)
        try:
            sensor = "NULL" if self.ctx.sensor is None else sql_quote(self.ctx.sensor)
            return con.sql(query.format(sensor=sensor)).to_arrow_table()
        finally:
            con.unregister(name)

    def _closing_warnings(self) -> list[str]:
        flows = self.flows
        said = list(self.warnings)
        if flows.evicted:
            said.append(
                f"{flows.evicted} flows were ended early because more than {MAX_FLOWS} were "
                "open at once (a later packet of such a flow opens a new record)"
            )
        if flows.streams_refused:
            said.append(
                f"{flows.streams_refused} TCP streams were not inspected for a TLS hello or "
                f"DNS: more than {MAX_STREAMS} were being reassembled at once"
            )
        if flows.dns_extra:
            said.append(
                f"{flows.dns_extra} DNS messages over TCP ended in the same packet as "
                "another one and were not recorded (one record per packet)"
            )
        return said


def _lines(parsed: Parsed, out: Output) -> None:
    for target, rows in ((parsed.skips, out.skips), (parsed.rejects, out.rejects)):
        if rows:
            lines, reasons = zip(*rows, strict=True)
            parsed.add_lines(target, pa.array(lines, pa.uint64()), pa.array(reasons, pa.string()))


_NET_COLUMNS = [
    ("src_line", pa.uint64()),
    ("src_ip", pa.string()),
    ("src_port", pa.uint16()),
    ("dst_ip", pa.string()),
    ("dst_port", pa.uint16()),
    ("proto_num", pa.uint8()),
    ("service", pa.string()),
    ("ja3", pa.string()),
    ("ja3s", pa.string()),
    ("sni", pa.string()),
    ("ts", pa.int64()),
    ("duration", pa.int64()),
    ("orig_bytes", pa.uint64()),
    ("resp_bytes", pa.uint64()),
    ("orig_pkts", pa.uint64()),
    ("resp_pkts", pa.uint64()),
]
_DNS_COLUMNS = [
    ("src_line", pa.uint64()),
    ("kind", pa.string()),
    ("qname", pa.string()),
    ("qtype_num", pa.uint16()),
    ("rcode_num", pa.uint8()),
    ("rrdata", pa.list_(pa.string())),
    ("resolver_ip", pa.string()),
    ("resolver_port", pa.uint16()),
    ("client_ip", pa.string()),
    ("client_port", pa.uint16()),
    ("proto_num", pa.uint8()),
    ("trans_id", pa.uint16()),
    ("ts", pa.int64()),
]


def _table(rows: list[tuple[Any, ...]], columns: list[tuple[str, pa.DataType]]) -> pa.Table:
    values = list(zip(*rows, strict=True))
    arrays = [pa.array(v, t) for v, (_, t) in zip(values, columns, strict=True)]
    return pa.Table.from_arrays(arrays, names=[n for n, _ in columns])


def _net_table(out: Output) -> pa.Table:
    return _table(out.net, _NET_COLUMNS)


def _dns_table(out: Output) -> pa.Table:
    return _table(out.dns, _DNS_COLUMNS)


# IANA protocol keywords, lower case as the schema wants them; others keep their number
PROTOCOLS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah",
             58: "ipv6-icmp", 132: "sctp"}  # fmt: skip
# RFC 6895 §2.3 names of the header's 4-bit RCODE
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}  # fmt: skip


def _case(column: str, names: dict[int, str]) -> str:
    arms = " ".join(f"WHEN {int(k)} THEN {sql_quote(v)}" for k, v in sorted(names.items()))
    return f"CASE {column} {arms} ELSE CAST({column} AS VARCHAR) END"


_NET_QUERY = f"""
SELECT src_line, CAST(NULL AS VARCHAR) AS reject_reason, 'conn' AS event_kind,
       CAST(NULL AS VARCHAR) AS session_id, src_ip, src_port, dst_ip, dst_port,
       {_case("proto_num", PROTOCOLS)} AS proto, service,
       md5(ja3) AS tls_ja3, md5(ja3s) AS tls_ja3s, sni,
       ts AS ts_utc, duration AS duration_ns, orig_bytes, resp_bytes, orig_pkts, resp_pkts,
       {{sensor}} AS sensor_id
FROM pcap_net"""


def _dns_query() -> str:
    return f"""
SELECT src_line, CAST(NULL AS VARCHAR) AS reject_reason, kind AS event_kind,
       CAST(NULL AS VARCHAR) AS session_id, qname, {{qtypes}} AS qtype,
       CASE WHEN rcode_num IS NOT NULL THEN {_case("rcode_num", RCODES)} END AS rcode,
       rrdata, resolver_ip, resolver_port, client_ip, client_port,
       {_case("proto_num", PROTOCOLS)} AS proto, trans_id, ts AS ts_utc,
       {{{{sensor}}}} AS sensor_id
FROM pcap_dns"""


# the type names come from scapy's table, so {qtypes} is filled in once scapy is imported
_DNS_QUERY = _dns_query()


def _read_records(path: Path, ctx: Context) -> Iterator[RecordChunk]:
    with _quiet_scapy():
        yield from _Capture(path, ctx).chunks()


FORMAT = register(
    SourceFormat(
        "pcap",
        "packet capture (pcap, pcapng): flows with JA3/JA3S and SNI, DNS exchanges",
        sniff,
        read_records=_read_records,
    )
)
