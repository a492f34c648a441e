"""Incidents as the DECISION entries of a store: recording decisions and reading them back.

An incident has no file of its own.  It is the set of decisions that name it, in log order:
sealed ones (in the segments, covered by a checkpoint) and queued ones (in ``pending/``,
sealed by the next seal).  Everything status and the KPIs show is derived from them, so
the record is as tamper-evident as the data it is about.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from acdkit import custodians, logentries
from acdkit._files import MIB, read_bounded
from acdkit.decision import Decision, check_input, parse_decision
from acdkit.encoding import EntryType
from acdkit.errors import MalformedError, TamperedError, UsageError
from acdkit.keys import Signer
from acdkit.reasons import ReasonCodes
from acdkit.regimes import RegimeBook
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = [
    "AUDIT_LINE",
    "Incident",
    "Logged",
    "from_ns",
    "incidents",
    "prepare",
    "read_logged",
    "record",
    "to_ns",
    "validate",
]

# audit-line steps (KPIs): a step is done by one of these actions, or by a not-applicable
# decision that names the step in its stages
AUDIT_LINE = {
    "detect": ("open",),
    "isolate": ("isolate", "contain"),
    "report": ("notify", "ticket-delivered"),
    "submit": ("submit",),
    "publish": ("publish",),
}


def to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC).replace(microsecond=(ns // 1000) % 1_000_000)


@dataclass(frozen=True)
class Logged:
    """A decision and where it stands: sealed at a leaf index, or queued."""

    decision: Decision
    index: int | None = None
    pending: str | None = None

    @property
    def sealed(self) -> bool:
        return self.index is not None

    @property
    def at(self) -> datetime:
        return from_ns(self.decision.at_ns)


def read_logged(store: Store) -> list[Logged]:
    """Every decision of the store in log order; the queued ones last, in queue order.

    Each signature is checked against the key the decision carries, and that key against
    the custodian keys the store trusts (its policy, else its list), as `acdkit verify`'s
    check 10 does without --custodian: a decision queued by someone whose key nobody
    registered must not mark a stage done or silence an overdue alert (TAMPERED).
    """
    trust = custodians.store_trust(store)
    out: list[Logged] = []
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if not store.checkpoint_path(info.end_index).exists():
            break  # an interrupted seal: its entries are not evidence yet
        first = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(seg, info.entry_count)):
            if data[5] == EntryType.DECISION:
                where = first + offset
                out.append(Logged(_parsed(store, data[38:], where, trust), where))
    for name, data in logentries.pending_entries(store):
        if data[5] == EntryType.DECISION:
            out.append(Logged(_parsed(store, data[38:], -1, trust, name), pending=name))
    return out


def _parsed(
    store: Store,
    body: bytes,
    index: int,
    trust: custodians.CustodianTrust | None,
    pending: str | None = None,
) -> Decision:
    where = f"pending/{pending}" if pending is not None else f"index {index}"
    try:
        decision = parse_decision(body)
    except MalformedError as exc:
        raise MalformedError(f"DECISION at {where}: {exc.message}") from None
    if not decision.verifies(store.origin):
        raise TamperedError(f"DECISION at {where} does not verify with the key it names")
    if trust is not None:
        try:
            custodians.check_trusted(index, decision, trust)
        except TamperedError as exc:
            raise TamperedError(
                exc.message.replace("(queued)", f"at {where}"),
                hint="a decision by a key the store does not trust counts for nothing; "
                "examine the entry (and `acdkit verify` the store)",
            ) from None
    return decision


@dataclass
class Incident:
    """One incident's decisions (those at or before ``as_of``) and what follows from them."""

    id: str
    logged: list[Logged] = field(default_factory=list)

    @property
    def decisions(self) -> list[Decision]:
        return [item.decision for item in self.logged]

    def first(self, *actions: str) -> Decision | None:
        return next((d for d in self.decisions if d.action in actions), None)

    def all(self, *actions: str) -> list[Decision]:
        return [d for d in self.decisions if d.action in actions]

    @property
    def opened(self) -> Decision | None:
        return self.first("open")

    @property
    def closed(self) -> Decision | None:
        return self.first("close")

    def scope(self) -> list[str]:
        out: list[str] = []
        for d in self.decisions:
            out += [r for r in d.regimes if r not in out]
        return out

    def reasons(self) -> list[str]:
        out: list[str] = []
        for d in self.decisions:
            out += [r for r in d.reasons if r not in out]
        return out

    def flags(self, codes: ReasonCodes) -> set[str]:
        return {f for d in self.decisions for f in d.flags} | codes.flags_of(self.reasons())

    def severity(self) -> str | None:
        given = [d.severity for d in self.decisions if d.severity is not None]
        return given[-1] if given else None

    def events(self, codes: ReasonCodes) -> dict[str, datetime]:
        """Each awareness event at the earliest decision that sets it (directly, or through
        a reason code); ``detection`` at the open decision."""
        out: dict[str, datetime] = {}
        for d in self.decisions:
            named = list(d.events) + codes.events_of(d.reasons)
            if d.action == "open":
                named.append("detection")
            if d.action == "recognize":
                named.append("recognition")
            for event in named:
                at = from_ns(d.at_ns)
                if event not in out or at < out[event]:
                    out[event] = at
        return out

    def until(self, moment: datetime) -> Incident:
        """The incident as it stood at ``moment``: decisions taking effect after it left out."""
        cut = to_ns(moment)
        return replace(self, logged=[x for x in self.logged if x.decision.at_ns <= cut])


