"""Asking NTP servers for the time (RFC 5905 client mode, through ``ntplib``).

Each server is asked several times, one request after the other with a pause between
them (public servers rate-limit), and the servers in parallel.  Every request becomes a
``clocksel.Sample`` in integer nanoseconds: the four timestamps and the server's view of
its own clock, or the reason there was no usable reply.  A reply is refused ("bad-reply")
unless it is a server-mode packet whose origin timestamp echoes the time this request was
sent, since anything else could be stale or forged.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import ntplib

from acdkit.clocksel import Reply, Sample, ServerSamples, is_kiss
from acdkit.errors import UsageError

__all__ = [
    "DEFAULT_PORT",
    "ServerSpec",
    "local_precision_ns",
    "parse_server",
    "query_servers",
]

DEFAULT_PORT = 123
NTP_VERSION = 4
MODE_SERVER = 4
# ntplib carries times as floats of seconds: near 2^31 s a double resolves about 0.24 µs
FLOAT_SLACK_NS = 1_000
NS = 1_000_000_000
ERA_NS = (1 << 32) * NS  # an NTP era: 2^32 seconds, about 136 years
MAX_PARALLEL = 64
ProgressFn = Callable[[int, int], None]  # (requests done, requests in all)


@dataclass(frozen=True)
class ServerSpec:
    name: str  # as the user wrote it
    host: str
    port: int

    @property
    def key(self) -> tuple[str, int]:
        """The server whatever the spelling: ``ntp.example``, ``NTP.example.:123``."""
        try:
            return ipaddress.ip_address(self.host).compressed, self.port
        except ValueError:
            return self.host.lower().rstrip("."), self.port


def parse_server(text: str) -> ServerSpec:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    value = text.strip()
    odd = any(c.isspace() or not c.isprintable() for c in value)
    if not value or odd or len(value.encode()) > 255:
        raise UsageError(
            f"NTP server {text[:60]!r} is empty, longer than 255 bytes or holds a blank or a "
            "control character"
        )
    host, port = value, DEFAULT_PORT
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"NTP server {value!r}: expected [ADDRESS] or [ADDRESS]:PORT")
        host, port = inner, _port(rest[1:], value) if rest else DEFAULT_PORT
    elif value.count(":") == 1:
        host, raw = value.split(":")
        port = _port(raw, value)
    if not host:
        raise UsageError(f"NTP server {value!r} names no host")
    _check_host(host, value)
    return ServerSpec(value, host, port)


def _check_host(host: str, whole: str) -> None:
    """An IP address or a DNS name: a list joined by commas is the usual slip here."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(
                f"NTP server {whole!r}: {host!r} is no IPv6 address",
                hint=_LIST_HINT
                if any(c in host for c in ",;")
                else "a port after an IPv6 address needs brackets: [ADDRESS]:PORT",
            ) from None
        return
    if not all(c.isalnum() or c in "-._" for c in host):
        raise UsageError(
            f"NTP server {whole!r}: {host!r} is neither an IP address nor a host name",
            hint=_LIST_HINT,
        )


_LIST_HINT = (
    "give one server per --server; ACDKIT_NTP_SERVERS separates servers with blanks, "
    "without quotes or commas"
)


def _port(raw: str, whole: str) -> int:
    # str.isdigit also takes other scripts' digits, which int() reads
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65535:
        raise UsageError(f"NTP server {whole!r}: the port must be a number from 1 to 65535")
    return int(raw)


def local_precision_ns() -> int:
    """How finely acdkit reads the local clock: its resolution, at least the float slack."""
    resolution = time.get_clock_info("time").resolution
    return max(FLOAT_SLACK_NS, math.ceil(resolution * 1e9))


def _ns(seconds: float) -> int:
    whole = math.floor(seconds)
    return whole * NS + round((seconds - whole) * 1e9)


