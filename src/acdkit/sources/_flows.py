"""Transport flows of a capture, their TLS hellos and DNS exchanges, and where each packet goes.

Every packet is accounted for exactly once.  A flow's record (net) names its first packet;
the flow's other packets are skips ("later packet of its flow").  A DNS message is the
source of its own record (dns): a response (with the query it answers, matched by message
ID, as one "transaction"; alone, as an "answer"), or a query that got no response by the
time its flow ended ("query").  When the first packet of a flow is such a DNS record, the
flow's record names another packet of the flow, the first one found to be a plain one; a
flow made only of DNS records has no net record (those records carry its addresses, ports,
protocol and times).

Flows end when idle (capture time: TCP 300 s, 5 s once closed by FIN from both sides or a
RST, others 60 s), when the table is full (the least recently active one goes first) and at
the end of the file.  The library-specific dissection is passed in (`Dissectors`), so this
module holds only acdkit's own bookkeeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from acdkit.sources._tcpstream import Stream
from acdkit.sources._tls import HELLO_LIMIT, first_handshake, starts_hello

__all__ = [
    "LATER_PACKET",
    "Dissectors",
    "DnsMessage",
    "FlowTable",
    "Hello",
    "Output",
    "PacketInfo",
]

LATER_PACKET = "later packet of its flow"
TCP, UDP = 6, 17
DNS_PORT = 53
SECOND = 1_000_000_000
TIMEOUT_NS = {"tcp": 300 * SECOND, "closed": 5 * SECOND, "other": 60 * SECOND}
MAX_PENDING_QUERIES = 64  # per flow; the oldest unanswered one is recorded when more come
DNS_TCP_LIMIT = (64 << 10) + 2  # one whole DNS message over TCP with its length prefix
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
PORTED = (TCP, UDP, 132)  # 132: SCTP


class PacketInfo(NamedTuple):
    """What the dissector found in one IP packet."""

    num: int
    ts: int  # ns since the epoch
    proto: int
    src: str
    sport: int | None
    dst: str
    dport: int | None
    length: int  # transport payload bytes, as the IP header says (not as captured)
    flags: int  # TCP flags, 0 for other protocols
    seq: int
    payload: bytes  # captured transport payload (TCP or UDP), b"" for others


class DnsMessage(NamedTuple):
    """The machine information of one DNS message: its first question, codes, answers."""

    response: bool
    trans_id: int
    qname: str | None
    qtype: int | None
    rcode: int | None
    rrdata: list[str]


class Hello(NamedTuple):
    """A dissected Client- or ServerHello: its fingerprint string and, for a client, SNI."""

    client: bool
    fingerprint: str  # the JA3 (client) or JA3S (server) string
    sni: str | None


@dataclass(frozen=True)
class Dissectors:
    """The library's dissectors of a DNS message and of a TLS Client/ServerHello message."""

    dns: Callable[[bytes], DnsMessage | None]
    hello: Callable[[int, bytes], Hello | None]


@dataclass
class Output:
    """Rows and line outcomes produced since the last `take`."""

    net: list[tuple[Any, ...]] = field(default_factory=list)
    dns: list[tuple[Any, ...]] = field(default_factory=list)
    skips: list[tuple[int, str]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)


PLAIN, PENDING, CLAIMED = 0, 1, 2  # what the opening packet of a flow turned out to be


class _Query(NamedTuple):
    """A DNS query waiting for its response: packet number, time, sending side, message."""

    num: int
    ts: int
    side: int
    msg: DnsMessage


class Flow:
    """One transport flow being followed: endpoints, counters, hello and DNS state."""

    __slots__ = (
        "bytes",
        "closed",
        "ends",
        "fins",
        "first",
        "held",
        "hello_done",
        "isn",
        "ja3",
        "ja3s",
        "key",
        "kind",
        "last",
        "opener",
        "origin",
        "pending",
        "pkts",
        "proto",
        "seen",
        "service",
        "sni",
        "state",
        "streams",
    )

    def __init__(
        self, key: tuple[Any, ...], origin: tuple[str, int], p: PacketInfo, swap: bool
    ) -> None:
        self.key = key
        self.origin = origin  # the originator's endpoint as it appears in the key
        self.proto = p.proto
        ends = ((p.src, p.sport), (p.dst, p.dport))
        self.ends = (ends[1], ends[0]) if swap else ends
        self.opener = p.num
        self.state = PLAIN
        self.held = 0
        self.first = self.last = p.ts
        self.pkts = [0, 0]
        self.bytes = [0, 0]
        self.ja3: str | None = None
        self.ja3s: str | None = None
        self.sni: str | None = None
        self.service: str | None = None
        self.kind = "tcp" if p.proto == TCP else "other"
        self.fins = [False, False]
        self.closed = False
        self.hello_done = [False, False]  # that side is not looked at any more
        self.isn: list[int | None] = [None, None]  # the first sequence number after a SYN
        self.seen = [False, False]  # that side has sent payload
        self.streams: list[Stream | None] = [None, None]
        self.pending: dict[int, _Query] = {}


