"""BIND ``named`` query logs (category ``queries``), plain or through syslog, and the
Infoblox NIOS ``responses`` lines that put a query and its answer records on one line.

Layouts (BIND 9 ARM, logging chapter): ``client 10.0.0.1#5353: query: ...`` before 9.9,
``client 10.0.0.1#5353 (name): ...`` from 9.9, ``client @0x7f... 10.0.0.1#5353 (name): ...``
from 9.11, each with an optional ``view NAME:``; the query part is ``query: NAME CLASS TYPE
FLAGS (SERVER-ADDRESS)`` with an optional ``[ECS ...]``.  ``print-time`` (``dd-Mon-YYYY
hh:mm:ss.mmm``, ISO 8601 local or UTC, or the ``Mmm dd`` form of old releases),
``print-category`` and ``print-severity`` prefixes and a syslog header are all optional.
Every other message of named is a skip with a fixed reason; a line that has none of these
prefixes, no syslog header and no ``client`` start is no BIND line at all, and is a reject.
"""

from __future__ import annotations

import re

from acdkit.sources import SourceFormat, register
from acdkit.sources._dnstext import (
    StagedParser,
    dns_name,
    head_lines,
    name_problem,
    server_program,
)
from acdkit.sources._sql import sql_quote
from acdkit.sources._syslog import (
    HEADER,
    HEADER_FIELDS,
    TIME_COLUMNS,
    syslog_time,
    time_select,
)

__all__ = ["FORMAT"]

_ADDR = r"[0-9A-Fa-f:.]+"
# print-time: dd-Mon-YYYY hh:mm:ss.mmm, ISO 8601 (local, or UTC with Z), or BIND 9.2's
# Mmm dd hh:mm:ss.mmm; the prefix is matched without captures (fast), the time read from it
_TIME = (
    r"(?:[0-9]{2}-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?Z?"
    r"|[A-Z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3})"
)
# a category before the time (Infoblox writes one), the time, then category and severity
_PREFIX = rf"^(?:[a-z][a-z0-9_-]*: )?(?:{_TIME} )?(?:(?:[a-z][a-z0-9_-]*|debug [0-9]+): ){{0,2}}"
_CLIENT = rf"^client (?:@0x[0-9a-fA-F]+ )?(?P<cip>{_ADDR})#(?P<cport>[0-9]+)(?:/key \S+)?"
_QUERY = (
    _CLIENT + r"(?: \((?:\\.|[^)\\])*\))?:(?: view [^:]*:)? query: (?P<qname>\S+) "
    r"(?P<qclass>\S+) (?P<qtype>\S+)(?: (?P<flags>[-+][A-Za-z0-9()]*))?"
    rf"(?: \((?P<dst>{_ADDR})\))?(?: \[ECS [^\]]*\])?$"
)
_QUERY_FIELDS = ("cip", "cport", "qname", "qclass", "qtype", "flags", "dst")
_RESPONSE = (
    _CLIENT + r":? (?:view [^:]*: )?(?P<proto>UDP|TCP): query: (?P<qname>\S+) "
    r"(?P<qclass>\S+) (?P<qtype>\S+) response: (?P<rcode>[A-Z0-9]+) (?P<rflags>[-+][A-Za-z]*)"
    r"(?: (?P<rrs>.*))?$"
)
_RESPONSE_FIELDS = ("cip", "cport", "proto", "qname", "qclass", "qtype", "rcode", "rflags", "rrs")

# one answer record, ``owner TTL class type data``; quoted strings are blanked out first so
# that a ';' inside TXT data does not split a record
_RR = r"^(?P<owner>\S+) (?P<ttl>[0-9]+) (?P<class>[A-Z0-9]+) (?P<type>[A-Z0-9]+) (?P<data>.+)$"
_RR_FIELDS = ("owner", "ttl", "class", "type", "data")
_QUOTED = r'"(?:\\.|[^"\\])*"'
# rrdata keeps addresses and names only: TXT and other free-form data are content
_ITEM = f"""CASE WHEN x.type IN ('A', 'AAAA') THEN x.data
    WHEN x.type IN ('CNAME', 'DNAME', 'PTR', 'NS') THEN {dns_name("x.data")}
    WHEN x.type IN ('MX', 'SRV', 'KX', 'AFSDB', 'RT')
      THEN {dns_name("string_split(x.data, ' ')[-1]")} END"""


