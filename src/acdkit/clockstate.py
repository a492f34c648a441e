"""The collector's clock around a time range, from the evidence the log holds.

Two kinds of evidence: CLOCK entries (an NTP measurement: the consensus of the servers
that agreed, and its error interval) and ANCHOR entries (an RFC 3161 token: the TSA's
signed genTime between the local send and receive times, an authenticated bound).  For a
range [from, to) the state is what was measured last before it, during it, and first after
it, in the collector's own time (a measurement says how far that time was off).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from acdkit import logentries
from acdkit._files import MIB, read_bounded
from acdkit.anchor import AnchorRecord, clock_offset, iso
from acdkit.clockentry import ClockRecord, clock_records
from acdkit.clocksel import lag
from acdkit.encoding import EntryType
from acdkit.errors import MalformedError
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = [
    "AnchoredBound",
    "ClockPoint",
    "anchored_bounds",
    "clock_points",
    "sealed_log_entries",
    "window_state",
]

NS = 1_000_000_000
# cron measures every few minutes: a neighbour more than a day from the window says little
# about the clock inside it
STALE_NS = 24 * 3600 * NS


@dataclass(frozen=True)
class ClockPoint:
    """One NTP measurement as the state reports it."""

    index: int | None  # leaf index of its CLOCK entry; None while it waits in pending/
    at_ns: int  # local clock when the run began
    verdict: str
    agreeing: int
    servers: int
    offset_ns: int | None
    low_ns: int | None
    high_ns: int | None
    max_drift_ns: int
    leap: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.index,
            "measured_at": iso(self.at_ns),
            "measured_at_ns": self.at_ns,
            "verdict": self.verdict,
            "agreeing": self.agreeing,
            "servers": self.servers,
            "offset_ns": self.offset_ns,
            "interval_ns": None if self.low_ns is None else [self.low_ns, self.high_ns],
            "max_drift_ns": self.max_drift_ns,
            "leap_announced_by": list(self.leap),
        }

    def sentence(self) -> str:
        when = iso(self.at_ns)
        if self.verdict == "IO":
            return f"at {when} no NTP server answered"
        if self.low_ns is None or self.high_ns is None or self.offset_ns is None:
            return f"at {when} no majority of the {self.servers} NTP servers agreed"
        # offsets are true time minus the local clock: "+300 s" is a clock 300 s behind
        text = (
            f"at {when} "
            + lag(self.offset_ns, f"the consensus of {self.agreeing} of {self.servers}", True)
            + f" NTP servers (true time minus the local clock within {_s(self.low_ns)} to "
            f"{_s(self.high_ns)})"
        )
        if self.verdict == "POLICY":
            text += f": {_policy_reason(self)}"
        return text


def _policy_reason(p: ClockPoint) -> str:
    bound = max(abs(p.low_ns or 0), abs(p.high_ns or 0))
    if bound > p.max_drift_ns:
        return f"beyond the limit of ±{p.max_drift_ns / NS:g} s"
    return "too few servers agreed"


@dataclass(frozen=True)
class AnchoredBound:
    """The TSA clocks minus the local clock, as the tokens of one checkpoint bound it."""

    checkpoint_size: int
    at_ns: int  # local clock when the first of its requests was sent
    per_tsa: tuple[tuple[str, int, int], ...]  # (TSA, low, high)
    low_ns: int | None  # the bounds intersected; None when the TSAs disagree
    high_ns: int | None
    verified: bool | None = None  # checked against pinned roots here; None: not known

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint_size": self.checkpoint_size,
            "measured_at": iso(self.at_ns),
            "measured_at_ns": self.at_ns,
            "bound_ns": None if self.low_ns is None else [self.low_ns, self.high_ns],
            "tsas": [{"tsa": t, "bound_ns": [lo, hi]} for t, lo, hi in self.per_tsa],
            "verified": self.verified,
        }

    def sentence(self) -> str:
        names = ", ".join(t for t, _lo, _hi in self.per_tsa)
        if self.low_ns is None or self.high_ns is None:
            return f"at {iso(self.at_ns)} the bounds of {names} do not overlap (the TSAs disagree)"
        check = {True: "tokens verified", False: "tokens not verified", None: ""}[self.verified]
        return (
            f"at {iso(self.at_ns)} RFC 3161 time ({names}) minus the local clock lay within "
            f"{_s(self.low_ns)} to {_s(self.high_ns)}" + (f" ({check})" if check else "")
        )


def _s(ns: int) -> str:
    return f"{ns / NS:+.6f} s"


# -- reading the evidence --------------------------------------------------------------------


def sealed_log_entries(store: Store, size: int | None = None) -> list[tuple[int, bytes]]:
    """(leaf index, bytes) of the log entries of every sealed segment (up to ``size``)."""
    out: list[tuple[int, bytes]] = []
    for path in store.segment_dirs():
        seal = path / "seal.entry"
        if not seal.is_file():
            continue
        info = SealInfo.from_entry(read_bounded(seal, MIB, "SEAL entry"))
        if size is not None and info.end_index > size:
            continue
        first = info.first_index + info.record_count
        for i, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            out.append((first + i, data))
    return sorted(out)


def pending_log_entries(store: Store) -> list[tuple[None, bytes]]:
    return [(None, data) for _name, data in logentries.pending_entries(store)]


def clock_points(entries: Sequence[tuple[int | None, bytes]]) -> list[ClockPoint]:
    """Every CLOCK entry among (index, entry bytes), oldest measurement first."""
    out = []
    for index, rec in _records(entries):
        sel = rec.selection
        leap = tuple(
            s.name for s, r in zip(rec.servers, sel.servers, strict=True) if r.leap in (1, 2)
        )
        out.append(
            ClockPoint(
                index,
                rec.began_ns,
                sel.verdict,
                sel.agreeing,
                len(rec.servers),
                sel.offset_ns,
                sel.low_ns,
                sel.high_ns,
                rec.max_drift_ns,
                leap,
            )
        )
    return sorted(out, key=lambda p: (p.at_ns, p.index if p.index is not None else -1))


def _records(entries: Sequence[tuple[int | None, bytes]]) -> list[tuple[int | None, ClockRecord]]:
    sealed = [(i, d) for i, d in entries if i is not None]
    out: list[tuple[int | None, ClockRecord]] = list(clock_records(sealed))
    for _none, data in (e for e in entries if e[0] is None):
        parsed = logentries.parse_entry(data)
        if parsed.kind == EntryType.CLOCK:
            out.append((None, ClockRecord.from_body(parsed.body)))
    return out


def anchor_records(entries: Iterable[tuple[int | None, bytes]]) -> list[AnchorRecord]:
    out = []
    for index, data in entries:
        parsed = logentries.parse_entry(data)
        if parsed.kind != EntryType.ANCHOR:
            continue
        try:
            out.append(AnchorRecord.from_body(parsed.body))
        except MalformedError as exc:
            where = f"ANCHOR leaf {index}" if index is not None else "a queued ANCHOR entry"
            raise MalformedError(f"{where}: {exc.message}") from None
    return out


def anchored_bounds(
    records: Iterable[AnchorRecord], verified: set[tuple[str, int]] | None = None
) -> list[AnchoredBound]:
    """One bound per anchored checkpoint: each TSA's round trip, and their intersection.

    ``verified`` names the (TSA, size) pairs whose tokens a verifier checked; without it
    whether they verify is not known here (they were checked when they were received).
    """
    by_size: dict[int, list[AnchorRecord]] = {}
    for rec in records:
        by_size.setdefault(rec.size, []).append(rec)
    out = []
    for size, recs in sorted(by_size.items()):
        per_tsa = []
        for rec in sorted(recs, key=lambda r: (r.tsa, r.sent_ns)):
            lo, hi = clock_offset(rec.gen_time_ns, rec.accuracy_ns, rec.sent_ns, rec.received_ns)
            per_tsa.append((rec.tsa, lo, hi))
        low, high = max(p[1] for p in per_tsa), min(p[2] for p in per_tsa)
        ok = None if verified is None else all((r.tsa, size) in verified for r in recs)
        out.append(
            AnchoredBound(
                size,
                min(r.sent_ns for r in recs),
                tuple(per_tsa),
                low if low <= high else None,
                high if low <= high else None,
                ok,
            )
        )
    return sorted(out, key=lambda b: b.at_ns)


# -- the state around a range ----------------------------------------------------------------


@dataclass
class WindowState:
    start_ns: int
    end_ns: int
    ntp: dict[str, Any] = field(default_factory=dict)
    rfc3161: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": iso(self.start_ns),
            "to": iso(self.end_ns),
            "ntp": self.ntp,
            "rfc3161": self.rfc3161,
            "flags": self.flags,
        }


def _around(items: Sequence[Any], start_ns: int, end_ns: int) -> tuple[Any, list[Any], Any]:
    before = [p for p in items if p.at_ns < start_ns]
    during = [p for p in items if start_ns <= p.at_ns < end_ns]
    after = [p for p in items if p.at_ns >= end_ns]
    return (before[-1] if before else None), during, (after[0] if after else None)


def window_state(
    points: Sequence[ClockPoint], bounds: Sequence[AnchoredBound], start_ns: int, end_ns: int
) -> WindowState:
    """What the log shows of the clock in [start, end): the measurements just before,
    inside and just after it, a sentence for people, and flags for what is wrong."""
    state = WindowState(start_ns, end_ns)
    before, during, after = _around(points, start_ns, end_ns)
    chosen: list[ClockPoint] = [p for p in (before, *during, after) if p is not None]
    state.ntp = {
        "before": before.to_json() if before else None,
        "during": [p.to_json() for p in during],
        "after": after.to_json() if after else None,
        "state": _ntp_sentence(chosen, before, after),
    }
    for p in chosen:
        if p.verdict != "OK":
            state.flags.append(f"NTP {p.verdict}: {p.sentence()}")
        if p.leap:
            state.flags.append(
                f"a leap second was announced at {iso(p.at_ns)} by {', '.join(p.leap)}"
            )
    if not chosen:
        state.flags.append("no NTP measurement of the collector's clock is in the log")
    else:
        state.flags += _bracket_flags(before, after, start_ns, end_ns)
    b_before, b_during, b_after = _around(bounds, start_ns, end_ns)
    picked: list[AnchoredBound] = [b for b in (b_before, *b_during, b_after) if b is not None]
    state.rfc3161 = {
        "before": b_before.to_json() if b_before else None,
        "during": [b.to_json() for b in b_during],
        "after": b_after.to_json() if b_after else None,
        "state": "; ".join(b.sentence() for b in picked) or "no RFC 3161 anchor in the log",
    }
    for b in picked:
        if b.low_ns is None:
            state.flags.append(f"RFC 3161: {b.sentence()}")
    return state


def _bracket_flags(
    before: ClockPoint | None, after: ClockPoint | None, start_ns: int, end_ns: int
) -> list[str]:
    """What the window lacks on each side: a measurement, or one near enough (§15.6)."""
    out = []
    for side, point, gap in (
        ("before", before, start_ns - before.at_ns if before else 0),
        ("after", after, after.at_ns - end_ns if after else 0),
    ):
        edge = "start" if side == "before" else "end"
        if point is None:
            out.append(
                f"no NTP measurement {side} the window: the clock at its {edge} is not known"
            )
        elif gap > STALE_NS:
            out.append(
                f"the nearest NTP measurement {side} the window is {_duration(gap)} from its "
                f"{edge} (more than {STALE_NS // (3600 * NS)} h)"
            )
    return out


def _duration(ns: int) -> str:
    seconds = ns / NS
    if seconds >= 2 * 365 * 86_400:
        return f"{seconds / (365.25 * 86_400):,.1f} years"
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:,.1f} days"
    return f"{seconds / 3600:,.1f} h"


def _ntp_sentence(
    chosen: list[ClockPoint], before: ClockPoint | None, after: ClockPoint | None
) -> str:
    if not chosen:
        return "no NTP measurement in the log"
    text = "; ".join(p.sentence() for p in chosen)
    missing = [w for w, p in (("before", before), ("after", after)) if p is None]
    if missing:
        text += f"; no measurement {' or '.join(missing)} the window"
    return text


def store_clock_state(store: Store, start_ns: int, end_ns: int, size: int | None) -> WindowState:
    """The window's clock state from a store's sealed entries (up to ``size``)."""
    entries: list[tuple[int | None, bytes]] = list(sealed_log_entries(store, size))
    return window_state(
        clock_points(entries), anchored_bounds(anchor_records(entries)), start_ns, end_ns
    )
