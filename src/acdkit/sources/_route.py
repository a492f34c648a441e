"""Split the output of one `routed_query` into table rows, skips and rejects.

The query computes, for every line of a chunk, a problem (the line did not parse), a route
('net', 'dns', 'edr' or none) and the columns of both tables; here each line goes to exactly one
place, in bulk with Arrow filters, and without a copy when a whole chunk goes one way.
"""

from __future__ import annotations

import warnings

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from acdkit.schema import TABLES
from acdkit.sources import Context, Parsed

__all__ = ["collect", "fetch", "route_rows"]

# set by the reader itself (invalid UTF-8, over-long line); the chunk carries those rejects
READER_REJECT = "rejected by reader"
SKIP_PROBLEMS = ("blank line",)


def _where(table: pa.Table, mask: pa.Array) -> pa.Table:
    hits = pc.sum(mask).as_py() or 0
    if hits == table.num_rows:
        return table
    return table.filter(mask)


def _table_part(rows: pa.Table, prefix: str) -> pa.Table:
    names = [n for n in rows.column_names if n.startswith(prefix)]
    part = rows.select(names)
    return part.rename_columns([n[len(prefix) :] for n in names])


def route_rows(rows: pa.Table, parsed: Parsed) -> None:
    """Send each row of a routed query's result to its table, the skips or the rejects."""
    rows = rows.combine_chunks()
    line = rows.column("line")
    problem = rows.column("problem")
    route = rows.column("route")
    if problem.null_count < len(problem):
        bad = pc.and_(pc.is_valid(problem), pc.not_equal(problem, READER_REJECT))
        is_skip = pc.is_in(problem, pa.array(SKIP_PROBLEMS))
        for target, mask in (
            (parsed.skips, pc.and_(bad, is_skip)),
            (parsed.rejects, pc.and_(bad, pc.invert(is_skip))),
        ):
            parsed.add_lines(target, line.filter(mask), problem.filter(mask))
    unrouted = pc.and_(pc.is_null(problem), pc.is_null(route))
    if pc.any(unrouted).as_py():
        parsed.add_lines(
            parsed.skips, line.filter(unrouted), rows.column("skip_reason").filter(unrouted)
        )
    for table in TABLES:
        mask = pc.and_(pc.is_null(problem), pc.fill_null(pc.equal(route, table), False))
        if not pc.any(mask).as_py():
            continue
        part = _where(_table_part(rows, f"{table}."), mask)
        if table in parsed.tables:  # a second run of lines in one chunk (Zeek TSV headers)
            part = pa.concat_tables([parsed.tables[table], part], promote_options="default")
        parsed.tables[table] = part


def fetch(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, str]) -> pa.Table:
    """The rows of one query, bound once.

    ``con.sql()`` binds a query to describe the lazy relation it returns, and again to run
    it: 10-20 ms for a routed query of 10-15 KB, per chunk.  ``execute()`` binds it once;
    DuckDB 2 warns that Arrow output from it copies the rows, which costs less here.
    """
    cur = con.execute(query, params) if params else con.execute(query)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        # DuckDB 1.x names it fetch_arrow_table
        name = "to_arrow_table" if hasattr(cur, "to_arrow_table") else "fetch_arrow_table"
        table: pa.Table = getattr(cur, name)()
        return table


def collect(ctx: Context, query: str, parsed: Parsed) -> None:
    """Run a routed query on the context's connection and route its rows."""
    route_rows(fetch(ctx.con, query, ctx.params()), parsed)
