"""Helpers for JSON-lines sources: sniffing, and splitting a chunk into objects and rejects."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from acdkit.sources import Context, Parsed
from acdkit.sources._lines import LineChunk

__all__ = ["first_objects", "split_chunk"]


def first_objects(head: bytes, limit: int = 20) -> list[dict[str, Any]]:
    """Up to ``limit`` JSON objects from the first complete lines of a file."""
    out: list[dict[str, Any]] = []
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut mid-line
    for raw in lines:
        raw = raw.strip().lstrip(b"\xef\xbb\xbf")
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
        if len(out) >= limit:
            break
    return out


def split_chunk(chunk: LineChunk, ctx: Context, parsed: Parsed) -> pa.Table:
    """Register the chunk, record blank/invalid lines, return (line, raw) of JSON objects."""
    lines = pa.table({"line": chunk.line_numbers(), "raw": chunk.lines})
    ctx.con.register("chunk_raw", lines)
    # a UTF-8 BOM may start the first line; JSON parsers reject it, we forgive it
    checked = ctx.con.sql(r"""
        SELECT line, raw,
          CASE WHEN raw IS NULL THEN 'rejected by reader'
               WHEN trim(raw, chr(10) || chr(13) || chr(9) || ' ') = '' THEN 'blank line'
               WHEN NOT json_valid(raw) THEN 'invalid JSON'
               WHEN json_type(raw) <> 'OBJECT' THEN 'JSON value is not an object'
          END AS problem
        FROM (SELECT line, ltrim(raw, chr(65279)) AS raw FROM chunk_raw)
    """).to_arrow_table()
    ctx.con.unregister("chunk_raw")
    for line, reason in chunk.rejects:
        parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
    ctx.con.register("checked", checked)
    rel = ctx.con.sql(
        "SELECT line, problem FROM checked WHERE problem IS NOT NULL"
    ).to_arrow_table()
    blank = rel.filter(pa.compute.equal(rel["problem"], "blank line"))
    bad = rel.filter(
        pa.compute.and_(
            pa.compute.not_equal(rel["problem"], "blank line"),
            pa.compute.not_equal(rel["problem"], "rejected by reader"),
        )
    )
    parsed.add_lines(
        parsed.skips, blank["line"].combine_chunks(), blank["problem"].combine_chunks()
    )
    parsed.add_lines(parsed.rejects, bad["line"].combine_chunks(), bad["problem"].combine_chunks())
    good = ctx.con.sql("SELECT line, raw FROM checked WHERE problem IS NULL").to_arrow_table()
    ctx.con.unregister("checked")
    return good
