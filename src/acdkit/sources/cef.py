"""ArcSight CEF events, bare or after a syslog header (RFC 3164, RFC 5424 or RFC 3339 time).

Parsing happens in DuckDB, in bulk.  The header's seven ``|`` (``\\|`` and ``\\\\`` escaped)
are matched by one regular expression; in the extension, a key is a run of key characters
right before an ``=`` that follows a blank (an escaped ``\\=`` never qualifies: a backslash
is no key character), so one pattern both lists the keys and splits the values between
them, and only the values acdkit uses are unescaped (``\\=``, ``\\\\``, ``\\n``, ``\\r``).
Only machine information is read: addresses, ports, protocol, application protocol label,
HTTP method, host and path of ``request`` (query dropped), byte counts, times and the
device's name.
``msg``, user names, ``requestClientApplication`` and the ``cs*`` strings are never read.
An event whose ``app`` is ``DNS`` and that names ``destinationDnsDomain`` (Infoblox's
mapping of the query name) goes to the dns table.
"""

from __future__ import annotations

import contextlib
import re

import duckdb
import pyarrow as pa

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._flowlog import (
    bad_proto,
    dns_inputs,
    ip_proto,
    net_inputs,
    ns_text,
    rfc3339_ns,
    rfc3339_parts,
)
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import READER_REJECT, collect
from acdkit.sources._sql import routed_query, sql_quote
from acdkit.sources._syslog import no_year, no_zone

__all__ = ["FORMAT", "ZONE_ABBREVIATIONS"]

# the keys read, under their short names; full names (the CEF dictionary's second column)
# mean the same key, so a line that gives both names has a duplicate
_KEYS = {
    "src": ("sourceAddress",),
    "spt": ("sourcePort",),
    "dst": ("destinationAddress",),
    "dpt": ("destinationPort",),
    "proto": ("transportProtocol",),
    "app": ("applicationProtocol",),
    "requestMethod": (),
    "request": ("requestUrl",),
    "rt": ("receiptTime", "deviceReceiptTime"),
    "start": ("startTime",),
    "end": ("endTime",),
    "in": ("bytesIn",),
    "out": ("bytesOut",),
    "dvc": ("deviceAddress",),
    "dvchost": ("deviceHostName",),
    "deviceExternalId": (),
    "destinationDnsDomain": (),
    "InfobloxDNSQType": (),
}
# time zone abbreviations read as fixed offsets (minutes east of UTC): only those with one
# meaning in practice; CST, IST, BST, AST and the like have several and are rejected
ZONE_ABBREVIATIONS = {
    "UTC": 0, "UT": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "CET": 60, "CEST": 120,
    "EET": 120, "EEST": 180, "MSK": 180, "JST": 540, "KST": 540, "HKT": 480, "SGT": 480,
    "AWST": 480, "ACST": 570, "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780,
    "HST": -600, "AKST": -540, "AKDT": -480, "PST": -480, "PDT": -420, "MST": -420,
    "MDT": -360, "CDT": -300, "EST": -300, "EDT": -240,
}  # fmt: skip

# a header field (only the version and the extension are captured)
_FIELD = r"(?:[^|\\]|\\.)*"
_HEADER = rf"^CEF:([0-9]+)\|{_FIELD}\|{_FIELD}\|{_FIELD}\|{_FIELD}\|{_FIELD}\|{_FIELD}\|(.*)$"
_KEY_CHARS = r"[A-Za-z0-9_.\[\]-]"
# "MMM dd [yyyy] HH:mm:ss[.SSS] [zzz]", the CEF date formats other than epoch milliseconds
_CEF_TIME = (
    r"^([A-Z][a-z]{2}) +([0-9]{1,2})(?: ([0-9]{4}))? ([0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.([0-9]{1,3}))?(?: +(\S+))?$"
)
_SYSLOG_5424 = r"^(?:<[0-9]{1,3}>)?1 (\S+) (\S+) \S+ \S+ \S+ (?:-|\[.*\])\s*$"
_SYSLOG_ISO = r"^(?:<[0-9]{1,3}>)?([0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) (\S+)(?: .*)?\s*$"
_SYSLOG_3164 = r"^(?:<[0-9]{1,3}>)?([A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}) (\S+)"
# a UTC offset as real zones have them: -14:00 to +14:00 (a "+9999" was read as 100 h 39 min)
_OFFSET = r"^(?:GMT|UTC)?([+-])(0[0-9]|1[0-4]):?([0-5][0-9])?$"