def _struct(col: str, pattern: str, fields: tuple[str, ...]) -> str:
    names = ", ".join(f"'{f}'" for f in fields)
    return f"regexp_extract({col}, {sql_quote(pattern)}, [{names}])"


def _records(rrs: str) -> str:
    """The answer records of a responses line, each parsed (all '' where one does not)."""
    split = f"string_split(regexp_replace({rrs}, {sql_quote(_QUOTED)}, '\"\"', 'g'), ';')"
    parts = f"list_filter(list_transform({split}, lambda p: trim(p)), lambda p: p <> '')"
    return f"list_transform({parts}, lambda p: {_struct('p', _RR, _RR_FIELDS)})"


_STAMP = """CASE WHEN tt = '' THEN NULL
    WHEN contains(tt, 'T') THEN TRY_CAST(rtrim(tt, 'Z') AS TIMESTAMP)
    WHEN contains(tt, '-') THEN try_strptime(tt, '%d-%b-%Y %H:%M:%S.%g')
    ELSE try_strptime('2000 ' || regexp_replace(tt, ' +', ' '), '%Y %b %d %H:%M:%S.%g') END"""


def _time() -> str:
    """TIME_COLUMNS: BIND's own print-time (text ``tt``, read as ``ts``), else the header's."""
    own = {
        "t_kind": """CASE WHEN ends_with(tt, 'Z') THEN 'zoned'
            WHEN contains(tt, 'T') OR contains(tt, '-') THEN 'local' ELSE 'syslog' END""",
        "t_text": "CASE WHEN ends_with(tt, 'Z') THEN tt END",
        "t_y": "CASE WHEN contains(tt, '-') THEN year(ts) END",
        "t_mo": "month(ts)",
        "t_d": "day(ts)",
        "t_h": "hour(ts)",
        "t_mi": "minute(ts)",
        "t_s": "second(ts)",
        "t_frac": "(epoch_us(ts) % 1000000) * 1000",
    }
    header = syslog_time("h")
    return time_select(
        {n: f"CASE WHEN tt <> '' THEN {own[n]} ELSE {header[n]} END" for n in TIME_COLUMNS}
    )


# BIND's own "Feb 25 11:09:43.651 queries: ..." would read as a syslog header whose tag is
# the category: a real header names a host, a process id or a priority
_SYSLOG_ONLY = "CASE WHEN h.pid <> '' OR h.host <> '' OR h.pri <> '' THEN h END"

_SKIP = """CASE
    WHEN tag IS NOT NULL AND NOT starts_with(tag, 'named') THEN 'syslog message of another program'
    WHEN starts_with(body, 'CEF:') THEN 'CEF event inside a BIND log'
    WHEN contains(body, 'query failed') THEN 'BIND query error message'
    WHEN contains(body, 'rpz') OR contains(body, 'rewriting query') THEN 'BIND RPZ message'
    WHEN contains(body, 'updating zone') OR contains(body, 'update ')
      THEN 'BIND dynamic update message'
    WHEN contains(body, 'notify') OR contains(body, 'transfer of') OR contains(body, 'XFR')
      THEN 'BIND zone transfer or notify message'
    WHEN starts_with(body, 'validating') OR contains(body, 'DNSKEY')
      THEN 'BIND DNSSEC validation message'
    ELSE 'BIND message that is not a query' END"""


