"""scapy's side of packet captures: the reader, and the dissection of one packet.

Each function takes the bytes of one frame (or of one DNS or TLS hello message) and returns
plain values for `_flows`; nothing of scapy's objects, and no payload, goes further.  scapy
is imported on first use only: it takes about a second, which no other command should pay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from acdkit.sources._flows import DnsMessage, Hello, PacketInfo
from acdkit.sources.ja3 import ja3_string, ja3s_string

__all__ = [
    "FRAGMENT",
    "NOT_IP",
    "Outcome",
    "Scapy",
    "dissect",
    "dns_message",
    "hello",
    "name_text",
    "quiet_scapy",
    "scapy",
]


# -- scapy --------------------------------------------------------------------------------------


class Scapy:
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


_LOADED: list[Scapy] = []


def scapy() -> Scapy:
    if not _LOADED:
        _LOADED.append(Scapy())
    return _LOADED[0]


class _Quiet(logging.Filter):
    """Drops scapy's own warnings while a capture is read: the file's report says it better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def quiet_scapy() -> Iterator[None]:
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


def dns_message(sc: Scapy, data: bytes) -> DnsMessage | None:
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


def hello(sc: Scapy, msg_type: int, data: bytes) -> Hello | None:
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


def _sni(sc: Scapy, exts: list[Any]) -> str | None:
    for ext in exts:
        if isinstance(ext, sc.server_name):
            for entry in ext.servernames or []:
                if entry.nametype == 0 and entry.servername:
                    return name_text(entry.servername)
    return None


# -- one packet ------------------------------------------------------------------------------

Outcome = PacketInfo | tuple[bool, str]  # a packet to follow, or (is a reject, reason)

NOT_IP = (False, "not an IP packet")
FRAGMENT = (False, "IP fragment after the first (fragments are not reassembled)")
UNDECODABLE = (True, "undecodable packet")
TRUNCATED_IP = (True, "truncated or invalid IP header")
IP_ETHERTYPES = (0x0800, 0x86DD)


def dissect(sc: Scapy, num: int, ts: int, data: bytes, linktype: int, wirelen: int) -> Outcome:
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


def _ipv4(sc: Scapy, num: int, ts: int, ip: Any, on_wire: int) -> Outcome:
    head = ip.ihl * 4 if ip.ihl is not None else 0
    if len(ip.original) < 20 or ip.version != 4 or head < 20 or len(ip.original) < head:
        return True, "truncated or invalid IPv4 header"
    if ip.frag:
        return FRAGMENT
    # TCP segmentation offload writes 0 into the length; the frame's length then tells
    total = ip.len or on_wire
    return _transport(sc, num, ts, ip, int(ip.proto), ip.payload, total - head)


def _ipv6(sc: Scapy, num: int, ts: int, ip: Any, on_wire: int) -> Outcome:
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


def _transport(sc: Scapy, num: int, ts: int, ip: Any, proto: int, l4: Any, size: int) -> Outcome:
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
