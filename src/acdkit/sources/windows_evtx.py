"""Windows EVTX files of any channel: Sysmon 1/3/22 and Security 4688/5156 (`_winlog`).

A record format: the file is read chunk by chunk (`_evtxfile`), the ``evtx`` package decodes
each record to JSON, and batches of those texts are parsed and mapped by one DuckDB query,
as the JSON-lines formats are.  Records are numbered in file order from 1; ``src_line`` is
that number.  Times are the events' own: Sysmon ``UtcTime``, else ``TimeCreated/@SystemTime``
(UTC by definition), never the record header's time (zero, i.e. 1601, on many last records).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from acdkit.errors import MalformedError
from acdkit.sources import Context, Parsed, RecordChunk, SourceFormat, register
from acdkit.sources._evtxfile import CHUNK_MAGIC, FILE_HEADER, MAGIC, ChunkRecords, read_chunks
from acdkit.sources._lines import GZIP_MAGIC
from acdkit.sources._sql import sql_quote
from acdkit.sources._winlog import DATA_FIELDS, mapped, project

__all__ = ["BATCH_BYTES", "FORMAT"]

# JSON text parsed per query: a query costs about 0.1 s before its first row, so a batch is
# as large as a text format's chunk (16 MiB); the records of one EVTX chunk are about 64 KiB
# of binary XML and 0.1-0.2 MiB of JSON
BATCH_BYTES = 16 << 20

_STRUCTURE = json.dumps(
    {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "VARCHAR"}},
                "EventID": "VARCHAR",
                "TimeCreated": {"#attributes": {"SystemTime": "VARCHAR"}},
                "Computer": "VARCHAR",
            },
            "EventData": {name: "VARCHAR" for name in DATA_FIELDS},
        }
    }
)


def _sniff(raw: bytes) -> bool:
    """An EVTX file header, or a first chunk where a damaged header should have been; a
    gzip-compressed EVTX file too (its reader then says that it must be decompressed)."""
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = zlib.decompressobj(wbits=31).decompress(raw, FILE_HEADER + 8)
        except zlib.error:
            return False
    return raw.startswith(MAGIC) or raw[FILE_HEADER : FILE_HEADER + 8] == CHUNK_MAGIC


_HEAD = (
    "["
    + ", ".join(
        sql_quote(path)
        for path in ('$.Event.System.Provider."#attributes".Name', "$.Event.System.EventID")
    )
    + "]"
)


def _relation(careful: bool) -> str:
    """The Windows-event relation over the registered batch ``evtx_raw``.

    The provider and event id are read from every record, the rest only from the records
    that are mapped (``from_json`` costs most, and most Sysmon events are skipped).  The
    library writes valid JSON, so the fast form does without ``TRY`` (which doubles the
    cost of ``from_json``); should a record not parse, the batch is run again ``careful``.
    """

    def guard(expr: str) -> str:
        return f"TRY({expr})" if careful else expr

    data = ", ".join(f'j.Event.EventData."{name}" AS "{name}"' for name in DATA_FIELDS)
    # an EventID with Qualifiers is an object: {"#attributes": {...}, "#text": 7045}
    event_id = """CASE WHEN starts_with(head[2], '{') THEN json_extract_string(head[2], '$."#text"')
                       ELSE head[2] END"""
    parse = guard(f"from_json(raw, {sql_quote(_STRUCTURE)})")
    return f"""(SELECT line, problem, provider, event_id,
          j.Event.System.Computer AS computer,
          j.Event.System.TimeCreated."#attributes".SystemTime AS sys_time,
          CAST(NULL AS VARCHAR) AS local_time, {data}
        FROM (SELECT *, CASE WHEN {mapped("provider", "event_id")} THEN {parse} END AS j
              FROM (SELECT line, raw,
                      CASE WHEN head IS NULL THEN 'invalid EVTX record JSON' END AS problem,
                      head[1] AS provider, {event_id} AS event_id
                    FROM (SELECT line, raw, {guard(f"json_extract_string(raw, {_HEAD})")} AS head
                          FROM evtx_raw))))"""


class _Batch:
    """Chunks' records gathered until a batch is worth one query."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.lines: list[int] = []
        self.texts: list[str] = []
        self.size = 0
        self.parsed = Parsed()
        self.warnings: list[str] = []

    def add(self, chunk: ChunkRecords) -> None:
        self.lines += chunk.numbers
        self.texts += chunk.records
        self.size += sum(map(len, chunk.records))
        self.warnings += chunk.warnings
        if chunk.rejects:
            numbers, reasons = zip(*chunk.rejects, strict=True)
            self.parsed.add_lines(
                self.parsed.rejects, pa.array(numbers, pa.uint64()), pa.array(reasons)
            )

    def flush(self, ctx: Context, last: int, done: int) -> RecordChunk:
        if self.lines:
            batch = pa.table(
                {"line": pa.array(self.lines, pa.uint64()), "raw": pa.array(self.texts)}
            )
            ctx.con.register("evtx_raw", batch)
            try:
                try:
                    project(ctx, self.parsed, _relation(careful=False))
                except duckdb.Error:
                    project(ctx, self.parsed, _relation(careful=True))
            finally:
                ctx.con.unregister("evtx_raw")
        out = RecordChunk(last, self.parsed, done, self.warnings)
        self._reset()
        return out


def read_records(path: Path, ctx: Context) -> Iterator[RecordChunk]:
    """The file's records in batches; damaged chunks give warnings and rejects."""
    with path.open("rb") as fh:
        if fh.read(2) == GZIP_MAGIC:
            # read as it is, a compressed file looked like one damaged chunk, with a
            # "damaged file header" warning
            raise MalformedError(
                f"{path.name} is gzip-compressed: EVTX files are read uncompressed only",
                hint="decompress it (gunzip -k FILE) and ingest the .evtx file",
            )
    batch = _Batch()
    last = done = 0
    for chunk in read_chunks(path):
        batch.add(chunk)
        last, done = chunk.last, chunk.done
        if batch.size >= BATCH_BYTES:
            yield batch.flush(ctx, last, done)
    yield batch.flush(ctx, last, done)


FORMAT = register(
    SourceFormat(
        "windows-evtx",
        "Windows EVTX (Sysmon 1/3/22, Security 4688/5156; other events skipped)",
        _sniff,
        read_records=read_records,
        commands=True,
    )
)
