"""dnsmasq (and Pi-hole, which writes the same) ``log-queries`` lines, through syslog or in
dnsmasq's own ``log-facility`` file.

One query is several lines (dnsmasq src/cache.c ``log_query``): ``query[A] NAME from
CLIENT``, ``forwarded NAME to UPSTREAM``, then answers ``reply|cached|config|/etc/hosts|...
NAME is VALUE``, a CNAME chain as ``reply NAME is <CNAME>`` followed by the target's own
line.  ``log-queries=extra`` puts a serial number (and the client's ``address/port``) in
front of each line of one query; ``log-queries=proto`` adds ``UDP``/``TCP``.

Each query becomes one dns record: its answers fill ``rrdata`` (the CNAME target for
``<CNAME>``, the address or name otherwise) and ``rcode``; the answer and forwarding lines
are skips that say they were folded into it.  Lines are matched to their query by serial
number where there is one, else by process and name (the latest query for that name before
the answer; a PTR answer names the address, which is turned back into its reverse name).
An answer whose query is not in the file, or came more than `MAX_LAG` lines before it, is a
record of its own (``event_kind`` ``answer``).  Lines wait across chunks for their query's
answers in a bounded carry (`DnsmasqParser`).
"""

from __future__ import annotations

import ipaddress

import pyarrow as pa
import pyarrow.compute as pc

from acdkit.sources import Context, Parsed, SourceFormat, register
from acdkit.sources._dnstext import StagedParser, dns_name, name_problem, server_program
from acdkit.sources._sql import sql_quote, ts_ns
from acdkit.sources._syslog import (
    HEADER,
    HEADER_FIELDS,
    TIME_COLUMNS,
    syslog_time,
    time_select,
    ts_input,
)

__all__ = ["FORMAT", "MAX_LAG"]

# lines after its query that an answer may come and still be tied to it: at 1,000 queries a
# second (three lines each) a minute, far longer than dnsmasq waits for an upstream; it
# bounds the lines held from one chunk to the next
MAX_LAG = 200_000

_ADDR = r"[0-9A-Fa-f:.]+"
_IPV4 = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
_MESSAGE = (
    r"^(?:(?P<lproto>UDP|TCP) )?(?:(?P<serial>[0-9]+) "
    rf"(?:(?P<caddr>{_ADDR})/(?P<cport>[0-9]+) )?)?(?P<rest>.*)$"
)
_MESSAGE_FIELDS = ("lproto", "serial", "caddr", "cport", "rest")
_QUERY = rf"^query\[(?P<qtype>[^\]]+)\] (?P<name>\S+) from (?P<client>{_ADDR})$"
_FORWARD = r"^forwarded (?P<name>\S+) to \S+$"
# dnsmasq's own DNSSEC queries and their results are not client queries
_DNSSEC = (
    r"^(?:dnssec-query\[[^\]]+\] \S+ to \S+|validation \S+ is .*"
    r"|\S+ \S+ is (?:DNSKEY|DS) keytag .*)$"
)
# an answer: "SOURCE NAME is VALUE", the source one of dnsmasq's (reply, cached, config,
# DHCP, auth), a hosts file path or a Pi-hole phrase ("gravity blocked", "special domain")
_ANSWER = (
    r"^(?P<src>[A-Za-z/][A-Za-z0-9 ./_-]*?) (?P<name>\S+) is "
    r"(?P<value>not implemented|\S+)(?: .*)?$"
)

_COLUMNS = (
    "line", "problem", *TIME_COLUMNS, "sensor", "tag", "pid", "serial", "caddr", "cport",
    "lproto", "form", "qtype", "name", "client", "vkind", "item", "rcode", "key", "rkey",
)  # fmt: skip
_VKIND = f"""CASE WHEN v = '<CNAME>' THEN 'cname' WHEN starts_with(v, '<') THEN 'rr'
    WHEN v = 'NXDOMAIN' THEN 'nxdomain'
    WHEN v IN ('NODATA', 'NODATA-IPv4', 'NODATA-IPv6') THEN 'nodata'
    WHEN v IN ('SERVFAIL', 'REFUSED', 'FORMERR', 'not implemented')
      OR regexp_full_match(v, '[0-9]+') THEN 'error'
    WHEN regexp_full_match(v, '{_IPV4}')
      OR (contains(v, ':') AND regexp_full_match(v, '{_ADDR}')) THEN 'addr'
    ELSE 'name' END"""


def _struct(col: str, pattern: str, fields: tuple[str, ...]) -> str:
    names = ", ".join(f"'{f}'" for f in fields)
    return f"regexp_extract({col}, {sql_quote(pattern)}, [{names}])"


