"""Hostile NTP responders on 127.0.0.1: what chronyd never sends, for tests/test_ntp.py.

chronyd (tests/ntpservers.py) serves every honest and wrongly set clock; these answer
each request with one kind of damage: garbage, a kiss-o'-death, a reply from another NTP
era (a server beyond 2036-02-07, or more than 68 years off), or a correct reply.  Each
counts the requests it received, so a test can tell whether the client kept asking.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

NTP_DELTA = 2_208_988_800  # 1900-01-01 to 1970-01-01, in seconds
ERA = 1 << 32
NEXT_ERA_AT = 2_114_380_800  # 2037-01-01T00:00:00Z


def ntp_stamp(unix_seconds: float) -> int:
    """A 64-bit NTP timestamp: 32 bits of seconds since 1900 modulo 2^32, 32 of fraction."""
    seconds = unix_seconds + NTP_DELTA
    whole = int(seconds // 1)
    return ((whole % ERA) << 32) | int((seconds - whole) * ERA)


def reply(
    request: bytes,
    *,
    ahead_s: float = 0.0,
    stratum: int = 2,
    refid: bytes = b"\x7f\x00\x00\x01",
    leap: int = 0,
) -> bytes:
    """A server-mode (4), version 4 reply echoing the request's transmit timestamp."""
    now = time.time() + ahead_s
    head = struct.pack("!BBbb", (leap << 6) | (4 << 3) | 4, stratum, 6, -20)
    roots = struct.pack("!II", 0, 1 << 6)  # root delay 0, root dispersion ~1 ms
    stamps = struct.pack("!Q", ntp_stamp(now)) + request[40:48]
    return head + roots + refid + stamps + struct.pack("!QQ", ntp_stamp(now), ntp_stamp(now))


@dataclass
class Responder:
    """One UDP port answering each request with ``answer(request)``."""

    answer: Callable[[bytes], bytes]
    sock: socket.socket = field(init=False)
    spec: str = field(init=False)
    requests: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.spec = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return  # closed
            self.requests += 1
            self.sock.sendto(self.answer(data), peer)


BEHAVIOURS: dict[str, Callable[[bytes], bytes]] = {
    "good": reply,
    "garbage": lambda request: os.urandom(48),
    "rate-kiss": lambda request: reply(request, stratum=0, refid=b"RATE", leap=3),
    # a clock at 2037: NTP era 1, which began at 2036-02-07T06:28:16Z
    "next-era": lambda request: reply(request, ahead_s=NEXT_ERA_AT - time.time()),
}


@contextmanager
def responders(*kinds: str) -> Iterator[list[Responder]]:
    running = [Responder(BEHAVIOURS[kind]) for kind in kinds]
    try:
        yield running
    finally:
        for r in running:
            r.sock.close()