# where "CEF:" begins: at the start of the line or after a blank (0: nowhere)
_CEF_AT = """CASE WHEN starts_with(t, 'CEF:') THEN 1
    WHEN strpos(t, ' CEF:') > 0 THEN strpos(t, ' CEF:') + 1 ELSE 0 END"""
_SNIFF = re.compile(
    rb"^(?:[^\n]{0,512}?\s)?CEF:[01]\|(?:[^|\\\n]|\\.)*(?:\|(?:[^|\\\n]|\\.)*){5}\|"
)


def _sniff(head: bytes) -> bool:
    """The first non-blank lines are CEF events, with or without a syslog header: two
    thirds of them at least, so that one damaged line does not hide the format."""
    pieces = head.split(b"\n")
    if len(pieces) > 1:
        pieces = pieces[:-1]  # the last piece may be cut mid-line
    lines = [p.lstrip(b"\xef\xbb\xbf") for p in pieces if p.strip()][:6]
    return 3 * sum(_SNIFF.match(p[:4096]) is not None for p in lines) >= 2 * len(lines) > 0


def _unescape(value: str) -> str:
    """SQL: undo the extension escapes in one pass, only where a backslash occurs."""
    pieces = f"regexp_extract_all({value}, '\\\\.|[^\\\\]+|\\\\$')"
    mapped = (
        "list_transform(" + pieces + ", lambda x: CASE x WHEN '\\=' THEN '=' WHEN '\\\\' THEN '\\'"
        " WHEN '\\n' THEN chr(10) WHEN '\\r' THEN chr(13) ELSE x END)"
    )
    return f"CASE WHEN contains({value}, '\\') THEN array_to_string({mapped}, '') ELSE {value} END"


def _canonical(key: str) -> str:
    """SQL: a key's short name (``sourceAddress`` -> ``src``)."""
    cases = " ".join(
        f"WHEN {sql_quote(alias)} THEN {sql_quote(short)}"
        for short, aliases in _KEYS.items()
        for alias in aliases
    )
    return f"CASE {key} {cases} ELSE {key} END"


_KEY_AT = f"(?:^|\\s)({_KEY_CHARS}+)="  # a key: key characters before '=', after a blank
_KEY_SPLIT = f"(?:^|\\s+){_KEY_CHARS}+="  # what separates the values


def _split(ext: str) -> str:
    """SQL columns ``ks`` (the keys, in order) and ``vs`` (``vs[i + 1]`` is key i's value).

    Both come from the same key pattern, so they stay aligned: every key found is one
    boundary of the split; ``vs[1]`` is what precedes the first key.
    """
    return (
        f"regexp_extract_all({ext}, '{_KEY_AT}', 1) AS ks, "
        f"regexp_split_to_array({ext}, '{_KEY_SPLIT}') AS vs"
    )


def _raw_value(key: str) -> str:
    """SQL: the text after one key (or its full name), as found; NULL if absent."""
    names = (key, *_KEYS[key])
    return (
        "coalesce(" + ", ".join(f"vs[list_position(ks, {sql_quote(n)}) + 1]" for n in names) + ")"
    )


# the values of the keys read, in the order of _KEYS, trimmed and unescaped; NULL if absent
# or empty.  One lambda over the list of them: one per key made binding the chunk's query
# cost 80 ms (DuckDB binds each lambda on its own)
_VALUES = (
    "list_transform(["
    + ", ".join(_raw_value(k) for k in _KEYS)
    + f"], lambda v: nullif({_unescape('rtrim(v)')}, ''))"
)