class FlowTable:
    """The open flows, oldest activity first within each timeout class."""

    def __init__(self, dissect: Dissectors, max_flows: int, max_streams: int) -> None:
        self.dissect = dissect
        self.max_flows = max_flows
        self.max_streams = max_streams
        self.classes: dict[str, OrderedDict[tuple[Any, ...], Flow]] = {
            name: OrderedDict() for name in TIMEOUT_NS
        }
        self.out = Output()
        self.streams = 0
        self.evicted = 0
        self.streams_refused = 0
        self.dns_extra = 0
        self.now = 0

    # -- packets ------------------------------------------------------------------------------

    def packet(self, p: PacketInfo) -> None:
        """Account for one IP packet: new flow, later packet, DNS record or held packet."""
        self.now = max(self.now, p.ts)
        flow, side = self._flow_of(p)
        flow.pkts[side] += 1
        flow.bytes[side] += p.length
        flow.last = max(flow.last, p.ts)
        messages: list[DnsMessage] = []
        if p.proto == TCP:
            self._tcp_state(flow, side, p)
            if p.payload:
                messages = self._tcp_payload(flow, side, p)
        elif p.proto == UDP and DNS_PORT in (p.sport, p.dport) and p.payload:
            msg = self.dissect.dns(p.payload)
            messages = [msg] if msg is not None else []
        if messages:
            flow.service = flow.service or "dns"
            self.dns_extra += len(messages) - 1
            self._dns(flow, side, p, messages[0])
        elif p.num != flow.opener:
            self._plain(flow, p.num)

    def _flow_of(self, p: PacketInfo) -> tuple[Flow, int]:
        # ICMP and protocols without ports: one flow per address pair (ports hold type, code)
        ported = p.proto in PORTED
        a = (p.src, p.sport or 0 if ported else 0)
        b = (p.dst, p.dport or 0 if ported else 0)
        key = (p.proto, a, b) if a <= b else (p.proto, b, a)
        for name, table in self.classes.items():
            flow = table.get(key)
            if flow is None:
                continue
            if p.ts - flow.last <= TIMEOUT_NS[name]:
                table.move_to_end(key)
                return flow, 0 if a == flow.origin else 1
            self._end(flow)  # idle too long: the same addresses and ports start a new flow
            break
        if sum(len(t) for t in self.classes.values()) >= self.max_flows:
            self.evicted += 1
            self._end_oldest()
        # a SYN-ACK first: the capture missed the SYN, and the receiver is the originator
        swap = p.proto == TCP and p.flags & (SYN | ACK) == SYN | ACK
        flow = Flow(key, b if swap else a, p, swap)
        self.classes[flow.kind][key] = flow
        return flow, 1 if swap else 0

    def _tcp_state(self, flow: Flow, side: int, p: PacketInfo) -> None:
        flags = p.flags
        if flags & SYN:
            flow.isn[side] = (p.seq + 1) % (1 << 32)
        if flags & FIN:
            flow.fins[side] = True
        if not flow.closed and (flags & RST or all(flow.fins)):
            flow.closed = True
            del self.classes[flow.kind][flow.key]
            flow.kind = "closed"
            self.classes["closed"][flow.key] = flow

    def _plain(self, flow: Flow, num: int) -> None:
        """A packet that is no record: a skip, or held in case the flow needs it as source."""
        if num == flow.opener:
            if flow.state == PENDING:
                flow.state = PLAIN
                if flow.held:
                    self.out.skips.append((flow.held, LATER_PACKET))
                    flow.held = 0
            return
        if flow.state != PLAIN and not flow.held:
            flow.held = num
        else:
            self.out.skips.append((num, LATER_PACKET))

    # -- TLS ----------------------------------------------------------------------------------

    def _tcp_payload(self, flow: Flow, side: int, p: PacketInfo) -> list[DnsMessage]:
        if flow.hello_done[side]:
            return []
        dns = DNS_PORT in (p.sport, p.dport)
        stream = flow.streams[side]
        first, flow.seen[side] = not flow.seen[side], True
        if stream is None:
            start = flow.isn[side]
            if first and start is not None:
                # from the SYN on: segments that come out of order still find their place
                stream = self._open_stream(flow, side, start, dns)
            elif dns or starts_hello(p.payload):
                stream = self._open_stream(flow, side, p.seq, dns)
            if stream is None:
                return []
        if not stream.add(p.seq, p.payload):
            return []
        if dns:
            return self._dns_over_tcp(flow, side)
        self._try_hello(flow, side, stream)
        return []

    def _open_stream(self, flow: Flow, side: int, seq: int, dns: bool) -> Stream | None:
        if self.streams >= self.max_streams:
            self.streams_refused += 1
            flow.hello_done[side] = True  # not looked at again: a later segment is mid-stream
            return None
        self.streams += 1
        stream = flow.streams[side] = Stream(seq, b"", DNS_TCP_LIMIT if dns else HELLO_LIMIT)
        return stream

    def _close_stream(self, flow: Flow, side: int) -> None:
        if flow.streams[side] is not None:
            flow.streams[side] = None
            self.streams -= 1

    def _try_hello(self, flow: Flow, side: int, stream: Stream) -> None:
        found = first_handshake(stream.buf)
        if found is None and not stream.full:
            return
        self._close_stream(flow, side)
        if found is False:
            return  # no hello here; a later segment may still open one (STARTTLS)
        flow.hello_done[side] = True
        hello = self.dissect.hello(*found) if isinstance(found, tuple) else None
        if hello is None:
            return
        flow.service = "ssl"
        if hello.client:
            flow.ja3 = flow.ja3 or hello.fingerprint
            flow.sni = flow.sni or hello.sni
        else:
            flow.ja3s = flow.ja3s or hello.fingerprint

    # -- DNS ----------------------------------------------------------------------------------

    def _dns_over_tcp(self, flow: Flow, side: int) -> list[DnsMessage]:
        stream = flow.streams[side]
        assert stream is not None
        messages = []
        while len(stream.buf) >= 2:
            size = int.from_bytes(stream.buf[:2], "big")
            if len(stream.buf) < 2 + size:
                break
            msg = self.dissect.dns(bytes(stream.buf[2 : 2 + size]))
            stream.consume(2 + size)
            if msg is not None:
                messages.append(msg)
        if stream.full:
            flow.hello_done[side] = True
            self._close_stream(flow, side)
        return messages

    def _dns(self, flow: Flow, side: int, p: PacketInfo, msg: DnsMessage) -> None:
        if not msg.response:
            older = flow.pending.pop(msg.trans_id, None)
            if older is not None:
                self._plain(flow, older.num)  # a retransmission: the newer one stands for it
            if len(flow.pending) >= MAX_PENDING_QUERIES:
                self._unanswered(flow, flow.pending.pop(next(iter(flow.pending))))
            flow.pending[msg.trans_id] = _Query(p.num, p.ts, side, msg)
            if p.num == flow.opener:
                flow.state = PENDING
            return
        query = flow.pending.get(msg.trans_id)
        if query is not None and query.side != side:
            del flow.pending[msg.trans_id]
            self._dns_row(flow, "transaction", p.num, query.ts, 1 - side, msg, query.msg)
            self._plain(flow, query.num)
            return
        self._dns_row(flow, "answer", p.num, p.ts, 1 - side, msg, None)
        if p.num == flow.opener:
            flow.state = CLAIMED

    def _unanswered(self, flow: Flow, query: _Query) -> None:
        self._dns_row(flow, "query", query.num, query.ts, query.side, query.msg, None)
        if query.num == flow.opener:
            flow.state = CLAIMED

    def _dns_row(
        self,
        flow: Flow,
        kind: str,
        num: int,
        ts: int,
        client_side: int,
        msg: DnsMessage,
        query: DnsMessage | None,
    ) -> None:
        client, server = flow.ends[client_side], flow.ends[1 - client_side]
        asked = query if query is not None and msg.qname is None else msg
        rrdata = msg.rrdata if msg.response else None
        self.out.dns.append(
            (num, kind, asked.qname, asked.qtype, msg.rcode, rrdata, server[0], server[1],
             client[0], client[1], flow.proto, msg.trans_id, ts)
        )  # fmt: skip

    # -- the end of flows ---------------------------------------------------------------------

    def sweep(self) -> None:
        """End the flows that have been idle longer than their timeout."""
        for name, table in self.classes.items():
            limit = self.now - TIMEOUT_NS[name]
            while table:
                flow = next(iter(table.values()))
                if flow.last >= limit:
                    break
                self._end(flow)

    def finish(self) -> None:
        """End every flow (the end of the capture)."""
        for table in self.classes.values():
            while table:
                self._end(next(iter(table.values())))

    def lowest_open(self) -> int | None:
        """The lowest packet number that an open flow may still have to account for."""
        openers = [f.opener for t in self.classes.values() for f in t.values()]
        return min(openers) if openers else None

    def take(self) -> Output:
        out, self.out = self.out, Output()
        return out

    def _end_oldest(self) -> None:
        fronts = [next(iter(t.values())) for t in self.classes.values() if t]
        self._end(min(fronts, key=lambda f: f.last))

    def _end(self, flow: Flow) -> None:
        del self.classes[flow.kind][flow.key]
        for side in (0, 1):
            self._close_stream(flow, side)
        for query in list(flow.pending.values()):
            self._unanswered(flow, query)
        flow.pending.clear()
        source = flow.opener if flow.state == PLAIN else flow.held
        if not source:
            return
        (src, sport), (dst, dport) = flow.ends
        self.out.net.append(
            (source, src, sport, dst, dport, flow.proto, flow.service, flow.ja3, flow.ja3s,
             flow.sni, flow.first, flow.last - flow.first, flow.bytes[0], flow.bytes[1],
             flow.pkts[0], flow.pkts[1])
        )  # fmt: skip
