"""Choosing the servers that tell the truth: NTP's selection, in integer nanoseconds.

Every value is an integer number of nanoseconds, so that a verifier recomputes exactly
what ``acdkit timecheck`` found from the samples a CLOCK entry records (docs/evidence-format.md
§15).  The steps follow the description of RFC 5905 §10–§11 (clock filter, correctness
intervals, the intersection algorithm after Marzullo, the combine step), simplified to one
measurement run:

1. per server, the reply of least round-trip delay is its sample (the clock filter);
2. a server that is unsynchronised (stratum 0 or 16 and above, leap indicator 3), that
   sent a kiss-o'-death, or whose root distance exceeds ``MAX_DISTANCE_NS`` is no candidate;
3. each candidate's correctness interval is its offset ± its root distance;
4. the intersection algorithm (Marzullo's) finds the smallest interval that a majority of
   the intervals share, allowing ever more false tickers while they stay a minority;
5. candidates whose interval meets it are truechimers, the others false tickers;
6. the combined offset is the mean of the truechimers' offsets weighted by 1/distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "MAX_DISTANCE_NS",
    "Reply",
    "Sample",
    "Selection",
    "ServerResult",
    "ServerSamples",
    "distance",
    "intersect",
    "is_kiss",
    "lag",
    "select",
    "span",
]

NS = 1_000_000_000
MAX_DISTANCE_NS = 1_500_000_000  # ntpd's default "tos maxdist"
PHI_PPM = 15  # RFC 5905: the frequency tolerance assumed for a clock, 15 ppm
VERDICTS = ("OK", "POLICY", "IO")
RESULTS = (
    "truechimer",
    "falseticker",
    "no-majority",
    "unreachable",
    "unsynchronised",
    "kiss",
    "too-far",
)


@dataclass(frozen=True)
class Reply:
    """What a server answered: its two timestamps and its own view of its clock."""

    server_rx_ns: int  # T2: the server's clock when the request arrived
    server_tx_ns: int  # T3: the server's clock when the reply left
    stratum: int  # as sent: 0 means unspecified (kiss-o'-death or unsynchronised)
    leap: int  # leap indicator: 0 none, 1 insert, 2 delete, 3 alarm (unsynchronised)
    root_delay_ns: int
    root_dispersion_ns: int
    precision: int  # log2 seconds, as the server states it
    refid: bytes  # 4 bytes


@dataclass(frozen=True)
class Sample:
    """One request: local times around it, and the reply or why there was none."""

    sent_ns: int  # T1: the local clock when the request left (as the reply echoes it)
    received_ns: int  # T4: the local clock when the reply arrived, or the wait ended
    reply: Reply | None = None
    failure: str | None = None  # timeout | refused | bad-reply | unresolved

    @property
    def offset_ns(self) -> int:
        """Server clock minus local clock: ((T2 − T1) + (T3 − T4)) / 2, rounded down."""
        r = self._reply()
        return ((r.server_rx_ns - self.sent_ns) + (r.server_tx_ns - self.received_ns)) // 2

    @property
    def delay_ns(self) -> int:
        """Round trip less the server's time: (T4 − T1) − (T3 − T2)."""
        r = self._reply()
        return (self.received_ns - self.sent_ns) - (r.server_tx_ns - r.server_rx_ns)

    def _reply(self) -> Reply:
        if self.reply is None:
            raise ValueError("a sample without a reply has no offset")
        return self.reply


@dataclass(frozen=True)
class ServerSamples:
    name: str  # as configured: host or host:port
    address: str | None  # the address asked, None if the name did not resolve
    port: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class ServerResult:
    result: str  # one of RESULTS
    chosen: int | None = None  # index of the sample the clock filter kept
    offset_ns: int | None = None
    delay_ns: int | None = None
    distance_ns: int | None = None  # root distance λ of the chosen sample
    leap: int | None = None  # the chosen reply's leap indicator

    @property
    def interval(self) -> tuple[int, int] | None:
        if self.offset_ns is None or self.distance_ns is None:
            return None
        return self.offset_ns - self.distance_ns, self.offset_ns + self.distance_ns