def _stage(lines: str) -> str:
    header = _struct("raw", HEADER, HEADER_FIELDS)
    query = _struct("body", _QUERY, _QUERY_FIELDS)
    response = _struct("body", _RESPONSE, _RESPONSE_FIELDS)
    qname = "coalesce(nullif(q.qname, ''), nullif(r.qname, ''))"
    return f"""
    SELECT line, {time_select({n: n for n in TIME_COLUMNS})}, sensor, tag, body, kind, cip,
      cport, {dns_name("qname")} AS qname, qtype, rcode, rrdata, proto, dst,
      CASE WHEN problem IS NOT NULL THEN problem
           WHEN kind IS NULL AND starts_with(body, 'client ') AND contains(body, ' query: ')
             THEN 'malformed BIND query line'
           WHEN kind IS NULL AND tag IS NULL AND NOT has_prefix
             AND NOT starts_with(body, 'client ') AND NOT starts_with(body, 'CEF:')
             THEN 'not a BIND log line (no BIND time, category or client, no syslog header)'
           {name_problem("qname")}
           WHEN list_bool_or(list_transform(records, lambda x: x.type = ''))
             THEN 'malformed answer record'
      END AS problem
    FROM (SELECT line, problem, {_time()}, nullif(split_part(h.host, ' ', 1), '') AS sensor,
        nullif(h.tag, '') AS tag, body, pre <> '' AS has_prefix,
        CASE WHEN q.qname <> '' THEN 'query' WHEN r.qname <> '' THEN 'transaction' END AS kind,
        coalesce(nullif(q.cip, ''), nullif(r.cip, '')) AS cip,
        coalesce(nullif(q.cport, ''), nullif(r.cport, '')) AS cport,
        {qname} AS qname, coalesce(nullif(q.qtype, ''), nullif(r.qtype, '')) AS qtype,
        nullif(r.rcode, '') AS rcode, records,
        CASE WHEN r.qname <> '' THEN list_filter(list_transform(records, lambda x: {_ITEM}),
                                                 lambda i: i IS NOT NULL) END AS rrdata,
        CASE WHEN r.proto <> '' THEN r.proto WHEN q.flags = '' OR q.qname = '' THEN NULL
             WHEN contains(q.flags, 'T') THEN 'tcp' ELSE 'udp' END AS proto,
        nullif(q.dst, '') AS dst
      FROM (SELECT *, CASE WHEN r.rrs <> '' THEN {_records("r.rrs")} ELSE [] END AS records
        FROM (SELECT *, CASE WHEN contains(body, ' query: ') THEN {query} END AS q,
                 CASE WHEN contains(body, ' response: ') THEN {response} END AS r,
                 {_STAMP} AS ts
          FROM (SELECT *, substr(message, length(pre) + 1) AS body,
                       regexp_extract(pre, {sql_quote(_TIME)}, 0) AS tt
            FROM (SELECT *, regexp_extract(message, {sql_quote(_PREFIX)}, 0) AS pre
              FROM (SELECT *, CASE WHEN h.tag <> '' THEN h.msg ELSE raw END AS message
                FROM (SELECT * REPLACE ({_SYSLOG_ONLY} AS h)
                  FROM (SELECT *, {header} AS h FROM {lines}))))))))
    """


_DNS = {
    "kind": "kind",
    "qname": "qname",
    "qtype": "qtype",
    "rcode": "rcode",
    "rrdata": "rrdata",
    "resolver_ip": "dst",
    "client_ip": "cip",
    "client_port": "cport",
    "proto": "proto",
    "sensor": "sensor",
}


class BindQueryParser(StagedParser):
    def stage_query(self, lines: str) -> str:
        return _stage(lines)

    def routes(self) -> tuple[str, str, dict[str, str]]:
        return "CASE WHEN kind IS NOT NULL THEN 'dns' END", _SKIP, _DNS


def _sniff(head: bytes) -> bool:
    return server_program(head) == "named" or _plain_query_log(head)


_PLAIN_QUERY = re.compile(_PREFIX + _QUERY.removeprefix("^"))


def _plain_query_log(head: bytes) -> bool:
    """A named query log written to a file of its own, without syslog headers."""
    lines = head_lines(head, 20)
    hits = sum(bool(_PLAIN_QUERY.match(line)) for line in lines)
    return bool(lines) and hits * 2 > len(lines)


FORMAT = register(
    SourceFormat(
        "bind",
        "BIND named query log (9.x layouts, plain or syslog) and Infoblox responses lines",
        _sniff,
        BindQueryParser,
        sequential=True,
    )
)
