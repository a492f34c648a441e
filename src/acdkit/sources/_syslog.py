"""Syslog headers, and the rules for log times written without a zone or without a year.

Text formats of DNS servers (and anything sent through syslog) write local wall-clock times.
A format's first query over a chunk describes each line's time in generic columns (see
`TIME_COLUMNS`): ``t_kind`` is ``epoch`` or ``zoned`` (``t_text`` says it all), ``local``
(a full date without a zone) or ``syslog`` (no year either).  `Clock` then gives every
``syslog`` time its year, in file order, and `ts_input` turns the columns into the epoch
text that `_sql.routed_query` expects, reading local times in the operator's ``--assume-tz``.

Year rule: ``--year`` (or, failing that, a guess from the file's modification time, which
is said in a warning) is the year of the file's first syslog time.  A time more than half a
year before the one above it starts the next year (December, then January); a time more than
eleven months after it is a late line of the year before (December 31 just after January 1);
anything in between keeps the year (a quiet spell, or lines a little out of order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acdkit.errors import UsageError
from acdkit.sources import Context, Parsed
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import READER_REJECT
from acdkit.sources._sql import sql_quote

__all__ = [
    "HEADER",
    "HEADER_FIELDS",
    "MONTHS_SQL",
    "TIME_COLUMNS",
    "ZONE_HINT",
    "Clock",
    "frac_ns",
    "header_head",
    "no_year",
    "no_zone",
    "register_lines",
    "syslog_time",
    "time_select",
    "ts_input",
]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS_SQL = "[" + ", ".join(f"'{m}'" for m in MONTHS) + "]"

# RFC 3164 (``<PRI>Mmm dd hh:mm:ss host tag[pid]: msg``; the host is optional, one relay
# writes two) or an RFC 3339 time as rsyslog's file format writes it.  The host is matched
# lazily and only if needed (``??``), so the first ``word[pid]:`` or ``word:`` is the tag.
HEADER = (
    r"^(?:<(?P<pri>[0-9]{1,3})>)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>[0-9]{1,2}) (?P<hh>[0-9]{2}):(?P<mi>[0-9]{2}):"
    r"(?P<ss>[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})))"
    r" +(?:(?P<host>.*?) +)??(?P<tag>[A-Za-z0-9_.-]+)(?:\[(?P<pid>[0-9]+)\])?: ?(?P<msg>.*)$"
)
HEADER_FIELDS = ("pri", "mon", "day", "hh", "mi", "ss", "frac", "iso", "host", "tag", "pid", "msg")
_HEADER_RE = re.compile(HEADER)

# the columns every format's first query gives each line, for `Clock` and `ts_input`
TIME_COLUMNS = ("t_kind", "t_text", "t_y", "t_mo", "t_d", "t_h", "t_mi", "t_s", "t_frac")

_LEAP_CUMULATIVE = np.array([0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335], np.int64)
_DAY = 86_400
_HALF_YEAR = 183 * _DAY
_ELEVEN_MONTHS = 334 * _DAY
_MAX_YEAR_NOTES = 5  # New Year steps said per file; more only repeat the same story


def header_head(line: str) -> dict[str, str] | None:
    """The syslog header fields of one line (for sniffers), or None."""
    m = _HEADER_RE.match(line)
    return None if m is None else {k: v or "" for k, v in m.groupdict().items()}


def register_lines(ctx: Context, chunk: LineChunk, parsed: Parsed, name: str) -> str:
    """Register the chunk's lines as table ``name``; return a relation over them.

    The relation has ``line``, ``raw`` (the line without its CR/LF, and the first line
    without a UTF-8 BOM) and ``problem``: the reader's own rejects (their reasons are added
    here), blank lines, else NULL.  Trimming is done in Arrow, several times faster than
    DuckDB's ``rtrim`` on long lines.
    """
    raw = pc.utf8_rtrim(chunk.lines, characters="\r\n").cast(pa.string())
    if chunk.first_line == 1 and len(raw) and (raw[0].as_py() or "").startswith("\ufeff"):
        first = pc.utf8_ltrim(raw.slice(0, 1), characters="\ufeff")
        raw = pa.concat_arrays([first, raw.slice(1)])
    ctx.con.register(name, pa.table({"line": chunk.line_numbers(), "raw": raw}))
    for line, reason in chunk.rejects:
        parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
    return f"""(SELECT line, raw, CASE
          WHEN raw IS NULL THEN '{READER_REJECT}'
          WHEN regexp_matches(raw, '^[\t\v\f ]*$') THEN 'blank line'
        END AS problem FROM {name})"""


def syslog_time(h: str) -> dict[str, str]:
    """TIME_COLUMNS (name -> expression) from a parsed HEADER struct ``h``."""
    mo = f"list_position({MONTHS_SQL}, {h}.mon)"
    return {
        "t_kind": f"CASE WHEN {h}.iso <> '' THEN 'zoned' WHEN {mo} IS NOT NULL THEN 'syslog' END",
        "t_text": f"nullif({h}.iso, '')",
        "t_y": "CAST(NULL AS INTEGER)",
        "t_mo": f"{mo}::INTEGER",
        "t_d": f"TRY_CAST({h}.day AS INTEGER)",
        "t_h": f"TRY_CAST({h}.hh AS INTEGER)",
        "t_mi": f"TRY_CAST({h}.mi AS INTEGER)",
        "t_s": f"TRY_CAST({h}.ss AS INTEGER)",
        "t_frac": frac_ns(f"{h}.frac"),
    }


def time_select(columns: dict[str, str]) -> str:
    """``expr AS name`` for each of TIME_COLUMNS."""
    return ", ".join(f"{columns[name]} AS {name}" for name in TIME_COLUMNS)


def frac_ns(digits: str) -> str:
    """Decimal fraction digits (text, maybe empty) -> nanoseconds."""
    return f"TRY_CAST(rpad(nullif({digits}, ''), 9, '0') AS BIGINT)"


def ts_input(tz: str | None) -> str:
    """Epoch-seconds text (what `_sql.ts_ns` reads) of a line described by TIME_COLUMNS."""
    zone = sql_quote(tz or "UTC")
    local = (
        f"(epoch_us(timezone({zone}, TRY(make_timestamp(t_y, t_mo, t_d, t_h, t_mi, "
        f"t_s::DOUBLE)))) * 1000 + coalesce(t_frac, 0))"
    )
    text = (
        f"CASE WHEN {local} >= 0 THEN CAST({local} // 1000000000 AS VARCHAR) || '.' || "
        f"lpad(CAST({local} % 1000000000 AS VARCHAR), 9, '0') END"
    )
    return f"CASE WHEN t_kind IN ('epoch', 'zoned') THEN t_text ELSE {text} END"


def _seconds_into_year(parts: list[np.ndarray]) -> np.ndarray:
    """Seconds from January 1 of (month, day, hour, minute, second) arrays."""
    # on a leap-year calendar, so that Feb 29 has a place; a date that does not exist in
    # the year it is given is rejected later, by the timestamp it cannot make
    mo, d, h, mi, s = parts
    days = _LEAP_CUMULATIVE[np.clip(mo, 1, 12) - 1] + d - 1
    out: np.ndarray = days * _DAY + h * 3600 + mi * 60 + s
    return out


@dataclass
class Clock:
    """Years for syslog times and the zone for local times of one file, in file order."""

    ctx: Context
    year: int | None = None  # of the last syslog time seen
    last: int | None = None  # its seconds into the year
    notes: int = 0

    def apply(self, stage: pa.Table, parsed: Parsed) -> pa.Table:
        """Fill ``t_y`` of the syslog times in ``stage`` (ordered by line); check the zone."""
        kind = stage.column("t_kind")
        needs_zone = pc.fill_null(pc.is_in(kind, pa.array(["local", "syslog"])), False)
        if pc.any(needs_zone).as_py():
            self._zone_rule(parsed)
        # a syslog time whose parts did not all parse gets no year, so it stays invalid
        is_syslog = pc.fill_null(pc.equal(kind, "syslog"), False)
        for name in ("t_mo", "t_d", "t_h", "t_mi", "t_s"):
            is_syslog = pc.and_(is_syslog, pc.is_valid(stage.column(name)))
        rows = np.flatnonzero(is_syslog.to_numpy(zero_copy_only=False))
        if not len(rows):
            return stage
        parts = [
            pc.fill_null(stage.column(c), 0).to_numpy()[rows].astype(np.int64)
            for c in ("t_mo", "t_d", "t_h", "t_mi", "t_s")
        ]
        secs = _seconds_into_year(parts)
        years = self._years(secs, stage.column("line").to_numpy()[rows], parsed)
        given = stage.column("t_y").combine_chunks().cast(pa.int32())
        full = pc.fill_null(given, 0).to_numpy(zero_copy_only=False).copy()
        missing = pc.is_null(given).to_numpy(zero_copy_only=False).copy()
        full[rows], missing[rows] = years, False
        index = stage.schema.get_field_index("t_y")
        return stage.set_column(index, "t_y", pa.array(full, pa.int32(), mask=missing))

    def _years(self, secs: np.ndarray, lines: np.ndarray, parsed: Parsed) -> np.ndarray:
        if self.year is None:
            self.year = self._first_year(int(secs[0]), parsed)
            self.last = int(secs[0])
        previous = np.concatenate([[self.last], secs[:-1]])
        delta = secs - previous
        late = delta > _ELEVEN_MONTHS  # a line of the year before, a little out of order
        steps = (delta < -_HALF_YEAR).astype(np.int64) - late.astype(np.int64)
        years = self.year + np.cumsum(steps)
        for i in np.flatnonzero(steps)[: max(0, _MAX_YEAR_NOTES - self.notes)]:
            parsed.warnings.append(
                f"syslog times enter year {years[i]} at line {lines[i]} (New Year)"
                if steps[i] > 0
                else f"line {lines[i]} is read as a late line of year {years[i]}"
            )
            self.notes += 1
        self.year, self.last = int(years[-1]), int(secs[-1])
        return years

    def _first_year(self, secs: int, parsed: Parsed) -> int:
        if self.ctx.year is not None:
            parsed.warnings.append(
                f"syslog times carry no year: the first is read in {self.ctx.year} (--year), "
                "the next year starting where the date steps back more than half a year"
            )
            return self.ctx.year
        if self.ctx.mtime_ns is None:
            raise UsageError("this file's syslog times carry no year", hint="give --year YYYY")
        zone = ZoneInfo(self.ctx.assume_tz) if self.ctx.assume_tz else UTC
        mtime = datetime.fromtimestamp(self.ctx.mtime_ns / 1e9, zone)
        now = _seconds_into_year(
            [np.array([v]) for v in (mtime.month, mtime.day, mtime.hour, mtime.minute, 0)]
        )
        # the first line was written before the file was last modified (a day's slack for
        # a zone the operator did not give)
        year = mtime.year - 1 if secs > int(now[0]) + _DAY else mtime.year
        parsed.warnings.append(
            f"syslog times carry no year: {year} was guessed for the first one from the "
            f"file's modification time ({mtime.date().isoformat()}); give --year to be sure"
        )
        return year

    def _zone_rule(self, parsed: Parsed) -> None:
        if self.ctx.assume_tz is None:
            raise no_zone()
        parsed.warnings.append(f"times without a zone were read in {self.ctx.assume_tz}")


_ZONE = "ZONE (an IANA name such as Asia/Tokyo, or UTC)"
ZONE_HINT = f"give --assume-tz {_ZONE}"


def no_zone(first_line: int | None = None, year_too: bool = False) -> UsageError:
    """The refusal of a file that holds local times when no ``--assume-tz`` was given.

    One rule for every format: the file fails (exit 2) and nothing of it is staged, so it
    can be ingested again with the option.  Rejecting the lines instead would lose them
    for good: the file would be in the ledger, and ingesting it again adds nothing.
    """
    where = "" if first_line is None else f" (the first at line {first_line})"
    if year_too:
        return UsageError(
            f"this file's times carry no year and no time zone{where}",
            hint=f"give --year YYYY and --assume-tz {_ZONE}",
        )
    return UsageError(f"this file's times carry no time zone{where}", hint=ZONE_HINT)


def no_year(first_line: int) -> UsageError:
    """The refusal of a file whose times have no year when no ``--year`` was given."""
    return UsageError(
        f"this file's times carry no year (the first at line {first_line})",
        hint="give --year YYYY",
    )