def incidents(logged: Iterable[Logged]) -> dict[str, Incident]:
    """Decisions grouped by incident, each group in log order; sorted by incident ID."""
    out: dict[str, Incident] = {}
    for item in logged:
        out.setdefault(item.decision.incident, Incident(item.decision.incident)).logged.append(item)
    return dict(sorted(out.items()))


# -- recording ---------------------------------------------------------------------------------


def validate(decision: Decision, book: RegimeBook, codes: ReasonCodes) -> None:
    """Refuse words that no data file defines: a typo must not stop a clock silently."""
    for code in decision.reasons:
        codes.get(code)
    for event in decision.events:
        if event not in book.events:
            raise UsageError(f"unknown awareness event {event!r}", hint=", ".join(book.events))
    for regime in decision.regimes:
        if regime not in book.regimes:
            raise UsageError(f"unknown regime {regime!r}", hint=f"one of {', '.join(book.regimes)}")
    for ref in decision.stages:
        rid, _, sid = ref.partition("/")
        if not sid and decision.action == "not-applicable" and rid in AUDIT_LINE:
            continue
        if rid not in book.regimes or book.regimes[rid].stage(sid) is None:
            raise UsageError(
                f"unknown stage {ref!r}: write REGIME/STAGE as `acdkit incident status` shows"
                + (" (or an audit-line step)" if decision.action == "not-applicable" else "")
            )


# a decision records what has happened: an act dated after the custodian's clock by more
# than this is a typo (a year, a zone) that would hold a clock open or close it in advance
FUTURE_TOLERANCE_NS = 300 * 1_000_000_000


def prepare(
    store: Store,
    signer: Signer,
    decisions: list[Decision],
    book: RegimeBook,
    codes: ReasonCodes,
    known: dict[str, Incident] | None = None,
) -> list[bytes]:
    """Check and sign ``decisions`` in order, as if each earlier one were logged already;
    the signed entry bodies.  Nothing is written: a refusal leaves the store as it was."""
    known = dict(known if known is not None else incidents(read_logged(store)))
    bodies = []
    for decision in decisions:
        validate(decision, book, codes)  # unknown words first: their hint lists the known
        check_input(decision)
        existing = known.get(decision.incident)
        _check_order(decision, existing)
        signed = replace(decision, recorded_ns=time.time_ns())
        _check_future(signed)
        parsed, body = signed.sign(signer, store.origin)
        try:
            custodians.check_queued_decision(store, body)  # what the next seal would refuse
        except TamperedError as exc:
            raise UsageError(exc.message, hint=_trust_hint(exc.message)) from None
        inc = existing or Incident(decision.incident)
        known[decision.incident] = replace(inc, logged=[*inc.logged, Logged(parsed, pending="")])
        bodies.append(body)
    return bodies


def _check_order(decision: Decision, existing: Incident | None) -> None:
    """Open once, before anything else; nothing before the detection; close once."""
    if decision.action == "open" and existing is not None and existing.opened is not None:
        raise UsageError(f"incident {decision.incident} is open already")
    if decision.action != "open" and (existing is None or existing.opened is None):
        raise UsageError(
            f"incident {decision.incident} was never opened",
            hint="`acdkit incident open STORE --incident ID` first",
        )
    opened = existing.opened if existing is not None else None
    if decision.action != "open" and opened is not None and decision.at_ns < opened.at_ns:
        # a decision before the detection would make MTTD, MTTC and MTTR negative
        raise UsageError(
            f"--at is before incident {decision.incident} was detected "
            f"({from_ns(opened.at_ns).isoformat()})"
        )
    if decision.action == "close" and existing is not None and existing.closed is not None:
        raise UsageError(f"incident {decision.incident} is closed already")


def _check_future(decision: Decision) -> None:
    limit = decision.recorded_ns + FUTURE_TOLERANCE_NS
    for what, at_ns in (("--at", decision.at_ns), ("--first-observed", decision.observed_ns)):
        if at_ns is not None and at_ns > limit:
            raise UsageError(
                f"{what} {from_ns(at_ns).isoformat()} is later than now "
                f"({from_ns(decision.recorded_ns).isoformat(timespec='seconds')}, this "
                "machine's clock): a decision records what has happened",
                hint="check the year and the zone; replay a drill with times in the past",
            )


def _trust_hint(message: str) -> str:
    if "outside its window" in message:
        return (
            "the trust policy no longer lets this key sign (revoked or expired): use a key "
            "that the newest policy names, or ask for a policy with a window for this one"
        )
    return (
        "register the key: `acdkit keys add-custodian STORE VKEY` (and in the trust policy, "
        "when it names custodians)"
    )


def record(
    store: Store,
    signer: Signer,
    decisions: list[Decision],
    book: RegimeBook,
    codes: ReasonCodes,
    known: dict[str, Incident] | None = None,
) -> list[Path]:
    """Sign ``decisions`` with the custodian key and queue them for the next seal: all of
    them, or (when one is refused) none."""
    # the check of the incident's state and the queueing are one step for other processes
    with store.decisions_lock():
        bodies = prepare(store, signer, decisions, book, codes, known)
        written: list[Path] = []
        try:
            for body in bodies:
                written.append(logentries.add_pending(store, EntryType.DECISION, body))
        except BaseException:
            for path in written:  # a half-logged open would be an incident without recognition
                path.unlink(missing_ok=True)
            raise
    return written