_WANTED = ", ".join(sql_quote(k) for key, aliases in _KEYS.items() for k in (key, *aliases))
# the keys acdkit reads, by short name, as often as the line gives them
_READ_KEYS = (
    f"list_transform(list_filter(ks, lambda k: k IN ({_WANTED})), lambda k: {_canonical('k')})"
)


class CefParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.typed = False  # the zone ENUM is made on first use (a pool's reader has no con)

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        for line, reason in chunk.rejects:
            parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
        con = self.ctx.con
        if not self.typed:
            _zone_type(con)
            self.typed = True
        con.register("cef_raw", pa.table({"line": chunk.line_numbers(), "raw": chunk.lines}))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE cef_rows AS {self._rows()}")
        finally:
            con.unregister("cef_raw")
        try:
            self._refuse_local_times()
            self._warn(parsed)
            base = "(SELECT * FROM cef_rows)"
            query = routed_query(base, _ROUTE, _SKIP, _NET, _DNS, self.ctx.sensor)
            collect(self.ctx, query, parsed)
        finally:
            con.execute("DROP TABLE IF EXISTS cef_rows")
        return parsed

    def _refuse_local_times(self) -> None:
        """Fail the file where a time needs --assume-tz or --year and it was not given.

        The same rule as for the DNS server logs (`_syslog.no_zone`): a reject per line
        would lose those events for good once the file is in the ledger.
        """
        needs = {**dict.fromkeys(_NO_ZONE, "zone"), **dict.fromkeys(_NO_YEAR, "year")}
        needs.update(dict.fromkeys(_NO_BOTH, "both"))
        rows = self.ctx.con.sql(
            f"SELECT problem, min(line) FROM cef_rows WHERE problem IN ({_quoted(tuple(needs))})"
            " GROUP BY problem"
        ).fetchall()
        if not rows:
            return
        found: dict[str, int] = {}
        for problem, line in rows:
            found[needs[problem]] = min(int(line), found.get(needs[problem], int(line)))
        first = min(found.values())
        if "both" in found or {"zone", "year"} <= set(found):
            raise no_zone(first, year_too=True)
        raise no_zone(first) if "zone" in found else no_year(first)

    def _warn(self, parsed: Parsed) -> None:
        ((used_tz, used_year),) = self.ctx.con.sql(
            "SELECT coalesce(bool_or(used_tz), false), coalesce(bool_or(used_year), false)"
            " FROM cef_rows WHERE problem IS NULL AND cef_route IS NOT NULL"
        ).fetchall()
        if used_tz:
            parsed.warnings.append(
                f"times without a zone read as local time in {self.ctx.assume_tz} (--assume-tz)"
            )
        if used_year:
            parsed.warnings.append(f"times without a year given the year {self.ctx.year} (--year)")

    def _rows(self) -> str:
        """Every line with its problem, route inputs and the values of the keys read."""
        tz, year = self.ctx.assume_tz, self.ctx.year
        values = ", ".join(f"u[{i}] AS v_{k}" for i, k in enumerate(_KEYS, start=1))
        names = ("rt", "start", "end")
        times = {name: _time(name, tz, year) for name in names}
        prep = ", ".join(_time_prep(name, year) for name in names)
        text = ", ".join(_time_text(name, tz) for name in names)
        syslog = _syslog_time(tz, year)
        cols = [
            f"{ns} AS ns_{n}, {problem} AS bad_{n}, {flags}"
            for n, (ns, problem, flags) in times.items()
        ]
        kept = ", ".join(f"v_{k}" for k in _KEYS)
        # only what the routed query and the warnings read is materialized, not the text
        return f"""
        SELECT line, problem, cef_route, ns, ns_start, ns_end, used_tz, used_year, syslog_host,
               {kept}
        FROM (SELECT *,
          CASE
            WHEN unread THEN '{READER_REJECT}'
            WHEN blank THEN 'blank line'
            WHEN cef IS NULL THEN 'no CEF header in the line'
            WHEN h.v = '' THEN 'CEF header has fewer than 8 fields'
            WHEN h.v NOT IN ('0', '1') THEN 'unsupported CEF version'
            WHEN len({_READ_KEYS}) <> len(list_distinct({_READ_KEYS}))
              THEN 'a CEF key acdkit reads appears twice'
            WHEN cef_route IS NULL THEN NULL  -- skipped: its times do not matter
            WHEN {bad_proto("v_proto")} THEN 'invalid protocol number'
            ELSE coalesce(bad_start, bad_rt, bad_end,
                          CASE WHEN coalesce(ns_start, ns_rt, ns_end) IS NULL THEN bad_syslog END)
          END AS problem,
          coalesce(ns_start, ns_rt, ns_end, ns_syslog) AS ns,
          used_tz_start OR used_tz_rt OR used_tz_end
            OR (coalesce(ns_start, ns_rt, ns_end) IS NULL AND used_tz_syslog) AS used_tz,
          used_year_start OR used_year_rt OR used_year_end
            OR (coalesce(ns_start, ns_rt, ns_end) IS NULL AND used_year_syslog) AS used_year
        FROM (SELECT *, {", ".join(cols)}, {syslog}, {_ROUTE_BY_KEYS} AS cef_route
              FROM (SELECT *, {text} FROM (SELECT *, {prep}
              FROM (SELECT *, {_syslog_parts("pre")},
                           {_time_parts("v_rt")} AS t_rt, {_time_parts("v_start")} AS t_start,
                           {_time_parts("v_end")} AS t_end
              FROM (SELECT * EXCLUDE (u), {values} FROM (SELECT *, {_VALUES} AS u
                    FROM (SELECT *, {_split("h.e")}
                          FROM (SELECT line, unread, blank, pre, cef,
                                       regexp_extract(cef, {sql_quote(_HEADER)}, ['v', 'e'])
                                         AS h
                                FROM (SELECT line, unread, blank,
                                             CASE WHEN cef_at > 1 THEN substr(t, 1, cef_at - 1) END
                                               AS pre,
                                             CASE WHEN cef_at > 0 THEN substr(t, cef_at) END AS cef
                                      FROM (SELECT *, {_CEF_AT} AS cef_at
                                            FROM (SELECT line, raw IS NULL AS unread,
                                                         trim(raw, chr(10) || chr(13) || chr(9)
                                                           || ' ') = '' AS blank,
                                                         rtrim(CASE WHEN line = 1
                                                           THEN ltrim(raw, chr(65279))
                                                           ELSE raw END, chr(10) || chr(13)) AS t
                                                  FROM cef_raw))))))))))))
        """