def _stage(lines: str) -> str:
    header = _struct("raw", HEADER, HEADER_FIELDS)
    message = _struct("h.msg", _MESSAGE, _MESSAGE_FIELDS)
    query = _struct("m.rest", _QUERY, ("qtype", "name", "client"))
    answer = _struct("m.rest", _ANSWER, ("src", "name", "value"))
    forward = f"regexp_extract(m.rest, {sql_quote(_FORWARD)}, 1)"
    dnssec = f"regexp_matches(m.rest, {sql_quote(_DNSSEC)})"
    reverse4 = (
        f"CASE WHEN form = 'answer' AND regexp_full_match(name, '{_IPV4}') THEN "
        "array_to_string(list_reverse(string_split(name, '.')), '.') || '.in-addr.arpa' END"
    )
    return f"""
    SELECT {", ".join(c for c in _COLUMNS if c not in ("key", "rkey"))},
      lower(name) AS key, {reverse4} AS rkey
    FROM (SELECT line, {time_select(syslog_time("h"))},
        nullif(split_part(h.host, ' ', 1), '') AS sensor, nullif(h.tag, '') AS tag,
        coalesce(h.pid, '') AS pid, nullif(m.serial, '') AS serial,
        nullif(m.caddr, '') AS caddr, nullif(m.cport, '') AS cport,
        nullif(m.lproto, '') AS lproto, form, qtype, name, client, vkind,
        CASE vkind WHEN 'addr' THEN v WHEN 'name' THEN {dns_name("v")} END AS item,
        CASE vkind WHEN 'nxdomain' THEN 'NXDOMAIN'
             WHEN 'error' THEN CASE WHEN v = 'not implemented' THEN 'NOTIMP' ELSE v END
             ELSE 'NOERROR' END AS rcode,
        CASE WHEN problem IS NOT NULL THEN problem
             WHEN h.tag IS NULL OR h.tag = '' THEN 'not a syslog line'
             {name_problem("name")} END AS problem
      FROM (SELECT *, CASE WHEN form = 'answer' THEN {_VKIND} END AS vkind
        FROM (SELECT *,
            CASE WHEN h.tag <> 'dnsmasq' THEN NULL WHEN q.name <> '' THEN 'query'
                 WHEN fwd <> '' THEN 'forward' WHEN dnssec THEN 'dnssec'
                 -- an upstream error dnsmasq could not tie to a name
                 WHEN a.name = 'error' AND a.src = 'reply' THEN 'other'
                 WHEN a.name <> '' THEN 'answer' ELSE 'other' END AS form,
            CASE WHEN q.qtype <> '' THEN regexp_replace(q.qtype, '^type=', '') END AS qtype,
            coalesce(nullif(q.name, ''), nullif(fwd, ''), nullif(a.name, '')) AS name,
            nullif(q.client, '') AS client, nullif(a.value, '') AS v
          FROM (SELECT *, {query} AS q, {answer} AS a, {forward} AS fwd, {dnssec} AS dnssec
            FROM (SELECT *, {message} AS m FROM (SELECT *, {header} AS h FROM {lines}))))))
    """


