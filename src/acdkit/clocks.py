"""The running clocks of an incident: every stage of every regime in scope, at one moment.

A stage's clock starts at its awareness event (or when the stage it follows was met); it is
*met* or *late* once the decisions show it done, *overdue* when its deadline has passed
without that, *running* before, *waiting* while nothing has started it, and
*not-applicable* once a decision says so.  Everything is evaluated "as of" one moment, from
the decisions that had taken effect by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from acdkit.decision import Decision
from acdkit.incident import Incident, from_ns
from acdkit.reasons import ReasonCodes
from acdkit.regimes import Due, Regime, RegimeBook, Stage

__all__ = ["Clock", "evaluate", "ticket_recipients"]

OVERDUE, RUNNING, WAITING = "overdue", "running", "waiting"
MET, LATE, NOT_APPLICABLE, DONE = "met", "late", "not-applicable", "done"
SUBMITTING = ("submit", "notify")
DELIVERING = ("ticket-delivered", "notify")


@dataclass
class Clock:
    incident: str
    regime: Regime
    stage: Stage
    state: str
    start: datetime | None = None
    starts_at: str | None = None  # the event or stage it runs from
    deadline: datetime | None = None
    done_at: datetime | None = None
    missing: list[str] = field(default_factory=list)
    whole_days: bool = False  # the deadline is the end of a local day (24:00)

    @property
    def key(self) -> str:
        return f"{self.regime.id}/{self.stage.id}"

    @property
    def zone(self) -> ZoneInfo:
        return self.regime.zone

    @property
    def last_day(self) -> date | None:
        """The last local day a whole-day deadline counts (its 24:00 is the deadline)."""
        if self.deadline is None or not self.whole_days:
            return None
        return (self.deadline.astimezone(self.zone) - timedelta(microseconds=1)).date()

    def deadline_text(self) -> str:
        """The deadline in the regime's zone, for people: a whole-day deadline is shown as
        24:00 of its last day (2026-11-04 24:00 JST), the instant it is."""
        if self.deadline is None:
            return "-"
        local = self.deadline.astimezone(self.zone)
        last = self.last_day
        if last is not None and local.time() == time(0):
            return f"{last:%Y-%m-%d} 24:00 {local.tzname()}"
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    def left(self, now: datetime) -> timedelta | None:
        return None if self.deadline is None else self.deadline - now

    def to_json(self, now: datetime) -> dict[str, Any]:
        left = self.left(now)
        return {
            "incident": self.incident,
            "regime": self.regime.id,
            "stage": self.stage.id,
            "name": self.stage.name,
            "basis": self.stage.basis,
            "statutory": self.stage.statutory,
            "verified": self.regime.verified,
            "state": self.state,
            "starts_from": self.starts_at,
            "start": _iso(self.start),
            "deadline": _iso(self.deadline),
            "deadline_local": self.deadline.astimezone(self.zone).isoformat()
            if self.deadline
            else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "seconds_left": int(left.total_seconds())
            if left is not None and self.state in (RUNNING, OVERDUE)
            else None,
            "done_at": _iso(self.done_at),
            "missing": self.missing,
            "law_text": self.stage.due.text,
            "content": list(self.stage.content),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def ticket_recipients(incident: Incident, book: RegimeBook, codes: ReasonCodes) -> list[str]:
    """Who the T+30 tickets go to: the recipients (statutory and voluntary) of every regime in
    scope, other than internal ones, one of whose clocks has started."""
    events = incident.events(codes)
    out: list[str] = []
    for rid in incident.scope():
        regime = book.regimes.get(rid)
        if regime is None or regime.basis == "internal_policy":
            continue
        started = any(s in events for stage in regime.stages for s in stage.due_for(set()).starts())
        if started:
            out += [r for r in (*regime.recipients, *regime.voluntary_recipients) if r not in out]
    return out


def evaluate(
    incident: Incident, book: RegimeBook, codes: ReasonCodes, now: datetime
) -> list[Clock]:
    """Every stage of every regime in the incident's scope, as of ``now``."""
    state = incident.until(now)
    events, flags = state.events(codes), state.flags(codes)
    clocks: list[Clock] = []
    for rid in state.scope():
        regime = book.regimes.get(rid)
        if regime is None:
            continue  # sealed under an older regimes.yaml: nothing to evaluate it by
        memo: dict[str, Clock] = {}
        for stage in regime.stages:
            clocks.append(_stage(state, book, codes, regime, stage, events, flags, now, memo))
    return clocks