# the problems that stand for a time needing an option; they refuse the file, never reject
_NO_ZONE = (
    *(f"CEF {n} has no time zone (use --assume-tz)" for n in ("rt", "start", "end")),
    "syslog time has no time zone (use --assume-tz)",
)
_NO_YEAR = (
    *(f"CEF {n} has no year (use --year)" for n in ("rt", "start", "end")),
    "syslog time has no year (use --year)",
)
_NO_BOTH = (
    *(f"CEF {n} has no year and no time zone" for n in ("rt", "start", "end")),
    "syslog time has no year and no time zone",
)


def _quoted(texts: tuple[str, ...]) -> str:
    return ", ".join(sql_quote(t) for t in texts)


def _time_parts(col: str) -> str:
    """SQL: the pieces of a ``MMM dd …`` time; NULL for no value or a number (the regular
    expression runs only where it can match)."""
    names = "['mon', 'day', 'year', 'hms', 'ms', 'zone']"
    return (
        f"CASE WHEN {col} IS NOT NULL AND NOT regexp_full_match({col}, '[0-9]+')"
        f" THEN regexp_extract({col}, {sql_quote(_CEF_TIME)}, {names}) END"
    )


def _zone_offset(zone: str) -> str:
    """SQL: minutes east of UTC for a fixed zone spelling, else NULL."""
    abbrev = " ".join(f"WHEN {sql_quote(k)} THEN {v}" for k, v in ZONE_ABBREVIATIONS.items())
    parts = f"regexp_extract({zone}, {sql_quote(_OFFSET)}, ['s', 'h', 'm'])"
    offset = (
        f"CASE WHEN {parts}.h <> '' THEN (CASE {parts}.s WHEN '-' THEN -1 ELSE 1 END)"
        f" * (CAST({parts}.h AS INTEGER) * 60"
        f" + coalesce(TRY_CAST(nullif({parts}.m, '') AS INTEGER), 0)) END"
    )
    return f"CASE upper({zone}) {abbrev} ELSE {offset} END"


