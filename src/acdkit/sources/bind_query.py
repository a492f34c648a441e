"""BIND ``named`` query logs (category ``queries``), plain or through syslog, and the
Infoblox NIOS ``responses`` lines that put a query and its answer records on one line.

Layouts (BIND 9 ARM, logging chapter): ``client 10.0.0.1#5353: query: ...`` before 9.9,
``client 10.0.0.1#5353 (name): ...`` from 9.9, ``client @0x7f... 10.0.0.1#5353 (name): ...``
from 9.11, each with an optional ``view NAME:``; the query part is ``query: NAME CLASS TYPE
FLAGS (SERVER-ADDRESS)`` with an optional ``[ECS ...]``.  ``print-time`` (``dd-Mon-YYYY
hh:mm:ss.mmm``, ISO 8601 local or UTC, or the ``Mmm dd`` form of old releases),
``print-category`` and ``print-severity`` prefixes and a syslog header are all optional.
Every other message is a skip with a fixed reason.
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
    MONTHS_SQL,
    TIME_COLUMNS,
    frac_ns,
    syslog_time,
    time_select,
)

__all__ = ["FORMAT"]

_ADDR = r"[0-9A-Fa-f:.]+"
_TIME = (
    r"(?:(?P<bd>[0-9]{2})-(?P<bmon>[A-Z][a-z]{2})-(?P<by>[0-9]{4}) (?P<bh>[0-9]{2}):"
    r"(?P<bmi>[0-9]{2}):(?P<bs>[0-9]{2})\.(?P<bms>[0-9]{3})"
    r"|(?P<iy>[0-9]{4})-(?P<imo>[0-9]{2})-(?P<id>[0-9]{2})T(?P<ih>[0-9]{2}):(?P<imi>[0-9]{2}):"
    r"(?P<is>[0-9]{2})(?:\.(?P<ims>[0-9]{3}))?(?P<iz>Z)?"
    r"|(?P<omon>[A-Z][a-z]{2}) +(?P<od>[0-9]{1,2}) (?P<oh>[0-9]{2}):(?P<omi>[0-9]{2}):"
    r"(?P<os>[0-9]{2})\.(?P<oms>[0-9]{3}))"
)
# a category before the time (Infoblox writes one), the time, then category and severity
_PREFIX = (
    rf"^(?:[a-z][a-z0-9_-]*: )?(?:{_TIME} )?(?:(?:[a-z][a-z0-9_-]*|debug [0-9]+): ){{0,2}}"
    r"(?P<body>.*)$"
)
_PREFIX_FIELDS = (
    "bd", "bmon", "by", "bh", "bmi", "bs", "bms", "iy", "imo", "id", "ih", "imi", "is", "ims",
    "iz", "omon", "od", "oh", "omi", "os", "oms", "body",
)  # fmt: skip
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


def _time() -> str:
    """TIME_COLUMNS: BIND's own print-time where there is one, else the syslog header's."""
    bmon, omon = f"list_position({MONTHS_SQL}, p.bmon)", f"list_position({MONTHS_SQL}, p.omon)"
    iso = (
        "p.iy || '-' || p.imo || '-' || p.id || 'T' || p.ih || ':' || p.imi || ':' || p.is"
        " || coalesce('.' || nullif(p.ims, ''), '') || 'Z'"
    )
    forms = {  # (print-time dd-Mon-YYYY, ISO 8601, old Mmm dd)
        "t_kind": ("'local'", "CASE WHEN p.iz = 'Z' THEN 'zoned' ELSE 'local' END", "'syslog'"),
        "t_text": ("NULL", f"CASE WHEN p.iz = 'Z' THEN {iso} END", "NULL"),
        "t_y": ("TRY_CAST(p.by AS INTEGER)", "TRY_CAST(p.iy AS INTEGER)", "NULL"),
        "t_mo": (bmon, "TRY_CAST(p.imo AS INTEGER)", omon),
        "t_d": ("TRY_CAST(p.bd AS INTEGER)", "TRY_CAST(p.id AS INTEGER)",
                "TRY_CAST(p.od AS INTEGER)"),
        "t_h": ("TRY_CAST(p.bh AS INTEGER)", "TRY_CAST(p.ih AS INTEGER)",
                "TRY_CAST(p.oh AS INTEGER)"),
        "t_mi": ("TRY_CAST(p.bmi AS INTEGER)", "TRY_CAST(p.imi AS INTEGER)",
                 "TRY_CAST(p.omi AS INTEGER)"),
        "t_s": ("TRY_CAST(p.bs AS INTEGER)", "TRY_CAST(p.is AS INTEGER)",
                "TRY_CAST(p.os AS INTEGER)"),
        "t_frac": (frac_ns("p.bms"), frac_ns("p.ims"), frac_ns("p.oms")),
    }  # fmt: skip
    header = syslog_time("h")
    columns = {}
    for name in TIME_COLUMNS:
        own, iso_form, old = forms[name]
        columns[name] = (
            f"CASE WHEN {bmon} IS NOT NULL THEN {own} WHEN p.iy <> '' THEN {iso_form} "
            f"WHEN {omon} IS NOT NULL THEN {old} ELSE {header[name]} END"
        )
    return time_select(columns)


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
    prefix = _struct("message", _PREFIX, _PREFIX_FIELDS)
    query = _struct("p.body", _QUERY, _QUERY_FIELDS)
    response = _struct("p.body", _RESPONSE, _RESPONSE_FIELDS)
    qname = "coalesce(nullif(q.qname, ''), nullif(r.qname, ''))"
    return f"""
    SELECT line, {time_select({n: n for n in TIME_COLUMNS})}, sensor, tag, body, kind, cip,
      cport, {dns_name("qname")} AS qname, qtype, rcode, rrdata, proto, dst,
      CASE WHEN problem IS NOT NULL THEN problem
           WHEN kind IS NULL AND starts_with(body, 'client ') AND contains(body, ' query: ')
             THEN 'malformed BIND query line'
           {name_problem("qname")}
           WHEN list_bool_or(list_transform(records, lambda x: x.type = ''))
             THEN 'malformed answer record'
      END AS problem
    FROM (SELECT line, problem, {_time()}, nullif(split_part(h.host, ' ', 1), '') AS sensor,
        nullif(h.tag, '') AS tag, p.body AS body,
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
        FROM (SELECT *, {query} AS q, {response} AS r
          FROM (SELECT *, {prefix} AS p
            FROM (SELECT *, CASE WHEN h.tag <> '' THEN h.msg ELSE raw END AS message
              FROM (SELECT * REPLACE ({_SYSLOG_ONLY} AS h)
                FROM (SELECT *, {header} AS h FROM {lines})))))))
    ORDER BY line
    """


_DNS = {
    "kind": "kind",
    "session_id": "CAST(NULL AS VARCHAR)",
    "qname": "qname",
    "qtype": "qtype",
    "rcode": "rcode",
    "rrdata": "rrdata",
    "resolver_ip": "dst",
    "resolver_port": "CAST(NULL AS VARCHAR)",
    "client_ip": "cip",
    "client_port": "cport",
    "proto": "proto",
    "trans_id": "CAST(NULL AS VARCHAR)",
    "sensor": "sensor",
}


class BindQueryParser(StagedParser):
    def stage_query(self, lines: str) -> str:
        return _stage(lines)

    def routes(self) -> tuple[str, str, dict[str, str]]:
        return "CASE WHEN kind IS NOT NULL THEN 'dns' END", _SKIP, _DNS


def _sniff(head: bytes) -> bool:
    return server_program(head) == "named" or _plain_query_log(head)


_PLAIN_QUERY = re.compile(_PREFIX.removesuffix("(?P<body>.*)$") + _QUERY.removeprefix("^"))


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