# One group per query: its head line and the answer and forwarding lines tied to it.
#  * by serial (log-queries=extra), else by process and name: the latest query before the
#    line with the line's name (or, for a PTR answer naming an address, its reverse name);
#  * a CNAME chain's next line follows the line before it of the same process;
#  * a line is tied to a head at most MAX_LAG lines after it; an answer tied to nothing is a
#    head of its own.
# Times play no part: clocks step back (daylight saving time, corrections) and a query's
# answer must still find it.  These rules do not depend on where chunks end.  Between
# chunks a group is closed once no later line can be tied to it: MAX_LAG lines on, or at
# once when a later query of the same name and process exists (its answers go there).
_GROUP = """
WITH u AS (SELECT * FROM dm_u),
queries AS (SELECT pid, key, serial, line AS qline FROM u WHERE form = 'query' AND NOT ghost),
by_name AS (
  SELECT u.line, greatest(n.qline, r.qline) AS cand
  FROM u
  ASOF LEFT JOIN (SELECT * FROM queries WHERE serial IS NULL) n
    ON u.pid = n.pid AND u.key = n.key AND u.line >= n.qline
  ASOF LEFT JOIN (SELECT * FROM queries WHERE serial IS NULL) r
    ON u.pid = r.pid AND u.rkey = r.key AND u.line >= r.qline
  WHERE u.serial IS NULL AND u.form <> 'query' AND NOT u.ghost),
by_serial AS (
  SELECT u.line, s.qline AS cand FROM u
  ASOF LEFT JOIN (SELECT * FROM queries WHERE serial IS NOT NULL) s
    ON u.pid = s.pid AND u.serial = s.serial AND u.line >= s.qline
  WHERE u.serial IS NOT NULL AND u.form <> 'query' AND NOT u.ghost),
superseded AS (
  SELECT qline AS line, lead(qline) OVER (PARTITION BY pid, key ORDER BY qline) IS NOT NULL
    AS superseded
  FROM queries WHERE serial IS NULL),
linked AS (
  SELECT u.*, c.cand,
    coalesce(u.form = 'answer' AND u.serial IS NULL AND lag(u.form) OVER w = 'answer'
      AND lag(u.vkind) OVER w = 'cname' AND lag(u.serial) OVER w IS NULL, false) AS cont
  FROM u LEFT JOIN (SELECT * FROM by_name UNION ALL SELECT * FROM by_serial) c USING (line)
  WINDOW w AS (PARTITION BY u.pid ORDER BY u.line)),
based AS (
  SELECT *, sum(CASE WHEN cont THEN 0 ELSE 1 END) OVER (PARTITION BY pid ORDER BY line) AS run,
    CASE WHEN ghost OR cont THEN NULL WHEN form = 'query' THEN line
         WHEN cand IS NOT NULL AND line - cand <= $lag THEN cand
         WHEN form = 'answer' THEN line END AS base_head
  FROM linked),
headed AS (
  SELECT *, CASE WHEN ghost THEN NULL WHEN NOT cont THEN base_head
      WHEN NOT run_ghost AND line - run_head <= $lag THEN run_head
      ELSE line END AS head
  FROM (SELECT *, first_value(base_head) OVER r AS run_head,
               first_value(ghost) OVER r AS run_ghost
        FROM based WINDOW r AS (PARTITION BY pid, run ORDER BY line))),
answers AS (
  SELECT head, line, CASE WHEN vkind = 'cname' THEN NEXT_NAME ELSE item END AS value, rcode
  FROM headed WHERE form = 'answer' AND head IS NOT NULL),
groups AS (
  SELECT head, list(value ORDER BY line) FILTER (WHERE value IS NOT NULL) AS g_rrdata,
    count(*) AS g_answers, arg_min(rcode, line) AS g_rcode
  FROM answers GROUP BY head)
SELECT h.*, g.g_answers, g.g_rcode,
  CASE WHEN g.g_answers > 0 THEN coalesce(g.g_rrdata, []::VARCHAR[]) END AS g_rrdata,
  (h.head IS NULL OR $final OR $last - h.head >= $lag OR coalesce(s.superseded, false))
    AS closed,
  (NOT $final AND $last - h.line < $lag
   AND row_number() OVER (PARTITION BY h.pid ORDER BY h.line DESC) = 1) AS last_of_pid,
  CASE WHEN h.line = h.head THEN NULL
       WHEN h.form = 'forward' AND h.head IS NULL
         THEN 'forwarding step whose query is not in the file'
       WHEN h.form = 'forward' THEN 'forwarding step folded into the record of its query'
       WHEN hh.form = 'query' THEN 'answer folded into the record of its query'
       ELSE 'answer folded into the record of an earlier answer' END AS member
FROM headed h LEFT JOIN groups g ON g.head = h.line
  LEFT JOIN (SELECT line, form FROM u) hh ON hh.line = h.head
  LEFT JOIN superseded s ON s.line = h.head
ORDER BY h.line
"""
_GROUP = _GROUP.replace("NEXT_NAME", dns_name("lead(name) OVER (PARTITION BY head ORDER BY line)"))
_SKIP = """CASE WHEN member IS NOT NULL THEN member
    WHEN form = 'dnssec' THEN 'DNSSEC step of dnsmasq itself'
    WHEN starts_with(tag, 'dnsmasq-') THEN 'dnsmasq DHCP or TFTP message'
    WHEN tag <> 'dnsmasq' THEN 'syslog message of another program'
    ELSE 'dnsmasq message that is not a query step' END"""
_DNS = {
    "kind": """CASE WHEN form <> 'query' THEN 'answer'
        WHEN coalesce(g_answers, 0) > 0 THEN 'transaction' ELSE 'query' END""",
    "qname": f"{dns_name('coalesce(rkey, name)')}",
    "qtype": "qtype",
    "rcode": "coalesce(g_rcode, CASE WHEN form = 'answer' THEN rcode END)",
    "rrdata": "g_rrdata",
    "client_ip": "coalesce(caddr, client)",
    "client_port": "cport",
    "proto": "lproto",
    "sensor": "sensor",
}
_DNS_FORMS = pa.array(["query", "forward", "answer"])