_ZONE_TYPE = "acdkit_iana_zone"


def _zone_type(con: duckdb.DuckDBPyConnection) -> None:
    """Create, once per connection, an ENUM of the IANA zone names DuckDB knows: a named
    zone is checked by a cast to it, where an IN list of the ~600 names, written into the
    query for each time column, made binding it cost a quarter of a chunk's parse."""
    with contextlib.suppress(duckdb.CatalogException):  # made for an earlier parser
        con.execute(
            f"CREATE TYPE {_ZONE_TYPE} AS ENUM (SELECT name FROM pg_timezone_names()"
            " WHERE contains(name, '/') ORDER BY name)"
        )


def _local_ns(local: str, zone: str, offset: str, tz: str | None) -> str:
    """SQL: ns since the epoch of a local TIMESTAMP in ``zone`` (text, may be NULL -> ``tz``),
    ``offset`` being the zone's fixed offset in minutes where it has one (`_zone_offset`)."""
    fixed = f"epoch_us({local})::HUGEINT - CAST({offset} AS BIGINT) * 60000000"
    named = f"epoch_us(timezone({zone}, {local}))::HUGEINT"
    assumed = f"epoch_us(timezone({sql_quote(tz)}, {local}))::HUGEINT" if tz else "NULL"
    us = (
        f"CASE WHEN {zone} IS NULL THEN {assumed}"
        f" WHEN {offset} IS NOT NULL THEN {fixed}"
        f" WHEN TRY_CAST({zone} AS {_ZONE_TYPE}) IS NOT NULL"
        f" THEN {named} END"
    )
    return f"({us}) * 1000"  # HUGEINT: the caller's TRY_CAST turns what does not fit to NULL


# One CEF time column ``v_<name>`` goes through three layers of `CefParser._rows`, so that
# each costly expression is written (and bound) once: `_time_parts` splits the text,
# `_time_prep` reads its zone, local time, fixed offset and epoch milliseconds, `_time_text`
# the ns of a text time, and `_time` gives the ns, the problem and the flags.  Written
# inline, the zone list and the offset table came six times per column, and binding the
# chunk's query took 0.3-0.4 s.


def _time_prep(name: str, year: int | None) -> str:
    """SQL columns z_, loc_, off_ and em_<name> over the parts ``t_<name>``."""
    col, p = f"v_{name}", f"t_{name}"
    yr = f"coalesce(nullif({p}.year, ''), {sql_quote(str(year)) if year else 'NULL'})"
    text = f"{yr} || ' ' || {p}.mon || ' ' || {p}.day || ' ' || {p}.hms"
    epoch_ms = (
        f"CASE WHEN regexp_full_match({col}, '[0-9]{{12,15}}')"
        f" THEN TRY_CAST(CAST({col} AS HUGEINT) * 1000000 AS BIGINT) END"
    )
    return (
        f"nullif({p}.zone, '') AS z_{name}, try_strptime({text}, '%Y %b %d %H:%M:%S') AS"
        f" loc_{name}, {_zone_offset(f'nullif({p}.zone, {chr(39)}{chr(39)})')} AS off_{name},"
        f" {epoch_ms} AS em_{name}"
    )


