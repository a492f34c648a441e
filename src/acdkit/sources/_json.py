"""Helpers for JSON-lines sources: sniffing, and splitting a chunk into objects and rejects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from acdkit.sources import Context, Parsed
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import READER_REJECT
from acdkit.sources._sql import sql_quote

__all__ = ["JsonChunks", "first_objects", "json_base", "release"]


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
    chunk: LineChunk,
    ctx: Context,
    parsed: Parsed,
    structure: str,
    comments: bool = False,
    careful: bool = False,
) -> str:
    """Register the chunk's lines; return a relation ``(line, problem, j, comment)`` over them.

    With ``comments``, a line whose first non-blank character is ``#`` has ``comment``
    true and no problem (the caller skips it); otherwise ``comment`` is always false.

    A line that starts with ``{`` is parsed with ``from_json``; any other (blank, a comment,
    leading blanks, not JSON) with ``TRY(from_json(...))`` where ``json_valid`` says it is
    JSON, else NULL, so the
    costly checks (blank line? JSON but not an object?) run only on the few lines that need
    them.  ``TRY`` makes ``from_json`` 10-25 % slower (DuckDB 2.0; twice as slow on the
    1.3 KB records of EVTX), so it is kept off the lines that start like an object; if one
    of them is not JSON after all, the query raises, and `JsonChunks` runs the chunk again
    ``careful``: every line under ``TRY``.  Both give the same rows.
    The relation is a subquery, not a table: the caller's routed query parses each line
    once and nothing is materialized.  The raw text stays inside DuckDB.
    """
    ctx.con.register("chunk_raw", pa.table({"line": chunk.line_numbers(), "raw": chunk.lines}))
    for line, reason in chunk.rejects:
        parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
    # a UTF-8 BOM may start the first line; JSON parsers reject it, we forgive it
    comment = (
        "coalesce(starts_with(ltrim(raw, chr(9) || ' '), '#'), false)" if comments else "false"
    )
    quoted = sql_quote(structure)
    # json_valid first: TRY pays an exception for each line it catches (8 µs: a file of
    # blank or garbage lines took 30 times longer than one of records)
    tried = f"CASE WHEN json_valid(raw) THEN TRY(from_json(raw, {quoted})) END"
    parse = (
        tried
        if careful
        else f"CASE WHEN starts_with(raw, '{{') THEN from_json(raw, {quoted}) ELSE {tried} END"
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
        FROM (SELECT line, raw, {parse} AS j, {comment} AS comment
              FROM (SELECT line, CASE WHEN line = 1 THEN ltrim(raw, chr(65279)) ELSE raw END
                    AS raw FROM chunk_raw)))"""


class JsonChunks:
    """Chunks of JSON lines parsed for one parser, by ``run(parsed, base)`` over the relation
    `json_base` gives: fast first; if a line that starts with ``{`` is not JSON, the chunk
    again ``careful``.  A chunk parsed twice costs 1.7 times one parsed with ``TRY``, so
    once a chunk needed it, the parser's later chunks go ``careful`` at once: a file with
    bad lines pays the second pass once, not per chunk."""

    def __init__(self, ctx: Context, structure: str, comments: bool = False) -> None:
        self.ctx = ctx
        self.structure = structure
        self.comments = comments
        self.careful = False

    def parse(self, chunk: LineChunk, run: Callable[[Parsed, str], None]) -> Parsed:
        ctx, structure, comments = self.ctx, self.structure, self.comments
        try:
            parsed = Parsed()
            try:
                run(parsed, json_base(chunk, ctx, parsed, structure, comments, self.careful))
            except duckdb.Error:
                if self.careful:
                    raise
                self.careful = True
                parsed = Parsed()
                run(parsed, json_base(chunk, ctx, parsed, structure, comments, careful=True))
            return parsed
        finally:
            release(ctx)


def release(ctx: Context) -> None:
    ctx.con.unregister("chunk_raw")