def _reverse_pointer(text: str | None) -> str | None:
    try:
        return ipaddress.ip_address(text or "").reverse_pointer
    except ValueError:
        return None


class DnsmasqParser(StagedParser):
    """Holds the lines of queries still open (`MAX_LAG`) between chunks."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.carry: pa.Table | None = None

    def stage_query(self, lines: str) -> str:
        return _stage(lines)

    def routes(self) -> tuple[str, str, dict[str, str]]:
        return (
            "CASE WHEN line = head OR head IS NULL AND form IN ('query', 'answer') THEN 'dns' END",
            _SKIP,
            _DNS,
        )

    def refine(self, stage: pa.Table, parsed: Parsed) -> pa.Table:
        stage = self._with_keys(stage)
        return self._group(stage, final=False)

    def finish(self) -> Parsed:
        parsed = Parsed()
        if self.carry is not None and self.carry.num_rows:
            nothing = self.carry.slice(0, 0).drop_columns(["ghost"])
            self.project(self._group(nothing, final=True), parsed)
        self.carry = None
        return parsed

    def _with_keys(self, stage: pa.Table) -> pa.Table:
        """Add ``ts_ns``, and the reverse names of the IPv6 addresses that PTR answers name."""
        self.ctx.con.register("dm_keys", stage)
        try:
            stage = self.ctx.con.sql(
                f"SELECT *, {ts_ns(ts_input(self.ctx.assume_tz))} AS ts_ns FROM dm_keys"
            ).to_arrow_table()
        finally:
            self.ctx.con.unregister("dm_keys")
        six = pc.fill_null(
            pc.and_(
                pc.equal(stage.column("form"), "answer"),
                pc.match_substring(stage.column("name"), ":"),
            ),
            False,
        )
        if not pc.any(six).as_py():
            return stage
        names = pc.if_else(six, stage.column("name"), pa.scalar(None, pa.string()))
        encoded = pc.dictionary_encode(names.combine_chunks())
        mapped = pa.array([_reverse_pointer(v) for v in encoded.dictionary.to_pylist()])
        rkey = pc.coalesce(stage.column("rkey"), pc.take(mapped, encoded.indices))
        return stage.set_column(stage.schema.get_field_index("rkey"), "rkey", rkey)

    def _group(self, stage: pa.Table, final: bool) -> pa.Table:
        """Tie this chunk's query lines to the open groups; return what is done with."""
        fresh, rest = _split(stage)
        united = fresh if self.carry is None else _concat([self.carry, fresh])
        last = pc.max(stage.column("line")).as_py() if stage.num_rows else 0
        params = {"final": final, "lag": MAX_LAG, "last": last}
        self.ctx.con.register("dm_u", united)
        try:
            grouped = self.ctx.con.sql(_GROUP, params=params).to_arrow_table()
        finally:
            self.ctx.con.unregister("dm_u")
        closed = pc.fill_null(grouped.column("closed"), True)
        # open groups wait for more lines; the last line of each process stays too, as a
        # ghost, so that the next chunk knows which line came before its first one
        keep = pc.fill_null(pc.or_(pc.invert(closed), grouped.column("last_of_pid")), False)
        carry = grouped.filter(keep)
        ghost = pc.fill_null(carry.column("closed"), True)
        carry = carry.select(united.column_names)
        self.carry = carry.set_column(carry.schema.get_field_index("ghost"), "ghost", ghost)
        emitted = grouped.filter(pc.and_(closed, pc.invert(grouped.column("ghost"))))
        emitted = emitted.drop_columns(["ghost", "closed", "last_of_pid"])
        return _concat([emitted, rest])


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive")


def _split(stage: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(query lines, marked as not ghosts; every other line) of a stage."""
    tied = pc.and_(
        pc.is_in(stage.column("form"), _DNS_FORMS),
        pc.and_(pc.is_null(stage.column("problem")), pc.is_valid(stage.column("ts_ns"))),
    )
    tied = pc.fill_null(tied, False)
    fresh = stage.filter(tied)
    fresh = fresh.append_column("ghost", pa.repeat(pa.scalar(False), fresh.num_rows))
    return fresh, stage.filter(pc.invert(tied))


def _sniff(head: bytes) -> bool:
    return server_program(head) == "dnsmasq"


FORMAT = register(
    SourceFormat(
        "dnsmasq",
        "dnsmasq / Pi-hole log-queries lines (syslog or log-facility file)",
        _sniff,
        DnsmasqParser,
        sequential=True,
    )
)
