"""What the text logs of DNS servers (BIND, Unbound, dnsmasq, Windows DNS) have in common.

Each is parsed in two queries per chunk: the format's own query splits every line into a
*stage* table (its time in `_syslog.TIME_COLUMNS`, its fields as text, a problem or a skip
reason), Python gives syslog times their year (`_syslog.Clock`), and one `routed_query`
turns the stage into dns rows, skips and rejects.  Names are stored without their final dot,
as Zeek and Suricata write them; only the root keeps its ``.``.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acdkit.sources import Context, Parsed, Parser
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import collect
from acdkit.sources._sql import DNS_INPUTS, NET_INPUTS, routed_query
from acdkit.sources._syslog import Clock, header_head, register_lines, ts_input

__all__ = [
    "MAX_NAME",
    "StagedParser",
    "dns_name",
    "head_lines",
    "name_problem",
    "server_program",
]

# a name in presentation form is at most 253 characters; BIND escapes odd bytes as \DDD,
# so four times that still is a name, anything longer is not
MAX_NAME = 1024
NO_NET = {name: "CAST(NULL AS VARCHAR)" for name in NET_INPUTS if name != "line"}
# what a server's log does not say (ports, transaction ids, answers of a query-only log)
NO_DNS = {name: "CAST(NULL AS VARCHAR)" for name in DNS_INPUTS if name not in ("line", "ts")}
NO_DNS["rrdata"] = "CAST(NULL AS VARCHAR[])"
_STAGE_LINES = "dns_text_lines"
_STAGE = "dns_text_stage"


def dns_name(col: str) -> str:
    """A name as stored: without its final dot (the root stays ``.``)."""
    return f"CASE WHEN {col} = '.' THEN '.' ELSE regexp_replace({col}, '\\.$', '') END"


def name_problem(col: str, what: str = "query name") -> str:
    """A CASE branch that rejects names no DNS message can carry."""
    return f"WHEN strlen({col}) > {MAX_NAME} THEN '{what} longer than {MAX_NAME} bytes'"


def head_lines(head: bytes, limit: int = 40) -> list[str]:
    """The first complete, non-blank lines of a file's head, as text (for sniffers)."""
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut mid-line
    out = []
    for raw in lines:
        text = raw.decode("utf-8", errors="replace").strip("\r\ufeff")
        if text.strip():
            out.append(text)
        if len(out) >= limit:
            break
    return out


_OWN_LOGS = (
    ("unbound", re.compile(r"^(\[[0-9]+\]|\S.{0,40}?) \S*unbound\[[0-9]+:[0-9a-fA-F]+\]:? ")),
    ("windns", re.compile(r"^(DNS Server log file creation at |Message logging key )")),
)
_PROGRAMS = {"named": "named", "unbound": "unbound", "dnsmasq": "dnsmasq"}


def server_program(head: bytes) -> str | None:
    """Which DNS server wrote most of the first lines: named, unbound, dnsmasq or windns.

    Syslog lines count by their tag (``named[12]:``, ``dnsmasq-dhcp[3]:``), a server's own
    log file by its line shape; a file of several programs goes to the most frequent, so
    that no two formats claim one file.
    """
    votes: Counter[str] = Counter()
    for line in head_lines(head):
        own = next((name for name, rx in _OWN_LOGS if rx.match(line)), None)
        if own is not None:
            votes[own] += 1
            continue
        fields = header_head(line)
        if fields is not None:
            tag = fields["tag"].split("-")[0]
            if tag in _PROGRAMS:
                votes[_PROGRAMS[tag]] += 1
    if not votes:
        return None
    ranked = [*votes.most_common(2), ("", 0)]
    return ranked[0][0] if ranked[0][1] > ranked[1][1] else None


def in_line_order(stage: pa.Table) -> pa.Table:
    """The stage sorted by line: DuckDB keeps the order of a join-free query (its
    ``preserve_insertion_order`` default), so this sorts only if that ever changes."""
    lines = stage.column("line").to_numpy()
    if len(lines) < 2 or bool(np.all(lines[1:] > lines[:-1])):
        return stage
    return stage.take(pc.sort_indices(stage.column("line")))


class StagedParser(Parser):
    """A DNS server's text log: stage query, years and zone, then one routed query."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.clock = Clock(ctx)

    @abstractmethod
    def stage_query(self, lines: str) -> str:
        """SELECT over ``lines`` (line, raw, problem), without joins: one row per line with
        ``line``, ``problem``, TIME_COLUMNS and the format's own fields."""

    @abstractmethod
    def routes(self) -> tuple[str, str, dict[str, str]]:
        """(route, skip reason, dns inputs but ``ts``) as expressions over the stage; an
        input left out is NULL."""

    def refine(self, stage: pa.Table, parsed: Parsed) -> pa.Table:
        """A hook between the stage and the projection (state carried across chunks)."""
        return stage

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        lines = register_lines(self.ctx, chunk, parsed, _STAGE_LINES)
        try:
            stage = self.ctx.con.sql(self.stage_query(lines)).to_arrow_table()
        finally:
            self.ctx.con.unregister(_STAGE_LINES)
        stage = in_line_order(stage)
        stage = self.clock.apply(stage, parsed)
        self.project(self.refine(stage, parsed), parsed)
        return parsed

    def project(self, stage: pa.Table, parsed: Parsed) -> None:
        """Route the stage's rows into dns rows, skips and rejects."""
        if stage.num_rows == 0:
            return
        route, skip, dns = self.routes()
        dns = {**NO_DNS, **dns, "ts": ts_input(self.ctx.assume_tz)}
        self.ctx.con.register(_STAGE, stage)
        try:
            query = routed_query(_STAGE, route, skip, NO_NET, dns, self.ctx.sensor)
            collect(self.ctx, query, parsed)
        finally:
            self.ctx.con.unregister(_STAGE)