def _time_text(name: str, tz: str | None) -> str:
    """SQL column txt_<name>: the ns of a ``MMM dd …`` time, NULL if it has none."""
    p = f"t_{name}"
    frac = f"CAST(rpad(coalesce(nullif({p}.ms, ''), '0'), 9, '0') AS BIGINT)"
    local = _local_ns(f"loc_{name}", f"z_{name}", f"off_{name}", tz)
    return f"CASE WHEN {p}.hms <> '' THEN TRY_CAST({local} + {frac} AS BIGINT) END AS txt_{name}"


def _time(name: str, tz: str | None, year: int | None) -> tuple[str, str, str]:
    """(ns, problem, flag columns) SQL for one CEF time, over `_time_prep` and `_time_text`."""
    col, p, zone = f"v_{name}", f"t_{name}", f"z_{name}"
    no_tz = f"{sql_quote(tz) if tz else 'NULL'} IS NULL"
    no_year = f"{p}.year = '' AND {year or 'NULL'} IS NULL"
    ns = f"coalesce(em_{name}, txt_{name})"
    problem = f"""CASE WHEN {col} IS NULL OR em_{name} IS NOT NULL THEN NULL
        WHEN regexp_full_match({col}, '[0-9]+')
          THEN 'CEF {name} is a number but not epoch milliseconds'
        WHEN {p}.hms = '' THEN 'CEF {name} is not in a CEF time format'
        WHEN {no_year} AND {zone} IS NULL AND {no_tz}
          THEN 'CEF {name} has no year and no time zone'
        WHEN {no_year} THEN 'CEF {name} has no year (use --year)'
        WHEN {zone} IS NULL AND {no_tz} THEN 'CEF {name} has no time zone (use --assume-tz)'
        WHEN loc_{name} IS NULL THEN 'CEF {name} is not a valid date'
        WHEN txt_{name} IS NULL
          THEN 'CEF {name} has a time zone acdkit does not read, or is out of range'
      END"""
    flags = (
        f"({col} IS NOT NULL AND {p}.hms <> '' AND {zone} IS NULL) AS used_tz_{name}, "
        f"({col} IS NOT NULL AND {p}.hms <> '' AND {p}.year = '') AS used_year_{name}"
    )
    return ns, problem, flags


def _syslog_parts(pre: str) -> str:
    """SQL: the syslog header's pieces, read only for events that need its time or host."""
    need = (
        f"{pre} IS NOT NULL AND (coalesce(v_start, v_rt, v_end) IS NULL"
        " OR coalesce(v_deviceExternalId, v_dvchost, v_dvc) IS NULL)"
    )
    return ", ".join(
        f"CASE WHEN {need} THEN regexp_extract({pre}, {sql_quote(rx)}, ['ts', 'host'])"
        f" END AS {name}"
        for name, rx in (("s5424", _SYSLOG_5424), ("siso", _SYSLOG_ISO), ("s3164", _SYSLOG_3164))
    )


