"""Packet captures (pcap in both byte orders, µs and ns; pcapng; gzip): flows, JA3/JA3S, DNS.

scapy reads the capture and dissects each packet (link layer, IP, TCP/UDP, DNS, the TLS
hellos); acdkit's own code follows the flows (`_flows`), reassembles the start of TCP
streams and builds the JA3/JA3S strings (`ja3`); one DuckDB query per chunk projects the
rows (MD5 of the fingerprint strings, protocol and DNS code names).  Packets are numbered
from 1 in file order; payloads never leave `_packets` and `_flows`.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from acdkit.errors import MalformedError
from acdkit.sources import Context, Parsed, RecordChunk, SourceFormat, register
from acdkit.sources._flows import Dissectors, FlowTable, Output, PacketInfo
from acdkit.sources._lines import GZIP_MAGIC
from acdkit.sources._packets import Scapy, dissect, dns_message, hello, quiet_scapy, scapy
from acdkit.sources._sql import sql_quote

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


def sniff(raw: bytes) -> bool:
    """A pcap or pcapng file (gzip-compressed or not), told by its magic numbers."""
    head = raw
    if raw[:2] == GZIP_MAGIC:
        with contextlib.suppress(zlib.error):
            head = zlib.decompressobj(wbits=31).decompress(raw, 64)
    if head[:4] in PCAP_MAGICS:
        return len(head) >= 24
    return head[:4] == PCAPNG_MAGIC and head[8:12] in PCAPNG_ORDER


# -- the capture --------------------------------------------------------------------------------


class _Capture:
    """One capture file read front to back: packets numbered, flows followed, chunks made."""

    def __init__(self, path: Path, ctx: Context) -> None:
        self.sc = scapy()
        self.ctx = ctx
        self.path = path
        sc = self.sc
        dissectors = Dissectors(
            lambda data: dns_message(sc, data), lambda t, data: hello(sc, t, data)
        )
        self.flows = FlowTable(dissectors, MAX_FLOWS, MAX_STREAMS)
        self.num = 0
        self.warnings: list[str] = []
        with path.open("rb") as fh:
            self.gzip = fh.read(2) == GZIP_MAGIC

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
            except (self.sc.error, EOFError, OSError, zlib.error, ValueError, OverflowError) as exc:
                self.warnings.append(self._stopped(exc))
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
        outcome = dissect(self.sc, self.num, ts, data, int(linktype or 0), wirelen)
        if isinstance(outcome, PacketInfo):
            self.flows.packet(outcome)
        elif outcome[0]:
            out.rejects.append((self.num, outcome[1]))
        else:
            out.skips.append((self.num, outcome[1]))
        return True

    def _stopped(self, exc: BaseException) -> str:
        """Why reading stopped after packet ``self.num``, in words of ours."""
        if self.gzip and isinstance(exc, EOFError | OSError | zlib.error):
            # the library's text can quote input bytes; a gzip stream cut short ends in
            # EOFError, a damaged one in BadGzipFile (an OSError) or zlib.error
            return (
                f"compressed input is truncated or corrupt after packet {self.num}: "
                "every whole packet before it was kept"
            )
        return f"the block after packet {self.num} is damaged"

    def _trailing(self, fh: Any, start: int) -> None:
        """Warn about bytes after the last whole record (a capture cut inside a header)."""
        end = fh.tell()
        try:
            while block := fh.read(1 << 20):
                end += len(block)
        except (EOFError, OSError, zlib.error) as exc:
            self.warnings.append(self._stopped(exc))
            return
        if end > start and not any("damaged" in w or "truncated" in w for w in self.warnings):
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
            query = _dns_query(self.sc)
            parsed.tables["dns"] = self._project(query, "pcap_dns", _dns_table(out))
        lowest = None if done else self.flows.lowest_open()
        last = self.num if lowest is None else lowest - 1
        warnings = self._closing_warnings() if done else []
        return RecordChunk(last, parsed, fh.tell(), warnings)

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


def _dns_template() -> str:
    return f"""
SELECT src_line, CAST(NULL AS VARCHAR) AS reject_reason, kind AS event_kind,
       CAST(NULL AS VARCHAR) AS session_id, qname, {{qtypes}} AS qtype,
       CASE WHEN rcode_num IS NOT NULL THEN {_case("rcode_num", RCODES)} END AS rcode,
       rrdata, resolver_ip, resolver_port, client_ip, client_port,
       {_case("proto_num", PROTOCOLS)} AS proto, trans_id, ts AS ts_utc,
       {{{{sensor}}}} AS sensor_id
FROM pcap_dns"""


@functools.cache
def _dns_query(sc: Scapy) -> str:
    """The dns projection, with type names from scapy's table (known once it is imported)."""
    names = {k: v for k, v in sc.qtypes.items() if isinstance(v, str)}
    return _dns_template().format(qtypes=_case("qtype_num", names))


def _read_records(path: Path, ctx: Context) -> Iterator[RecordChunk]:
    with quiet_scapy():
        yield from _Capture(path, ctx).chunks()


FORMAT = register(
    SourceFormat(
        "pcap",
        "packet capture (pcap, pcapng): flows with JA3/JA3S and SNI, DNS exchanges",
        sniff,
        read_records=_read_records,
    )
)
