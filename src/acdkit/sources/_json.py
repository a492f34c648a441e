"""Helpers for JSON-lines sources: sniffing, and splitting a chunk into objects and rejects."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from acdkit.sources import Context, Parsed
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import READER_REJECT
from acdkit.sources._sql import sql_quote

__all__ = ["first_objects", "json_base", "release"]


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
        except (ValueError, RecursionError):
            # RecursionError: a line nested thousands deep is not a log line (hostile input)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        if len(out) >= limit:
            break
    return out


def json_base(
    chunk: LineChunk, ctx: Context, parsed: Parsed, structure: str, comments: bool = False
) -> str:
    """Register the chunk's lines; return a relation ``(line, problem, j, comment)`` over them.

    With ``comments``, a line whose first non-blank character is ``#`` has ``comment``
    true and no problem (the caller skips it); otherwise ``comment`` is always false.

    ``TRY(from_json(...))`` gives NULL for a line that is not JSON, so the costly checks
    (blank line? JSON but not an object?) run only on the few lines that need them.  The
    relation is a subquery, not a table: the caller's routed query parses each line once
    and nothing is materialized.  The raw text stays inside DuckDB.
    """
    ctx.con.register("chunk_raw", pa.table({"line": chunk.line_numbers(), "raw": chunk.lines}))
    for line, reason in chunk.rejects:
        parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
    # a UTF-8 BOM may start the first line; JSON parsers reject it, we forgive it
    comment = (
        "coalesce(starts_with(ltrim(raw, chr(9) || ' '), '#'), false)" if comments else "false"
    )
    return f"""(
        SELECT line, j, comment, CASE
            WHEN raw IS NULL THEN '{READER_REJECT}'
            WHEN comment THEN NULL
            WHEN j IS NULL THEN CASE
              WHEN trim(raw, chr(10) || chr(13) || chr(9) || ' ') = '' THEN 'blank line'
              ELSE 'invalid JSON' END
            WHEN starts_with(raw, '{{') THEN NULL
            WHEN NOT starts_with(ltrim(raw, chr(9) || chr(10) || chr(13) || ' '), '{{')
              THEN 'JSON value is not an object'
          END AS problem
        FROM (SELECT line, raw, TRY(from_json(raw, {sql_quote(structure)})) AS j,
                     {comment} AS comment
              FROM (SELECT line, CASE WHEN line = 1 THEN ltrim(raw, chr(65279)) ELSE raw END
                    AS raw FROM chunk_raw)))"""


def release(ctx: Context) -> None:
    ctx.con.unregister("chunk_raw")