def _syslog_time(tz: str | None, year: int | None) -> str:
    """SQL columns: the syslog header's time (ns), its problem and flags, and its host."""
    iso = "coalesce(nullif(nullif(s5424.ts, ''), '-'), nullif(siso.ts, ''))"
    iso_ns = rfc3339_ns(rfc3339_parts(iso))
    b = "nullif(s3164.ts, '')"
    yr = sql_quote(str(year)) if year else "NULL"
    local = f"try_strptime({yr} || ' ' || {b}, '%Y %b %d %H:%M:%S')"
    assumed = (
        f"TRY_CAST(epoch_us(timezone({sql_quote(tz)}, {local}))::HUGEINT * 1000 AS BIGINT)"
        if tz
        else "NULL"
    )
    ns = f"CASE WHEN {iso} IS NOT NULL THEN {iso_ns} WHEN {b} IS NOT NULL THEN {assumed} END"
    problem = f"""CASE WHEN {iso} IS NOT NULL AND {iso_ns} IS NULL THEN 'syslog time is not valid'
        WHEN {iso} IS NULL AND {b} IS NOT NULL AND {yr} IS NULL
             AND {sql_quote(tz) if tz else "NULL"} IS NULL
          THEN 'syslog time has no year and no time zone'
        WHEN {iso} IS NULL AND {b} IS NOT NULL AND {yr} IS NULL
          THEN 'syslog time has no year (use --year)'
        WHEN {iso} IS NULL AND {b} IS NOT NULL AND {sql_quote(tz) if tz else "NULL"} IS NULL
          THEN 'syslog time has no time zone (use --assume-tz)'
        WHEN {iso} IS NULL AND {b} IS NOT NULL AND {local} IS NULL THEN 'syslog time is not valid'
      END"""
    host = (
        "coalesce(nullif(nullif(s5424.host, ''), '-'), nullif(siso.host, ''),"
        " nullif(s3164.host, ''))"
    )
    return (
        f"{ns} AS ns_syslog, {problem} AS bad_syslog, "
        f"({iso} IS NULL AND {b} IS NOT NULL) AS used_tz_syslog, "
        f"({iso} IS NULL AND {b} IS NOT NULL) AS used_year_syslog, {host} AS syslog_host"
    )


_ROUTE_BY_KEYS = """CASE
    WHEN lower(v_app) = 'dns' AND v_destinationDnsDomain IS NOT NULL THEN 'dns'
    WHEN v_src IS NOT NULL AND v_dst IS NOT NULL THEN 'net'
    WHEN coalesce(v_src, v_dst) IS NOT NULL AND coalesce(v_spt, v_dpt) IS NOT NULL THEN 'net'
  END"""
_ROUTE = "cef_route"
_SKIP = "'CEF event without a source and destination'"
_AUTHORITY = "^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)"
_SENSOR = "coalesce(v_deviceExternalId, v_dvchost, v_dvc, syslog_host)"
_NET = net_inputs(
    kind="CASE WHEN coalesce(v_requestMethod, v_request) IS NOT NULL THEN 'http' ELSE 'conn' END",
    src_ip="v_src",
    src_port="v_spt",
    dst_ip="v_dst",
    dst_port="v_dpt",
    proto=ip_proto("v_proto"),
    # the sensor's label for the application protocol (CEF "app"), never payload
    service="CASE WHEN length(v_app) <= 64 AND NOT regexp_matches(v_app, '[[:cntrl:]]')"
    " THEN lower(v_app) END",
    http_verb="v_requestMethod",
    url_host=f"nullif(regexp_extract(v_request, {sql_quote(_AUTHORITY)}, 1), '')",
    url_uri="v_request",
    ts=ns_text("ns"),
    duration="CASE WHEN ns_start IS NOT NULL AND ns_end IS NOT NULL"
    f" THEN {ns_text('ns_end - ns_start')} END",
    # CEF "in": bytes from source to destination, "out": the other way
    orig_bytes="v_in",
    resp_bytes="v_out",
    sensor=_SENSOR,
)
_DNS = dns_inputs(
    kind="'query'",
    qname="regexp_replace(v_destinationDnsDomain, '\\.$', '')",
    qtype="v_InfobloxDNSQType",
    resolver_ip="v_dst",
    resolver_port="v_dpt",
    client_ip="v_src",
    client_port="v_spt",
    proto=ip_proto("v_proto"),
    ts=ns_text("ns"),
    sensor=_SENSOR,
)


FORMAT = register(
    SourceFormat(
        "cef",
        "ArcSight CEF events, bare or after an RFC 3164 / RFC 5424 syslog header",
        _sniff,
        CefParser,
    )
)
