"""Reporting regimes as data (``regimes.yaml``) and the deadline arithmetic of their clocks.

Every time here is a timezone-aware instant.  Durations in minutes and hours are absolute
(a 72-hour clock is 72 hours whatever the wall clock does); days, months and business days
are counted on the wall calendar of the regime's time zone, so that "30 days" and "4
business days" end where a person in that zone would say they end, across DST changes.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from acdkit.errors import MalformedError

if TYPE_CHECKING:
    import holidays  # ~50 ms to import: loaded by the first calendar that needs it

__all__ = [
    "Calendar",
    "Due",
    "Regime",
    "RegimeBook",
    "Stage",
    "data_path",
    "load",
]

UNITS = ("minutes", "hours", "days", "months", "business_days")
BASES = ("statute", "regulation", "guideline", "proposed", "internal_policy")
STATUTORY = ("statute", "regulation")
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
STAGE_REF = "stage:"


def data_path(name: str) -> Path:
    """A data file shipped with acdkit: inside the installed package, else the source tree."""
    packaged = Path(__file__).parent / "_data" / name
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def _bilingual(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) - {"ja", "en"} or not value.get("en"):
        raise MalformedError(f"{what} needs an en (and ja) title")
    return {k: str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Calendar:
    """Working days: not a weekend day, not a public holiday, not a listed closed day."""

    name: str
    country: str
    weekend: frozenset[int]
    closed: tuple[tuple[int, int], ...] = ()  # (month, day) closed every year

    def is_business_day(self, day: date) -> bool:
        if day.weekday() in self.weekend or (day.month, day.day) in self.closed:
            return False
        return day not in _holidays(self.country, day.year)

    def next_business_day(self, day: date) -> date:
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, day: date, count: int) -> date:
        """The ``count``-th business day after ``day`` (``day`` itself not counted)."""
        while count > 0:
            day += timedelta(days=1)
            if self.is_business_day(day):
                count -= 1
        return day


@cache
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    import holidays

    return holidays.country_holidays(country, years=year)


@dataclass(frozen=True)
class Due:
    """When a stage is due, relative to the moment its clock starts (docs/incidents.md)."""

    after: str | None = None  # an awareness event, or "stage:<id>.submitted"
    unit: str | None = None
    count: int = 0
    first_day_excluded: bool = False
    end_at: time | None = None  # local time on the last day (default: its end)
    roll: bool = False  # a last day that is no business day moves to the next business day
    calendar: str | None = None
    text: str | None = None  # the law's own words when it gives no number ("promptly")
    target: str | None = None  # basis of the number when the law gives none
    earliest_of: tuple[Due, ...] = ()
    relief_flags: tuple[str, ...] = ()  # flags that grant next-working-day relief
    relief_at: time | None = None

    @property
    def stage_ref(self) -> str | None:
        if self.after and self.after.startswith(STAGE_REF):
            return self.after[len(STAGE_REF) :].removesuffix(".submitted")
        return None

    @property
    def whole_days(self) -> bool:
        """The deadline is the end (24:00 local) of a last day, not a moment of one."""
        if self.end_at is not None or self.unit not in ("days", "months", "business_days"):
            return False
        return self.unit == "business_days" or self.first_day_excluded or self.roll

    def starts(self) -> list[str]:
        """Every start this deadline can run from (events and stage references)."""
        if self.earliest_of:
            return [s for d in self.earliest_of for s in d.starts()]
        return [self.after] if self.after else []


@dataclass(frozen=True)
class Variant:
    flags_any: tuple[str, ...]
    due: Due


@dataclass(frozen=True)
class Stage:
    id: str
    name: dict[str, str]
    basis: str
    due: Due
    done_by: dict[str, Any]
    content: tuple[str, ...] = ()
    note: str | None = None
    variants: tuple[Variant, ...] = ()
    recipients: tuple[str, ...] = ()

    def due_for(self, flags: set[str]) -> Due:
        """The variant of the incident's flags, else the stage's own deadline."""
        for variant in self.variants:
            if flags & set(variant.flags_any):
                return variant.due
        return self.due

    @property
    def statutory(self) -> bool:
        return self.basis in STATUTORY


@dataclass(frozen=True)
class Regime:
    id: str
    name: dict[str, str]
    basis: str
    status: str
    zone: ZoneInfo
    calendar: str | None
    recipients: tuple[str, ...]
    voluntary_recipients: tuple[str, ...]
    source: tuple[str, ...]
    verified: bool
    stages: tuple[Stage, ...]
    note: str | None = None
    applies_when: str | None = None

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)


@dataclass(eq=False)
class RegimeBook:
    """Everything regimes.yaml defines, checked for internal consistency."""

    regimes: dict[str, Regime]
    events: dict[str, dict[str, str]]
    calendars: dict[str, Calendar]
    recipients: dict[str, dict[str, str]]
    default_scope: tuple[str, ...]
    digest: str = ""

    def regime(self, regime_id: str) -> Regime:
        try:
            return self.regimes[regime_id]
        except KeyError:
            raise MalformedError(f"no regime {regime_id!r} in regimes.yaml") from None

    def deadline(self, due: Due, zone: ZoneInfo, start: datetime, flags: set[str]) -> datetime:
        """The deadline of a single (not composite) ``due`` whose clock started at ``start``."""
        assert due.unit is not None
        if due.unit in ("minutes", "hours"):
            moment = start + timedelta(**{due.unit: due.count})
            return self._relieved(due, zone, moment, flags)
        local = start.astimezone(zone)
        cal = self.calendars[due.calendar] if due.calendar else None
        if due.unit == "business_days":
            if cal is None:
                raise MalformedError("business days need a calendar")
            last = cal.add_business_days(local.date(), due.count)
            return self._close(due, zone, last, None)
        if due.unit == "days":
            last_dt = local + timedelta(days=due.count)
        else:
            last_dt = _add_months(local, due.count)
        if not due.first_day_excluded and due.end_at is None and not due.roll:
            # same wall time N days or months later, then back to an instant
            naive = last_dt.replace(tzinfo=None)
            return self._relieved(due, zone, naive.replace(tzinfo=zone), flags)
        return self._close(due, zone, last_dt.date(), cal)

    def _close(self, due: Due, zone: ZoneInfo, last: date, cal: Calendar | None) -> datetime:
        """The end of the last day (or ``end_at`` on it), rolled past closed days."""
        if due.roll and cal is not None:
            last = cal.next_business_day(last)
        if due.end_at is not None:
            return datetime.combine(last, due.end_at, zone)
        return datetime.combine(last + timedelta(days=1), time(0), zone)

    def _relieved(self, due: Due, zone: ZoneInfo, moment: datetime, flags: set[str]) -> datetime:
        if not due.relief_flags or not flags & set(due.relief_flags) or due.relief_at is None:
            return moment
        cal = self.calendars.get(due.calendar or "")
        local = moment.astimezone(zone)
        if cal is None or cal.is_business_day(local.date()):
            return moment
        day = cal.next_business_day(local.date())
        return datetime.combine(day, due.relief_at, zone)


def _add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` later, on the last day of a shorter month."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, _calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


# -- loading ---------------------------------------------------------------------------------


def load(path: Path | None = None) -> RegimeBook:
    """Read and check regimes.yaml (the shipped one unless ``path`` is given)."""
    path = path or data_path("regimes.yaml")
    return _load_cached(str(path))


@cache
def _load_cached(path: str) -> RegimeBook:
    import hashlib

    raw = Path(path).read_bytes()
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise MalformedError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        raise MalformedError(f"{path}: schema_version 1 expected")
    book = RegimeBook(
        {},
        {k: _bilingual(v, f"event {k}") for k, v in (doc.get("events") or {}).items()},
        {k: _calendar_of(k, v) for k, v in (doc.get("calendars") or {}).items()},
        {k: _recipient(k, v) for k, v in (doc.get("recipients") or {}).items()},
        tuple(doc.get("default_scope") or ()),
        hashlib.sha256(raw).hexdigest(),
    )
    for entry in doc.get("regimes") or []:
        regime = _regime(entry, book)
        if regime.id in book.regimes:
            raise MalformedError(f"{path}: regime {regime.id} is defined twice")
        book.regimes[regime.id] = regime
    unknown = [r for r in book.default_scope if r not in book.regimes]
    if unknown:
        raise MalformedError(f"{path}: default_scope names unknown regime {unknown[0]}")
    return book


def _calendar_of(name: str, value: Any) -> Calendar:
    if not isinstance(value, dict) or not isinstance(value.get("country"), str):
        raise MalformedError(f"calendar {name} needs a country")
    try:
        weekend = frozenset(_WEEKDAYS[d] for d in value.get("weekend", ["sat", "sun"]))
        closed = tuple(
            (int(m), int(d)) for m, d in (str(c).split("-") for c in value.get("closed", []))
        )
        _holidays(value["country"], 2026)
    except (KeyError, ValueError, NotImplementedError) as exc:
        raise MalformedError(f"calendar {name} is not valid: {exc}") from None
    return Calendar(name, value["country"], weekend, closed)


def _recipient(name: str, value: Any) -> dict[str, str]:
    titles = _bilingual({k: v for k, v in value.items() if k in ("ja", "en")}, name)
    kind = value.get("kind")
    if kind not in ("internal", "statutory", "voluntary", "contractual"):
        raise MalformedError(f"recipient {name}: kind must be internal, statutory, ...")
    return {**titles, "kind": kind}


def _regime(entry: Any, book: RegimeBook) -> Regime:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise MalformedError("every regime needs an id")
    rid = entry["id"]
    where = f"regime {rid}"
    try:
        zone = ZoneInfo(entry.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise MalformedError(f"{where}: unknown time zone {entry.get('timezone')!r}") from None
    if not isinstance(entry.get("verified"), bool) or not entry.get("source"):
        raise MalformedError(f"{where} needs a source and verified: true or false")
    basis = entry.get("basis", "statute")
    calendar = entry.get("calendar")
    if calendar is not None and calendar not in book.calendars:
        raise MalformedError(f"{where}: unknown calendar {calendar}")
    recipients = tuple(entry.get("recipients") or ())
    voluntary = tuple(entry.get("voluntary_recipients") or ())
    missing = [r for r in (*recipients, *voluntary) if r not in book.recipients]
    if missing:
        raise MalformedError(f"{where}: unknown recipient {missing[0]}")
    stages = tuple(_stage(s, basis, calendar, where, book) for s in entry.get("stages") or [])
    ids = [s.id for s in stages]
    if not stages or len(set(ids)) != len(ids):
        raise MalformedError(f"{where} needs stages with distinct ids")
    for stage in stages:
        for start in stage.due.starts() + [s for v in stage.variants for s in v.due.starts()]:
            ref = start[len(STAGE_REF) :].removesuffix(".submitted")
            if start.startswith(STAGE_REF) and ref not in ids:
                raise MalformedError(f"{where}: stage {stage.id} follows unknown stage {ref}")
    return Regime(
        rid,
        _bilingual(entry.get("name"), where),
        basis,
        str(entry.get("status", "in_force")),
        zone,
        calendar,
        recipients,
        voluntary,
        tuple(str(s) for s in entry["source"]),
        entry["verified"],
        stages,
        entry.get("note"),
        entry.get("applies_when"),
    )


def _stage(value: Any, basis: str, calendar: str | None, where: str, book: RegimeBook) -> Stage:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise MalformedError(f"{where}: every stage needs an id")
    where = f"{where} stage {value['id']}"
    stage_basis = value.get("basis", basis)
    if stage_basis not in BASES:
        raise MalformedError(f"{where}: basis must be one of {', '.join(BASES)}")
    done_by = value.get("done_by") or {"submission": True}
    if not isinstance(done_by, dict) or len(done_by) != 1:
        raise MalformedError(f"{where}: done_by names one way (actions, tickets, bundle)")
    variants = tuple(
        Variant(tuple(v["when_flags_any"]), _due(v["due"], calendar, where, book))
        for v in value.get("variants") or []
    )
    return Stage(
        value["id"],
        _bilingual(value.get("name"), where),
        stage_basis,
        _due(value.get("due"), calendar, where, book),
        done_by,
        tuple(value.get("content") or ()),
        value.get("note"),
        variants,
        tuple(value.get("recipients") or ()),
    )


def _due(value: Any, calendar: str | None, where: str, book: RegimeBook) -> Due:
    if not isinstance(value, dict):
        raise MalformedError(f"{where}: due must be a mapping")
    relief = value.get("relief") or {}
    relief_flags = tuple(relief.get("when_flags_any") or ())
    relief_at = _clock(relief.get("at"), where) if relief else None
    if "min" in value:
        options = tuple(_due(v, calendar, where, book) for v in value["min"])
        if len(options) < 2 or any(o.earliest_of for o in options):
            raise MalformedError(f"{where}: min takes two or more simple deadlines")
        options = tuple(
            Due(**{**o.__dict__, "relief_flags": relief_flags, "relief_at": relief_at})
            for o in options
        )
        return Due(earliest_of=options, relief_flags=relief_flags, relief_at=relief_at)
    units = [u for u in UNITS if u in value]
    after = value.get("after")
    if len(units) != 1 or not isinstance(after, str):
        raise MalformedError(f"{where}: due needs `after` and one of {', '.join(UNITS)}")
    if not after.startswith(STAGE_REF) and after not in book.events:
        raise MalformedError(f"{where}: unknown awareness event {after}")
    count = value[units[0]]
    if not isinstance(count, int) or count < 0:
        raise MalformedError(f"{where}: {units[0]} must be a whole number")
    cal = value.get("calendar", calendar)
    if cal is not None and cal not in book.calendars:
        raise MalformedError(f"{where}: unknown calendar {cal}")
    if units[0] == "business_days" and cal is None:
        raise MalformedError(f"{where}: business days need a calendar")
    return Due(
        after,
        units[0],
        count,
        bool(value.get("first_day_excluded", False)),
        _clock(value.get("end_at"), where),
        value.get("roll") == "next_business_day",
        cal,
        value.get("text"),
        value.get("target"),
        (),
        relief_flags,
        relief_at,
    )


def _clock(value: Any, where: str) -> time | None:
    if value is None:
        return None
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise MalformedError(f"{where}: {value!r} is not a time of day HH:MM") from None
