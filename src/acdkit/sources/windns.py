"""Windows DNS Server debug log (``dns.log``): one line per packet the server sent or got.

The file starts with a header the server writes (creation time, the "Message logging key");
each packet line then holds the local date and time in the server's locale, thread,
``PACKET``, context, UDP/TCP, Snd/Rcv, the remote address, the message ID in hex, ``R`` for
a response (blank for a query), the opcode, ``[flags-hex flag-letters RCODE]``, the question
type and the question name as length-prefixed labels, ``(3)www(7)example(3)com(0)``.  With
"details" logging each packet is followed by a multi-line dump: those lines are skipped (the
packet line already says what the schema keeps).

Dates: a four-digit first field is year/month/day; otherwise month/day or day/month comes
from ``--date-order`` or from the file itself, where a first field above 12 shows day/month
and a second one above 12 month/day.  A file that shows neither is refused, never guessed.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acdkit.errors import UsageError
from acdkit.sources import Parsed, SourceFormat, register
from acdkit.sources._dnstext import StagedParser, head_lines, name_problem, server_program
from acdkit.sources._sql import sql_quote

__all__ = ["FORMAT"]

_LINE = (
    r"^(?P<a>[0-9]{1,4})[/.-](?P<b>[0-9]{1,2})[/.-](?P<c>[0-9]{1,4}) "
    r"(?P<hh>[0-9]{1,2}):(?P<mi>[0-9]{2}):(?P<ss>[0-9]{2})(?: (?P<ampm>[AaPp][Mm]))? "
    r"(?P<thread>[0-9A-Fa-f]+) (?P<what>\S+) *(?P<rest>.*)$"
)
_LINE_FIELDS = ("a", "b", "c", "hh", "mi", "ss", "ampm", "thread", "what", "rest")
_PACKET = (
    r"^(?P<ctx>[0-9A-Fa-f]+) (?P<proto>UDP|TCP) (?P<dir>Snd|Rcv) (?P<ip>[0-9A-Fa-f:.]+) +"
    r"(?P<xid>[0-9A-Fa-f]{1,4}) +(?P<qr>R )?(?P<op>[QNU?]) \[(?P<fhex>[0-9A-Fa-f]{4}) "
    # the flag letters are a fixed-width field, one place each for A, T, D and R
    r"(?P<fchars>[A ][T ][D ][R ]) +(?P<rcode>[A-Z]+)\] (?P<qtype>\S+) +(?P<qname>\S*)$"
)
_PACKET_FIELDS = ("ctx", "proto", "dir", "ip", "xid", "qr", "op", "fhex", "fchars", "rcode",
                  "qtype", "qname")  # fmt: skip
_SNIFF = re.compile(_LINE.removesuffix(r"(?P<what>\S+) *(?P<rest>.*)$") + "PACKET ")


def _struct(col: str, pattern: str, fields: tuple[str, ...]) -> str:
    names = ", ".join(f"'{f}'" for f in fields)
    return f"regexp_extract({col}, {sql_quote(pattern)}, [{names}])"


def _labels() -> tuple[str, str]:
    """(dotted name, labels consistent) of the ``(n)label...(0)`` name in ``p.qname``."""
    labels = "regexp_split_to_array(p.qname, '\\([0-9]+\\)')"
    counts = "regexp_extract_all(p.qname, '\\(([0-9]+)\\)', 1)"
    name = f"CASE WHEN len({labels}) = 2 THEN '.' ELSE array_to_string({labels}[2:-2], '.') END"
    fits = f"""(starts_with(p.qname, '(') AND ends_with(p.qname, '(0)')
        AND len({counts}) = len({labels}) - 1
        AND list_bool_and(list_transform(range(1, len({counts}) + 1), lambda i:
              TRY_CAST({counts}[i] AS INTEGER) = strlen({labels}[i + 1])
              AND (i = len({counts}) OR TRY_CAST({counts}[i] AS INTEGER) BETWEEN 1 AND 63))))"""
    return name, fits


def _stage(lines: str) -> str:
    line = _struct("raw", _LINE, _LINE_FIELDS)
    packet = _struct("w.rest", _PACKET, _PACKET_FIELDS)
    name, fits = _labels()
    hour = """CASE WHEN w.ampm = '' THEN TRY_CAST(w.hh AS INTEGER)
        ELSE TRY_CAST(w.hh AS INTEGER) % 12 + CASE WHEN upper(w.ampm) = 'PM' THEN 12 ELSE 0 END
        END"""
    return f"""
    SELECT line, problem, dated, da, db, dc, ymd, t_kind, t_text, t_y, t_mo, t_d, t_h, t_mi,
      t_s, t_frac, what, op, kind, cip, sip, proto, xid, rcode, qtype, qname
    FROM (SELECT line, w.a <> '' AS dated, TRY_CAST(w.a AS INTEGER) AS da,
        TRY_CAST(w.b AS INTEGER) AS db, TRY_CAST(w.c AS INTEGER) AS dc,
        strlen(w.a) = 4 AS ymd,
        CASE WHEN w.a <> '' THEN 'local' END AS t_kind, CAST(NULL AS VARCHAR) AS t_text,
        CAST(NULL AS INTEGER) AS t_y, CAST(NULL AS INTEGER) AS t_mo,
        CAST(NULL AS INTEGER) AS t_d, {hour} AS t_h, TRY_CAST(w.mi AS INTEGER) AS t_mi,
        TRY_CAST(w.ss AS INTEGER) AS t_s, CAST(NULL AS BIGINT) AS t_frac,
        nullif(w.what, '') AS what, nullif(p.op, '') AS op,
        CASE WHEN p.qr = 'R ' THEN 'answer' WHEN p.op <> '' THEN 'query' END AS kind,
        CASE WHEN (p.dir = 'Rcv') = (p.qr = '') THEN nullif(p.ip, '') END AS cip,
        CASE WHEN (p.dir = 'Rcv') <> (p.qr = '') THEN nullif(p.ip, '') END AS sip,
        nullif(p.proto, '') AS proto,
        CAST(TRY_CAST('0x' || nullif(p.xid, '') AS INTEGER) AS VARCHAR) AS xid,
        CASE WHEN p.qr = 'R ' THEN nullif(p.rcode, '') END AS rcode,
        nullif(p.qtype, '') AS qtype, CASE WHEN p.op <> '' THEN {name} END AS qname,
        CASE WHEN problem IS NOT NULL THEN problem
             WHEN w.a <> '' AND strlen(w.a) <> 4 AND strlen(w.c) <> 4
               THEN 'date without a four-digit year'
             WHEN w.ampm <> '' AND TRY_CAST(w.hh AS INTEGER) NOT BETWEEN 1 AND 12
               THEN 'invalid 12-hour time'
             WHEN w.what = 'PACKET' AND p.op = '' THEN 'malformed Windows DNS packet line'
             {name_problem("p.qname")}
             WHEN p.op <> '' AND NOT {fits}
               THEN 'query name labels do not match their lengths'
        END AS problem
      FROM (SELECT *, CASE WHEN w.what = 'PACKET' THEN {packet} END AS p
        FROM (SELECT *, {line} AS w FROM {lines})))
    """


_SKIP = """CASE WHEN NOT coalesce(dated, false) AND header THEN 'Windows DNS log header'
    WHEN NOT coalesce(dated, false) THEN 'Windows DNS packet details (not used)'
    WHEN what <> 'PACKET' THEN 'Windows DNS message that is not a packet'
    WHEN op = 'N' THEN 'Windows DNS notify packet'
    WHEN op = 'U' THEN 'Windows DNS update packet'
    ELSE 'Windows DNS packet with an unknown opcode' END"""
_DNS = {
    "kind": "kind",
    "qname": "qname",
    "qtype": "qtype",
    "rcode": "rcode",
    "resolver_ip": "sip",
    "client_ip": "cip",
    "proto": "proto",
    "trans_id": "xid",
}
_ORDER_NAMES = {"mdy": "month/day/year", "dmy": "day/month/year", "ymd": "year/month/day"}


class WinDnsParser(StagedParser):
    order: str | None = None
    dated_seen = False

    def stage_query(self, lines: str) -> str:
        return _stage(lines)

    def routes(self) -> tuple[str, str, dict[str, str]]:
        return "CASE WHEN op = 'Q' THEN 'dns' END", _SKIP, _DNS

    def refine(self, stage: pa.Table, parsed: Parsed) -> pa.Table:
        dated = pc.fill_null(stage.column("dated"), False)
        stage = self._mark_header(stage, dated)
        if not pc.any(dated).as_py():
            return stage
        ymd = pc.fill_null(stage.column("ymd"), False)
        order = self._order(stage, pc.and_(dated, pc.invert(ymd)), parsed)
        da, db, dc = (stage.column(c) for c in ("da", "db", "dc"))
        day_first = order == "dmy"
        month = pc.if_else(ymd, db, db if day_first else da)
        day = pc.if_else(ymd, dc, da if day_first else db)
        year = pc.if_else(ymd, da, dc)
        bad = pc.fill_null(
            pc.and_(dated, pc.or_(pc.greater(month, 12), pc.greater(day, 31))), False
        )
        problem = stage.column("problem")
        reason = pa.scalar("date does not fit the file's day/month order")
        problem = pc.if_else(pc.and_(bad, pc.is_null(problem)), reason, problem)
        for name, values in (("t_y", year), ("t_mo", month), ("t_d", day), ("problem", problem)):
            column = values.cast(stage.schema.field(name).type)
            stage = stage.set_column(stage.schema.get_field_index(name), name, column)
        return stage

    def _mark_header(self, stage: pa.Table, dated: pa.Array) -> pa.Table:
        # the header is what comes before the first dated line of the file
        if self.dated_seen:
            header = pa.repeat(pa.scalar(False), stage.num_rows)
        else:
            positions = np.flatnonzero(dated.to_numpy(zero_copy_only=False))
            first = int(positions[0]) if len(positions) else stage.num_rows
            header = pa.array(np.arange(stage.num_rows) < first)
            self.dated_seen = bool(len(positions))
        return stage.append_column("header", header)

    def _order(self, stage: pa.Table, two_digit: pa.Array, parsed: Parsed) -> str:
        if self.ctx.date_order is not None:
            parsed.warnings.append(
                f"dates read as {_ORDER_NAMES[self.ctx.date_order]} (--date-order)"
            )
            return self.ctx.date_order
        if self.order is not None or not pc.any(two_digit).as_py():
            return self.order or "mdy"  # only four-digit years so far: the order is unused
        first_big = pc.any(pc.and_(two_digit, pc.greater(stage.column("da"), 12))).as_py()
        second_big = pc.any(pc.and_(two_digit, pc.greater(stage.column("db"), 12))).as_py()
        if first_big == second_big:
            raise UsageError(
                "the dates of this file read as month/day and as day/month alike"
                if not first_big
                else "the dates of this file fit neither month/day nor day/month",
                hint="give --date-order mdy (6/5/2013 is June 5) or dmy (it is 6 May)",
            )
        self.order = "dmy" if first_big else "mdy"
        parsed.warnings.append(
            f"dates read as {_ORDER_NAMES[self.order]}: the file has a "
            f"{'first' if first_big else 'second'} date field above 12"
        )
        return self.order


def _sniff(head: bytes) -> bool:
    if server_program(head) == "windns":
        return True
    lines = head_lines(head, 20)
    return bool(lines) and sum(bool(_SNIFF.match(line)) for line in lines) * 2 > len(lines)


FORMAT = register(
    SourceFormat(
        "windns",
        "Windows DNS Server debug log (dns.log; packet lines, any date locale)",
        _sniff,
        WinDnsParser,
        sequential=True,
    )
)