@dataclass(frozen=True)
class Selection:
    servers: tuple[ServerResult, ...]
    agreeing: int
    offset_ns: int | None  # combined offset of the truechimers
    low_ns: int | None  # the intersection interval: true time minus local time lies in it
    high_ns: int | None
    verdict: str  # OK | POLICY | IO
    reason: str

    @property
    def bound_ns(self) -> int | None:
        """How far from true time the local clock may be: the larger end of the interval."""
        if self.low_ns is None or self.high_ns is None:
            return None
        return max(abs(self.low_ns), abs(self.high_ns))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def precision_ns(exponent: int) -> int:
    """2^exponent seconds in ns, rounded up (exponents are 0 or negative)."""
    return _ceil_div(NS, 1 << -exponent) if exponent < 0 else NS << exponent


def distance(sample: Sample, jitter_ns: int, local_precision_ns: int) -> int:
    """Root distance λ: half of the round trips to the reference, plus every dispersion.

    λ = ⌈(max(δ, 0) + root delay) / 2⌉ + root dispersion + ε, where ε adds the server's
    and the local clock's precision, the frequency tolerance over the round trip
    (⌈max(δ, 0) · 15 / 10^6⌉) and the jitter among the server's samples.
    """
    r = sample._reply()
    delay = max(sample.delay_ns, 0)
    epsilon = (
        precision_ns(r.precision)
        + local_precision_ns
        + _ceil_div(delay * PHI_PPM, 1_000_000)
        + jitter_ns
    )
    return _ceil_div(delay + r.root_delay_ns, 2) + r.root_dispersion_ns + epsilon


def is_kiss(refid: bytes) -> bool:
    """A kiss-o'-death code (with stratum 0): four ASCII capitals, RFC 5905 §7.4."""
    return len(refid) == 4 and all(0x41 <= b <= 0x5A for b in refid)


def evaluate(server: ServerSamples, local_precision_ns: int) -> ServerResult:
    """Steps 1 and 2 for one server: its chosen sample, or why it is no candidate."""
    replies = [i for i, s in enumerate(server.samples) if s.reply is not None]
    if not replies:
        return ServerResult("unreachable")
    # 1: the least delay; the first of equals
    chosen = min(replies, key=lambda i: (server.samples[i].delay_ns, i))
    best = server.samples[chosen]
    jitter = max(abs(server.samples[i].offset_ns - best.offset_ns) for i in replies)
    lam = distance(best, jitter, local_precision_ns)
    reply = best.reply
    assert reply is not None
    found = ServerResult(
        "truechimer", chosen, best.offset_ns, best.delay_ns, lam, reply.leap
    )  # the result is settled by the intersection
    # 2
    if reply.stratum == 0 and is_kiss(reply.refid):
        return _as(found, "kiss")
    if reply.stratum == 0 or reply.stratum >= 16 or reply.leap == 3:
        return _as(found, "unsynchronised")
    if lam > MAX_DISTANCE_NS:
        return _as(found, "too-far")
    return found


def _as(found: ServerResult, result: str) -> ServerResult:
    return ServerResult(
        result, found.chosen, found.offset_ns, found.delay_ns, found.distance_ns, found.leap
    )


def intersect(intervals: Sequence[tuple[int, int]]) -> tuple[int, int, int] | None:
    """Step 4: (low, high, false tickers allowed) of the majority's interval, or None.

    For f = 0, 1, … while 2f < m: walk the endpoints upwards until m − f intervals are
    open (the low point) and downwards until m − f are open from above (the high point);
    the first f for which the low point is not above the high point gives the interval.
    Midpoints are not counted: RFC 5905 §11.2.1 also requires at most f offsets outside
    the interval, which rejects a server whose interval holds the true time while its
    offset lies outside the others' overlap (ntpd dropped that test too).
    """
    m = len(intervals)
    # at one value a low end sorts before a high end: intervals that touch overlap
    edges = sorted([(lo, -1) for lo, _hi in intervals] + [(hi, 1) for _lo, hi in intervals])
    f = 0
    while 2 * f < m:
        low = _scan(edges, m - f, ascending=True)
        high = _scan(edges, m - f, ascending=False)
        if low is not None and high is not None and low <= high:
            return low, high, f
        f += 1
    return None


def _scan(edges: list[tuple[int, int]], need: int, ascending: bool) -> int | None:
    """The value at which ``need`` intervals are open, walking in from one end."""
    count = 0
    for value, kind in edges if ascending else reversed(edges):
        count += -kind if ascending else kind
        if count >= need:
            return value
    return None