def _server_ns(ntp_seconds: float, near_ns: int) -> int:
    """An NTP timestamp (seconds since 1900, modulo 2^32: the era is not sent) in ns since
    1970, in the era nearest the local clock (RFC 5905 §6): ntplib assumes era 0, which a
    server beyond 2036-02-07, or more than 68 years off, is not in."""
    era0 = _ns(ntp_seconds - ntplib.NTP.NTP_DELTA)
    return era0 + round((near_ns - era0) / ERA_NS) * ERA_NS


def _resolve(spec: ServerSpec, timeout: float) -> str | None:
    """The server's first address, or None if the name does not resolve within ``timeout``.

    getaddrinfo has no time-out of its own (the system resolver's retries can take half a
    minute or more), so it runs in a daemon thread that is abandoned at the deadline.
    """
    found: list[str | None] = []

    def run() -> None:
        try:
            infos = socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError):  # socket.gaierror is an OSError
            found.append(None)
            return
        found.append(str(infos[0][4][0]) if infos else None)

    worker = threading.Thread(target=run, name="ntp-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    return found[0] if found else None


def _ask(address: str, port: int, timeout: float) -> Sample:
    """One request, never raising: a reply checked on receipt, or the reason for none."""
    before = time.time_ns()
    try:
        stats = ntplib.NTPClient().request(address, version=NTP_VERSION, port=port, timeout=timeout)
    except ntplib.NTPException:
        after = time.time_ns()
        # ntplib says "no response" and "invalid packet" with the same exception
        failure = "timeout" if after - before >= timeout * 1e9 * 0.9 else "bad-reply"
        return Sample(before, after, None, failure)
    except OSError:
        return Sample(before, time.time_ns(), None, "refused")
    after = time.time_ns()
    sent, received = _server_ns(stats.orig_timestamp, before), _ns(stats.dest_time)
    echoed = before - FLOAT_SLACK_NS <= sent <= after + FLOAT_SLACK_NS
    if stats.mode != MODE_SERVER or not echoed or stats.tx_timestamp == 0:
        return Sample(before, after, None, "bad-reply")
    if not -32 <= stats.precision <= 0:
        return Sample(before, after, None, "bad-reply")
    reply = Reply(
        server_rx_ns=_server_ns(stats.recv_timestamp, sent),
        server_tx_ns=_server_ns(stats.tx_timestamp, sent),
        stratum=int(stats.stratum),
        leap=int(stats.leap),
        root_delay_ns=_ns(stats.root_delay),
        root_dispersion_ns=_ns(stats.root_dispersion),
        precision=int(stats.precision),
        refid=int(stats.ref_id).to_bytes(4, "big"),
    )
    return Sample(sent, received, reply)


def _query_one(
    spec: ServerSpec, samples: int, interval: float, timeout: float, tick: Callable[[], None]
) -> ServerSamples:
    address = _resolve(spec, timeout)
    if address is None:
        now = time.time_ns()
        for _ in range(samples):
            tick()
        return ServerSamples(spec.name, None, spec.port, (Sample(now, now, None, "unresolved"),))
    taken: list[Sample] = []
    for k in range(samples):
        if taken and _kissed(taken[-1]):
            # RFC 5905 §7.4: a kiss-o'-death (RATE, DENY, RSTR…) means stop asking
            tick()
            continue
        if k:
            time.sleep(interval)
        taken.append(_ask(address, spec.port, timeout))
        tick()
    return ServerSamples(spec.name, address, spec.port, tuple(taken))


def _kissed(sample: Sample) -> bool:
    return sample.reply is not None and sample.reply.stratum == 0 and is_kiss(sample.reply.refid)


def query_servers(
    specs: Sequence[ServerSpec],
    samples: int,
    interval: float,
    timeout: float,
    progress: ProgressFn | None = None,
) -> list[ServerSamples]:
    """Ask every server ``samples`` times, the servers in parallel; results in input order."""
    total, done, lock = len(specs) * samples, [0], threading.Lock()

    def tick() -> None:
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

    # one thread per server (at most MAX_PARALLEL): each mostly waits on its socket
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(specs)))) as pool:
        futures = [
            pool.submit(_query_one, spec, samples, interval, timeout, tick) for spec in specs
        ]
        return [f.result() for f in futures]