def _stage(
    inc: Incident,
    book: RegimeBook,
    codes: ReasonCodes,
    regime: Regime,
    stage: Stage,
    events: dict[str, datetime],
    flags: set[str],
    now: datetime,
    memo: dict[str, Clock],
) -> Clock:
    if stage.id in memo:
        return memo[stage.id]
    clock = Clock(inc.id, regime, stage, WAITING)
    memo[stage.id] = clock  # a cycle of stage references resolves to "waiting"
    due = stage.due_for(flags)
    clock.done_at, clock.missing = _done(inc, book, codes, regime, stage)
    na = _not_applicable(inc, clock.key)
    start, deadline, waits, whole = _deadline(
        inc, book, codes, regime, due, events, flags, now, memo
    )
    clock.start, clock.deadline, clock.starts_at = start, deadline, waits
    clock.whole_days = whole
    if "tickets" in stage.done_by and not _external_scope(inc, book):
        na = True  # only internal regimes in scope: nobody outside to send a ticket to
    if clock.done_at is not None:
        clock.state = DONE if deadline is None else MET if clock.done_at <= deadline else LATE
        clock.missing = []
    elif na or waits == NOT_APPLICABLE:
        clock.state, clock.missing = NOT_APPLICABLE, []
    elif deadline is None:
        clock.state = WAITING
    else:
        clock.state = OVERDUE if now > deadline else RUNNING
    return clock


def _deadline(
    inc: Incident,
    book: RegimeBook,
    codes: ReasonCodes,
    regime: Regime,
    due: Due,
    events: dict[str, datetime],
    flags: set[str],
    now: datetime,
    memo: dict[str, Clock],
) -> tuple[datetime | None, datetime | None, str, bool]:
    """(start, deadline, what it runs from, whether it ends a whole day); a composite
    deadline is its earliest option."""
    options = due.earliest_of or (due,)
    found: list[tuple[datetime, datetime, str, bool]] = []
    waits: list[str] = []
    for option in options:
        assert option.after is not None
        ref = option.stage_ref
        if ref is not None:
            before = regime.stage(ref)
            assert before is not None
            prior = _stage(inc, book, codes, regime, before, events, flags, now, memo)
            if prior.state == NOT_APPLICABLE:
                return None, None, NOT_APPLICABLE, False
            start = prior.done_at
            label = f"{regime.id}/{ref} done"
        else:
            start = events.get(option.after)
            label = option.after
        if start is None:
            waits.append(label)
            continue
        deadline = book.deadline(option, regime.zone, start, flags)
        found.append((start, deadline, label, option.whole_days))
    if not found:
        return None, None, " or ".join(waits), False
    return min(found, key=lambda f: f[1])


def _external_scope(inc: Incident, book: RegimeBook) -> bool:
    return any(
        rid in book.regimes and book.regimes[rid].basis != "internal_policy" for rid in inc.scope()
    )


def _first_act(inc: Incident, action: str) -> Decision | None:
    """The first decision of ``action``; a severity call is any decision that sets one."""
    if action == "severity":
        return next((d for d in inc.decisions if d.severity is not None), None)
    return inc.first(action)


def _not_applicable(inc: Incident, key: str) -> bool:
    return any(key in d.stages for d in inc.all("not-applicable"))


def _done(
    inc: Incident, book: RegimeBook, codes: ReasonCodes, regime: Regime, stage: Stage
) -> tuple[datetime | None, list[str]]:
    """When the stage was done (None if not yet) and, if not, what is still missing."""
    key = f"{regime.id}/{stage.id}"
    if "actions" in stage.done_by:
        wanted: list[str] = list(stage.done_by["actions"])
        firsts = {a: _first_act(inc, a) for a in wanted}
        missing = [a for a, d in firsts.items() if d is None]
        if missing:
            return None, [f"{a} decision" for a in missing]
        return max(_at(d) for d in firsts.values() if d is not None), []
    if "tickets" in stage.done_by:
        recipients = ticket_recipients(inc, book, codes)
        if not recipients:
            return None, ["no recipient yet: no statutory clock has started"]
        delivered = {
            r: next((d for d in inc.all(*DELIVERING) if d.object == r), None) for r in recipients
        }
        missing = [r for r, d in delivered.items() if d is None]
        if missing:
            return None, [f"ticket to {r}" for r in missing]
        return max(_at(d) for d in delivered.values() if d is not None), []
    if "bundle" in stage.done_by:
        bundled = next(
            (
                d
                for d in inc.all("package", "submit")
                if any(r.startswith("bundle:") for r in d.refs)
            ),
            None,
        )
        return (_at(bundled), []) if bundled else (None, ["a verified bundle (package)"])
    submitted = next((d for d in inc.all(*SUBMITTING) if key in d.stages), None)
    if submitted is not None:
        return _at(submitted), []
    to = stage.recipients or regime.recipients
    return None, [f"submission to {', '.join(to)}" if to else "submission"]


def _at(decision: Decision) -> datetime:
    return from_ns(decision.at_ns)