def select(
    servers: Sequence[ServerSamples],
    local_precision_ns: int,
    min_agree: int,
    max_drift_ns: int,
) -> Selection:
    """Steps 1–6 over every server, then the verdict (DESIGN §5).

    No reply from any server is IO; fewer truechimers than ``min_agree``, or an
    intersection interval that reaches beyond ±``max_drift_ns``, is POLICY.
    """
    results = [evaluate(s, local_precision_ns) for s in servers]
    if all(r.result == "unreachable" for r in results):
        return Selection(tuple(results), 0, None, None, None, "IO", _silence(servers))
    candidates = [i for i, r in enumerate(results) if r.result == "truechimer"]
    intervals = [results[i].interval for i in candidates]
    found = intersect([iv for iv in intervals if iv is not None]) if candidates else None
    if found is None:
        for i in candidates:
            results[i] = _as(results[i], "no-majority")
        return _verdict(results, None, None, None, min_agree, max_drift_ns)
    low, high, _f = found
    # 5
    for i in candidates:
        lo, hi = results[i].interval or (0, 0)
        if lo > high or hi < low:
            results[i] = _as(results[i], "falseticker")
    # 6
    chimers = [r for r in results if r.result == "truechimer"]
    weight = sum(Fraction(1, r.distance_ns or 1) for r in chimers)
    total = sum(Fraction(r.offset_ns or 0, r.distance_ns or 1) for r in chimers)
    offset = (total / weight).__floor__()
    return _verdict(results, offset, low, high, min_agree, max_drift_ns)


def _verdict(
    results: list[ServerResult],
    offset: int | None,
    low: int | None,
    high: int | None,
    min_agree: int,
    max_drift_ns: int,
) -> Selection:
    agreeing = sum(r.result == "truechimer" for r in results)
    if agreeing < min_agree:
        verdict = "POLICY"
        reason = f"{agreeing} of {len(results)} servers agree; at least {min_agree} required"
    elif low is not None and high is not None and max(abs(low), abs(high)) > max_drift_ns:
        verdict = "POLICY"
        reason = f"{span(low, high)}, beyond the limit of ±{_secs(max_drift_ns, sign=False)}"
    else:
        verdict = "OK"
        reason = f"{agreeing} of {len(results)} servers agree"
    return Selection(tuple(results), agreeing, offset, low, high, verdict, reason)


def _secs(ns: int, sign: bool = True) -> str:
    return f"{ns / NS:+.6f} s" if sign else f"{ns / NS:.6f} s"


def _silence(servers: Sequence[ServerSamples]) -> str:
    """The IO reason with what became of the requests: one reason per server, its most
    frequent (the first of equals)."""
    counts: dict[str, int] = {}
    for server in servers:
        failures = [s.failure or "timeout" for s in server.samples]
        worst = max(dict.fromkeys(failures), key=failures.count)
        counts[worst] = counts.get(worst, 0) + 1
    words = {
        "timeout": "timed out",
        "refused": "refused",
        "bad-reply": "sent no usable reply",
        "unresolved": "did not resolve",
    }
    parts = [f"{n} {words.get(kind, kind)}" for kind, n in sorted(counts.items())]
    return f"no server answered ({', '.join(parts)})"


def lag(offset_ns: int, than: str = "true time", was: bool = False) -> str:
    """An offset (true time minus the local clock) in words: behind, ahead of or in step."""
    verb = "was" if was else "is"
    if offset_ns > 0:
        return f"the local clock {verb} {_secs(offset_ns, sign=False)} behind {than}"
    if offset_ns < 0:
        return f"the local clock {verb} {_secs(-offset_ns, sign=False)} ahead of {than}"
    return f"the local clock {verb} in step with {than}"


def span(low_ns: int, high_ns: int, was: bool = False) -> str:
    """An interval of true time minus the local clock in words."""
    verb = "was" if was else "is"
    if low_ns > 0:
        how = f"{_secs(low_ns, False)} to {_secs(high_ns, False)} behind"
    elif high_ns < 0:
        how = f"{_secs(-high_ns, False)} to {_secs(-low_ns, False)} ahead of"
    else:
        how = f"between {_secs(high_ns, False)} behind and {_secs(-low_ns, False)} ahead of"
    return f"the local clock {verb} {how} true time"
