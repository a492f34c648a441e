"""Unbound ``log-queries`` and ``log-replies`` lines, in Unbound's own log file or via syslog.

Unbound's own file (unbound.conf(5), ``logfile``) starts each line with ``[epoch]`` or, with
``log-time-ascii: yes``, a ``Mmm dd hh:mm:ss`` time, then ``unbound[pid:tid] type:``; through
syslog the header comes first and the message keeps ``[pid:tid] type:``.  A query line is
``CLIENT NAME. TYPE CLASS``; a reply line adds ``RCODE SECONDS.USEC CACHED SIZE``
(``log-tag-queryreply`` makes the type ``query``/``reply`` instead of ``info``).  Neither
carries a port, answers or the server's address.  Other messages are skipped.
"""

from __future__ import annotations

from acdkit.sources import SourceFormat, register
from acdkit.sources._dnstext import StagedParser, dns_name, name_problem, server_program
from acdkit.sources._sql import sql_quote
from acdkit.sources._syslog import (
    HEADER,
    HEADER_FIELDS,
    MONTHS_SQL,
    TIME_COLUMNS,
    syslog_time,
    time_select,
)

__all__ = ["FORMAT"]

# Unbound's own log file: "[epoch] " or "Mmm dd hh:mm:ss " (or an ISO 8601 time), then
# "ident[pid:tid]" and, in some releases' documentation, a colon
_OWN = (
    r"^(?:\[(?P<epoch>[0-9]+)\]|(?P<mon>[A-Z][a-z]{2}) +(?P<day>[0-9]{1,2}) "
    r"(?P<hh>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<ss>[0-9]{2})"
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)) "
    r"(?P<ident>[^\s\[]+)\[(?P<pid>[0-9]+):(?P<tid>[0-9a-fA-F]+)\]:? "
    r"(?P<type>[a-z]+(?: [a-z]+)?): (?P<msg>.*)$"
)
_OWN_FIELDS = ("epoch", "mon", "day", "hh", "mi", "ss", "iso", "ident", "pid", "tid", "type",
               "msg")  # fmt: skip
# the message of a syslog line keeps "[pid:tid] type: "
_INNER = r"^\[(?P<pid>[0-9]+):(?P<tid>[0-9a-fA-F]+)\] (?P<type>[a-z]+(?: [a-z]+)?): (?P<msg>.*)$"
_INNER_FIELDS = ("pid", "tid", "type", "msg")
_ADDR = r"[0-9A-Fa-f:.]+"
_CLASS = r"(?:IN|CH|HS|CS|NONE|ANY|CLASS[0-9]+)"
_QUERY = rf"^(?P<cip>{_ADDR}) (?P<qname>\S+) (?P<qtype>\S+) (?P<qclass>{_CLASS})$"
_QUERY_FIELDS = ("cip", "qname", "qtype", "qclass")
# a reply; FORMERR replies have "-" for name, type and class; later releases may append
# fields after the size, which are not read
_REPLY = (
    rf"^(?P<cip>{_ADDR}) (?P<qname>\S+) (?P<qtype>\S+) (?P<qclass>{_CLASS}|-) "
    r"(?P<rcode>[A-Z][A-Z0-9]*) (?P<dur>[0-9]+\.[0-9]+|-) (?P<cached>[01]|-) "
    r"(?P<size>[0-9]+|-)(?: .*)?$"
)
_REPLY_FIELDS = ("cip", "qname", "qtype", "qclass", "rcode", "dur", "cached", "size")


def _struct(col: str, pattern: str, fields: tuple[str, ...]) -> str:
    names = ", ".join(f"'{f}'" for f in fields)
    return f"regexp_extract({col}, {sql_quote(pattern)}, [{names}])"


def _time() -> str:
    """TIME_COLUMNS: the own file's epoch or time, else the syslog header's."""
    header = syslog_time("h")
    mo = f"list_position({MONTHS_SQL}, o.mon)"
    own = {
        "t_kind": f"""CASE WHEN o.epoch <> '' THEN 'epoch'
            WHEN o.iso <> '' AND regexp_matches(o.iso, '(Z|[+-][0-9:]{{4,5}})$') THEN 'zoned'
            WHEN {mo} IS NOT NULL THEN 'syslog' END""",
        "t_text": "coalesce(nullif(o.epoch, ''), nullif(o.iso, ''))",
        "t_y": "CAST(NULL AS INTEGER)",
        "t_mo": f"{mo}::INTEGER",
        "t_d": "TRY_CAST(o.day AS INTEGER)",
        "t_h": "TRY_CAST(o.hh AS INTEGER)",
        "t_mi": "TRY_CAST(o.mi AS INTEGER)",
        "t_s": "TRY_CAST(o.ss AS INTEGER)",
        "t_frac": "CAST(NULL AS BIGINT)",
    }
    return time_select(
        {n: f"CASE WHEN o.ident <> '' THEN {own[n]} ELSE {header[n]} END" for n in TIME_COLUMNS}
    )


_SKIP = """CASE WHEN kind_of = 'other program' THEN 'syslog message of another program'
    ELSE 'Unbound message that is not a query or reply' END"""


def _stage(lines: str) -> str:
    own = _struct("raw", _OWN, _OWN_FIELDS)
    header = _struct("raw", HEADER, HEADER_FIELDS)
    inner = _struct("h.msg", _INNER, _INNER_FIELDS)
    query = _struct("msg", _QUERY, _QUERY_FIELDS)
    reply = _struct("msg", _REPLY, _REPLY_FIELDS)
    return f"""
    SELECT line, {time_select({n: n for n in TIME_COLUMNS})}, sensor, kind_of, kind, cip,
      {dns_name("qname")} AS qname, qtype, rcode,
      CASE WHEN problem IS NOT NULL THEN problem
           WHEN kind_of IS NULL THEN 'not an Unbound log line'
           {name_problem("qname")} END AS problem
    FROM (SELECT line, problem, {_time()}, sensor, kind_of,
        CASE WHEN kind_of IN ('info', 'query') AND q.qname <> '' THEN 'query'
             WHEN kind_of IN ('info', 'reply') AND r.qname <> '' THEN 'answer' END AS kind,
        coalesce(nullif(q.cip, ''), nullif(r.cip, '')) AS cip,
        nullif(coalesce(nullif(q.qname, ''), nullif(r.qname, '')), '-') AS qname,
        nullif(coalesce(nullif(q.qtype, ''), nullif(r.qtype, '')), '-') AS qtype,
        nullif(r.rcode, '') AS rcode
      FROM (SELECT *, {query} AS q, {reply} AS r
        FROM (SELECT *,
            CASE WHEN o.ident <> '' THEN o.type WHEN coalesce(h.tag, '') = '' THEN NULL
                 WHEN NOT starts_with(h.tag, 'unbound') THEN 'other program'
                 ELSE coalesce(nullif(i.type, ''), 'unparsed') END AS kind_of,
            CASE WHEN o.ident <> '' THEN o.msg ELSE i.msg END AS msg,
            CASE WHEN o.ident = '' THEN nullif(split_part(h.host, ' ', 1), '') END AS sensor
          FROM (SELECT *, CASE WHEN h.tag <> '' AND NOT starts_with(h.tag, 'unbound') THEN NULL
                              ELSE {inner} END AS i
            FROM (SELECT *, CASE WHEN o.ident = '' THEN {header} END AS h
              FROM (SELECT *, {own} AS o FROM {lines}))))))
    """


_DNS = {
    "kind": "kind",
    "qname": "qname",
    "qtype": "qtype",
    "rcode": "rcode",
    "client_ip": "cip",
    "sensor": "sensor",
}


class UnboundParser(StagedParser):
    def stage_query(self, lines: str) -> str:
        return _stage(lines)

    def routes(self) -> tuple[str, str, dict[str, str]]:
        return "CASE WHEN kind IS NOT NULL THEN 'dns' END", _SKIP, _DNS


def _sniff(head: bytes) -> bool:
    return server_program(head) == "unbound"


FORMAT = register(
    SourceFormat(
        "unbound",
        "Unbound log-queries / log-replies lines (own log file or syslog)",
        _sniff,
        UnboundParser,
        sequential=True,
    )
)
